"""Gates: pure decisions about what a model has earned.

* which model is registered is decided by :mod:`loopml.train.select` (the floor, the
  margins, simpler models first);
* :func:`promotion_gate` — a version takes ``champion`` only if it beats the current
  champion on the same holdout with the confidence interval taken into account, and no
  slice regresses past the tolerance; ``force`` overrides, and says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from loopml.train.compare import Comparison
from loopml.train.metrics import higher_is_better


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    metric: str
    margin: float
    reason: str
    forced: bool = False


def choose_best(scores: Mapping[str, Mapping[str, float]], metric: str) -> str:
    """The name with the best ``metric`` (NaN never wins); ties go to the first listed."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    ranked = [
        (sign * values[metric], -i, name)
        for i, (name, values) in enumerate(scores.items())
        if not math.isnan(values.get(metric, math.nan))
    ]
    if not ranked:
        raise ValueError(f"no model has a computable {metric}")
    return max(ranked)[2]


def promotion_gate(comparison: Comparison, *, metric: str, force: bool) -> GateDecision:
    """Decide a promotion from a comparison of the new version against the champion."""
    problems: list[str] = []
    if not comparison.beats:
        problems.append(comparison.reason)
    if comparison.regressed_slices:
        worst = ", ".join(comparison.regressed_slices[:5])
        problems.append(f"slices regress beyond tolerance: {worst}")
    if not problems:
        return GateDecision(True, metric, 0.0, comparison.reason)
    reason = "; ".join(problems)
    if force:
        return GateDecision(True, metric, 0.0, f"forced past the gate: {reason}", forced=True)
    return GateDecision(False, metric, 0.0, reason)
