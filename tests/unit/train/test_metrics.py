from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from loopml.errors import ConfigError
from loopml.train.metrics import (
    MetricSpec,
    accuracy,
    compute_metrics,
    default_metric,
    get_metric,
    higher_is_better,
    metrics_for,
    pr_auc,
    register,
    roc_auc,
)

pytestmark = pytest.mark.unit


def _binary(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    # Rounded scores make ties, which is where rank metrics usually go wrong.
    p = np.round(np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1), 2)
    return y, np.column_stack([1 - p, p])


def test_binary_metrics_match_sklearn() -> None:
    y, proba = _binary()
    p = proba[:, 1]
    labels = (p >= 0.5).astype(int)
    got = compute_metrics("binary", y, proba, 2)
    expected = {
        "roc_auc": skm.roc_auc_score(y, p),
        "pr_auc": skm.average_precision_score(y, p),
        "log_loss": skm.log_loss(y, proba),
        "brier": skm.brier_score_loss(y, p),
        "accuracy": skm.accuracy_score(y, labels),
        "precision": skm.precision_score(y, labels),
        "recall": skm.recall_score(y, labels),
        "f1": skm.f1_score(y, labels),
    }
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_weights_are_equivalent_to_repeated_rows() -> None:
    y, proba = _binary(200, seed=3)
    counts = np.random.default_rng(1).integers(0, 4, y.shape[0]).astype(float)
    repeated = np.repeat(np.arange(y.shape[0]), counts.astype(int))
    weighted = compute_metrics("binary", y, proba, 2, counts)
    copied = compute_metrics("binary", y[repeated], proba[repeated], 2)
    for name in weighted:
        assert weighted[name] == pytest.approx(copied[name], abs=1e-12), name


def test_multiclass_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 300)
    proba = rng.dirichlet(np.ones(4), 300)
    proba[np.arange(300), y] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    got = compute_metrics("multiclass", y, proba, 4)
    labels = proba.argmax(axis=1)
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y, labels, average="macro"))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, labels))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=range(4)))


def test_f1_macro_leaves_out_a_class_the_labels_lack() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [0.2, 0.8, 0.0]])
    # Classes 0 and 1 are perfect, class 2 never occurs: its F1 is undefined, not 0.
    assert compute_metrics("multiclass", y, proba, 3)["f1_macro"] == pytest.approx(1.0)
    # As scikit-learn computes it over the classes present in the labels.
    assert compute_metrics("multiclass", y, proba, 3)["f1_macro"] == pytest.approx(
        skm.f1_score(y, proba.argmax(axis=1), labels=[0, 1], average="macro")
    )


def test_f1_macro_still_charges_predictions_of_an_absent_class() -> None:
    y = np.array([0, 0, 0, 0])
    proba = np.array([[0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.1, 0.0, 0.9]])
    # One row of class 0 predicted as the absent class 2: class 0's recall is 3/4.
    expected = skm.f1_score(y, proba.argmax(axis=1), labels=[0], average="macro")
    assert compute_metrics("multiclass", y, proba, 3)["f1_macro"] == pytest.approx(expected)
    assert expected == pytest.approx(6 / 7)


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(10, 3, 500)
    pred = y + rng.normal(0, 1, 500)
    got = compute_metrics("regression", y, pred, 0)
    assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(y, pred))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))


def test_small_known_values() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    # Positives score 0.35 and 0.8, negatives 0.1 and 0.4: 3 of 4 pairs ordered.
    assert roc_auc(y, proba) == pytest.approx(0.75)
    assert accuracy(y, proba) == pytest.approx(0.75)
    assert compute_metrics("regression", np.array([1.0, 2.0]), np.array([2.0, 4.0]), 0)[
        "mae"
    ] == pytest.approx(1.5)


def test_binary_vector_of_positive_probabilities_is_accepted() -> None:
    y, proba = _binary(50)
    assert compute_metrics("binary", y, proba[:, 1], 2) == compute_metrics("binary", y, proba, 2)


def test_degenerate_inputs_give_nan_not_errors() -> None:
    y = np.zeros(5, dtype=int)
    proba = np.column_stack([np.full(5, 0.7), np.full(5, 0.3)])
    got = compute_metrics("binary", y, proba, 2)
    assert math.isnan(got["roc_auc"])
    assert math.isnan(got["pr_auc"])
    assert got["accuracy"] == 1.0
    assert got["precision"] == 0.0  # sklearn's zero_division=0
    assert math.isnan(compute_metrics("regression", np.ones(4), np.arange(4.0), 0)["r2"])
    assert math.isnan(roc_auc(np.array([0, 1]), proba[:2], np.zeros(2)))
    assert math.isnan(pr_auc(np.array([], dtype=int), np.empty((0, 2))))


def test_shape_mismatch_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        compute_metrics("multiclass", np.array([0, 1]), np.ones((2, 2)) / 2, 3)
    with pytest.raises(ValueError, match="class indices"):
        compute_metrics("binary", np.array([0, 2]), np.ones((2, 2)) / 2, 2)
    with pytest.raises(ValueError, match="shape"):
        compute_metrics("regression", np.ones(3), np.ones(2), 0)


def test_registry_metadata() -> None:
    assert [s.name for s in metrics_for("binary")] == [
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "accuracy",
        "precision",
        "recall",
        "f1",
    ]
    assert {s.name for s in metrics_for("multiclass")} == {"f1_macro", "accuracy", "log_loss"}
    assert {s.name for s in metrics_for("regression")} == {"rmse", "mae", "r2"}
    assert default_metric("binary") == "roc_auc"
    assert default_metric("multiclass") == "f1_macro"
    assert default_metric("regression") == "rmse"
    assert higher_is_better("roc_auc") and higher_is_better("r2")
    assert not higher_is_better("log_loss") and not higher_is_better("rmse")
    assert get_metric("roc_auc").needs_proba and not get_metric("accuracy").needs_proba


def test_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        get_metric("auc")
    assert "roc_auc" in info.value.detail


def test_registering_a_name_twice_fails() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(MetricSpec("rmse", frozenset({"regression"}), False, roc_auc, False))
