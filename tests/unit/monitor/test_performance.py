from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from loopml.config import Task
from loopml.errors import RegistryError
from loopml.monitor.performance import (
    apply_calibration,
    drops,
    encode_labels,
    estimate_performance,
    fit_calibration,
    performance_report,
    realized_performance,
)
from loopml.train.evaluate import slice_metrics
from loopml.train.metrics import compute_metrics

pytestmark = pytest.mark.unit

IDENTITY = {
    "method": "isotonic",
    "version": 1,
    "task": "binary",
    "n_classes": 2,
    "curves": [{"class": 1, "x": [0.0, 1.0], "y": [0.0, 1.0]}],
}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def _binary(
    rng: np.random.Generator, n: int, *, mu: float = 0.0, sd: float = 1.0, power: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``p ** power`` of a model whose true P(y=1 | x) is ``p``; labels ~ Bernoulli(p)."""
    x = rng.normal(mu, sd, n)
    p = _sigmoid(2.0 * x - 0.5)
    y = (rng.random(n) < p).astype(np.int64)
    s = p**power
    return np.column_stack([1.0 - s, s]), y


def _gaps(
    task: Task, calibration: Any, scores: np.ndarray, y: np.ndarray, k: int = 2
) -> dict[str, float]:
    estimated = estimate_performance(task, calibration, scores)
    realized = compute_metrics(task, y, scores, k)
    return {name: abs(estimated[name] - realized[name]) for name in estimated}


# --- calibration ----------------------------------------------------------------------


def test_calibration_is_json_and_matches_isotonic_when_small() -> None:
    rng = np.random.default_rng(1)
    scores, y = _binary(rng, 5000)
    cal = fit_calibration("binary", scores, y)
    assert cal is not None
    restored = json.loads(json.dumps(cal, allow_nan=False))
    full = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(scores[:, 1], y)
    probe = np.linspace(-0.5, 1.5, 101)  # includes scores out of the holdout's range
    calibrated = apply_calibration(restored, probe)
    np.testing.assert_allclose(calibrated[:, 1], full.predict(probe), atol=1e-12)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)


def test_calibration_size_is_bounded_and_close_to_the_full_curve() -> None:
    rng = np.random.default_rng(2)
    scores, y = _binary(rng, 100_000)
    full = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(scores[:, 1], y)
    assert len(full.X_thresholds_) > 64  # the bound below really compresses
    cal = fit_calibration("binary", scores, y, max_points=64)
    assert cal is not None
    assert len(cal["curves"]) == 1
    assert len(cal["curves"][0]["x"]) <= 64
    error = np.abs(apply_calibration(cal, scores)[:, 1] - full.predict(scores[:, 1]))
    assert error.mean() < 0.005
    assert error.max() < 0.03


def test_calibration_none_for_regression_and_empty_holdout() -> None:
    assert fit_calibration("regression", np.array([1.0, 2.0]), np.array([1.0, 2.0])) is None
    assert fit_calibration("binary", np.empty((0, 2)), np.empty(0, dtype=int)) is None


def test_multiclass_calibration_rows_sum_to_one() -> None:
    rng = np.random.default_rng(3)
    scores, y = _multiclass(rng, 3000, sharpness=2.0)
    cal = fit_calibration("multiclass", scores, y)
    assert cal is not None
    assert [c["class"] for c in cal["curves"]] == [0, 1, 2]
    calibrated = apply_calibration(json.loads(json.dumps(cal, allow_nan=False)), scores)
    assert calibrated.shape == scores.shape
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    assert np.all(calibrated >= 0)


def test_malformed_calibration_is_a_registry_error() -> None:
    with pytest.raises(RegistryError, match="malformed"):
        apply_calibration({"method": "isotonic", "task": "binary"}, np.array([0.5]))
    broken = {**IDENTITY, "curves": [{"class": 1, "x": [0.0, 1.0], "y": [0.0]}]}
    with pytest.raises(RegistryError):
        estimate_performance("binary", broken, np.array([0.5]))
    curves = [{"class": i, "x": [0.0, 1.0], "y": [0.0, 1.0]} for i in range(3)]
    three = {**IDENTITY, "task": "multiclass", "n_classes": 3, "curves": curves}
    with pytest.raises(ValueError, match="3 classes"):
        apply_calibration(three, np.ones((2, 2)))


# --- estimated performance (CBPE) -------------------------------------------------------


def test_cbpe_matches_realized_on_a_calibrated_model() -> None:
    rng = np.random.default_rng(10)
    ref_scores, ref_y = _binary(rng, 20_000)
    cal = fit_calibration("binary", ref_scores, ref_y)
    scores, y = _binary(rng, 50_000)
    gaps = _gaps("binary", cal, scores, y)
    assert set(gaps) == {
        "roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "precision", "recall", "f1"
    }  # fmt: skip
    for name in ("roc_auc", "accuracy", "f1", "log_loss", "brier"):
        assert gaps[name] < 0.01, (name, gaps[name])
    assert max(gaps.values()) < 0.02


def test_calibration_fixes_a_miscalibrated_model() -> None:
    rng = np.random.default_rng(11)
    ref_scores, ref_y = _binary(rng, 20_000, power=2.0)
    cal = fit_calibration("binary", ref_scores, ref_y)
    scores, y = _binary(rng, 50_000, power=2.0)
    raw = _gaps("binary", IDENTITY, scores, y)  # trusting the scores as probabilities
    fixed = _gaps("binary", cal, scores, y)
    assert raw["accuracy"] > 0.05
    assert raw["recall"] > 0.1
    for name in ("roc_auc", "accuracy", "f1", "precision", "recall"):
        assert fixed[name] < 0.01, (name, fixed[name])


def test_cbpe_follows_covariate_shift() -> None:
    rng = np.random.default_rng(12)
    ref_scores, ref_y = _binary(rng, 20_000, power=2.0)
    cal = fit_calibration("binary", ref_scores, ref_y)
    scores, y = _binary(rng, 50_000, mu=1.0, sd=0.7, power=2.0)  # x moves, P(y|x) does not
    before = compute_metrics("binary", ref_y, ref_scores, 2)
    after = compute_metrics("binary", y, scores, 2)
    assert abs(before["roc_auc"] - after["roc_auc"]) > 0.04  # the shift really matters
    assert abs(before["recall"] - after["recall"]) > 0.2
    gaps = _gaps("binary", cal, scores, y)
    for name in ("roc_auc", "accuracy", "f1", "precision", "recall"):
        assert gaps[name] < 0.02, (name, gaps[name])


def test_cbpe_misses_label_shift() -> None:
    """Known limitation: with P(y) changed, calibrated P(y|score) is wrong."""
    rng = np.random.default_rng(13)

    def sample(n: int, prior: float) -> tuple[np.ndarray, np.ndarray]:
        y = (rng.random(n) < prior).astype(np.int64)
        x = rng.normal(np.where(y == 1, 1.0, -1.0), 1.0)
        p = _sigmoid(2.0 * x)  # the posterior under a prior of 0.5
        return np.column_stack([1.0 - p, p]), y

    ref_scores, ref_y = sample(20_000, 0.5)
    cal = fit_calibration("binary", ref_scores, ref_y)
    scores, y = sample(50_000, 0.1)
    realized = compute_metrics("binary", y, scores, 2)
    estimated = estimate_performance("binary", cal, scores)
    assert realized["precision"] < 0.5
    assert estimated["precision"] - realized["precision"] > 0.2
    assert estimated["f1"] - realized["f1"] > 0.1


def test_cbpe_auc_is_the_trapezoid_of_expected_rates_with_ties_grouped() -> None:
    rng = np.random.default_rng(14)
    score = np.round(rng.random(2000), 1)  # 11 distinct values: heavy ties
    cal = fit_calibration("binary", score, (rng.random(2000) < score).astype(int))
    assert cal is not None
    c = apply_calibration(cal, score)[:, 1]
    thresholds = np.unique(score)[::-1]
    tp = np.array([c[score >= t].sum() for t in thresholds])
    fp = np.array([(1 - c[score >= t]).sum() for t in thresholds])
    tpr = np.r_[0.0, tp / c.sum()]
    fpr = np.r_[0.0, fp / (1 - c).sum()]
    expected = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    estimated = estimate_performance("binary", cal, score)
    assert estimated["roc_auc"] == pytest.approx(expected, abs=1e-12)
    predicted = score >= 0.5
    assert estimated["accuracy"] == pytest.approx(
        (c[predicted].sum() + (1 - c[~predicted]).sum()) / len(c), abs=1e-12
    )
    assert estimated["precision"] == pytest.approx(c[predicted].mean(), abs=1e-12)
    assert estimated["recall"] == pytest.approx(c[predicted].sum() / c.sum(), abs=1e-12)


def test_cbpe_constant_scores_give_auc_one_half() -> None:
    estimated = estimate_performance("binary", IDENTITY, np.full(100, 0.7))
    assert estimated["roc_auc"] == pytest.approx(0.5)
    assert estimated["accuracy"] == pytest.approx(0.7)


def test_cbpe_drops_what_is_not_computable() -> None:
    never = {**IDENTITY, "curves": [{"class": 1, "x": [0.0, 1.0], "y": [0.0, 0.0]}]}
    estimated = estimate_performance("binary", never, np.array([0.2, 0.7, 0.9]))
    assert "roc_auc" not in estimated
    assert "pr_auc" not in estimated
    assert estimated["accuracy"] == pytest.approx(1 / 3)
    assert all(math.isfinite(v) for v in estimated.values())


def test_cbpe_empty_and_unsupported() -> None:
    assert estimate_performance("binary", IDENTITY, np.empty((0, 2))) == {}
    assert estimate_performance("binary", None, np.array([0.5])) == {}
    assert estimate_performance("regression", IDENTITY, np.array([0.5])) == {}
    only_nan = estimate_performance("binary", IDENTITY, np.array([np.nan]))
    assert only_nan == {}


def _multiclass(
    rng: np.random.Generator, n: int, *, sharpness: float
) -> tuple[np.ndarray, np.ndarray]:
    """A 3-class model over-confident by ``sharpness``; labels from the true softmax."""
    x = rng.normal(size=(n, 2))
    logits = x @ np.array([[1.5, -1.0, 0.0], [0.0, 1.2, -1.3]])

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    p = softmax(logits)
    y = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return softmax(sharpness * logits), y


def test_cbpe_multiclass_accuracy_and_f1() -> None:
    rng = np.random.default_rng(20)
    ref_scores, ref_y = _multiclass(rng, 20_000, sharpness=2.0)
    cal = fit_calibration("multiclass", ref_scores, ref_y)
    scores, y = _multiclass(rng, 30_000, sharpness=2.0)
    gaps = _gaps("multiclass", cal, scores, y, k=3)
    assert set(gaps) == {"accuracy", "f1_macro", "log_loss"}
    assert gaps["accuracy"] < 0.01
    assert gaps["f1_macro"] < 0.015
    assert gaps["log_loss"] < 0.05


def test_cbpe_multiclass_equals_metrics_on_weighted_repeated_rows() -> None:
    rng = np.random.default_rng(21)
    scores, y = _multiclass(rng, 500, sharpness=1.5)
    cal = fit_calibration("multiclass", scores, y)
    assert cal is not None
    c = apply_calibration(cal, scores)
    n, k = scores.shape
    expected = compute_metrics(
        "multiclass",
        np.repeat(np.arange(k), n),
        np.tile(scores, (k, 1)),
        k,
        weight=c.T.reshape(-1),
    )
    estimated = estimate_performance("multiclass", cal, scores)
    for name, value in estimated.items():
        assert value == pytest.approx(expected[name], abs=1e-12), name


# --- realized performance ---------------------------------------------------------------


def test_realized_equals_compute_metrics_and_skips_unlabelled_rows() -> None:
    rng = np.random.default_rng(30)
    scores, y = _binary(rng, 1000)
    labels: list[Any] = [str(v) for v in y]
    for i in range(0, 1000, 4):
        labels[i] = None
    kept = np.array([label is not None for label in labels])
    metrics, slices, rows = realized_performance("binary", ["0", "1"], labels, scores)
    assert rows == int(kept.sum()) == 750
    assert slices == []
    assert metrics == pytest.approx(compute_metrics("binary", y[kept], scores[kept], 2))


def test_realized_slices_match_slice_metrics() -> None:
    rng = np.random.default_rng(31)
    scores, y = _binary(rng, 2000)
    frame = pd.DataFrame({"region": rng.choice(["n", "s", "rare"], 2000, p=[0.6, 0.39, 0.01])})
    labels: list[Any] = list(y)
    labels[:500] = [None] * 500
    _, slices, rows = realized_performance(
        "binary", ["0", "1"], labels, scores, frame=frame, slice_columns=["region"],
        min_slice_rows=100,
    )  # fmt: skip
    assert rows == 1500
    expected = slice_metrics(
        "binary", y[500:], scores[500:], n_classes=2,
        frame=frame.iloc[500:].reset_index(drop=True), columns=["region"], min_rows=100,
        max_per_column=10,
    )  # fmt: skip
    assert [(s["value"], s["rows"]) for s in slices] == [(e.value, e.rows) for e in expected]
    assert {s["value"] for s in slices} == {"n", "s"}  # "rare" is under min_slice_rows
    for got, want in zip(slices, expected, strict=True):
        assert got["column"] == "region"
        assert got["metrics"] == pytest.approx(want.metrics)


@pytest.mark.parametrize(
    ("classes", "labels", "codes"),
    [
        (["no", "yes"], ["yes", "no", " yes"], [1, 0, 1]),
        (["0", "1"], [1, 0, 1.0, "1", True, False], [1, 0, 1, 1, 1, 0]),
        (["False", "True"], [True, False, "true", "False"], [1, 0, 1, 0]),
        (["a", "b", "c"], ["c", "a", np.str_("b")], [2, 0, 1]),
    ],
)
def test_labels_as_strings_ints_and_bools(
    classes: list[str], labels: list[Any], codes: list[int]
) -> None:
    task = "binary" if len(classes) == 2 else "multiclass"
    encoded = encode_labels(task, classes, labels)
    assert encoded.values.tolist() == codes
    assert encoded.unknown == 0


def test_unknown_labels_are_ignored_and_counted() -> None:
    scores = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.9, 0.1]])
    labels = ["no", "yes", "maybe", float("nan")]
    encoded = encode_labels("binary", ["no", "yes"], labels)
    assert encoded.unknown == 1
    assert encoded.examples == ("maybe",)
    assert encoded.labelled.tolist() == [True, True, False, False]
    metrics, _, rows = realized_performance("binary", ["no", "yes"], labels, scores)
    assert rows == 2
    assert metrics["accuracy"] == 1.0


def test_no_labels_gives_nothing() -> None:
    scores = np.array([[0.5, 0.5], [0.2, 0.8]])
    assert realized_performance("binary", ["0", "1"], [None, None], scores) == ({}, [], 0)
    assert realized_performance("binary", ["0", "1"], [], np.empty((0, 2))) == ({}, [], 0)


def test_one_class_labels_drop_auc_without_nan() -> None:
    scores = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    metrics, _, rows = realized_performance("binary", ["0", "1"], [1, 1, 1], scores)
    assert rows == 3
    assert "roc_auc" not in metrics
    assert "pr_auc" not in metrics
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert all(math.isfinite(v) for v in metrics.values())


def test_realized_regression() -> None:
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    metrics, _, rows = realized_performance("regression", [], [1.5, "2", None, "x"], scores)
    assert rows == 2
    assert metrics["mae"] == pytest.approx(0.25)
    assert "r2" in metrics


# --- report and drops -------------------------------------------------------------------


def test_report_before_labels_arrive_is_an_estimate() -> None:
    rng = np.random.default_rng(40)
    scores, y = _binary(rng, 2000)
    cal = fit_calibration("binary", scores, y)
    report = performance_report(
        "binary", ["0", "1"], cal, {"roc_auc": 0.86, "accuracy": float("nan")}, scores,
        [None] * 2000,
    )  # fmt: skip
    assert report.status == "ok"
    assert report.labelled_rows == 0
    assert report.realized == {}
    assert set(report.estimated) >= {"roc_auc", "accuracy", "f1"}
    assert report.reference == {"roc_auc": 0.86}
    assert report.reason == "no labels yet"
    json.dumps(report.to_dict(), allow_nan=False)


def test_report_without_labels_or_estimate_is_not_enough_data() -> None:
    report = performance_report("regression", [], None, {"rmse": 1.0}, np.ones(3), [None] * 3)
    assert report.status == "not_enough_data"
    assert report.reason == "not enough data: no labels yet"
    empty = performance_report("binary", ["0", "1"], IDENTITY, {}, np.empty((0, 2)), [])
    assert empty.status == "not_enough_data"
    assert empty.reason == "not enough data: no rows"


def test_report_with_labels_and_min_labelled() -> None:
    scores = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.9, 0.1]])
    labels = ["0", "1", "oops", None]
    few = performance_report("binary", ["0", "1"], None, {}, scores, labels, min_labelled=3)
    assert few.status == "not_enough_data"
    assert few.realized == {}
    assert few.labelled_rows == 2
    assert "2 labelled rows, realized metrics need 3" in (few.reason or "")
    assert "1 label(s) not among the model's classes ignored: 'oops'" in (few.reason or "")
    enough = performance_report("binary", ["0", "1"], IDENTITY, {}, scores, labels)
    assert enough.status == "ok"
    assert enough.realized["accuracy"] == 1.0
    assert enough.estimated["accuracy"] == pytest.approx((0.8 + 0.7 + 0.6 + 0.9) / 4)


def test_drops_are_positive_when_worse() -> None:
    reference = {"roc_auc": 0.90, "log_loss": 0.30, "rmse": 2.0, "accuracy": float("nan")}
    values = {"roc_auc": 0.80, "log_loss": 0.45, "rmse": 1.5, "accuracy": 0.7, "f1": 0.5}
    result = drops(reference, values)
    assert set(result) == {"roc_auc", "log_loss", "rmse"}
    assert result["roc_auc"] == pytest.approx(0.10)  # a bounded score: an absolute drop
    assert result["log_loss"] == pytest.approx(0.5)  # an error metric: 50 % worse
    assert result["rmse"] == pytest.approx(-0.25)  # lower is better, went down: better


def test_error_metric_drops_do_not_depend_on_the_target_units() -> None:
    dollars = drops({"rmse": 2_000.0, "mae": 1_500.0}, {"rmse": 2_100.0, "mae": 1_500.0})
    units = drops({"rmse": 2.0, "mae": 1.5}, {"rmse": 2.1, "mae": 1.5})
    assert dollars == pytest.approx(units) and dollars["rmse"] == pytest.approx(0.05)
