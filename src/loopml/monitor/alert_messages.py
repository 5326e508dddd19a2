"""What an alert says: the statistic against its threshold, with the window's facts.

An alert rule reads one flat metric (``drift.age = 1``), which alone tells the person on
call little. :func:`window_evidence` gathers, from the window's
:class:`~loopml.monitor.results.WindowReport`, the facts behind one metric: the
feature's test, statistic and threshold, the missing or unseen rate against the
reference, the realized or estimated metric against its holdout value and the chance
level, the drifted features and what the drift share is a share of. :func:`describe`
turns a metric's value and those facts into words, e.g.
``age drifted (wasserstein 2.07 against threshold 0.1)``; facts that are absent (an
older window, a caller that attached none) are left out, never guessed.

Pure: values in, JSON-safe dicts and strings out.

>>> describe("drift_share", 0.75, 0.5, "above", {}, raised=True)
'drift share 0.75 > 0.5'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from loopml.monitor.results import FeatureReport, WindowReport
from loopml.render.format import finite, fmt_pct
from loopml.train.metrics import default_metric

__all__ = ["describe", "monitored", "window_evidence"]

Direction = Literal["above", "below"]
Facts = Mapping[str, Any]
FEATURE_FAMILIES = frozenset(
    {"drift", "drift_score", "missing_rate", "missing_increase", "unseen_rate"}
)
PERFORMANCE_KINDS = ("realized", "estimated")
MAX_EVIDENCE_FEATURES = 10
MAX_NAMED = 5  # drifted features named in one message


def monitored(report: WindowReport) -> tuple[int, list[str]]:
    """The features the drift share is a share of, and those of them not tested.

    Windows that do not record it (``monitored_features == 0``) shared over the tested
    features: those, and none untested.
    """
    if report.monitored_features > 0:
        return report.monitored_features, list(report.untested_features)
    return sum(1 for f in report.features if f.drift.status == "ok"), []


def window_evidence(
    report: WindowReport,
    metric: str | None = None,
    *,
    drift_share_threshold: float | None = None,
    primary: str | None = None,
) -> dict[str, Any]:
    """What an alert on ``metric`` carries so the person on call sees why.

    The window's drift summary and performance, plus ``feature`` (for a per-feature
    metric), ``performance`` (for a realized or estimated metric or drop) or ``cusum``.
    ``primary`` names the metric behind the unsuffixed ``realized_drop`` /
    ``estimated_drop``; without it, the one whose drop they equal.
    """
    count, untested = monitored(report)
    drifted = sorted(
        (f for f in report.features if f.drift.drifted),
        key=lambda f: -(f.drift.statistic or 0.0) if f.drift.kind == "distance" else 0.0,
    )
    out: dict[str, Any] = {
        "rows": report.rows,
        "labelled_rows": report.performance.labelled_rows,
        "drift_share": report.drift_share,
        "drift_share_threshold": drift_share_threshold,
        "monitored_features": count,
        "untested_features": untested,
        "drifted_count": len(report.drifted_features),
        "drifted_features": [_drift_facts(f) for f in drifted[:MAX_EVIDENCE_FEATURES]],
        "prediction_drift": None
        if report.prediction is None
        else report.prediction.drift.to_dict(),
        "realized": dict(report.performance.realized),
        "estimated": dict(report.performance.estimated),
        "reference": dict(report.performance.reference),
    }
    if metric is not None:
        out.update(_metric_facts(report, metric, primary))
    return out


def describe(
    metric: str,
    value: float,
    threshold: float,
    direction: Direction,
    evidence: Facts,
    *,
    raised: bool,
) -> str:
    """The statistic against its threshold in words (see the module doc)."""
    reading = _Reading(metric, value, _op(direction, raised), threshold, raised, evidence)
    family = reading.family
    phrase = _PHRASES.get(family)
    if family.startswith(PERFORMANCE_KINDS) or family == "performance_cusum":
        phrase = _performance
    found = None if phrase is None else phrase(reading)
    return found or f"{metric} {_num(value)} {reading.bound}"


# --- evidence ----------------------------------------------------------------------------


def _drift_facts(feature: FeatureReport) -> dict[str, Any]:
    drift = feature.drift
    return {
        "feature": feature.name,
        "test": drift.test,
        "kind": drift.kind,
        "statistic": drift.statistic,
        "threshold": drift.threshold,
    }


def _metric_facts(report: WindowReport, metric: str, primary: str | None) -> dict[str, Any]:
    family, _, name = metric.partition(".")
    if family in FEATURE_FAMILIES:
        feature = next((f for f in report.features if f.name == name), None)
        return {} if feature is None else {"feature": _feature_facts(feature)}
    if family == "performance_cusum":
        return {"cusum": _cusum_facts(report, metric, name or _primary(report, primary))}
    kind = family.removesuffix("_drop")
    if kind not in PERFORMANCE_KINDS:
        return {}
    target = name or (_primary(report, primary) if family.endswith("_drop") else None)
    if target is None:
        return {}
    noise = report.metrics.get(f"{kind}_noise.{target}")
    if not name:
        noise = report.metrics.get(f"{kind}_noise", noise)
    perf = report.performance
    return {
        "performance": {
            "kind": kind,
            "metric": target,
            "value": (perf.realized if kind == "realized" else perf.estimated).get(target),
            "holdout": perf.reference.get(target),
            "drop": report.metrics.get(f"{kind}_drop.{target}"),
            "noise": noise,
            "rows": perf.labelled_rows if kind == "realized" else report.rows,
        }
    }


def _feature_facts(feature: FeatureReport) -> dict[str, Any]:
    drift = feature.drift
    return {
        **_drift_facts(feature),
        "status": drift.status,
        "reason": drift.reason,
        "rows": drift.current_rows,
        "missing_rate": feature.missing_rate,
        "reference_missing_rate": feature.reference_missing_rate,
        "unseen_rate": feature.unseen_rate,
        "unseen_examples": list(feature.unseen_examples),
    }


def _cusum_facts(report: WindowReport, metric: str, target: str | None) -> dict[str, Any]:
    start = report.metrics.get(f"{metric}_start", report.metrics.get("performance_cusum_start"))
    return {
        "metric": target,
        "start": None if start is None else int(start),
        "end": report.index,
    }


def _primary(report: WindowReport, hint: str | None) -> str | None:
    """The metric behind ``realized_drop`` / ``estimated_drop``: ``hint``, else the one
    whose drop they equal (the task's default metric first when several do)."""
    if hint is not None:
        return hint
    defaults = [default_metric(task) for task in ("binary", "multiclass", "regression")]
    for kind in PERFORMANCE_KINDS:
        total = report.metrics.get(f"{kind}_drop")
        if total is None:
            continue
        prefix = f"{kind}_drop."
        equal = [
            name.removeprefix(prefix)
            for name, value in report.metrics.items()
            if name.startswith(prefix) and value == total
        ]
        if equal:
            return sorted(equal, key=lambda n: (n not in defaults, n))[0]
    return None


# --- words -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reading:
    """One metric's value against its rule's bound, with the window's facts."""

    metric: str
    value: float
    op: str  # ">" / "<" when raised, "<=" / ">=" when cleared
    threshold: float
    raised: bool
    evidence: Facts

    @property
    def family(self) -> str:
        return self.metric.partition(".")[0]

    @property
    def name(self) -> str:
        return self.metric.partition(".")[2]

    @property
    def bound(self) -> str:
        return f"{self.op} {self.threshold:g}"

    def facts(self, key: str) -> Facts:
        found = self.evidence.get(key)
        return found if isinstance(found, Mapping) else {}


Phrase = Callable[[_Reading], str | None]


def _op(direction: Direction, raised: bool) -> str:
    if raised:
        return ">" if direction == "above" else "<"
    return "<=" if direction == "above" else ">="


def _num(value: Any) -> str:
    """3 significant digits; whole numbers with separators from 1,000 up."""
    number = finite(value)
    if number is None:
        return "—"
    return f"{number:,.0f}" if abs(number) >= 1000 else f"{number:.3g}"


def _points(share: float) -> str:
    """A difference of two shares in percentage points."""
    return f"{share * 100:.3g}"


def _test(facts: Facts) -> str | None:
    """``wasserstein 2.07 against threshold 0.1`` (``ks p-value ...`` for p-values)."""
    statistic, threshold = finite(facts.get("statistic")), finite(facts.get("threshold"))
    if statistic is None or threshold is None:
        return None
    kind = " p-value" if facts.get("kind") == "p_value" else ""
    return f"{facts.get('test')}{kind} {_num(statistic)} against threshold {threshold:g}"


def _own_threshold(facts: Facts) -> str:
    own = finite(facts.get("threshold"))
    return "" if own is None else f" (the test flags drift at {own:g})"


def _feature_drift(r: _Reading) -> str:
    verdict = "drifted" if r.value >= 0.5 else "does not drift"
    test = _test(r.facts("feature"))
    return f"{r.name} {verdict}" + ("" if test is None else f" ({test})")


def _drift_score(r: _Reading) -> str:
    facts = r.facts("feature")
    kind = "p-value" if facts.get("kind") == "p_value" else "statistic"
    test = f"{facts['test']} {kind}" if facts.get("test") else "drift statistic"
    return f"{r.name} {test} {_num(r.value)} {r.bound}{_own_threshold(facts)}"


def _missing_rate(r: _Reading) -> str:
    reference = finite(r.facts("feature").get("reference_missing_rate"))
    tail = "" if reference is None else f" (reference {fmt_pct(reference)})"
    return f"missing values in {r.name} at {fmt_pct(r.value)} of rows{tail} {r.op} " + fmt_pct(
        r.threshold
    )


def _missing_increase(r: _Reading) -> str:
    facts = r.facts("feature")
    now, reference = (
        finite(facts.get("missing_rate")),
        finite(facts.get("reference_missing_rate")),
    )
    head = f"missing values in {r.name}"
    if now is not None and reference is not None:
        head += f" at {fmt_pct(now)} of rows against {fmt_pct(reference)} in the reference"
    change = "up" if r.value >= 0 else "down"
    points = f"{_points(abs(r.value))} points {r.op} {_points(r.threshold)} points"
    return f"{head}: {change} {points}"


def _unseen(r: _Reading) -> str:
    examples = [str(e) for e in r.facts("feature").get("unseen_examples") or []]
    tail = "" if not examples else f" (e.g. {', '.join(examples[:MAX_NAMED])})"
    return (
        f"unseen categories in {r.name}: {fmt_pct(r.value)} of values against 0% in the "
        f"reference (never seen in training) {r.op} {fmt_pct(r.threshold)}{tail}"
    )


def _drifted_names(evidence: Facts) -> str:
    names = [str(f.get("feature")) for f in evidence.get("drifted_features") or []]
    total = int(evidence.get("drifted_count") or len(names))
    shown = names[:MAX_NAMED]
    more = total - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 and shown else "")


