"""What one monitored run says about the quality of the signal: pure functions over windows.

Window ``i`` holds predictions ``i * window .. (i + 1) * window``. The onset row is the
first prediction at or after the scenario's onset; the *first full window after the
onset* is the first window that starts at or after it (window 1 in "windows after the
onset"; the window that holds the onset row, when the onset falls inside one, is window 0).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from loopml.monitor.alerts import AlertEvent
from loopml.monitor.results import WindowReport

# Rules that judge realized performance (the labels), by name. The default rule is
# ``performance-drop`` (metric ``realized_drop``); ``concept-drift`` is a CUSUM over the
# window metric ``performance_cusum``. A rule under another name counts too when its
# metric is a realized one or a ``performance_cusum`` (``.<metric>`` suffixes included).
PERFORMANCE_RULES = ("performance-drop", "concept-drift")
PERFORMANCE_METRICS = ("performance_cusum",)
MAX_LISTED = 10


def is_performance_alert(event: AlertEvent) -> bool:
    """A realized-performance alert: by rule name, or by its metric."""
    return (
        event.rule in PERFORMANCE_RULES
        or event.metric.startswith("realized")
        or event.metric.startswith(PERFORMANCE_METRICS)
    )


def raised(events: Sequence[AlertEvent]) -> list[AlertEvent]:
    return sorted((e for e in events if e.state == "raised"), key=lambda e: e.window)


def listed(events: Sequence[AlertEvent]) -> list[dict[str, Any]]:
    """The first raised events, as the table and the JSON show them."""
    return [
        {"window": e.window, "rule": e.rule, "metric": e.metric, "message": e.message}
        for e in events[:MAX_LISTED]
    ]


def signal(w: WindowReport) -> bool:
    """Anything an operator would see on the window: drift, prediction drift, data quality."""
    return (
        bool(w.drifted_features)
        or w.dataset_drift
        or w.metrics.get("prediction_drift", 0.0) > 0.5
        or any(
            v > 0.1
            for k, v in w.metrics.items()
            if k.split(".")[0] in ("missing_increase", "unseen_rate")
        )
    )


def prediction(w: WindowReport) -> bool:
    return bool(w.metrics.get("prediction_drift"))


def summarize_stationary(
    windows: list[WindowReport], events: list[AlertEvent], window: int
) -> dict[str, Any]:
    """A run with no onset: every alert, every flagged window is a false one."""
    alerts = raised(events)
    performance = [e for e in alerts if is_performance_alert(e)]
    return {
        "window_rows": window,
        "windows": len(windows),
        "onset_row": None,
        "false_alerts": len(alerts),
        "false_alert_rules": dict(Counter(f"{e.rule}:{e.metric}" for e in alerts)),
        "false_performance_alerts": len(performance),
        "alerts": listed(alerts),
        "windows_flagged_dataset_drift": sum(1 for w in windows if w.dataset_drift),
        "windows_flagged_prediction_drift": sum(1 for w in windows if prediction(w)),
        "windows_with_any_signal": sum(1 for w in windows if signal(w)),
    }


def summarize_onset(
    windows: list[WindowReport], events: list[AlertEvent], window: int, onset_row: int
) -> dict[str, Any]:
    """A drifting run: what was flagged before the onset, and how soon after it."""

    def ends_after(index: int) -> bool:
        return (index + 1) * window > onset_row

    def delay(flag: Callable[[WindowReport], bool]) -> int | None:
        hit = next((w for w in windows if ends_after(w.index) and flag(w)), None)
        return None if hit is None else (hit.index + 1) * window - onset_row

    def flagged_before(flag: Callable[[WindowReport], bool]) -> int:
        return sum(1 for w in windows if not ends_after(w.index) and flag(w))

    alerts = raised(events)
    before = [e for e in alerts if not ends_after(e.window)]
    after = [e for e in alerts if ends_after(e.window)]
    first_full = next((w for w in windows if w.index * window >= onset_row), None)
    return {
        "window_rows": window,
        "windows": len(windows),
        "onset_row": onset_row,
        "false_alerts": len(before),
        "false_alert_rules": dict(Counter(f"{e.rule}:{e.metric}" for e in before)),
        "false_performance_alerts": sum(1 for e in before if is_performance_alert(e)),
        "windows_flagged_dataset_drift_before_onset": flagged_before(lambda w: w.dataset_drift),
        "windows_flagged_prediction_drift_before_onset": flagged_before(prediction),
        "windows_with_any_signal": flagged_before(signal),
        "delay_any_signal": delay(signal),
        "delay_dataset_drift": delay(lambda w: w.dataset_drift),
        "delay_prediction_drift": delay(prediction),
        "delay_first_alert": None if not after else (after[0].window + 1) * window - onset_row,
        "first_alerts": sorted({f"{e.rule}:{e.metric}" for e in after})[:6],
        "windows_after_onset": sum(1 for w in windows if w.index * window >= onset_row),
        "first_full_window_flagged": None if first_full is None else signal(first_full),
        "first_full_window_flags": None if first_full is None else _flags(first_full),
        "drifted_features_seen": sorted({f for w in windows for f in w.drifted_features}),
        **performance_delay(after, window, onset_row),
    }


def performance_delay(after: list[AlertEvent], window: int, onset_row: int) -> dict[str, Any]:
    """Windows after the onset until the first realized-performance alert (1 = the first
    full window after the onset; 0 = the window that holds the onset row)."""
    first = next((e for e in after if is_performance_alert(e)), None)
    if first is None:
        return {"performance_alert_windows": None, "performance_alert_delay": None,
                "performance_alert": None}  # fmt: skip
    first_full = math.ceil(onset_row / window)
    return {
        "performance_alert_windows": first.window - first_full + 1,
        "performance_alert_delay": (first.window + 1) * window - onset_row,
        "performance_alert": listed([first])[0],
    }


def _flags(w: WindowReport) -> dict[str, Any]:
    return {
        "dataset_drift": w.dataset_drift,
        "prediction_drift": prediction(w),
        "drifted_features": w.drifted_features,
        "missing_increase": {
            k: round(v, 3)
            for k, v in w.metrics.items()
            if k.startswith("missing_increase.") and v > 0.05
        },
    }


def realized_spread(windows: list[WindowReport], metric: str) -> dict[str, Any]:
    """The realized metric per window against the holdout's: how noisy one window is."""
    values = [w.metrics[f"realized.{metric}"] for w in windows if f"realized.{metric}" in w.metrics]
    reference = next(
        (w.performance.reference.get(metric) for w in windows if w.performance.reference), None
    )
    if not values:
        return {"metric": metric, "reference": reference}
    worse = drops_above(windows, metric)
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))
    return {
        "metric": metric,
        "reference": None if reference is None else round(reference, 4),
        "window_mean": round(mean, 4),
        "window_sd": round(sd, 4),
        "window_min": round(min(values), 4),
        "window_max": round(max(values), 4),
        "windows_worse_than_reference": worse,
        "labelled_rows_per_window": round(
            sum(w.performance.labelled_rows for w in windows) / len(windows)
        ),
    }


def drops_above(windows: list[WindowReport], metric: str, threshold: float = 0.0) -> int:
    """Windows whose realized ``metric`` is worse than the holdout's by more than ``threshold``."""
    key = f"realized_drop.{metric}"
    return sum(1 for w in windows if w.metrics.get(key, -math.inf) > threshold)
