"""The human-readable evaluation report of one training run, as HTML and Markdown.

:func:`render_report` writes ``report.html`` (self-contained: CSS inline, plots embedded
as base64 PNG, nothing fetched) and ``report.md`` (plots linked by relative path). Both
read top-down the way a reviewer asks: was it registered and why, how did the candidates
compare, how good is the chosen model (with 95% intervals), where is it weakest, the
plots, what it relies on, and what data it saw.

All formatting happens here in Python (a view model of strings); the templates only lay
it out. HTML is autoescaped; Markdown cells escape the characters that would break a
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

import jinja2
import pandas as pd

from loopml.config import Task
from loopml.files import write_text_atomic
from loopml.train.evaluate import Evaluation, Interval, SliceResult
from loopml.train.metrics import get_metric, metrics_for
from loopml.train.plots import top_features

TOP_IMPORTANCE = 20
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


def render_report(data: ReportData, out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    view = build_view(data, out_dir)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    write_text_atomic(html_path, _HTML_ENV.from_string(_HTML).render(view))
    write_text_atomic(md_path, _MD_ENV.from_string(_MARKDOWN).render(view))
    return html_path, md_path


def fmt(value: float | None) -> str:
    """A metric value to 4 decimals; NaN or missing as "n/a"."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.4f}"


