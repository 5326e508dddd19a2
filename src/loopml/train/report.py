"""The human-readable evaluation report of one training run, as HTML and Markdown.

:func:`render_report` writes ``report.html`` (self-contained: CSS inline, plots embedded
as base64 PNG, nothing fetched) and ``report.md`` (plots linked by relative path). Both
read top-down the way a reviewer asks: was it registered and why, how did the candidates
compare, how good is the chosen model (with 95% intervals), where is it weakest, the
plots, what it relies on, and what data it saw.

All formatting happens here in Python (a view model of strings, through the shared value
formats of :mod:`loopml.render.format`); the templates ``templates/train_report.html.j2``
(on the shared layout of :mod:`loopml.render`) and ``templates/train_report.md.j2`` only
lay it out. HTML is autoescaped; Markdown cells escape the characters that would break a
table or inject markup.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import pandas as pd

from loopml.config import Task
from loopml.files import write_text_atomic
from loopml.render.environment import html_environment, text_environment
from loopml.render.format import fmt_fixed, fmt_int, fmt_interval
from loopml.train.evaluate import Evaluation, Interval, SliceResult
from loopml.train.metrics import get_metric, metrics_for
from loopml.train.plots import top_features

TOP_IMPORTANCE = 20
NA = "n/a"  # what a metric that could not be computed shows
PLOT_TITLES = {
    "roc": "ROC curve",
    "pr": "Precision–recall curve",
    "calibration": "Calibration",
    "confusion_matrix": "Confusion matrix",
    "predicted_vs_actual": "Predicted vs actual",
    "residuals": "Residuals",
    "feature_importance": "Feature importance",
}


@dataclass(frozen=True)
class DataSummary:
    """What the model was trained and evaluated on."""

    rows: int
    train_rows: int
    holdout_rows: int
    columns: int
    fingerprint: str


@dataclass(frozen=True)
class LeaderboardRow:
    """One fitted model (baseline or candidate) and its holdout results."""

    name: str
    kind: str  # "baseline" or "candidate"
    metrics: Mapping[str, float]
    intervals: Mapping[str, Interval]
    fit_seconds: float
    tuning_trials: int = 0


class GateVerdict(Protocol):
    """The registration gate's verdict (``loopml.train.gate.GateDecision`` is one)."""

    @property
    def passed(self) -> bool: ...

    @property
    def metric(self) -> str: ...

    @property
    def margin(self) -> float: ...

    @property
    def reason(self) -> str:
        """A sentence a person can read: why it passed or failed."""
        ...


@dataclass(frozen=True, eq=False)
class ReportData:
    """Everything the report shows. ``plots`` maps plot names to PNG files."""

    model_name: str
    run_id: str
    task: Task
    target: str
    created_at: str
    data_summary: DataSummary
    leaderboard: Sequence[LeaderboardRow]
    chosen: str
    gate: GateVerdict
    evaluation: Evaluation
    plots: Mapping[str, Path]
    importance: pd.Series
    decision: str | None = None
    """How a binary model turns probabilities into labels (its threshold), in one line."""
    findings: Sequence[str] = ()
    """What a person should look at: duplicates across the split, possible leakage..."""


