"""The monitoring bench's markdown: the targets, the feed scenarios, the regression run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MIN_WINDOWS = 100
MAX_PERFORMANCE_WINDOWS = 3

Check = Callable[[dict[str, Any]], tuple[str, bool]]


def _stationary(r: dict[str, Any]) -> tuple[str, bool]:
    rules = ", ".join(f"{k} ×{v}" for k, v in r["false_alert_rules"].items())
    text = f"{_count(r['false_alerts'], 'alert')} in {r['windows']} windows"
    if rules:
        text += f" ({rules})"
    return text, r["windows"] >= MIN_WINDOWS and r["false_alerts"] == 0


def _first_full(r: dict[str, Any]) -> tuple[str, bool]:
    return first_full_text(r), bool(r["first_full_window_flagged"])


def _concept(r: dict[str, Any]) -> tuple[str, bool]:
    windows = r["performance_alert_windows"]
    if windows is None:
        text = f"no performance alert in the {r['windows_after_onset']} windows after the onset"
    else:
        alert = r["performance_alert"]
        text = (
            f"{windows} windows ({r['performance_alert_delay']:,} predictions after the "
            f"onset; {alert['rule']}:{alert['metric']})"
        )
    if r["false_alerts"]:
        text += f"; {r['false_alerts']} alerts before the onset"
    return text, windows is not None and windows <= MAX_PERFORMANCE_WINDOWS


def _regression(r: dict[str, Any]) -> tuple[str, bool]:
    text = (
        f"{_count(r['false_performance_alerts'], 'performance alert')} in {r['windows']} "
        f"windows ({_count(r['false_alerts'], 'alert')} of any rule)"
    )
    return text, r["windows"] >= MIN_WINDOWS and r["false_performance_alerts"] == 0


TARGETS: dict[str, tuple[str, Check]] = {
    "stationary": (f"0 false alerts in ≥ {MIN_WINDOWS} stationary windows", _stationary),
    "covariate_shift": ("flagged in the first full window after the onset", _first_full),
    "broken_feature": ("flagged in the first full window after the onset", _first_full),
    "label_shift": ("flagged in the first full window after the onset", _first_full),
    "concept_drift": (
        f"a performance alert ≤ {MAX_PERFORMANCE_WINDOWS} windows after the onset (labels at once)",
        _concept,
    ),
    "regression_stationary": (
        f"0 false performance alerts in ≥ {MIN_WINDOWS} stationary windows (regression, "
        "dollar units)",
        _regression,
    ),
}


def first_full_text(r: dict[str, Any]) -> str:
    flags = r.get("first_full_window_flags") or {}
    named = [k for k in ("dataset_drift", "prediction_drift") if flags.get(k)]
    if flags.get("drifted_features"):
        named.append("features: " + ", ".join(flags["drifted_features"][:4]))
    if flags.get("missing_increase"):
        named.append("missing: " + ", ".join(flags["missing_increase"]))
    return "; ".join(named) or "not flagged"


def targets_table(results: list[dict[str, Any]]) -> list[str]:
    lines = ["| scenario | target | measured | |", "|---|---|---|---|"]
    for r in results:
        target, check = TARGETS[r["scenario"]]
        text, met = check(r)
        lines.append(f"| {r['scenario']} | {target} | {text} | **{'pass' if met else 'miss'}** |")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _num(value: float | None, scale: float | None) -> str:
    """Figures on the scale of ``scale``: dollar-like ones without decimals, others with four."""
    if value is None:
        return "—"
    return f"{value:,.0f}" if scale is not None and abs(scale) >= 100 else f"{value:.4f}"


def _cell(value: Any) -> str:
    return "—" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def feed_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| scenario | windows | false alerts | windows flagged before onset | first signal "
        "delay | dataset drift delay | prediction drift delay | first alert delay | "
        "performance alert delay (windows) | first full window after onset | est. vs "
        "realized AUC after onset |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        stationary = r["onset_row"] is None
        gap = (
            f"{r['auc_post_estimated']} vs {r['auc_post_realized']} (gap {r['auc_post_gap']}; "
            f"per window mean {r['auc_gap_mean_per_window']})"
            if "auc_post_gap" in r
            else "—"
        )
        perf = (
            "—"
            if stationary or r["performance_alert_windows"] is None
            else f"{r['performance_alert_delay']:,} ({r['performance_alert_windows']})"
        )
        lines.append(
            f"| {r['scenario']} | {r['windows']} | {r['false_alerts']} "
            f"| {r['windows_with_any_signal']} | {_cell(r.get('delay_any_signal'))} "
            f"| {_cell(r.get('delay_dataset_drift'))} | {_cell(r.get('delay_prediction_drift'))} "
            f"| {_cell(r.get('delay_first_alert'))} | {perf} "
            f"| {'—' if stationary else first_full_text(r)} | {gap} |"
        )
    return lines


def regression_lines(r: dict[str, Any]) -> list[str]:
    spread = r["realized_spread"]
    ref = spread.get("reference")
    mean, sd = _num(spread.get("window_mean"), ref), _num(spread.get("window_sd"), ref)
    low, high = _num(spread.get("window_min"), ref), _num(spread.get("window_max"), ref)
    lines = [
        f"Regression, stationary: {r['windows']} windows of {r['window_rows']:,} predictions, "
        f"every label sent. Holdout {spread['metric']} {_num(ref, ref)}; per window {mean} ± "
        f"{sd} (sd; {low}–{high}), worse than the "
        f"holdout in {spread.get('windows_worse_than_reference')} windows. Windows flagged: "
        f"prediction drift {r['windows_flagged_prediction_drift']}, any drift or data-quality "
        f"signal {r['windows_with_any_signal']}. Alerts raised: {r['false_alerts']} "
        f"({r['false_performance_alerts']} on realized performance).",
    ]
    if r["alerts"]:
        lines += ["", "| window | rule | metric | message |", "|---|---|---|---|"]
        lines += [
            f"| {a['window']} | {a['rule']} | {a['metric']} | {a['message']} |" for a in r["alerts"]
        ]
        if r["false_alerts"] > len(r["alerts"]):
            lines.append(f"\n(first {len(r['alerts'])} of {r['false_alerts']} shown)")
    return lines


def markdown(results: list[dict[str, Any]], command: str, about: str) -> str:
    feed = [r for r in results if r["table"] == "feed"]
    regression = [r for r in results if r["table"] == "regression"]
    lines = ["## Monitoring: quality of the signal", "", f"`{command}` — {about}", ""]
    lines += ["### Targets", "", *targets_table(results), ""]
    if feed:
        lines += ["### Generated feed", "", *feed_table(feed), ""]
    for r in regression:
        lines += ["### Regression table", "", *regression_lines(r), ""]
    return "\n".join(lines)