def _share_of(evidence: Facts) -> str | None:
    """``5 of 7 monitored features drifted`` (and how many were not tested), when known."""
    count = finite(evidence.get("monitored_features"))
    drifted = finite(evidence.get("drifted_count"))
    if count is None or drifted is None:
        return None
    untested = evidence.get("untested_features") or []
    tail = f"; {len(untested)} not tested" if untested else ""
    return f"{int(drifted)} of {int(count)} monitored features drifted{tail}"


def _dataset_drift(r: _Reading) -> str:
    verdict = "dataset drift" if r.value >= 0.5 else "no dataset drift"
    share_of = _share_of(r.evidence)
    if share_of is None:
        return verdict
    share = finite(r.evidence.get("drift_share"))
    threshold = finite(r.evidence.get("drift_share_threshold"))
    numbers = [] if share is None else [f"share {share:.2g}"]
    numbers += [] if threshold is None else [f"threshold {threshold:g}"]
    detail = f" ({', '.join(numbers)})" if numbers else ""
    names = _drifted_names(r.evidence)
    return f"{verdict}: {share_of}{detail}" + (f": {names}" if names else "")


def _drift_count(r: _Reading) -> str:
    share = r.metric == "drift_share"
    shown = f"{r.value:.2g}" if share else _num(r.value)
    head = f"{'drift share' if share else 'drifted features'} {shown} {r.bound}"
    share_of, names = _share_of(r.evidence), _drifted_names(r.evidence)
    if share_of is None:
        return head
    return f"{head}: {share_of}" + (f": {names}" if names else "")


