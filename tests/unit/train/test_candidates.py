from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from loopml.data.contract import Contract
from loopml.errors import ConfigError, TrainingError
from loopml.features.pipeline import feature_frame, feature_importance
from loopml.train.candidates import (
    BuildContext,
    available,
    class_weight_for,
    fit_candidate,
    get_candidate,
    register,
)
from tests.unit.train.synthetic import num_cat_contract

pytestmark = pytest.mark.unit

TASKS = ("binary", "multiclass", "regression")
FAST = {
    "lightgbm": {"n_estimators": 30},
    "xgboost": {"n_estimators": 30},
    "hist_gradient_boosting": {"max_iter": 30},
}


def _data(task: str, n: int = 600, seed: int = 0) -> tuple[Contract, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    num = rng.normal(size=n)
    num[rng.random(n) < 0.05] = np.nan
    cat = rng.choice(["red", "green", "blue"], n).astype(object)
    cat[rng.random(n) < 0.05] = None
    signal = np.nan_to_num(num) + 1.5 * (cat == "red")
    if task == "regression":
        y: np.ndarray = signal + rng.normal(scale=0.1, size=n)
    else:
        # binary: 25% positives, so class weighting is in play
        edges = [1.2] if task == "binary" else [-0.3, 0.9]
        y = np.digitize(signal, edges).astype(np.int64)
    contract = num_cat_contract(task, y, ("red", "green", "blue"), null_rate=0.05)  # type: ignore[arg-type]
    return contract, pd.DataFrame({"num": num, "cat": cat, "y": y}), y


def _context(contract: Contract, y: np.ndarray) -> BuildContext:
    weight = class_weight_for(y, contract.task, "balanced")
    return BuildContext.for_contract(contract, seed=7, class_weight=weight)


def test_registry_lists_baselines_and_candidates() -> None:
    assert available() == ("dummy", "linear", "lightgbm", "xgboost", "hist_gradient_boosting")
    kinds = {name: get_candidate(name).kind for name in available()}
    assert kinds["dummy"] == kinds["linear"] == "baseline"
    assert {n for n, k in kinds.items() if k == "candidate"} == set(FAST)
    for name in FAST:
        assert get_candidate(name).search_space is not None
    assert get_candidate("linear").needs_scaling


def test_registering_a_name_twice_is_an_error() -> None:
    spec = dataclasses.replace(get_candidate("dummy"))
    with pytest.raises(ValueError, match="'dummy' is already registered"):
        register(spec)
    assert available().count("dummy") == 1


def test_unknown_candidate_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match="unknown model 'lightgmb'") as info:
        get_candidate("lightgmb")
    assert "did you mean 'lightgbm'" in info.value.fix
    assert "xgboost" in info.value.detail


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(
    "name", ["dummy", "linear", "lightgbm", "xgboost", "hist_gradient_boosting"]
)
def test_every_candidate_fits_and_predicts(name: str, task: str) -> None:
    contract, frame, y = _data(task)
    train, test = frame.iloc[:450], frame.iloc[450:]
    spec = get_candidate(name)
    pipeline = fit_candidate(
        spec, FAST.get(name, {}), _context(contract, y), contract, train, y[:450]
    )
    features = feature_frame(test, contract)
    predictions = pipeline.predict(features)
    assert predictions.shape == (150,)
    if task == "regression":
        rmse = float(np.sqrt(np.mean((predictions - y[450:]) ** 2)))
        limit = 1.2 * float(np.std(y[450:])) if name == "dummy" else 0.8 * float(np.std(y[450:]))
        assert rmse < limit
        return
    proba = pipeline.predict_proba(features)
    n_classes = len(contract.classes)
    assert proba.shape == (150, n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(np.unique(predictions)) <= set(range(n_classes))
    if name != "dummy":
        assert np.mean(predictions == y[450:]) > 0.7


@pytest.mark.parametrize("task", TASKS)
def test_fitting_is_deterministic_for_a_seed(task: str) -> None:
    contract, frame, y = _data(task, n=300)
    spec = get_candidate("xgboost")
    ctx = _context(contract, y)
    first = fit_candidate(spec, {"n_estimators": 20}, ctx, contract, frame, y)
    second = fit_candidate(spec, {"n_estimators": 20}, ctx, contract, frame, y)
    features = feature_frame(frame, contract)
    method = "predict" if task == "regression" else "predict_proba"
    np.testing.assert_array_equal(
        getattr(first, method)(features), getattr(second, method)(features)
    )


def test_balanced_class_weight_is_applied() -> None:
    contract, frame, y = _data("binary")
    assert class_weight_for(y, "binary", "balanced") == "balanced"
    assert class_weight_for(y, "binary", "none") is None
    assert class_weight_for(y.astype(float), "regression", "balanced") is None
    assert class_weight_for(np.array([0, 1, 0, 1]), "binary", "balanced") is None
    # auto balances only severe imbalance (rarest class under 5%), to keep probabilities calibrated
    assert class_weight_for(np.array([0] * 90 + [1] * 10), "binary", "auto") is None
    assert class_weight_for(np.array([0] * 97 + [1] * 3), "binary", "auto") == "balanced"
    with pytest.raises(ConfigError, match="class_weight"):
        class_weight_for(y, "binary", "sometimes")
    ctx = _context(contract, y)
    lgbm = fit_candidate(get_candidate("lightgbm"), FAST["lightgbm"], ctx, contract, frame, y)
    assert lgbm.named_steps["model"].class_weight == "balanced"
    xgb = fit_candidate(get_candidate("xgboost"), FAST["xgboost"], ctx, contract, frame, y)
    expected = np.sum(y == 0) / np.sum(y == 1)
    assert xgb.named_steps["model"].scale_pos_weight == pytest.approx(expected)
    # balancing moves the predicted rate of the minority class up
    unweighted = dataclasses.replace(ctx, class_weight=None)
    plain = fit_candidate(get_candidate("linear"), {}, unweighted, contract, frame, y)
    weighted = fit_candidate(get_candidate("linear"), {}, ctx, contract, frame, y)
    features = feature_frame(frame, contract)
    assert weighted.predict(features).mean() > plain.predict(features).mean()


def test_multiclass_xgboost_balances_with_sample_weights() -> None:
    contract, frame, y = _data("multiclass")
    ctx = _context(contract, y)
    assert ctx.class_weight == "balanced"
    balanced = fit_candidate(get_candidate("xgboost"), FAST["xgboost"], ctx, contract, frame, y)
    plain = fit_candidate(
        get_candidate("xgboost"),
        FAST["xgboost"],
        dataclasses.replace(ctx, class_weight=None),
        contract,
        frame,
        y,
    )
    features = feature_frame(frame, contract)
    rarest = int(np.argmin(np.bincount(y)))
    assert (
        balanced.predict_proba(features)[:, rarest].mean()
        > plain.predict_proba(features)[:, rarest].mean()
    )


def test_missing_class_in_training_rows_is_a_training_error() -> None:
    contract, frame, y = _data("multiclass")
    keep = y != 2
    with pytest.raises(TrainingError, match="lack 1 of 3 classes") as info:
        fit_candidate(
            get_candidate("lightgbm"),
            FAST["lightgbm"],
            _context(contract, y),
            contract,
            frame[keep],
            y[keep],
        )
    assert info.value.detail == "missing: 2"


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "linear"])
def test_fitted_candidates_report_importance(name: str) -> None:
    contract, frame, y = _data("binary")
    pipeline = fit_candidate(
        get_candidate(name), FAST.get(name, {}), _context(contract, y), contract, frame, y
    )
    importance = feature_importance(pipeline, contract)
    assert importance.sum() == pytest.approx(1.0)
    assert set(importance.index) == {"num", "cat"}
