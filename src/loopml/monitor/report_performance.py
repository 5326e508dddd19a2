"""The monitoring report's performance views: metrics over windows, and per slice.

Per version and arm, a table and a line chart per metric of realized (labelled rows),
estimated (no labels needed) and reference (holdout) quality over the windows, and the
realized metrics per slice of the latest window, worst first. At most ``MAX_METRICS``
metrics: the task's default first, then the estimated ones, in the metric registry's
order. Values are formatted here (:mod:`loopml.render.format`); charts come from
:mod:`~loopml.monitor.report_charts`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Literal

from loopml.monitor.report_charts import Series, line_chart, window_axis
from loopml.monitor.report_format import View, higher_is_better, metric_title, status_text
from loopml.monitor.results import PerformanceReport, WindowReport
from loopml.render.format import finite, fmt_int, fmt_num, fmt_range, text
from loopml.train.metrics import default_metric, metrics_for

__all__ = ["performance_view", "slices_view"]

MAX_METRICS = 4
Part = Literal["realized", "estimated", "reference"]
PARTS: tuple[Part, ...] = ("realized", "estimated", "reference")


def performance_view(windows: Sequence[WindowReport]) -> View:
    """Performance over ``windows`` (oldest first): notes, charts, a newest-first table."""
    perfs = [w.performance for w in windows]
    names = _metric_names(
        [_part(p, part) for p in perfs for part in ("reference", "realized", "estimated")],
        {name for p in perfs for name in _finite(p.estimated)},
    )
    ticks, tips = window_axis(windows)
    labels = [name for name, _ in ticks]
    notes = []
    if not any(_finite(p.realized) for p in perfs):
        notes.append("No labels have arrived for these windows yet: no realized metrics.")
    if not any(_finite(p.estimated) for p in perfs):
        notes.append("No estimated performance for these windows (classifiers only).")
    rows = [
        {
            "window": labels[n],
            "time": fmt_range(w.start_ts, w.end_ts),
            "rows": fmt_int(w.rows),
            "labelled": fmt_int(w.performance.labelled_rows),
            "cells": [
                fmt_num(_finite(_part(w.performance, part)).get(name))
                for name in names
                for part in PARTS
            ],
            "note": _note(w.performance),
        }
        for n, w in reversed(list(enumerate(windows)))
    ]
    charts = [
        {"title": metric_title(name), "chart": _chart(name, perfs, ticks, tips)} for name in names
    ]
    return {
        "metrics": [metric_title(n) for n in names],
        "charts": charts,
        "rows": rows,
        "notes": notes,
    }


def slices_view(window: WindowReport) -> View | None:
    """Realized metrics per slice of one window, worst first by the main metric."""
    records = [r for r in window.performance.slices if isinstance(r, Mapping)]
    if not records:
        return None
    names = _metric_names([_metrics(r) for r in records], set())

    def key(record: Mapping[str, Any]) -> tuple[str, int, float, str]:
        value = _metrics(record).get(names[0]) if names else None
        if value is None:
            return (text(record.get("column")), 1, 0.0, text(record.get("value")))
        signed = value if higher_is_better(names[0]) else -value
        return (text(record.get("column")), 0, signed, text(record.get("value")))

    rows = [
        {
            "column": text(r.get("column")),
            "value": text(r.get("value")),
            "rows": fmt_int(r.get("rows")),
            "metrics": [fmt_num(_metrics(r).get(n)) for n in names],
        }
        for r in sorted(records, key=key)
    ]
    return {
        "label": f"window #{fmt_int(window.index)}",
        "columns": [metric_title(n) for n in names],
        "rows": rows,
    }


def _part(perf: PerformanceReport, part: Part) -> Mapping[str, float | None]:
    return {"realized": perf.realized, "estimated": perf.estimated, "reference": perf.reference}[
        part
    ]


def _finite(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite values of a ``{metric: value}`` map."""
    numbers = {str(k): finite(v) for k, v in values.items()}
    return {k: v for k, v in numbers.items() if v is not None}


def _metrics(record: Mapping[str, Any]) -> dict[str, float]:
    found = record.get("metrics")
    return _finite(found) if isinstance(found, Mapping) else {}


def _note(perf: PerformanceReport) -> str:
    return "" if perf.status == "ok" else status_text(perf.status, perf.reason)


@cache
def _registry_order() -> dict[str, int]:
    names = [s.name for task in ("binary", "multiclass", "regression") for s in metrics_for(task)]
    return {name: n for n, name in enumerate(dict.fromkeys(names))}


def _metric_names(tables: Sequence[Mapping[str, Any]], estimated: set[str]) -> list[str]:
    """The metrics worth a chart: the task's default first, then estimated ones, by registry."""
    seen: dict[str, int] = {}
    for table in tables:
        for name in _finite(table):
            seen.setdefault(name, len(seen))
    defaults = {default_metric(task) for task in ("binary", "multiclass", "regression")}
    order = _registry_order()

    def key(name: str) -> tuple[int, int, int, int]:
        return (name not in defaults, name not in estimated, order.get(name, 99), seen[name])

    return sorted(seen, key=key)[:MAX_METRICS]


def _chart(
    name: str,
    perfs: Sequence[PerformanceReport],
    ticks: list[tuple[str, str]],
    tips: list[str],
) -> View | None:
    def series(part: Part) -> list[float | None]:
        return [_finite(_part(p, part)).get(name) for p in perfs]

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