def _prediction(r: _Reading) -> str:
    facts = r.facts("prediction_drift")
    if r.metric == "prediction_drift_score":
        name = f"{facts['test']} statistic" if facts.get("test") else "drift statistic"
        return f"prediction {name} {_num(r.value)} {r.bound}{_own_threshold(facts)}"
    verdict = "the prediction drifted" if r.value >= 0.5 else "the prediction does not drift"
    test = _test(facts)
    return verdict + ("" if test is None else f" ({test})")


def _performance(r: _Reading) -> str | None:
    if r.family == "performance_cusum":
        return _cusum(r)
    facts = r.facts("performance")
    name, kind = facts.get("metric"), facts.get("kind")
    if not name or not kind:
        return None
    holdout = finite(facts.get("holdout"))
    against = "" if holdout is None else f" against holdout {_num(holdout)}"
    if not r.family.endswith("_drop"):
        return f"{kind} {name} {_num(r.value)} {r.bound}{against}"
    measured = f"{kind} {name} {_num(facts.get('value'))}{against}"
    return f"{measured}: drop {_num(r.value)} {r.bound}{_chance(r, facts)}"


def _chance(r: _Reading, facts: Facts) -> str:
    """How the drop compares with the chance level of a window this size, when known."""
    noise, rows = finite(facts.get("noise")), finite(facts.get("rows"))
    if noise is None:
        return ""
    unit = "labelled rows" if facts.get("kind") == "realized" else "rows"
    level = _num(noise) + ("" if rows is None else f" for {int(rows):,} {unit}")
    if not r.raised:
        return f" (chance level {level})"
    verdict = "and beyond chance" if r.value > noise else "though within chance"
    return f" {verdict} ({level})"


def _cusum(r: _Reading) -> str:
    facts = r.facts("cusum")
    name = facts.get("metric")
    what = f"realized {name}" if name else "realized performance"
    start, end = facts.get("start"), facts.get("end")
    span = "" if start is None or end is None else f" over windows {start}-{end}"
    return f"sustained drop of {what}: cumulative evidence {_num(r.value)} {r.bound}{span}"


_PHRASES: dict[str, Phrase] = {
    "drift": _feature_drift,
    "drift_score": _drift_score,
    "missing_rate": _missing_rate,
    "missing_increase": _missing_increase,
    "unseen_rate": _unseen,
    "dataset_drift": _dataset_drift,
    "drift_share": _drift_count,
    "drifted_features": _drift_count,
    "prediction_drift": _prediction,
    "prediction_drift_score": _prediction,
}
