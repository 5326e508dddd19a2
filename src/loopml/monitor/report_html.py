"""The report a person reads after ``loopml monitor run``: one self-contained HTML page.

:func:`render_html` turns a :class:`~loopml.monitor.report.MonitorReport` (windows,
alert events, active alerts, errors) into HTML with inline CSS and inline SVG charts: no
JavaScript, nothing fetched. :func:`write_report` writes the JSON and the HTML side by
side, atomically. Per model version and arm: status and alerts, dataset drift, a table
of every feature's drift test with a reference-vs-current chart, the prediction's
distribution, performance and drift share over time, and realized metrics per slice.

All formatting happens in Python (a view model of strings and chart coordinates: values
through :mod:`loopml.render.format`, chart geometry in
:mod:`~loopml.monitor.report_charts`); the template ``templates/monitor_report.html.j2``
(on the shared layout of :mod:`loopml.render`) only lays it out, autoescaped. A missing
value shows as "—" (with the reason when there is one), never as "nan" or "None".

>>> from loopml.monitor.report import MonitorReport
>>> page = render_html(MonitorReport(project="demo", model="churn", window="5000 rows",
...     created_at="2024-05-01T10:00:00+00:00"))
>>> "No windows yet: the ledger has fewer than 5,000 predictions for churn" in page
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import jinja2

from loopml.files import write_text_atomic
from loopml.monitor.alert_messages import monitored
from loopml.monitor.alerts import AlertEvent, AlertState
from loopml.monitor.report import MonitorReport
from loopml.monitor.report_alerts import active_view, belongs, event_views, status_view
from loopml.monitor.report_charts import drift_chart, histogram_chart
from loopml.monitor.report_filling import filling_view
from loopml.monitor.report_format import View, jsonable, status_text
from loopml.monitor.report_performance import performance_view, slices_view
from loopml.monitor.results import FeatureReport, WindowReport
from loopml.render.environment import html_environment
from loopml.render.format import (
    DASH,
    finite,
    fmt_int,
    fmt_num,
    fmt_pct,
    fmt_range,
    fmt_time,
    shorten,
    text,
)

__all__ = ["build_view", "render_html", "write_report"]

OPEN_FEATURES = 25  # rows beyond this (all undrifted) fold into a collapsed table
MAX_CHARTS = 100  # per window: keeps a 2,000-feature page at a few MB
MAX_NAMES = 40


def render_html(report: MonitorReport) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no scripts)."""
    return _template().render(build_view(report))


