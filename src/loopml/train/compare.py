"""Comparing two models: is the new one better, significantly, and in every slice?

Used by ``loopml promote``: the new version and the champion are scored on the same
holdout rows, and :func:`paired_delta_interval` bootstraps the *difference* of their
metric over shared resamples; :func:`compare` turns that into a decision with a reason a
person can read, plus the slices that regress beyond tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from loopml.config import Task
from loopml.errors import ConfigError
from loopml.train.evaluate import Evaluation, Interval, percentile_interval
from loopml.train.metrics import FloatArray, decisions, get_metric, required_gain


def paired_delta_interval(
    task: Task,
    y: NDArray[np.generic],
    pred_new: FloatArray,
    pred_old: FloatArray,
    *,
    metric: str,
    n_classes: int,
    resamples: int,
    seed: int,
    thresholds: tuple[float | None, float | None] = (None, None),
) -> Interval | None:
    """95% interval of ``metric(new) - metric(old)`` over the same bootstrap resamples
    (a label metric scores each model's labels at its own decision threshold).

    Both models are scored on the same rows, so their errors are correlated; resampling
    the pair together (a paired bootstrap) measures the noise of the *difference*, which
    is much smaller than either model's own interval. None when ``resamples < 2``.
    """
    if resamples < 2 or y.shape[0] == 0:
        return None
    spec = get_metric(metric)
    fn = spec.fn
    if not spec.needs_proba and task != "regression":
        pred_new, pred_old = decisions(pred_new, thresholds[0]), decisions(pred_old, thresholds[1])
    rng = np.random.default_rng(seed)
    if task == "regression":
        strata = [np.arange(y.shape[0])]
    else:
        strata = [idx for idx in (np.flatnonzero(y == c) for c in range(n_classes)) if idx.size]
    deltas = np.empty(resamples)
    for r in range(resamples):
        draws = np.concatenate([idx[rng.integers(0, idx.size, idx.size)] for idx in strata])
        weight = np.bincount(draws, minlength=y.shape[0]).astype(np.float64)
        deltas[r] = fn(y, pred_new, weight) - fn(y, pred_old, weight)
    return percentile_interval(deltas)


@dataclass(frozen=True)
class SliceRegression:
    """A slice where the new model is worse than the old one by ``worse_by`` (> tolerance)."""

    column: str
    value: str
    new: float
    old: float
    worse_by: float


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare`: is ``new`` better than ``old`` on ``metric``?"""

    metric: str
    higher_is_better: bool
    new: float
    old: float
    delta: float
    beats: bool
    reason: str
    slice_regressions: tuple[SliceRegression, ...]

    @property
    def regressed_slices(self) -> tuple[str, ...]:
        """The regressing slices as short strings, worst first: "country=FR 0.8100 -> 0.7800"."""
        return tuple(
            f"{r.column}={r.value} {r.old:.4f} -> {r.new:.4f}" for r in self.slice_regressions
        )


def compare(
    new: Evaluation,
    old: Evaluation,
    metric: str,
    *,
    slice_tolerance: float,
    delta_interval: Interval | None = None,
    margin: float = 0.0,
) -> Comparison:
    """Decide whether ``new`` beats ``old`` on ``metric``, taking the intervals into account.

    With ``delta_interval`` — the paired-bootstrap interval of ``new - old`` on the same
    rows (:func:`paired_delta_interval`) — ``new`` beats ``old`` when that interval lies
    entirely on the better side of zero and the improvement is at least ``margin``
    (:func:`~loopml.train.metrics.required_gain`: relative for error metrics, absolute for
    bounded scores). This is the rule ``loopml promote`` uses.

    Without it (two evaluations on different rows), the fallback rule below applies.

    The rule, for a higher-is-better metric: ``new`` beats ``old`` when its point estimate
    is strictly higher AND the lower end of its 95% interval is at least ``old``'s point
    estimate — the improvement is larger than the new model's own sampling noise. Mirrored
    for lower-is-better (strictly lower, and the upper end of the interval at most old's
    value). Without an interval for ``new`` (bootstrap off) the point estimates decide. A
    NaN on either side never beats. ``delta`` is ``new - old``.

    A slice regresses when, matched by (column, value), its metric is worse for ``new`` by
    more than ``slice_tolerance`` (like the margin: absolute for bounded scores, a fraction
    of the old value for error metrics). Slices present on only
    one side, or with a NaN metric, are ignored.
    """
    if new.task != old.task:
        raise ConfigError(
            f"cannot compare a {new.task} model with a {old.task} model",
            fix="compare versions trained for the same target and task",
        )
    spec = get_metric(metric)
    new_v, old_v = _metric_of(new, metric, "new"), _metric_of(old, metric, "old")
    if delta_interval is not None:
        needed = required_gain(metric, margin, old_v) if math.isfinite(old_v) else 0.0
        beats, reason = _decide_paired(
            spec.higher_is_better, metric, new_v, old_v, delta_interval, needed
        )
    else:
        interval = new.intervals.get(metric)
        beats, reason = _decide(spec.higher_is_better, metric, new_v, old_v, interval)
    return Comparison(
        metric=metric,
        higher_is_better=spec.higher_is_better,
        new=new_v,
        old=old_v,
        delta=new_v - old_v,
        beats=beats,
        reason=reason,
        slice_regressions=_slice_regressions(
            new, old, metric, spec.higher_is_better, slice_tolerance
        ),
    )


def _metric_of(ev: Evaluation, metric: str, side: str) -> float:
    if metric not in ev.metrics:
        raise ConfigError(
            f"the {side} model's evaluation has no metric {metric!r}",
            detail=f"it has: {', '.join(ev.metrics)}",
            fix="choose a metric both models were evaluated on",
        )
    return ev.metrics[metric]


def _decide(
    higher: bool, metric: str, new: float, old: float, interval: Interval | None
) -> tuple[bool, str]:
    if math.isnan(new) or math.isnan(old):
        return False, f"{metric} is undefined (n/a) for one of the models"
    sign = 1.0 if higher else -1.0
    better_word = "higher" if higher else "lower"
    if sign * (new - old) <= 0:
        return False, f"{metric} {new:.4f} is not {better_word} than {old:.4f}"
    if interval is None or math.isnan(interval.low):
        return True, f"{metric} {new:.4f} is {better_word} than {old:.4f} (no interval available)"
    bound = interval.low if higher else interval.high
    text = f"{metric} {new:.4f} [{interval.low:.4f}, {interval.high:.4f}] vs {old:.4f}"
    if sign * (bound - old) >= 0:
        return True, f"{text}: better, and the 95% interval excludes the old value"
    return False, f"{text}: better, but within the 95% interval (not significant)"


def _decide_paired(
    higher: bool, metric: str, new: float, old: float, delta: Interval, needed: float = 0.0
) -> tuple[bool, str]:
    if math.isnan(new) or math.isnan(old) or math.isnan(delta.low):
        return False, f"{metric} is undefined (n/a) for one of the models"
    text = (
        f"{metric} {new:.4f} vs {old:.4f}, difference {new - old:+.4f} "
        f"[{delta.low:+.4f}, {delta.high:+.4f}] (paired 95% interval)"
    )
    better = delta.low > 0 if higher else delta.high < 0
    gain = (new - old) if higher else (old - new)
    if better and gain < needed:
        return False, f"{text}: better, but by less than the margin ({needed:.4g})"
    if better:
        return True, f"{text}: better, and the interval excludes no change"
    worse = delta.high < 0 if higher else delta.low > 0
    if worse:
        return False, f"{text}: worse"
    return False, f"{text}: not significantly better"


def _slice_regressions(
    new: Evaluation, old: Evaluation, metric: str, higher: bool, tolerance: float
) -> tuple[SliceRegression, ...]:
    old_by_key = {(s.column, s.value): s for s in old.slices}
    found: list[SliceRegression] = []
    for s in new.slices:
        before = old_by_key.get((s.column, s.value))
        if before is None:
            continue
        new_v, old_v = s.metrics.get(metric, math.nan), before.metrics.get(metric, math.nan)
        if math.isnan(new_v) or math.isnan(old_v):
            continue
        worse_by = (old_v - new_v) if higher else (new_v - old_v)
        if worse_by > required_gain(metric, tolerance, old_v):
            found.append(SliceRegression(s.column, s.value, new_v, old_v, worse_by))
    return tuple(sorted(found, key=lambda r: r.worse_by, reverse=True))
