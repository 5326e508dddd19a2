"""The metric registry: every metric loopml reports, with the metadata needed to rank by it.

A metric is a function ``fn(y_true, pred, weight=None) -> float`` plus a :class:`MetricSpec`
(which tasks it applies to, whether higher is better, whether it needs probabilities),
registered explicitly with :func:`register`. Conventions:

- classification targets are integer class indices ``0..k-1``; ``pred`` is a probability
  matrix of shape ``(n, k)``; the binary positive class is index 1;
- hard labels are ``p[:, 1] >= threshold`` for binary tasks (the version's decision
  threshold, 0.5 when there is none) and the argmax otherwise: :func:`compute_metrics` hands
  the label metrics the decisions as a one-hot matrix (:func:`decisions`), so each metric
  function stays a function of ``(y_true, pred, weight)``;
- regression ``pred`` is a float vector.

Every function accepts an optional non-negative ``weight`` per row. Integer weights are
exactly equivalent to repeating rows, which is how :mod:`loopml.train.evaluate` runs its
bootstrap without copying the holdout 200 times. The functions are plain numpy (checked
against scikit-learn in the tests) because scikit-learn's input validation alone would
cost more than the whole computation on a 200k-row holdout resampled 200 times.

Degenerate inputs return ``float("nan")`` instead of raising, and callers show "n/a":
ROC AUC and PR AUC when one class is absent (or has zero weight), R² when ``y_true`` is
constant, any metric when all weights are zero. Precision, recall and F1 follow
scikit-learn's ``zero_division=0``: they are 0.0 when their denominator is empty.

>>> import numpy as np
>>> proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
>>> compute_metrics("binary", np.array([0, 1, 0, 1]), proba, 2)["roc_auc"]
1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from loopml.config import Task
from loopml.errors import ConfigError

FloatArray = NDArray[np.float64]
_EPS = float(np.finfo(np.float64).eps)


class MetricFn(Protocol):
    """A metric: ``fn(y_true, pred, weight=None) -> float``."""

    def __call__(
        self,
        y_true: NDArray[np.generic],
        pred: NDArray[np.generic],
        weight: FloatArray | None = None,
    ) -> float: ...


@dataclass(frozen=True)
class MetricSpec:
    """One registered metric and what is needed to use and rank by it."""

    name: str
    tasks: frozenset[Task]
    higher_is_better: bool
    fn: MetricFn
    needs_proba: bool
    label: str = ""

    @property
    def title(self) -> str:
        """A human name for reports, e.g. "ROC AUC"."""
        return self.label or self.name


_REGISTRY: dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> MetricSpec:
    """Add a metric to the registry; registering a name twice is an error."""
    if spec.name in _REGISTRY:
        raise ValueError(f"metric {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_metric(name: str) -> MetricSpec:
    """The spec registered under ``name``; a :class:`ConfigError` naming the known ones if none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown metric {name!r}",
            detail=f"known metrics: {', '.join(sorted(_REGISTRY))}",
            fix="use one of the known metric names in loopml.yaml",
        ) from None


def metrics_for(task: Task) -> list[MetricSpec]:
    """The metrics that apply to ``task``, in registration order."""
    return [spec for spec in _REGISTRY.values() if task in spec.tasks]


def default_metric(task: Task) -> str:
    """The metric a task is ranked and gated by unless the project says otherwise."""
    return {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}[task]


def higher_is_better(name: str) -> bool:
    """Whether a larger value of metric ``name`` is better."""
    return get_metric(name).higher_is_better


def required_gain(name: str, margin: float, reference: float) -> float:
    """How much better than ``reference`` a value of metric ``name`` must be to count as
    better by ``margin`` (``gate.margin``): for an error metric (lower is better: RMSE,
    MAE, log loss, Brier) a fraction of the reference, so it means the same whatever the
    target's units; for a bounded score (AUC, F1, accuracy, R²) an absolute amount.

    >>> required_gain("rmse", 0.01, 250.0), required_gain("roc_auc", 0.01, 0.7)
    (2.5, 0.01)
    """
    if higher_is_better(name):
        return margin
    return margin * abs(reference)


