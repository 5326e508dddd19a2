"""The report a person reads after ``loopml monitor run``: one self-contained HTML page.

:func:`render_html` turns a monitoring run's JSON report (``WindowReport.to_dict()``
windows, alert events, active alerts, errors) into HTML with inline CSS and inline SVG
charts: no JavaScript, nothing fetched. :func:`write_report` writes the JSON and the HTML
side by side, atomically. Per model version and arm: status and alerts, dataset drift, a
table of every feature's drift test with a reference-vs-current chart, the prediction's
distribution, performance and drift share over time, and realized metrics per slice.

All formatting happens in Python (a view model of strings and chart coordinates: values
through :mod:`~loopml.monitor.report_format`, chart geometry in
:mod:`~loopml.monitor.report_charts`); the template ``templates/monitor_report.html.j2``
only lays it out, autoescaped. A missing value shows
as "—" (with the reason when there is one), never as "nan" or "None".

Optional report keys beyond the required ones: ``drift_share_threshold`` (the dataset
drift threshold, drawn on the drift summary and chart) and ``min_rows`` (quoted when there
are no windows yet).

>>> page = render_html({"project": "demo", "model": "churn", "window": "5000 rows",
...     "created_at": "2024-05-01T10:00:00+00:00", "windows": [], "alerts": [],
...     "active_alerts": [], "errors": []})
>>> "No windows yet: the ledger has fewer than 5,000 predictions for churn" in page
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from loopml.files import write_text_atomic
from loopml.monitor.report_charts import (
    Series,
    drift_chart,
    histogram_chart,
    line_chart,
    window_axis,
)
from loopml.monitor.report_format import (
    DASH,
    View,
    finite,
    fmt_int,
    fmt_num,
    fmt_pct,
    fmt_range,
    fmt_time,
    higher_is_better,
    jsonable,
    metric_title,
    shorten,
    status_text,
    text,
)
from loopml.train.metrics import default_metric, metrics_for

# fmt_* are re-exported: they were defined here before report_format.py existed.
__all__ = ["fmt_num", "fmt_pct", "fmt_range", "fmt_time", "render_html", "write_report"]

OPEN_FEATURES = 25  # rows beyond this (all undrifted) fold into a collapsed table
MAX_CHARTS = 100  # per window: keeps a 2,000-feature page at a few MB
MAX_METRICS = 4
MAX_EVENTS = 20
MAX_NAMES = 40


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no scripts)."""
    return _template().render(build_view(report))


