"""The decision threshold of a binary model, chosen on validation rows.

A calibrated probability is the honest output; a label is a decision, and where to cut
depends on what mistakes cost. The threshold is chosen on the validation rows tuning held
out (never on the evaluation holdout) for the objective in ``train.threshold``: F1 of the
positive class by default, accuracy, balanced accuracy, the lowest cost of false positives
and false negatives, or a fixed value. It is stored with the version and every scorer — the
ONNX server, the MLflow model, ``loopml score`` — labels rows the same way.

Every distinct validation score is a candidate cut (a row is positive when its probability
is at least the threshold); the threshold returned lies halfway between the chosen score and
the next one below it, so it does not sit on a training value. Ties go to the cut nearest 0.5.

>>> import numpy as np
>>> y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
>>> p = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.9])
>>> round(choose_threshold(y, p, ThresholdConfig()).value, 6)
0.325
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.config import ThresholdConfig

__all__ = ["Threshold", "choose_threshold"]

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Threshold:
    """The cut, what it optimises, and its value on the validation rows."""

    value: float
    objective: str
    score: float
    rows: int

    def describe(self, positive: str) -> str:
        """One line for the report and the CLI, naming the positive class."""
        if self.objective == "fixed":
            return f"label {positive!r} when P({positive}) >= {self.value:.4g} (fixed)"
        what = {"cost": "the lowest cost", "balanced_accuracy": "balanced accuracy"}.get(
            self.objective, self.objective.replace("_", " ")
        )
        return (
            f"label {positive!r} when P({positive}) >= {self.value:.4g}, chosen for {what} "
            f"on {self.rows:,} validation rows ({self.score:.4f})"
        )


def choose_threshold(y: Array, positive: Array, settings: ThresholdConfig) -> Threshold:
    """The threshold on ``positive`` (probabilities of class 1) that serves ``settings``
    best on labels ``y`` (0 / 1)."""
    rows = len(y)
    if settings.objective == "fixed" and settings.value is not None:
        return Threshold(float(settings.value), "fixed", float("nan"), rows)
    scores = np.asarray(positive, dtype=np.float64)
    labels = np.asarray(y).astype(bool)
    cuts, tp, fp = _cuts(scores, labels)
    values = _objective(settings, tp, fp, float(labels.sum()), rows)
    best = np.flatnonzero(values >= values.max() - 1e-12)
    chosen = int(best[np.argmin(np.abs(cuts[best] - 0.5))])
    return Threshold(float(cuts[chosen]), settings.objective, float(values[chosen]), rows)


def _cuts(scores: Array, labels: Array) -> tuple[Array, Array, Array]:
    """Candidate thresholds (descending) with the true and false positives each gives."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    distinct = np.flatnonzero(np.diff(sorted_scores) != 0)  # last row of each score
    ends = np.append(distinct, len(sorted_scores) - 1) if len(sorted_scores) else distinct
    tp = np.concatenate([[0.0], np.cumsum(sorted_labels)[ends]])
    fp = np.concatenate([[0.0], np.cumsum(~sorted_labels)[ends]])
    at = sorted_scores[ends]
    below = np.append(sorted_scores[ends[1:]], 0.0) if len(ends) else at
    above = np.concatenate([[1.0], at])
    # Cut 0 predicts nothing positive (halfway above the top score); cut i > 0 predicts the
    # rows scoring at least at[i-1] positive (halfway down to the next score).
    cuts = np.concatenate([[(above[0] + at[0]) / 2 if len(at) else 0.5], (at + below) / 2])
    return cuts, tp, fp


def _objective(
    settings: ThresholdConfig, tp: Array, fp: Array, positives: float, rows: int
) -> Array:
    fn = positives - tp
    tn = (rows - positives) - fp
    if settings.objective == "f1":
        f1: Array = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=tp > 0)
        return f1
    if settings.objective == "accuracy":
        return (tp + tn) / max(rows, 1)
    if settings.objective == "balanced_accuracy":
        tpr = tp / positives if positives else np.zeros_like(tp)
        tnr = tn / (rows - positives) if rows > positives else np.zeros_like(tp)
        return (tpr + tnr) / 2
    cost = settings.false_positive_cost * fp + settings.false_negative_cost * fn
    return np.asarray(-cost, dtype=np.float64)