def metric_drop(name: str, reference: float, value: float) -> float:
    """How much worse ``value`` is than ``reference``, on the scale margins are given in
    (:func:`required_gain`): a fraction of the reference for an error metric, an absolute
    amount for a bounded score; positive means worse.

    >>> metric_drop("rmse", 200.0, 230.0), round(metric_drop("roc_auc", 0.9, 0.85), 6)
    (0.15, 0.05)
    """
    diff = float(reference) - float(value)
    if higher_is_better(name):
        return diff
    scale = abs(float(reference))
    return -diff / scale if scale > 0 else -diff


def compute_metrics(
    task: Task,
    y_true: NDArray[np.generic],
    pred: NDArray[np.generic],
    n_classes: int,
    weight: FloatArray | None = None,
    threshold: float | None = None,
) -> dict[str, float]:
    """Every metric of ``task`` on one set of predictions, as ``{name: value}``; the label
    metrics of a binary task decide at ``threshold`` (default 0.5)."""
    y, p = check_predictions(task, y_true, pred, n_classes)
    decided = decisions(p, threshold) if task != "regression" else p
    return {
        spec.name: float(spec.fn(y, p if spec.needs_proba else decided, weight))
        for spec in metrics_for(task)
    }


def decisions(pred: FloatArray, threshold: float | None = None) -> FloatArray:
    """The hard decisions of a probability matrix as a one-hot matrix of the same shape:
    what the label metrics are given, so they score the labels a version serves.

    >>> decisions(np.array([[0.7, 0.3], [0.4, 0.6]]), threshold=0.25).tolist()
    [[0.0, 1.0], [0.0, 1.0]]
    """
    labels = predicted_labels(pred, threshold)
    out = np.zeros_like(pred, dtype=np.float64)
    out[np.arange(pred.shape[0]), labels] = 1.0
    return out


def check_predictions(
    task: Task, y_true: NDArray[np.generic], pred: NDArray[np.generic], n_classes: int
) -> tuple[NDArray[np.generic], FloatArray]:
    """Validate shapes and label range; return ``(y, pred)`` as numpy arrays.

    A binary ``pred`` given as a vector of positive-class probabilities is widened to
    ``(n, 2)``. Shape errors are programming errors between loopml's own stages, hence
    ``ValueError`` rather than a user-facing error.
    """
    p = np.asarray(pred, dtype=np.float64)
    if task == "regression":
        y: NDArray[np.generic] = np.asarray(y_true, dtype=np.float64)
        if p.ndim != 1 or p.shape != y.shape:
            raise ValueError(f"regression needs pred of shape {y.shape}, got {p.shape}")
        return y, p
    y = np.asarray(y_true).astype(np.int64)
    if task == "binary" and p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    if p.ndim != 2 or p.shape != (y.shape[0], n_classes):
        raise ValueError(f"{task} needs pred of shape ({y.shape[0]}, {n_classes}), got {p.shape}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"class indices must lie in 0..{n_classes - 1}")
    return y, p


def predicted_labels(pred: FloatArray, threshold: float | None = None) -> NDArray[np.int64]:
    """Hard labels: ``p[:, 1] >= threshold`` (default 0.5) for two classes, the argmax
    otherwise."""
    if pred.shape[1] == 2:
        return (pred[:, 1] >= (0.5 if threshold is None else threshold)).astype(np.int64)
    return np.asarray(np.argmax(pred, axis=1), dtype=np.int64)


def _weights(n: int, weight: FloatArray | None) -> FloatArray:
    return np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)


def _mean(values: FloatArray, weight: FloatArray | None) -> float:
    w = _weights(values.shape[0], weight)
    total = float(w.sum())
    return float(np.dot(values, w) / total) if total > 0 else float("nan")


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def _positive_score(pred: NDArray[np.generic]) -> FloatArray:
    p = np.asarray(pred, dtype=np.float64)
    return p[:, 1] if p.ndim == 2 else p