def write_report(
    report: Mapping[str, Any], folder: Path, stem: str = "monitor"
) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.html`` into ``folder``; return both paths.

    Each file is written whole or not at all. Non-finite numbers become ``null`` so the
    JSON stays strict (``allow_nan=False``).
    """
    data = jsonable(report)
    page = render_html(data)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / f"{stem}.json", folder / f"{stem}.html"
    write_text_atomic(json_path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    write_text_atomic(html_path, page)
    return json_path, html_path


# --- the page --------------------------------------------------------------------------


def build_view(report: Mapping[str, Any]) -> View:
    """The page as plain strings, lists and chart coordinates for the template."""
    windows = [w for w in report.get("windows") or [] if isinstance(w, Mapping)]
    alerts = [a for a in report.get("alerts") or [] if isinstance(a, Mapping)]
    active = [
        a
        for a in report.get("active_alerts") or []
        if isinstance(a, Mapping) and a.get("status", "raised") != "ok"
    ]
    threshold = finite(report.get("drift_share_threshold"))
    groups = _groups(windows)
    views = [
        _group_view(f"group-{n}", group, alerts, active, threshold)
        for n, group in enumerate(groups)
    ]
    keys = [(str(g[-1].get("version")), str(g[-1].get("arm"))) for g in groups]
    model = text(report.get("model"))
    meta = [f"project {text(report.get('project'))}", f"window {text(report.get('window'))}"]
    return {
        "title": f"{model} — monitoring report",
        "meta": " · ".join([*meta, f"created {fmt_time(report.get('created_at'))}"]),
        "errors": [text(e) for e in report.get("errors") or []],
        "empty": None if groups else _empty_message(report),
        "groups": views,
        "other_active": [
            _active_view(a, alerts) for a in active if not any(_belongs(a, *k) for k in keys)
        ],
        "other_events": _event_views([a for a in alerts if not any(_belongs(a, *k) for k in keys)]),
    }


def _empty_message(report: Mapping[str, Any]) -> str:
    model = text(report.get("model"))
    rows = finite(report.get("min_rows"))
    window = text(report.get("window"))
    match = re.fullmatch(r"\s*(\d+)\s*(rows?)?\s*", window)
    if rows is None and match:
        rows = float(match.group(1))
    if rows is not None:
        return f"No windows yet: the ledger has fewer than {int(rows):,} predictions for {model}."
    return f"No windows yet: the ledger has no predictions for {model} in a {window} window."


def _groups(windows: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Windows per (version, arm), oldest first; the newest version first.

    A window index seen twice (stored history plus this run's fresh copy) keeps the later.
    """
    groups: dict[tuple[str, str], dict[Any, Mapping[str, Any]]] = {}
    for window in windows:
        key = (str(window.get("version")), str(window.get("arm")))
        groups.setdefault(key, {})[window.get("index")] = window

    def order(key: tuple[str, str]) -> tuple[int, float, str, str]:
        version, arm = key
        number = int(version) if version.isdigit() else None
        return (0 if number is not None else 1, -(number or 0), version, arm)

    return [
        sorted(groups[key].values(), key=lambda w: finite(w.get("index")) or 0.0)
        for key in sorted(groups, key=order)
    ]


def _belongs(item: Mapping[str, Any], version: str, arm: str) -> bool:
    """Whether an alert is about this version and arm (no version: every version)."""
    same_version = item.get("version") is None or str(item.get("version")) == version
    return same_version and str(item.get("arm")) == arm


def _group_view(
    anchor: str,
    windows: Sequence[Mapping[str, Any]],
    alerts: Sequence[Mapping[str, Any]],
    active: Sequence[Mapping[str, Any]],
    threshold: float | None,
) -> View:
    newest = windows[-1]
    latest = next((w for w in reversed(windows) if w.get("complete", True)), newest)
    version, arm = str(newest.get("version")), str(newest.get("arm"))
    events = [e for e in alerts if _belongs(e, version, arm)]
    actives = [_active_view(a, events) for a in active if _belongs(a, version, arm)]
    status, css = _group_status(latest, actives)
    label = f"window #{fmt_int(latest.get('index'))}"
    return {
        "anchor": anchor,
        "title": f"{text(newest.get('model'))} · version {version} · arm {arm}",
        "status": status,
        "status_class": css,
        "facts": _facts(windows, latest, version, arm),
        "active": actives,
        "events": _event_views(events),
        "filling": _filling_note(newest, latest),
        "latest_label": f"{label}, {fmt_range(latest.get('start_ts'), latest.get('end_ts'))}",
        "drift": _drift_summary(latest, threshold),
        "features": _feature_tables(latest),
        "prediction": _prediction(latest),
        "performance": _performance(windows),
        "drift_chart": drift_chart(windows, threshold),
        "slices": _slices(latest),
    }


def _group_status(latest: Mapping[str, Any], actives: Sequence[View]) -> tuple[str, str]:
    severities = {a["severity"] for a in actives}
    for severity in ("critical", "warning"):
        if severity in severities:
            count = len(actives)
            return f"{count} active alert{'s' if count > 1 else ''}", severity
    if latest.get("status", "ok") == "ok":
        return "ok", "ok"
    return str(latest.get("status")).replace("_", " "), "muted"


