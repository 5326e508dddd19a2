"""The monitoring report's alert views: the status, the active alerts and recent events.

A version and arm's status is its active alerts' (:class:`~loopml.monitor.alert_status.
AlertStatus`): a window's own data status ("not enough data") is said beside it, never
instead of it. An active alert shows the value and window that raised it beside the
latest value and window, and the message of the event that raised it.
"""

from __future__ import annotations

from collections.abc import Sequence

from loopml.monitor.alert_status import AlertStatus, severity_of
from loopml.monitor.alerts import AlertEvent, AlertState
from loopml.monitor.report_format import View
from loopml.render.format import DASH, finite, fmt_int, fmt_num, fmt_time, shorten, text

__all__ = ["MAX_EVENTS", "active_view", "belongs", "event_views", "status_view"]

MAX_EVENTS = 20
# Evidence the message already says in words (window_evidence's denominators).
SAID = frozenset({"drift_share_threshold", "monitored_features", "drifted_count"})


def belongs(item: AlertEvent | AlertState, version: str, arm: str) -> bool:
    """Whether an alert is about this version and arm (no version: every version)."""
    return (item.version is None or item.version == version) and item.arm == arm


def status_view(actives: Sequence[View]) -> View:
    """The badge and the line for a set of active alert views."""
    status = AlertStatus.of(a["severity"] for a in actives)
    return {"line": status.line, "css": status.level, "word": status.word}


def active_view(alert: AlertState, events: Sequence[AlertEvent]) -> View:
    """An active alert: severity, what raised it and the latest value, its message.

    The severity is the state's, else that of its latest "raised" event; the message is
    that event's.
    """
    raised = [
        e
        for e in events
        if e.state == "raised" and e.rule == alert.rule and e.metric == alert.metric
    ]
    last = max(raised, key=lambda e: finite(e.ts) or 0.0, default=None)
    rules = {} if last is None else {alert.rule: last.severity}
    return {
        "severity": severity_of(alert, rules),
        "rule": text(alert.rule),
        "metric": text(alert.metric),
        "where": f"version {text(alert.version)} · arm {text(alert.arm)}",
        "status": text(alert.status),
        "since": fmt_time(alert.raised_at),
        "raised": _at(alert.metric, alert.raised_value, alert.raised_window),
        "latest": _at(alert.metric, alert.last_value, alert.last_window),
        "message": text(last.message) if last is not None and last.message else "",
    }


def _at(metric: str, value: float | None, window: int | None) -> str:
    """``0.71 in window #4`` (``drifted in window #4`` for a drift flag); a value not
    recorded is "—"."""
    if finite(value) is None:
        return DASH
    where = "" if window is None else f" in window #{fmt_int(window)}"
    if metric in _FLAGS or metric.startswith("drift."):
        return ("drifted" if value else "not drifted") + where
    return fmt_num(value) + where


_FLAGS = frozenset({"dataset_drift", "prediction_drift"})


def event_views(events: Sequence[AlertEvent]) -> list[View]:
    """The newest alert events first, at most ``MAX_EVENTS``."""
    newest = sorted(events, key=lambda e: finite(e.ts) or 0.0, reverse=True)
    return [
        {
            "when": fmt_time(e.ts),
            "severity": "critical" if e.severity == "critical" else "warning",
            "state": text(e.state),
            "rule": text(e.rule),
            "metric": text(e.metric),
            "where": f"version {text(e.version)} · arm {text(e.arm)}",
            "window": f"#{fmt_int(e.window)}",
            "value": _comparison(e),
            "message": text(e.message or DASH),
            "evidence": _evidence(e.evidence),
        }
        for e in newest[:MAX_EVENTS]
    ]


def _comparison(event: AlertEvent) -> str:
    value = fmt_num(event.value)
    if finite(event.threshold) is None:
        return value
    return f"{value} ({text(event.direction or 'vs')} {fmt_num(event.threshold)})"


def _evidence(evidence: object) -> str:
    """The scalar entries of an event's evidence, as "key=value, ..." (nested ones skipped)."""
    if not isinstance(evidence, dict):
        return ""
    parts = []
    for key, value in [(k, v) for k, v in evidence.items() if k not in SAID][:8]:
        if isinstance(value, str):
            parts.append(f"{key}={shorten(value, 40)}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(f"{key}={fmt_num(value)}")
        elif isinstance(value, bool):
            parts.append(f"{key}={'yes' if value else 'no'}")
    return ", ".join(parts)