def _ranked_groups(
    y_true: NDArray[np.generic], score: FloatArray, weight: FloatArray | None
) -> tuple[FloatArray, FloatArray]:
    """Positive and negative weight per distinct score, highest score first.

    The stable sort is close to linear on input that is already sorted, which the
    bootstrap arranges once so that its 200 resamples do not sort 200 times.
    """
    order = np.argsort(-score, kind="stable")
    s = score[order]
    w = _weights(score.shape[0], weight)[order]
    positive = np.asarray(y_true)[order] == 1
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.add.reduceat(np.where(positive, w, 0.0), starts)
    neg = np.add.reduceat(np.where(positive, 0.0, w), starts)
    return pos, neg


def roc_auc(
    y_true: NDArray[np.generic], pred: NDArray[np.generic], weight: FloatArray | None = None
) -> float:
    """Area under the ROC curve (ties count one half); NaN when a class is absent."""
    if np.asarray(y_true).size == 0:
        return float("nan")
    pos, neg = _ranked_groups(y_true, _positive_score(pred), weight)
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos <= 0 or n_neg <= 0:
        return float("nan")
    negatives_below = n_neg - np.cumsum(neg)
    return float(np.dot(pos, negatives_below + 0.5 * neg) / (n_pos * n_neg))


def pr_auc(
    y_true: NDArray[np.generic], pred: NDArray[np.generic], weight: FloatArray | None = None
) -> float:
    """Average precision (scikit-learn's step-wise PR AUC); NaN when a class is absent."""
    if np.asarray(y_true).size == 0:
        return float("nan")
    pos, neg = _ranked_groups(y_true, _positive_score(pred), weight)
    n_pos = float(pos.sum())
    if n_pos <= 0 or float(neg.sum()) <= 0:
        return float("nan")
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    precision = np.divide(tp, tp + fp, out=np.ones_like(tp), where=(tp + fp) > 0)
    return float(np.dot(pos / n_pos, precision))


def log_loss(
    y_true: NDArray[np.generic], pred: NDArray[np.generic], weight: FloatArray | None = None
) -> float:
    """Mean negative log probability of the true class, clipped to [eps, 1 - eps]."""
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(pred, dtype=np.float64)
    p_true = np.clip(p[np.arange(y.shape[0]), y], _EPS, 1.0 - _EPS)
    return _mean(-np.log(p_true), weight)


def brier(
    y_true: NDArray[np.generic], pred: NDArray[np.generic], weight: FloatArray | None = None
) -> float:
    """Mean squared error of the positive-class probability."""
    y = np.asarray(y_true, dtype=np.float64)
    return _mean((_positive_score(pred) - y) ** 2, weight)


def accuracy(
    y_true: NDArray[np.generic], pred: NDArray[np.generic], weight: FloatArray | None = None
) -> float:
    """Share of rows whose hard label is the true class."""
    labels = predicted_labels(np.asarray(pred, dtype=np.float64))
    return _mean((labels == np.asarray(y_true)).astype(np.float64), weight)


def _binary_counts(
    y_true: NDArray[np.generic], pred: NDArray[np.generic], weight: FloatArray | None
) -> tuple[float, float, float]:
    """Weighted true positives, false positives and false negatives."""
    actual = np.asarray(y_true) == 1
    predicted = predicted_labels(np.asarray(pred, dtype=np.float64)) == 1
    w = _weights(actual.shape[0], weight)
    tp = float(w[actual & predicted].sum())
    return tp, float(w[~actual & predicted].sum()), float(w[actual & ~predicted].sum())


def precision(
    y_true: NDArray[np.generic], pred: NDArray[np.generic], weight: FloatArray | None = None
) -> float:
    """Share of predicted positives that are positive (0.0 when none are predicted)."""
    tp, fp, _ = _binary_counts(y_true, pred, weight)
    return _ratio(tp, tp + fp)


