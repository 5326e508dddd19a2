"""Calibration after weighted training: probabilities that are probabilities again.

Reweighting classes (``train.class_weight``) trades calibrated probabilities for recall: a
model trained with balanced weights on 3 % positives says 0.5 where the truth is 0.03. So a
weighted model is followed by a calibrator fitted on held-out training rows (the validation
rows tuning kept aside, never the evaluation holdout): a multinomial logistic regression on
the log-probabilities (Platt scaling for two classes, vector scaling for more), which undoes
the prior shift the weights introduced and keeps the ranking.

:class:`Calibrated` is the pipeline's model step then: the weighted estimator plus the
calibrator's coefficients. The serving artifact appends the same few operations to the ONNX
graph (:func:`loopml.registry.onnx_convert.convert_pipeline`).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = (rng.random(4000) < 0.05).astype(int)
>>> raw = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.15, 4000), 0.01, 0.99)
>>> cal = fit_calibrator(np.column_stack([1 - raw, raw]), y, 2)
>>> float(np.round(cal.apply(np.column_stack([1 - raw, raw]))[:, 1].mean(), 2))
0.05
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

__all__ = ["Calibrated", "Calibrator", "cross_fitted", "fit_calibrator"]

Array = np.ndarray[Any, Any]
_EPS = 1e-7


@dataclass(frozen=True)
class Calibrator:
    """``softmax(log(p) @ coef + intercept)`` (a sigmoid on one column for two classes)."""

    coef: Array  # (k, m): m = 1 for two classes, k otherwise
    intercept: Array  # (m,)

    def apply(self, pred: Array) -> Array:
        z = _log(pred) @ self.coef + self.intercept
        if z.shape[1] == 1:
            positive = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.column_stack([1.0 - positive, positive])
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def fit_calibrator(pred: Array, y: Array, n_classes: int) -> Calibrator:
    """Fit on held-out predictions ``pred`` (n, k) and their labels ``y`` (class codes)."""
    model = LogisticRegression(C=1e4, max_iter=1000)
    model.fit(_log(pred), np.asarray(y).astype(np.int64))
    coef = np.asarray(model.coef_, dtype=np.float64).T
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    present = [int(c) for c in model.classes_]
    if coef.shape[1] > 1 and present != list(range(n_classes)):
        full_coef = np.zeros((coef.shape[0], n_classes))
        full_intercept = np.full(n_classes, -1e3)  # a class absent from the rows stays ~0
        full_coef[:, present], full_intercept[present] = coef, intercept
        coef, intercept = full_coef, full_intercept
    return Calibrator(coef, intercept)


def cross_fitted(pred: Array, y: Array, n_classes: int, seed: int) -> Array:
    """Calibrated predictions for the rows ``pred`` came from, each by a calibrator fitted
    on the other half of them: an honest view of the calibrated model on held-out rows."""
    rows = np.random.default_rng(seed).permutation(len(y))
    halves = np.array_split(rows, 2)
    out = np.empty_like(np.asarray(pred, dtype=np.float64))
    for mine, other in ((halves[0], halves[1]), (halves[1], halves[0])):
        out[mine] = fit_calibrator(pred[other], y[other], n_classes).apply(pred[mine])
    return out


def _log(pred: Array) -> Array:
    return np.log(np.clip(np.asarray(pred, dtype=np.float64), _EPS, 1.0 - _EPS))


class Calibrated(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A fitted classifier followed by a :class:`Calibrator` (both given, already fitted:
    ``fit`` only checks them)."""

    def __init__(self, estimator: Any = None, coef: Any = None, intercept: Any = None) -> None:
        self.estimator = estimator
        self.coef = coef
        self.intercept = intercept

    def fit(self, X: Any = None, y: Any = None) -> Calibrated:
        self.classes_ = np.asarray(self.estimator.classes_)
        self.calibrator_ = Calibrator(np.asarray(self.coef), np.asarray(self.intercept))
        return self

    def predict_proba(self, X: Any) -> Array:
        return self.calibrator_.apply(np.asarray(self.estimator.predict_proba(X)))

    def predict(self, X: Any) -> Array:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])

    @property
    def feature_importances_(self) -> Array:
        """The weighted estimator's importances (calibration is monotone per class)."""
        return np.asarray(self.estimator.feature_importances_)

    @property
    def coef_(self) -> Array:
        return np.asarray(self.estimator.coef_)