def _facts(
    windows: Sequence[Mapping[str, Any]], latest: Mapping[str, Any], version: str, arm: str
) -> list[tuple[str, str]]:
    first, last = windows[0], windows[-1]
    return [
        ("Model", text(last.get("model"))),
        ("Version", version),
        ("Arm", arm),
        ("Window", text(last.get("window"))),
        (
            "Windows",
            f"{len(windows)} (#{fmt_int(first.get('index'))}–#{fmt_int(last.get('index'))})",
        ),
        ("Latest window", f"#{fmt_int(latest.get('index'))} · {fmt_int(latest.get('rows'))} rows"),
        ("Time range", fmt_range(latest.get("start_ts"), latest.get("end_ts"))),
        ("Status", status_text(latest.get("status"), latest.get("reason"))),
    ]


def _filling_note(newest: Mapping[str, Any], latest: Mapping[str, Any]) -> str | None:
    if newest.get("complete", True):
        return None
    filling = (
        f"Window #{fmt_int(newest.get('index'))} is still filling "
        f"({fmt_int(newest.get('rows'))} rows so far)"
    )
    if newest is latest:
        return f"{filling}; no window is complete yet, so the tables below show it."
    complete = f"window #{fmt_int(latest.get('index'))}"
    return f"{filling}; the tables below show {complete}, the newest complete one."


# --- alerts ----------------------------------------------------------------------------


def _severity(value: Any) -> str:
    return "critical" if value == "critical" else "warning"