def fmt_ci(value: float | None, interval: Interval | None) -> str:
    """A value with its interval: "0.7812 [0.7791, 0.7834]"."""
    if interval is None or value is None or math.isnan(value):
        return fmt(value)
    return f"{fmt(value)} [{fmt(interval.low)}, {fmt(interval.high)}]"


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
        "css": _CSS,
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
        "headline": f"{get_metric(primary).title} {value} on {ev.rows:,} holdout rows",
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
                "fit": f"{row.fit_seconds:.1f} s",
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
        delta = value - overall
        rows.append(
            {
                "column": s.column,
                "value": s.value,
                "rows": f"{s.rows:,}",
                "metric": fmt(value),
                "delta": "n/a" if math.isnan(delta) else f"{delta:+.4f}",
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
        ("Rows", f"{summary.rows:,}"),
        ("Training rows", f"{summary.train_rows:,}"),
        ("Holdout rows", f"{summary.holdout_rows:,}"),
        ("Columns", f"{summary.columns:,}"),
        ("Data fingerprint", summary.fingerprint),
    ]
    if data.evaluation.classes:
        facts.append(("Classes", ", ".join(data.evaluation.classes)))
    return facts


def _md_escape(value: object) -> str:
    """Escape what would break a Markdown table cell or be read as markup."""
    text = " ".join(str(value).splitlines())
    for char in "\\`*[]|":
        text = text.replace(char, "\\" + char)
    return text.replace("<", "&lt;").replace(">", "&gt;")


_HTML_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_MD_ENV = jinja2.Environment(
    autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
)
_MD_ENV.filters["md"] = _md_escape

_CSS = """
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #1f2328; background: #fff; margin: 0; }
main { max-width: 1080px; margin: 0 auto; padding: 24px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 32px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
.meta { color: #59636e; margin: 0 0 16px; }
.verdict { border-radius: 8px; padding: 12px 18px; border: 1px solid; }
.verdict h2 { border: 0; margin: 0 0 4px; }
.pass { background: #dafbe1; border-color: #4ac26b; }
.fail { background: #ffebe9; border-color: #ff8182; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; }
th { background: #f6f8fa; }
td.num { text-align: right; white-space: nowrap; }
tr.chosen td { font-weight: 600; background: #fff8c5; }
.scroll { overflow-x: auto; }
figure { margin: 16px 0; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #59636e; font-size: 13px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 4px 16px; }
dt { color: #59636e; }
dd { margin: 0; font-family: ui-monospace, monospace; }
"""

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title><style>{{ css | safe }}</style></head>
<body><main>
<h1>{{ title }}</h1>
<p class="meta">{{ meta }}</p>
<section class="verdict {{ 'pass' if verdict.passed else 'fail' }}">
<h2>{{ verdict.sentence }}</h2>
<p>{{ verdict.reason }}</p>
<p>{{ verdict.headline }} · {{ verdict.gate }}</p>
</section>

<h2>Leaderboard</h2>
<div class="scroll"><table>
<thead><tr><th>Model</th><th>Kind</th><th>{{ primary }} [95% CI]</th>
{%- for c in leaderboard.columns %}<th>{{ c }}</th>{% endfor -%}
<th>Fit time</th><th>Tuning trials</th></tr></thead>
<tbody>
{%- for r in leaderboard.rows %}
<tr{% if r.chosen %} class="chosen"{% endif %}>
<td>{{ r.name }}{% if r.chosen %} ★{% endif %}</td><td>{{ r.kind }}</td>
<td class="num">{{ r.primary }}</td>
{%- for v in r.others %}<td class="num">{{ v }}</td>{% endfor -%}
<td class="num">{{ r.fit }}</td><td class="num">{{ r.trials }}</td></tr>
{%- endfor %}
</tbody></table></div>

<h2>Metrics of {{ data.chosen }} on the holdout</h2>
<table>
<thead><tr><th>Metric</th><th>Value [95% CI]</th><th>Better when</th></tr></thead>
<tbody>
{%- for m in metrics %}
<tr><td>{{ m.title }}</td><td class="num">{{ m.value }}</td><td>{{ m.better }}</td></tr>
{%- endfor %}
</tbody></table>

<h2>Slices, worst first by {{ primary }}</h2>
{% if slices -%}
<table>
<thead><tr><th>Column</th><th>Value</th><th>Rows</th><th>{{ primary }}</th>
<th>vs overall</th></tr></thead>
<tbody>
{%- for s in slices %}
<tr><td>{{ s.column }}</td><td>{{ s.value }}</td><td class="num">{{ s.rows }}</td>
<td class="num">{{ s.metric }}</td><td class="num">{{ s.delta }}</td></tr>
{%- endfor %}
</tbody></table>
{%- else -%}
<p>No slices: no slice columns, or no value with enough holdout rows.</p>
{%- endif %}

<h2>Plots</h2>
{% for p in plots -%}
<figure><img alt="{{ p.title }}" src="data:image/png;base64,{{ p.base64 }}">
<figcaption>{{ p.title }}</figcaption></figure>
{% else -%}
<p>No plots.</p>
{% endfor %}
<h2>Feature importance</h2>
{% if importance -%}
<table>
<thead><tr><th>#</th><th>Feature</th><th>{{ importance_kind }}</th></tr></thead>
<tbody>
{%- for f in importance %}
<tr><td class="num">{{ f.rank }}</td><td>{{ f.feature }}</td><td class="num">{{ f.value }}</td></tr>
{%- endfor %}
</tbody></table>
{% for p in importance_plot -%}
<figure><img alt="{{ p.title }}" src="data:image/png;base64,{{ p.base64 }}">
<figcaption>{{ p.title }}</figcaption></figure>
{% endfor %}
{%- else -%}
<p>No feature importance was computed for this model.</p>
{%- endif %}

<h2>Data</h2>
<dl>
{%- for k, v in facts %}
<dt>{{ k }}</dt><dd>{{ v }}</dd>
{%- endfor %}
</dl>
</main></body></html>
"""

# Markdown tables are one line per row, so rows are joined by a macro rather than
# written out; every user-provided string goes through the ``md`` filter.
_MARKDOWN = """\
{%- macro row(cells) %}| {{ cells | join(" | ") }} |{% endmacro -%}
# {{ title | md }}

{{ meta | md }}

## {{ 'PASS' if verdict.passed else 'FAIL' }} — {{ verdict.sentence | md }}

{{ verdict.reason | md }}

{{ verdict.headline }} · {{ verdict.gate }}

## Leaderboard

{{ row(["Model", "Kind", primary ~ " [95% CI]"] + leaderboard.columns
       + ["Fit time", "Tuning trials"]) }}
{{ row(["---", "---"] + ["---:"] * (leaderboard.columns | length + 3)) }}
{% for r in leaderboard.rows -%}
{{ row([("**" ~ (r.name | md) ~ "** ★") if r.chosen else (r.name | md), r.kind, r.primary]
       + r.others + [r.fit, r.trials]) }}
{% endfor %}
## Metrics of {{ data.chosen | md }} on the holdout

| Metric | Value [95% CI] | Better when |
|---|---:|---|
{% for m in metrics -%}
{{ row([m.title, m.value, m.better]) }}
{% endfor %}
## Slices, worst first by {{ primary }}

{% if slices -%}
{{ row(["Column", "Value", "Rows", primary, "vs overall"]) }}
|---|---|---:|---:|---:|
{% for s in slices -%}
{{ row([s.column | md, s.value | md, s.rows, s.metric, s.delta]) }}
{% endfor %}
{%- else -%}
No slices: no slice columns, or no value with enough holdout rows.
{% endif %}
## Plots

{% for p in plots -%}
![{{ p.title }}]({{ p.href }})

{% else -%}
No plots.

{% endfor -%}
## Feature importance

{% if importance -%}
{{ row(["#", "Feature", importance_kind | md]) }}
|---:|---|---:|
{% for f in importance -%}
{{ row([f.rank, f.feature | md, f.value]) }}
{% endfor %}
{% for p in importance_plot -%}
![{{ p.title }}]({{ p.href }})

{% endfor -%}
{%- else -%}
No feature importance was computed for this model.

{% endif -%}
## Data

{% for k, v in facts -%}
- {{ k }}: {{ v | md }}
{% endfor -%}
"""
