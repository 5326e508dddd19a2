"""Calibration after weighted training gives probabilities that match the base rate."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.train.calibrate import Calibrated, cross_fitted, fit_calibrator
from loopml.train.metrics import log_loss

pytestmark = pytest.mark.unit


def rare_positives(n: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-(-4.0 + 1.5 * x[:, 0])))).astype(int)
    return x, y


def test_weighted_probabilities_are_calibrated_back_to_the_base_rate() -> None:
    x, y = rare_positives()
    weighted = LogisticRegression(class_weight="balanced").fit(x[:3000], y[:3000])
    raw = weighted.predict_proba(x[3000:])
    assert raw[:, 1].mean() > 3 * y.mean()  # reweighting inflates the positives
    calibrator = fit_calibrator(raw, y[3000:], 2)
    calibrated = calibrator.apply(raw)
    assert calibrated[:, 1].mean() == pytest.approx(y[3000:].mean(), abs=0.01)
    assert log_loss(y[3000:], calibrated) < log_loss(y[3000:], raw)
    # The ranking is kept: calibration is monotone in the positive probability.
    order = np.argsort(raw[:, 1])
    assert np.all(np.diff(calibrated[order, 1]) >= -1e-12)


def test_cross_fitted_predictions_are_out_of_fold() -> None:
    x, y = rare_positives()
    raw = LogisticRegression(class_weight="balanced").fit(x, y).predict_proba(x)
    honest = cross_fitted(raw, y, 2, seed=0)
    assert honest.shape == raw.shape
    assert np.allclose(honest.sum(axis=1), 1.0)
    assert log_loss(y, honest) < log_loss(y, raw)


def test_multiclass_calibration_and_the_wrapper() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 3))
    y = np.argmax(x + rng.normal(0, 1, x.shape) + np.array([2.0, 0.0, -1.0]), axis=1)
    base = LogisticRegression(class_weight="balanced").fit(x, y)
    calibrator = fit_calibrator(base.predict_proba(x), y, 3)
    model = Calibrated(base, calibrator.coef, calibrator.intercept).fit()
    proba = model.predict_proba(x)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.abs(proba.mean(axis=0) - np.bincount(y) / len(y)).max() < 0.02
    assert list(model.classes_) == [0, 1, 2] and model.coef_.shape == (3, 3)