def write_report(report: MonitorReport, folder: Path, stem: str = "monitor") -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.html`` into ``folder``; return both paths.

    Each file is written whole or not at all. Non-finite numbers become ``null`` so the
    JSON stays strict (``allow_nan=False``).
    """
    data = jsonable(report.to_dict())
    page = render_html(report)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / f"{stem}.json", folder / f"{stem}.html"
    write_text_atomic(json_path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    write_text_atomic(html_path, page)
    return json_path, html_path


# --- the page --------------------------------------------------------------------------


def build_view(report: MonitorReport) -> View:
    """The page as plain strings, lists and chart coordinates for the template."""
    alerts = [stored.event for stored in report.alerts]
    active = [a for a in report.active_alerts if a.status != "ok"]
    threshold = finite(report.drift_share_threshold)
    groups = _groups(report.windows)
    views = [
        _group_view(f"group-{n}", group, alerts, active, threshold)
        for n, group in enumerate(groups)
    ]
    keys = [(g[-1].version, g[-1].arm) for g in groups]
    meta = [f"project {text(report.project)}", f"window {text(report.window)}"]
    other = [active_view(a, alerts) for a in active if not any(belongs(a, *k) for k in keys)]
    return {
        "title": f"{text(report.model)} — monitoring report",
        "meta": " · ".join([*meta, f"created {fmt_time(report.created_at)}"]),
        "status": status_view([a for g in views for a in g["active"]] + other),
        "errors": [text(e) for e in report.errors],
        "empty": None if groups else _empty_message(report),
        "groups": views,
        "other_active": other,
        "other_status": status_view(other),
        "other_events": event_views([a for a in alerts if not any(belongs(a, *k) for k in keys)]),
    }


def _empty_message(report: MonitorReport) -> str:
    model, window = text(report.model), text(report.window)
    rows = finite(report.min_rows)
    match = re.fullmatch(r"\s*(\d+)\s*(rows?)?\s*", window)
    if rows is None and match:
        rows = float(match.group(1))
    if rows is not None:
        return f"No windows yet: the ledger has fewer than {int(rows):,} predictions for {model}."
    return f"No windows yet: the ledger has no predictions for {model} in a {window} window."


def _groups(windows: Sequence[WindowReport]) -> list[list[WindowReport]]:
    """Windows per (version, arm), oldest first; the newest version first.

    A window index seen twice (stored history plus this run's fresh copy) keeps the later.
    """
    groups: dict[tuple[str, str], dict[int, WindowReport]] = {}
    for window in windows:
        groups.setdefault((window.version, window.arm), {})[window.index] = window

    def order(key: tuple[str, str]) -> tuple[int, float, str, str]:
        version, arm = key
        number = int(version) if version.isdigit() else None
        return (0 if number is not None else 1, -(number or 0), version, arm)

    return [
        sorted(groups[key].values(), key=lambda w: w.index) for key in sorted(groups, key=order)
    ]


def _group_view(
    anchor: str,
    windows: Sequence[WindowReport],
    alerts: Sequence[AlertEvent],
    active: Sequence[AlertState],
    threshold: float | None,
) -> View:
    newest = windows[-1]
    complete = [w for w in windows if w.complete]
    latest = complete[-1] if complete else newest
    version, arm = newest.version, newest.arm
    events = [e for e in alerts if belongs(e, version, arm)]
    actives = [active_view(a, events) for a in active if belongs(a, version, arm)]
    status = status_view(actives)
    label = f"window #{fmt_int(latest.index)}"
    return {
        "anchor": anchor,
        "title": f"{text(newest.model)} · version {version} · arm {arm}",
        "status": status,
        "data_status": None if latest.status == "ok" else status_text(latest.status, None),
        "facts": _facts(windows, latest, status),
        "active": actives,
        "events": event_views(events),
        "filling": filling_view(newest, latest),
        "latest_label": f"{label}, {fmt_range(latest.start_ts, latest.end_ts)}",
        "drift": _drift_summary(latest, threshold),
        "features": _feature_tables(latest),
        "prediction": None if latest.prediction is None else _feature_row(latest.prediction),
        "performance": _trends(complete),
        "drift_chart": drift_chart(complete, threshold),
        "slices": slices_view(latest),
    }


def _trends(complete: Sequence[WindowReport]) -> View:
    """Performance over the complete windows only: a filling window is no point on a trend."""
    view = performance_view(complete)
    if not complete:
        view["notes"] = ["No complete window yet: the trends start with the first one."]
    return view


def _facts(
    windows: Sequence[WindowReport], latest: WindowReport, status: View
) -> list[tuple[str, str]]:
    first, last = windows[0], windows[-1]
    return [
        ("Status", status["line"]),
        ("Model", text(last.model)),
        ("Version", last.version),
        ("Arm", last.arm),
        ("Window", text(last.window)),
        ("Windows", f"{len(windows)} (#{fmt_int(first.index)}–#{fmt_int(last.index)})"),
        ("Latest window", f"#{fmt_int(latest.index)} · {fmt_int(latest.rows)} rows"),
        ("Time range", fmt_range(latest.start_ts, latest.end_ts)),
        ("Window status", status_text(latest.status, latest.reason)),
    ]


# --- drift -----------------------------------------------------------------------------


def _drift_summary(window: WindowReport, threshold: float | None) -> View:
    drifted = [text(name) for name in window.drifted_features]
    share = finite(window.drift_share)
    return {
        "available": share is not None,
        "reason": status_text(window.status, window.reason),
        "share": fmt_pct(share),
        "count": _denominator(window),
        "threshold": None if threshold is None else fmt_pct(threshold),
        "dataset_drift": window.dataset_drift,
        "drifted": drifted[:MAX_NAMES],
        "more": max(0, len(drifted) - MAX_NAMES),
    }


def _denominator(window: WindowReport) -> str:
    """``2 of 7 monitored features; 1 not tested: x — not enough data``.

    Windows that do not record the monitored features shared over the tested ones; the
    features not tested are then named apart from that count.
    """
    count, untested = monitored(window)
    noun = "monitored" if window.monitored_features > 0 else "tested"
    if not untested and window.monitored_features == 0:
        untested = [f.name for f in window.features if f.drift.status != "ok"]
    said = f"{len(window.drifted_features)} of {count} {noun} features"
    if not untested:
        return said
    reasons = {f.name: _why_untested(f) for f in window.features}
    named = ", ".join(
        f"{text(name)} — {reasons[name]}" if name in reasons else text(name)
        for name in untested[:MAX_NAMES]
    )
    more = f" and {len(untested) - MAX_NAMES} more" if len(untested) > MAX_NAMES else ""
    tail = "not tested" if window.monitored_features > 0 else "more not tested"
    return f"{said}; {len(untested)} {tail}: {named}{more}"


def _why_untested(feature: FeatureReport) -> str:
    drift = feature.drift
    if drift.status == "not_enough_data" or not drift.reason:
        return status_text(drift.status, None)
    return shorten(str(drift.reason).removeprefix("not tested: "), 60)


def _drift_rank(feature: FeatureReport) -> tuple[int, float, str]:
    """Drifted first, then the furthest past (or nearest to) its threshold, then name."""
    drift = feature.drift
    statistic, threshold = finite(drift.statistic), finite(drift.threshold)
    if drift.status != "ok" or statistic is None:
        return (2, 0.0, feature.name)
    limit = threshold if threshold and threshold > 0 else 1.0
    p_value = drift.kind == "p_value"
    severity = limit / max(statistic, 1e-300) if p_value else statistic / limit
    return (0 if drift.drifted else 1, -severity, feature.name)


def _feature_tables(window: WindowReport) -> View:
    features = sorted(window.features, key=_drift_rank)
    rows = [_feature_row(f, chart=n < MAX_CHARTS) for n, f in enumerate(features)]
    shown = max(OPEN_FEATURES, sum(1 for f in features if f.drift.drifted))
    empty = "No feature results in this window: " + status_text(
        window.status, window.reason or "no features were tested"
    )
    return {
        "rows": rows[:shown],
        "more": rows[shown:],
        "more_label": f"{len(rows) - shown} more features, none drifted",
        "empty": empty,
    }


def _feature_row(feature: FeatureReport, *, chart: bool = True) -> View:
    drift = feature.drift
    statistic = finite(drift.statistic)
    ok = drift.status == "ok" and statistic is not None
    missing, reference = finite(feature.missing_rate), finite(feature.reference_missing_rate)
    examples = [text(e) for e in feature.unseen_examples]
    return {
        "name": text(feature.name),
        "kind": text(feature.kind),
        "test": text(drift.test),
        "stat_kind": "p-value" if drift.kind == "p_value" else "distance",
        "statistic": fmt_num(statistic) if ok else DASH,
        "threshold": fmt_num(drift.threshold),
        "drifted": ("yes" if drift.drifted else "no") if ok else DASH,
        "missing": fmt_pct(missing),
        "reference_missing": fmt_pct(reference),
        "missing_up": missing is not None and missing - (reference or 0.0) > 0.05,
        "unseen": fmt_pct(feature.unseen_rate),
        "unseen_examples": ", ".join(shorten(e, 40) for e in examples[:5]),
        "rows": fmt_int(drift.current_rows),
        "reference_rows": fmt_int(drift.reference_rows),
        "status": "ok" if ok else status_text(drift.status, drift.reason),
        "chart": histogram_chart(feature.histogram, feature.name) if chart else None,
    }


@cache
def _template() -> jinja2.Template:
    return html_environment("loopml.monitor").get_template("monitor_report.html.j2")