def render_report(data: ReportData, out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    view = build_view(data, out_dir)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    html = html_environment("loopml.train").get_template("train_report.html.j2")
    markdown = text_environment("loopml.train").get_template("train_report.md.j2")
    write_text_atomic(html_path, html.render(view))
    write_text_atomic(md_path, markdown.render(view))
    return html_path, md_path


def fmt(value: float | None) -> str:
    """A metric value to 4 decimals; NaN or missing as "n/a"."""
    return fmt_fixed(value, missing=NA)


def fmt_ci(value: float | None, interval: Interval | None) -> str:
    """A value with its interval: "0.7812 [0.7791, 0.7834]"."""
    if interval is None:
        return fmt(value)
    return fmt_interval(value, interval.low, interval.high, missing=NA)


def _sort_key(value: float | None, higher: bool, *, best_first: bool) -> tuple[int, float]:
    """Sort NaN last; otherwise best (or worst) first."""
    if value is None or math.isnan(value):
        return (1, 0.0)
    better = value if higher else -value
    return (0, -better if best_first else better)


def build_view(data: ReportData, out_dir: Path) -> dict[str, Any]:
    """The report as plain strings and lists, shared by both templates."""
    primary = _primary_metric(data)
    return {
        "title": f"{data.model_name} — evaluation report",
        "meta": f"run {data.run_id} · {data.created_at} · {data.task} · target {data.target}",
        "data": data,
        "verdict": _verdict(data, primary),
        "primary": get_metric(primary).title,
        "leaderboard": _leaderboard(data, primary),
        "metrics": _metric_rows(data.evaluation),
        "slices": _slice_rows(data.evaluation, primary),
        "plots": _plot_views(data.plots, out_dir, exclude={"feature_importance"}),
        "importance_plot": _plot_views(data.plots, out_dir, only={"feature_importance"}),
        "importance": _importance_rows(data.importance),
        "importance_kind": str(data.importance.name or "importance"),
        "facts": _facts(data),
        "decision": data.decision,
        "findings": list(data.findings),
    }


def _primary_metric(data: ReportData) -> str:
    """The gate's metric when the evaluation has it, else the first metric of the task."""
    if data.gate.metric in data.evaluation.metrics:
        return str(data.gate.metric)
    return metrics_for(data.task)[0].name


def _verdict(data: ReportData, primary: str) -> dict[str, Any]:
    ev = data.evaluation
    value = fmt_ci(ev.metrics.get(primary), ev.intervals.get(primary))
    title = "Registered" if data.gate.passed else "Not registered"
    return {
        "passed": data.gate.passed,
        "title": title,
        "sentence": f"{title}: {data.chosen} as {data.model_name}"
        if data.gate.passed
        else f"{title}: {data.chosen} did not pass the gate",
        "reason": data.gate.reason,
        "headline": f"{get_metric(primary).title} {value} on {fmt_int(ev.rows)} holdout rows",
        "gate": f"gate metric {data.gate.metric}, margin {fmt(data.gate.margin)}",
    }


def _metric_names(data: ReportData) -> list[str]:
    names = [spec.name for spec in metrics_for(data.task)]
    seen = {name for row in data.leaderboard for name in row.metrics}
    return [name for name in names if name in seen]


def _leaderboard(data: ReportData, primary: str) -> dict[str, Any]:
    higher = get_metric(primary).higher_is_better
    names = [name for name in _metric_names(data) if name != primary]
    rows = sorted(
        data.leaderboard,
        key=lambda r: _sort_key(r.metrics.get(primary), higher, best_first=True),
    )
    return {
        "columns": [get_metric(name).title for name in names],
        "rows": [
            {
                "name": row.name,
                "kind": row.kind,
                "chosen": row.name == data.chosen,
                "primary": fmt_ci(row.metrics.get(primary), row.intervals.get(primary)),
                "others": [fmt(row.metrics.get(name)) for name in names],
                "fit": f"{fmt_fixed(row.fit_seconds, 1, missing=NA)} s",
                "trials": str(row.tuning_trials) if row.tuning_trials else "—",
            }
            for row in rows
        ],
    }


def _metric_rows(ev: Evaluation) -> list[dict[str, str]]:
    known = [spec.name for spec in metrics_for(ev.task) if spec.name in ev.metrics]
    names = known + [name for name in ev.metrics if name not in known]
    rows = []
    for name in names:
        spec = get_metric(name)
        rows.append(
            {
                "title": spec.title,
                "name": name,
                "value": fmt_ci(ev.metrics[name], ev.intervals.get(name)),
                "better": "higher" if spec.higher_is_better else "lower",
            }
        )
    return rows


def _slice_rows(ev: Evaluation, primary: str) -> list[dict[str, str]]:
    higher = get_metric(primary).higher_is_better
    overall = ev.metrics.get(primary, math.nan)

    def key(s: SliceResult) -> tuple[int, float]:
        return _sort_key(s.metrics.get(primary), higher, best_first=False)

    rows = []
    for s in sorted(ev.slices, key=key):
        value = s.metrics.get(primary, math.nan)
        rows.append(
            {
                "column": s.column,
                "value": s.value,
                "rows": fmt_int(s.rows),
                "metric": fmt(value),
                "delta": fmt_fixed(value - overall, sign=True, missing=NA),
            }
        )
    return rows


def _plot_views(
    plots: Mapping[str, Path],
    out_dir: Path,
    *,
    exclude: frozenset[str] | set[str] = frozenset(),
    only: frozenset[str] | set[str] | None = None,
) -> list[dict[str, str]]:
    ordered = [n for n in PLOT_TITLES if n in plots] + [n for n in plots if n not in PLOT_TITLES]
    views = []
    for name in ordered:
        if name in exclude or (only is not None and name not in only):
            continue
        path = plots[name]
        relative = Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()
        views.append(
            {
                "title": PLOT_TITLES.get(name, name.replace("_", " ").capitalize()),
                "base64": base64.b64encode(path.read_bytes()).decode("ascii"),
                "href": quote(relative),
            }
        )
    return views


def _importance_rows(importance: pd.Series) -> list[dict[str, str]]:
    ranked = top_features(importance, TOP_IMPORTANCE)
    return [
        {"rank": str(i), "feature": str(name), "value": fmt(float(v))}
        for i, (name, v) in enumerate(ranked.items(), start=1)
    ]


def _facts(data: ReportData) -> list[tuple[str, str]]:
    summary = data.data_summary
    facts = [
        ("Model name", data.model_name),
        ("Run id", data.run_id),
        ("Created", data.created_at),
        ("Task", data.task),
        ("Target", data.target),
        ("Rows", fmt_int(summary.rows)),
        ("Training rows", fmt_int(summary.train_rows)),
        ("Holdout rows", fmt_int(summary.holdout_rows)),
        ("Columns", fmt_int(summary.columns)),
        ("Data fingerprint", summary.fingerprint),
    ]
    if data.evaluation.classes:
        facts.append(("Classes", ", ".join(data.evaluation.classes)))
    return facts
