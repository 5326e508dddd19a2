"""Choosing the model to register, as a careful practitioner does (DESIGN.md decision 13).

- The trivial baseline (prior / mean: complexity 0) is the **floor**: a model is eligible
  only if it beats the floor by the margin on the gate metric.
- Every other model is a contender, the simple one (logistic / ridge) included.
- Among the eligible, a **more complex model must beat a simpler one by the margin** to be
  chosen: a tie goes to the simpler, cheaper model. Within one level of complexity the best
  gate metric wins, and a tie on it is broken by the proper score (log loss; RMSE for
  regression), then by the order of the project file.
- **Margins mean the same on every table**: for an error metric (RMSE, MAE, log loss,
  Brier) the margin is a fraction of the value it must beat; for a bounded score (AUC, F1,
  accuracy, R²) it is an absolute amount (:func:`~loopml.train.metrics.required_gain`).
- Nothing is registered only when no model clears the floor, and then the reason says what
  to try.

>>> fit = [Scored("dummy", 0, {"rmse": 10.0}), Scored("linear", 1, {"rmse": 3.34}),
...        Scored("xgboost", 2, {"rmse": 3.52})]
>>> decision = select_model(fit, metric="rmse", margin=0.005)
>>> decision.chosen, decision.gate.passed
('linear', True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from loopml.train.gate import GateDecision
from loopml.train.metrics import higher_is_better, required_gain

__all__ = ["Scored", "Selection", "select_model"]

FLOOR_COMPLEXITY = 0


@dataclass(frozen=True)
class Scored:
    """One fitted model as selection sees it: its name, how complex it is (0: the trivial
    baseline, 1: linear, 2: boosted trees) and its holdout metrics."""

    name: str
    complexity: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class Selection:
    """The chosen model (None: nothing cleared the floor) and the decision with its reason."""

    chosen: str | None
    gate: GateDecision


def select_model(
    models: Sequence[Scored], *, metric: str, margin: float, proper: str | None = None
) -> Selection:
    """Pick the model to register from ``models`` (see the module doc).

    ``proper`` is the proper score that breaks ties (default: log loss for classifiers,
    RMSE for regression, whichever the models have).
    """
    tie_break = proper or _proper_score(models)
    floors = [m for m in models if m.complexity == FLOOR_COMPLEXITY]
    contenders = [m for m in models if m.complexity != FLOOR_COMPLEXITY and _has(m, metric)]
    floor = _best(floors, metric, tie_break) if floors else None
    eligible = [m for m in contenders if floor is None or _beats(m, floor, metric, margin)]
    if not eligible:
        return Selection(None, _nothing(contenders, floor, metric, margin))
    levels = sorted({m.complexity for m in eligible})
    chosen = _best([m for m in eligible if m.complexity == levels[0]], metric, tie_break)
    passed_over: list[tuple[Scored, Scored]] = []
    for level in levels[1:]:
        best = _best([m for m in eligible if m.complexity == level], metric, tie_break)
        if _beats(best, chosen, metric, margin):
            chosen = best
        else:
            passed_over.append((best, chosen))
    reason = _reason(chosen, floor, passed_over, eligible, metric, margin)
    return Selection(chosen.name, GateDecision(True, metric, margin, reason))


def _has(model: Scored, metric: str) -> bool:
    return not math.isnan(model.metrics.get(metric, math.nan))


def _gain(model: Scored, other: Scored, metric: str) -> float:
    a, b = model.metrics[metric], other.metrics[metric]
    return a - b if higher_is_better(metric) else b - a


def _beats(model: Scored, other: Scored, metric: str, margin: float) -> bool:
    """Whether ``model`` beats ``other`` by the margin (an ``other`` without a computable
    value is beaten by any computable one)."""
    if not _has(other, metric):
        return True
    needed = required_gain(metric, margin, other.metrics[metric])
    return _gain(model, other, metric) >= needed - 1e-12


def _best(models: Sequence[Scored], metric: str, tie_break: str) -> Scored:
    """The best ``metric`` (ties: the better ``tie_break``, then the first listed)."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    tie_sign = 1.0 if higher_is_better(tie_break) else -1.0

    def key(item: tuple[int, Scored]) -> tuple[float, float, int]:
        i, m = item
        main = m.metrics.get(metric, math.nan)
        tie = m.metrics.get(tie_break, math.nan)
        return (
            sign * main if not math.isnan(main) else -math.inf,
            tie_sign * tie if not math.isnan(tie) else -math.inf,
            -i,
        )

    return max(enumerate(models), key=key)[1]


def _proper_score(models: Sequence[Scored]) -> str:
    names = {name for m in models for name in m.metrics}
    return "log_loss" if "log_loss" in names else "rmse"


def _value(model: Scored, metric: str) -> str:
    return f"{model.name} {model.metrics.get(metric, math.nan):.4f}"


def _margin_text(metric: str, margin: float, reference: float) -> str:
    needed = required_gain(metric, margin, reference)
    if higher_is_better(metric):
        return f"the margin {margin:g}"
    return f"the margin {margin:.1%} ({needed:.4g})"


def _reason(
    chosen: Scored,
    floor: Scored | None,
    passed_over: list[tuple[Scored, Scored]],
    eligible: Sequence[Scored],
    metric: str,
    margin: float,
) -> str:
    score = f"{metric} {chosen.metrics[metric]:.4f}"
    parts = [f"{chosen.name} chosen: {score}"]
    if floor is not None:
        parts.append(f"beats the trivial baseline ({_value(floor, metric)})")
    simpler = [m for m in eligible if m.complexity < chosen.complexity]
    if simpler:
        best_simple = max(simpler, key=lambda m: _gain(m, chosen, metric))
        gap = _gain(chosen, best_simple, metric)
        parts.append(f"and the simpler {_value(best_simple, metric)} by {gap:.4f}")
    for complex_, kept in passed_over:
        if kept is chosen:
            gap = _gain(complex_, chosen, metric)
            if gap < 0:
                how = f"is worse by {-gap:.4f}"
            elif gap == 0:
                how = "ties it"
            else:
                needed = _margin_text(metric, margin, chosen.metrics[metric])
                how = f"is better by only {gap:.4f}, less than {needed}"
            parts.append(
                f"; the more complex {_value(complex_, metric)} {how}, so the simpler model is kept"
            )
    return " ".join(parts).replace(" ;", ";")


def _nothing(
    contenders: Sequence[Scored], floor: Scored | None, metric: str, margin: float
) -> GateDecision:
    if not contenders or floor is None:  # with no floor every contender is eligible
        reason = f"no model has a computable {metric}"
    else:
        best = _best(contenders, metric, _proper_score(contenders))
        reason = (
            f"no model beats the trivial baseline {_value(floor, metric)} by "
            f"{_margin_text(metric, margin, floor.metrics[metric])}: the best, "
            f"{_value(best, metric)}; try more rows or more informative features, check "
            "that the target is what you mean to predict, or lower gate.margin"
        )
    return GateDecision(False, metric, margin, reason)