def recall(
    y_true: NDArray[np.generic], pred: NDArray[np.generic], weight: FloatArray | None = None
) -> float:
    """Share of positives predicted positive (0.0 when there are none)."""
    tp, _, fn = _binary_counts(y_true, pred, weight)
    return _ratio(tp, tp + fn)


def f1(
    y_true: NDArray[np.generic], pred: NDArray[np.generic], weight: FloatArray | None = None
) -> float:
    """Harmonic mean of precision and recall for the positive class."""
    tp, fp, fn = _binary_counts(y_true, pred, weight)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def f1_macro(
    y_true: NDArray[np.generic], pred: NDArray[np.generic], weight: FloatArray | None = None
) -> float:
    """Unweighted mean of per-class F1 over the classes the labels hold.

    A class absent from ``y_true`` has no F1 (its recall is undefined), so it does not
    count as a zero: a window whose labels are all of one class, predicted right, scores
    1.0, not 1/k. Predicting an absent class still costs the true class its recall.
    """
    p = np.asarray(pred, dtype=np.float64)
    k = p.shape[1]
    y = np.asarray(y_true).astype(np.int64)
    cells = np.bincount(
        y * k + np.argmax(p, axis=1), weights=_weights(y.shape[0], weight), minlength=k * k
    ).reshape(k, k)
    tp = np.diag(cells)
    denom = cells.sum(axis=0) + cells.sum(axis=1)  # = 2tp + fp + fn
    per_class = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    present = cells.sum(axis=1) > 0
    return float(per_class[present].mean()) if present.any() else math.nan


def rmse(
    y_true: NDArray[np.generic], pred: NDArray[np.generic], weight: FloatArray | None = None
) -> float:
    """Root mean squared error."""
    err = np.asarray(pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return float(np.sqrt(_mean(err**2, weight)))


def mae(
    y_true: NDArray[np.generic], pred: NDArray[np.generic], weight: FloatArray | None = None
) -> float:
    """Mean absolute error."""
    err = np.asarray(pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return _mean(np.abs(err), weight)


def r2(
    y_true: NDArray[np.generic], pred: NDArray[np.generic], weight: FloatArray | None = None
) -> float:
    """Coefficient of determination; NaN when ``y_true`` is constant."""
    y = np.asarray(y_true, dtype=np.float64)
    residual = _mean((y - np.asarray(pred, dtype=np.float64)) ** 2, weight)
    total = _mean((y - _mean(y, weight)) ** 2, weight)
    return 1.0 - residual / total if total > 0 else float("nan")


def _register_builtins(specs: Mapping[str, tuple[set[Task], bool, MetricFn, bool, str]]) -> None:
    for name, (tasks, better_up, fn, needs_proba, label) in specs.items():
        register(MetricSpec(name, frozenset(tasks), better_up, fn, needs_proba, label))


_CLASSIFICATION: set[Task] = {"binary", "multiclass"}
_register_builtins(
    {
        "roc_auc": ({"binary"}, True, roc_auc, True, "ROC AUC"),
        "pr_auc": ({"binary"}, True, pr_auc, True, "PR AUC (average precision)"),
        "f1_macro": ({"multiclass"}, True, f1_macro, False, "F1 (macro)"),
        "log_loss": (_CLASSIFICATION, False, log_loss, True, "Log loss"),
        "brier": ({"binary"}, False, brier, True, "Brier score"),
        "accuracy": (_CLASSIFICATION, True, accuracy, False, "Accuracy"),
        "precision": ({"binary"}, True, precision, False, "Precision"),
        "recall": ({"binary"}, True, recall, False, "Recall"),
        "f1": ({"binary"}, True, f1, False, "F1"),
        "rmse": ({"regression"}, False, rmse, False, "RMSE"),
        "mae": ({"regression"}, False, mae, False, "MAE"),
        "r2": ({"regression"}, True, r2, False, "R²"),
    }
)
