from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

from loopml.config import TuningConfig
from loopml.data.contract import Contract
from loopml.errors import TrainingError
from loopml.features.pipeline import feature_frame
from loopml.train.candidates import BuildContext, fit_candidate, get_candidate
from loopml.train.split import split_validation
from loopml.train.tuning import tune, validation_metric
from tests.unit.train.synthetic import num_cat_contract

pytestmark = pytest.mark.unit

BUDGET = TuningConfig(trials=3, timeout_seconds=600, max_rows=1000)


def _data(task: str, n: int = 500, seed: int = 0) -> tuple[Contract, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    num = rng.normal(size=n)
    cat = rng.choice(["a", "b", "c"], n).astype(object)
    signal = num + 1.0 * (cat == "a")
    if task == "regression":
        y: np.ndarray = signal + rng.normal(scale=0.3, size=n)
    else:
        edges = [0.5] if task == "binary" else [-0.2, 0.8]
        y = np.digitize(signal + rng.normal(scale=0.3, size=n), edges).astype(np.int64)
    contract = num_cat_contract(task, y, ("a", "b", "c"), null_rate=0.0)  # type: ignore[arg-type]
    return contract, pd.DataFrame({"num": num, "cat": cat}), y


def _parts(task: str, seed: int = 0) -> tuple[Any, ...]:
    contract, X, y = _data(task)
    ctx = BuildContext.for_contract(contract, seed=seed, class_weight=None)
    return (ctx, contract, *split_validation(X, y, task, fraction=0.25, seed=seed))


def _run(name: str, task: str, budget: TuningConfig = BUDGET, **kwargs: Any) -> Any:
    ctx, contract, X_tr, X_va, y_tr, y_va = _parts(task)
    return tune(get_candidate(name), ctx, contract, X_tr, y_tr, X_va, y_va, budget, **kwargs)


@pytest.mark.parametrize(
    ("task", "metric", "direction"),
    [
        ("binary", "roc_auc", "maximize"),
        ("multiclass", "log_loss", "minimize"),
        ("regression", "rmse", "minimize"),
    ],
)
def test_tune_respects_trials_and_returns_params_that_fit(
    task: str, metric: str, direction: str
) -> None:
    seen: list[tuple[int, float]] = []
    result = _run("lightgbm", task, on_trial=lambda n, v: seen.append((n, v)))
    assert (result.metric, result.direction) == (metric, direction)
    assert validation_metric(task) == (metric, direction)
    assert result.n_trials == 3
    assert [n for n, _ in seen] == [0, 1, 2]
    values = [v for _, v in seen]
    assert result.score == (max(values) if direction == "maximize" else min(values))
    defaults = get_candidate("lightgbm").defaults(task)
    assert set(result.params) == set(defaults)
    assert seen[0][1] != seen[1][1]  # the trials did try different parameters
    ctx, contract, X_tr, _, y_tr, _ = _parts(task)
    pipeline = fit_candidate(get_candidate("lightgbm"), result.params, ctx, contract, X_tr, y_tr)
    assert len(pipeline.predict(feature_frame(X_tr, contract))) == len(X_tr)
    if task == "binary":
        assert result.score > 0.8


def test_tune_is_deterministic_for_a_seed() -> None:
    first = _run("xgboost", "binary")
    second = _run("xgboost", "binary")
    assert first == second
    ctx, contract, X_tr, X_va, y_tr, y_va = _parts("binary")
    other = tune(
        get_candidate("xgboost"),
        dataclasses.replace(ctx, seed=99),
        contract,
        X_tr,
        y_tr,
        X_va,
        y_va,
        BUDGET,
    )
    assert other.params != first.params


def test_first_trial_is_the_defaults() -> None:
    seen: list[float] = []
    single = _run(
        "lightgbm", "regression", TuningConfig(trials=1), on_trial=lambda _, v: seen.append(v)
    )
    assert single.params == get_candidate("lightgbm").defaults("regression")
    assert single.n_trials == 1
    assert single.score == seen[0]


def test_spec_without_search_space_returns_defaults_scored() -> None:
    result = _run("dummy", "multiclass")
    assert result.n_trials == 0
    assert result.params == get_candidate("dummy").defaults("multiclass")
    assert math.isfinite(result.score)
    assert 0.0 < result.score <= math.log(3) + 1e-9  # the class prior: no better than uniform


def test_the_linear_model_is_tuned_like_the_others() -> None:
    result = _run("linear", "multiclass")
    assert result.n_trials >= 1 and "C" in result.params
    assert 0.0 < result.score < math.log(3)  # better than a uniform guess


def test_tuning_subsamples_to_max_rows() -> None:
    ctx, contract, X_tr, X_va, y_tr, y_va = _parts("binary")
    seen_rows: list[int] = []
    original_fit = fit_candidate

    def recording_fit(*args: Any, **kwargs: Any) -> Any:
        seen_rows.append(len(args[4]))
        return original_fit(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("loopml.train.tuning.fit_candidate", recording_fit)
        tune(
            get_candidate("dummy"),
            ctx,
            contract,
            X_tr,
            y_tr,
            X_va,
            y_va,
            TuningConfig(trials=1, max_rows=100),
        )
    assert len(X_tr) > 100
    assert seen_rows == [pytest.approx(100, abs=2)]


def test_failing_trials_do_not_crash_the_study() -> None:
    spec = get_candidate("lightgbm")
    calls = {"n": 0}

    def flaky_build(ctx: BuildContext, params: dict[str, Any]) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return spec.build(ctx, params)

    flaky = dataclasses.replace(spec, name="flaky", build=flaky_build)
    ctx, contract, X_tr, X_va, y_tr, y_va = _parts("binary")
    seen: list[float] = []
    result = tune(
        flaky, ctx, contract, X_tr, y_tr, X_va, y_va, BUDGET, on_trial=lambda _, v: seen.append(v)
    )
    assert result.n_trials == 3
    assert math.isnan(seen[1])
    assert math.isfinite(result.score)


def test_every_trial_failing_is_a_training_error() -> None:
    def broken(ctx: BuildContext, params: dict[str, Any]) -> Any:
        raise RuntimeError("cannot build")

    spec = dataclasses.replace(get_candidate("lightgbm"), name="broken", build=broken)
    ctx, contract, X_tr, X_va, y_tr, y_va = _parts("binary")
    with pytest.raises(TrainingError, match="every tuning trial of 'broken' failed") as info:
        tune(spec, ctx, contract, X_tr, y_tr, X_va, y_va, BUDGET)
    assert "RuntimeError: cannot build" in info.value.detail


def test_tuning_restores_optuna_verbosity() -> None:
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        _run("lightgbm", "binary", TuningConfig(trials=1))
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_the_time_budget_holds_when_every_fit_is_slow() -> None:
    import time

    from loopml.train.candidates import CandidateSpec

    class Slow(DummyClassifier):  # type: ignore[misc]
        def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Slow:
            time.sleep(0.4)
            return super().fit(X, y, sample_weight)

    def space(trial: Any, task: str) -> dict[str, Any]:
        return {"strategy": trial.suggest_categorical("strategy", ["prior", "stratified"])}

    spec = CandidateSpec(
        "slow", "candidate", frozenset({"binary"}), False, lambda ctx, p: Slow(**p), space,
        lambda task: {"strategy": "prior"},
    )  # fmt: skip
    started = time.monotonic()
    ctx, contract, X_tr, X_va, y_tr, y_va = _parts("binary")
    budget = TuningConfig(trials=50, timeout_seconds=1.5)
    result = tune(spec, ctx, contract, X_tr, y_tr, X_va, y_va, budget)
    elapsed = time.monotonic() - started
    assert 2 <= result.n_trials <= 4
    assert elapsed < 1.5 + 0.5  # within one trial of the budget, not 50 trials
