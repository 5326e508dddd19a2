from __future__ import annotations

import numpy as np
import pytest

from loopml.train.compare import compare, paired_delta_interval
from loopml.train.evaluate import Evaluation, Interval
from loopml.train.metrics import compute_metrics

pytestmark = pytest.mark.unit


def _scores(y: np.ndarray, signal: float, rng: np.random.Generator) -> np.ndarray:
    p = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(0, 1.5, y.size))))
    return np.column_stack([1 - p, p])


def _ev(value: float) -> Evaluation:
    return Evaluation("binary", 1000, {"roc_auc": value}, {}, (), ("0", "1"))


def test_paired_interval_detects_a_small_real_improvement() -> None:
    """Two models sharing most of their errors: the pair's difference is tight even when
    each model's own interval is wide, so a small but real gain is significant."""
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.3).astype(int)
    noise = rng.normal(0, 1.5, y.size)
    old_p = 1 / (1 + np.exp(-(1.0 * (2 * y - 1) + noise)))
    new_p = 1 / (1 + np.exp(-(1.1 * (2 * y - 1) + noise)))
    old, new = np.column_stack([1 - old_p, old_p]), np.column_stack([1 - new_p, new_p])
    delta = paired_delta_interval(
        "binary", y, new, old, metric="roc_auc", n_classes=2, resamples=200, seed=1
    )
    assert delta is not None and delta.low > 0
    gain = (
        compute_metrics("binary", y, new, 2)["roc_auc"]
        - compute_metrics("binary", y, old, 2)["roc_auc"]
    )
    assert delta.low < gain < delta.high
    n_old, n_new = compute_metrics("binary", y, old, 2), compute_metrics("binary", y, new, 2)
    result = compare(
        _ev(n_new["roc_auc"]), _ev(n_old["roc_auc"]), "roc_auc",
        slice_tolerance=0.01, delta_interval=delta,
    )  # fmt: skip
    assert result.beats and "paired" in result.reason


def test_paired_interval_of_a_model_against_itself_is_zero_and_does_not_beat() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(2000) < 0.4).astype(int)
    pred = _scores(y, 1.0, rng)
    delta = paired_delta_interval(
        "binary", y, pred, pred, metric="roc_auc", n_classes=2, resamples=50, seed=0
    )
    assert delta == Interval(0.0, 0.0)
    result = compare(_ev(0.8), _ev(0.8), "roc_auc", slice_tolerance=0, delta_interval=delta)
    assert not result.beats and "not significantly better" in result.reason


def test_paired_decision_for_lower_is_better_metrics() -> None:
    def reg(v: float) -> Evaluation:
        return Evaluation("regression", 100, {"rmse": v}, {}, (), ())

    better = compare(reg(1.0), reg(1.2), "rmse", slice_tolerance=0,
                     delta_interval=Interval(-0.3, -0.1))  # fmt: skip
    worse = compare(reg(1.2), reg(1.0), "rmse", slice_tolerance=0,
                    delta_interval=Interval(0.1, 0.3))  # fmt: skip
    unsure = compare(reg(1.1), reg(1.2), "rmse", slice_tolerance=0,
                     delta_interval=Interval(-0.2, 0.05))  # fmt: skip
    assert better.beats and not worse.beats and not unsure.beats
    assert worse.reason.endswith("worse")


def test_no_resamples_means_no_interval() -> None:
    y = np.array([0, 1, 0, 1])
    pred = np.full((4, 2), 0.5)
    assert (
        paired_delta_interval(
            "binary", y, pred, pred, metric="roc_auc", n_classes=2, resamples=0, seed=0
        )
        is None
    )