def _active_view(alert: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> View:
    """An active alert; its severity and message come from its latest "raised" event."""
    raised = [
        e
        for e in events
        if e.get("state") == "raised"
        and e.get("rule") == alert.get("rule")
        and e.get("metric") == alert.get("metric")
    ]
    last = max(raised, key=lambda e: finite(e.get("ts")) or 0.0, default={})
    return {
        "severity": _severity(alert.get("severity", last.get("severity"))),
        "rule": text(alert.get("rule")),
        "metric": text(alert.get("metric")),
        "where": f"version {text(alert.get('version'))} · arm {text(alert.get('arm'))}",
        "status": text(alert.get("status") or "raised"),
        "since": fmt_time(alert.get("raised_at")),
        "value": fmt_num(alert.get("last_value")),
        "message": text(last["message"]) if last.get("message") else "",
    }


def _event_views(events: Sequence[Mapping[str, Any]]) -> list[View]:
    """The newest alert events first, at most ``MAX_EVENTS``."""
    newest = sorted(events, key=lambda e: finite(e.get("ts")) or 0.0, reverse=True)
    return [
        {
            "when": fmt_time(e.get("ts")),
            "severity": _severity(e.get("severity")),
            "state": text(e.get("state")),
            "rule": text(e.get("rule")),
            "metric": text(e.get("metric")),
            "where": f"version {text(e.get('version'))} · arm {text(e.get('arm'))}",
            "window": f"#{fmt_int(e.get('window_index', e.get('window')))}",
            "value": _comparison(e),
            "message": text(e.get("message") or DASH),
            "evidence": _evidence(e.get("evidence")),
        }
        for e in newest[:MAX_EVENTS]
    ]


def _comparison(event: Mapping[str, Any]) -> str:
    value = fmt_num(event.get("value"))
    if finite(event.get("threshold")) is None:
        return value
    return f"{value} ({text(event.get('direction') or 'vs')} {fmt_num(event.get('threshold'))})"


def _evidence(evidence: Any) -> str:
    """The scalar entries of an event's evidence, as "key=value, ..." (nested ones skipped)."""
    if not isinstance(evidence, Mapping):
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


def _drift_summary(window: Mapping[str, Any], threshold: float | None) -> View:
    features = [f for f in window.get("features") or [] if isinstance(f, Mapping)]
    tested = [f for f in features if (f.get("drift") or {}).get("status", "ok") == "ok"]
    drifted = [text(name) for name in window.get("drifted_features") or []]
    share = finite(window.get("drift_share"))
    return {
        "available": share is not None,
        "reason": status_text(window.get("status"), window.get("reason")),
        "share": fmt_pct(share),
        "count": f"{len(drifted)} of {len(tested)} tested features",
        "threshold": None if threshold is None else fmt_pct(threshold),
        "dataset_drift": bool(window.get("dataset_drift")),
        "drifted": drifted[:MAX_NAMES],
        "more": max(0, len(drifted) - MAX_NAMES),
    }


def _drift_rank(feature: Mapping[str, Any]) -> tuple[int, float, str]:
    """Drifted first, then the furthest past (or nearest to) its threshold, then name."""
    drift = feature.get("drift") or {}
    statistic, threshold = finite(drift.get("statistic")), finite(drift.get("threshold"))
    name = text(feature.get("name"))
    if drift.get("status", "ok") != "ok" or statistic is None:
        return (2, 0.0, name)
    limit = threshold if threshold and threshold > 0 else 1.0
    if drift.get("kind") == "p_value":
        severity = limit / max(statistic, 1e-300)
    else:
        severity = statistic / limit
    return (0 if drift.get("drifted") else 1, -severity, name)


def _feature_tables(window: Mapping[str, Any]) -> View:
    features = sorted(
        (f for f in window.get("features") or [] if isinstance(f, Mapping)), key=_drift_rank
    )
    rows = [_feature_row(f, chart=n < MAX_CHARTS) for n, f in enumerate(features)]
    shown = max(OPEN_FEATURES, sum(1 for f in features if (f.get("drift") or {}).get("drifted")))
    empty = "No feature results in this window: " + status_text(
        window.get("status"), window.get("reason") or "no features were tested"
    )
    return {
        "rows": rows[:shown],
        "more": rows[shown:],
        "more_label": f"{len(rows) - shown} more features, none drifted",
        "empty": empty,
    }


def _prediction(window: Mapping[str, Any]) -> View | None:
    prediction = window.get("prediction")
    if not isinstance(prediction, Mapping):
        return None
    return _feature_row(prediction, chart=True)


def _feature_row(feature: Mapping[str, Any], *, chart: bool) -> View:
    drift = feature.get("drift") or {}
    statistic = finite(drift.get("statistic"))
    ok = drift.get("status", "ok") == "ok" and statistic is not None
    missing, reference = finite(feature.get("missing_rate")), feature.get("reference_missing_rate")
    examples = [text(e) for e in feature.get("unseen_examples") or []]
    return {
        "name": text(feature.get("name")),
        "kind": text(feature.get("kind")),
        "test": text(drift.get("test")),
        "stat_kind": "p-value" if drift.get("kind") == "p_value" else "distance",
        "statistic": fmt_num(statistic) if ok else DASH,
        "threshold": fmt_num(drift.get("threshold")),
        "drifted": ("yes" if drift.get("drifted") else "no") if ok else DASH,
        "missing": fmt_pct(missing),
        "reference_missing": fmt_pct(reference),
        "missing_up": missing is not None and missing - (finite(reference) or 0.0) > 0.05,
        "unseen": fmt_pct(feature.get("unseen_rate")),
        "unseen_examples": ", ".join(shorten(e, 40) for e in examples[:5]),
        "rows": fmt_int(drift.get("current_rows")),
        "reference_rows": fmt_int(drift.get("reference_rows")),
        "status": "ok" if ok else status_text(drift.get("status"), drift.get("reason")),
        "chart": histogram_chart(feature.get("histogram"), feature.get("name")) if chart else None,
    }


# --- performance -----------------------------------------------------------------------


@cache
def _registry_order() -> dict[str, int]:
    names = [s.name for task in ("binary", "multiclass", "regression") for s in metrics_for(task)]
    return {name: n for n, name in enumerate(dict.fromkeys(names))}


def _values(perf: Mapping[str, Any], part: str) -> dict[str, float]:
    found = perf.get(part)
    if not isinstance(found, Mapping):
        return {}
    numbers = {str(k): finite(v) for k, v in found.items()}
    return {k: v for k, v in numbers.items() if v is not None}


def _metric_names(perfs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The metrics worth a chart: the task's default first, then estimated ones, by registry."""
    seen: dict[str, int] = {}
    for perf in perfs:
        for part in ("reference", "realized", "estimated"):
            for name in _values(perf, part):
                seen.setdefault(name, len(seen))
    estimated = {name for perf in perfs for name in _values(perf, "estimated")}
    defaults = {default_metric(task) for task in ("binary", "multiclass", "regression")}
    order = _registry_order()

    def key(name: str) -> tuple[int, int, int, int]:
        return (name not in defaults, name not in estimated, order.get(name, 99), seen[name])

    return sorted(seen, key=key)[:MAX_METRICS]


def _performance(windows: Sequence[Mapping[str, Any]]) -> View:
    perfs = [w.get("performance") or {} for w in windows]
    names = _metric_names(perfs)
    ticks, tips = window_axis(windows)
    labels = [name for name, _ in ticks]
    notes = []
    if not any(_values(p, "realized") for p in perfs):
        notes.append("No labels have arrived for these windows yet: no realized metrics.")
    if not any(_values(p, "estimated") for p in perfs):
        notes.append("No estimated performance for these windows (classifiers only).")
    rows = [
        {
            "window": labels[n],
            "time": fmt_range(w.get("start_ts"), w.get("end_ts")),
            "rows": fmt_int(w.get("rows")),
            "labelled": fmt_int(perfs[n].get("labelled_rows")),
            "cells": [
                fmt_num(_values(perfs[n], part).get(name))
                for name in names
                for part in ("realized", "estimated", "reference")
            ],
            "note": ""
            if perfs[n].get("status", "ok") == "ok"
            else status_text(perfs[n].get("status"), perfs[n].get("reason")),
        }
        for n, w in reversed(list(enumerate(windows)))
    ]
    charts = [
        {"title": metric_title(name), "chart": _performance_chart(name, perfs, ticks, tips)}
        for name in names
    ]
    return {
        "metrics": [metric_title(n) for n in names],
        "charts": charts,
        "rows": rows,
        "notes": notes,
    }


def _performance_chart(
    name: str,
    perfs: Sequence[Mapping[str, Any]],
    ticks: list[tuple[str, str]],
    tips: list[str],
) -> View | None:
    def series(part: str) -> list[float | None]:
        return [_values(p, part).get(name) for p in perfs]

    drawn = [
        Series("realized", "realized", series("realized")),
        Series("estimated", "estimated", series("estimated")),
    ]
    reference = series("reference")
    distinct = {v for v in reference if v is not None}
    lines: list[tuple[str, str, float]] = []
    if len(distinct) == 1:
        lines.append(("reference (holdout)", "reference", distinct.pop()))
    elif distinct:
        drawn.append(Series("reference (holdout)", "reference", reference))
    return line_chart(ticks, tips, drawn, lines=lines)


def _slices(window: Mapping[str, Any]) -> View | None:
    """Realized metrics per slice of one window, worst first by the main metric."""
    perf = window.get("performance") or {}
    records = [r for r in perf.get("slices") or [] if isinstance(r, Mapping)]
    if not records:
        return None
    names = _metric_names([{"realized": r.get("metrics")} for r in records])

    def key(record: Mapping[str, Any]) -> tuple[str, int, float, str]:
        value = _values({"m": record.get("metrics")}, "m").get(names[0]) if names else None
        if value is None:
            return (text(record.get("column")), 1, 0.0, text(record.get("value")))
        signed = value if higher_is_better(names[0]) else -value
        return (text(record.get("column")), 0, signed, text(record.get("value")))

    rows = [
        {
            "column": text(r.get("column")),
            "value": text(r.get("value")),
            "rows": fmt_int(r.get("rows")),
            "metrics": [fmt_num(_values({"m": r.get("metrics")}, "m").get(n)) for n in names],
        }
        for r in sorted(records, key=key)
    ]
    return {
        "label": f"window #{fmt_int(window.get('index'))}",
        "columns": [metric_title(n) for n in names],
        "rows": rows,
    }


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("loopml.monitor", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("monitor_report.html.j2")
