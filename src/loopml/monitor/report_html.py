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
from loopml.monitor.alerts import AlertEvent, AlertState
from loopml.monitor.report import MonitorReport
from loopml.monitor.report_charts import drift_chart, histogram_chart
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
MAX_EVENTS = 20
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
    return {
        "title": f"{text(report.model)} — monitoring report",
        "meta": " · ".join([*meta, f"created {fmt_time(report.created_at)}"]),
        "errors": [text(e) for e in report.errors],
        "empty": None if groups else _empty_message(report),
        "groups": views,
        "other_active": [
            _active_view(a, alerts) for a in active if not any(_belongs(a, *k) for k in keys)
        ],
        "other_events": _event_views([a for a in alerts if not any(_belongs(a, *k) for k in keys)]),
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


def _belongs(item: AlertEvent | AlertState, version: str, arm: str) -> bool:
    """Whether an alert is about this version and arm (no version: every version)."""
    return (item.version is None or item.version == version) and item.arm == arm


def _group_view(
    anchor: str,
    windows: Sequence[WindowReport],
    alerts: Sequence[AlertEvent],
    active: Sequence[AlertState],
    threshold: float | None,
) -> View:
    newest = windows[-1]
    latest = next((w for w in reversed(windows) if w.complete), newest)
    version, arm = newest.version, newest.arm
    events = [e for e in alerts if _belongs(e, version, arm)]
    actives = [_active_view(a, events) for a in active if _belongs(a, version, arm)]
    status, css = _group_status(latest, actives)
    label = f"window #{fmt_int(latest.index)}"
    return {
        "anchor": anchor,
        "title": f"{text(newest.model)} · version {version} · arm {arm}",
        "status": status,
        "status_class": css,
        "facts": _facts(windows, latest),
        "active": actives,
        "events": _event_views(events),
        "filling": _filling_note(newest, latest),
        "latest_label": f"{label}, {fmt_range(latest.start_ts, latest.end_ts)}",
        "drift": _drift_summary(latest, threshold),
        "features": _feature_tables(latest),
        "prediction": None if latest.prediction is None else _feature_row(latest.prediction),
        "performance": performance_view(windows),
        "drift_chart": drift_chart(windows, threshold),
        "slices": slices_view(latest),
    }


def _group_status(latest: WindowReport, actives: Sequence[View]) -> tuple[str, str]:
    severities = {a["severity"] for a in actives}
    for severity in ("critical", "warning"):
        if severity in severities:
            count = len(actives)
            return f"{count} active alert{'s' if count > 1 else ''}", severity
    if latest.status == "ok":
        return "ok", "ok"
    return latest.status.replace("_", " "), "muted"


def _facts(windows: Sequence[WindowReport], latest: WindowReport) -> list[tuple[str, str]]:
    first, last = windows[0], windows[-1]
    return [
        ("Model", text(last.model)),
        ("Version", last.version),
        ("Arm", last.arm),
        ("Window", text(last.window)),
        ("Windows", f"{len(windows)} (#{fmt_int(first.index)}–#{fmt_int(last.index)})"),
        ("Latest window", f"#{fmt_int(latest.index)} · {fmt_int(latest.rows)} rows"),
        ("Time range", fmt_range(latest.start_ts, latest.end_ts)),
        ("Status", status_text(latest.status, latest.reason)),
    ]


def _filling_note(newest: WindowReport, latest: WindowReport) -> str | None:
    if newest.complete:
        return None
    filling = (
        f"Window #{fmt_int(newest.index)} is still filling ({fmt_int(newest.rows)} rows so far)"
    )
    if newest is latest:
        return f"{filling}; no window is complete yet, so the tables below show it."
    complete = f"window #{fmt_int(latest.index)}"
    return f"{filling}; the tables below show {complete}, the newest complete one."


# --- alerts ----------------------------------------------------------------------------


def _severity(value: str | None) -> str:
    return "critical" if value == "critical" else "warning"


def _active_view(alert: AlertState, events: Sequence[AlertEvent]) -> View:
    """An active alert; its severity and message come from its latest "raised" event."""
    raised = [
        e
        for e in events
        if e.state == "raised" and e.rule == alert.rule and e.metric == alert.metric
    ]
    last = max(raised, key=lambda e: finite(e.ts) or 0.0, default=None)
    return {
        "severity": _severity(None if last is None else last.severity),
        "rule": text(alert.rule),
        "metric": text(alert.metric),
        "where": f"version {text(alert.version)} · arm {text(alert.arm)}",
        "status": text(alert.status),
        "since": fmt_time(alert.raised_at),
        "value": fmt_num(alert.last_value),
        "message": text(last.message) if last is not None and last.message else "",
    }


def _event_views(events: Sequence[AlertEvent]) -> list[View]:
    """The newest alert events first, at most ``MAX_EVENTS``."""
    newest = sorted(events, key=lambda e: finite(e.ts) or 0.0, reverse=True)
    return [
        {
            "when": fmt_time(e.ts),
            "severity": _severity(e.severity),
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
    for key, value in list(evidence.items())[:8]:
        if isinstance(value, str):
            parts.append(f"{key}={shorten(value, 40)}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(f"{key}={fmt_num(value)}")
        elif isinstance(value, bool):
            parts.append(f"{key}={'yes' if value else 'no'}")
    return ", ".join(parts)


# --- drift -----------------------------------------------------------------------------


def _drift_summary(window: WindowReport, threshold: float | None) -> View:
    tested = [f for f in window.features if f.drift.status == "ok"]
    drifted = [text(name) for name in window.drifted_features]
    share = finite(window.drift_share)
    return {
        "available": share is not None,
        "reason": status_text(window.status, window.reason),
        "share": fmt_pct(share),
        "count": f"{len(drifted)} of {len(tested)} tested features",
        "threshold": None if threshold is None else fmt_pct(threshold),
        "dataset_drift": window.dataset_drift,
        "drifted": drifted[:MAX_NAMES],
        "more": max(0, len(drifted) - MAX_NAMES),
    }


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
