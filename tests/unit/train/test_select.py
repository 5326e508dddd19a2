"""Model selection: the floor, simpler models first, margins that mean the same on every
table, ties broken by the proper score."""

from __future__ import annotations

import math

import pytest

from loopml.train.metrics import required_gain
from loopml.train.select import Scored, select_model

pytestmark = pytest.mark.unit


def auc(name: str, complexity: int, value: float, log_loss: float = 0.5) -> Scored:
    return Scored(name, complexity, {"roc_auc": value, "log_loss": log_loss})


def rmse(name: str, complexity: int, value: float) -> Scored:
    return Scored(name, complexity, {"rmse": value})


def test_a_simple_model_that_wins_is_registered() -> None:
    models = [rmse("dummy", 0, 10.0), rmse("linear", 1, 3.3428), rmse("xgboost", 2, 3.5213)]
    decision = select_model(models, metric="rmse", margin=0.005)
    assert decision.chosen == "linear" and decision.gate.passed
    assert "linear chosen: rmse 3.3428" in decision.gate.reason
    assert "xgboost 3.5213 is worse by 0.1785" in decision.gate.reason


def test_a_complex_model_must_beat_the_simpler_one_by_the_margin() -> None:
    close = [auc("dummy", 0, 0.5), auc("linear", 1, 0.760), auc("lightgbm", 2, 0.763)]
    assert select_model(close, metric="roc_auc", margin=0.005).chosen == "linear"
    clear = [auc("dummy", 0, 0.5), auc("linear", 1, 0.760), auc("lightgbm", 2, 0.770)]
    decision = select_model(clear, metric="roc_auc", margin=0.005)
    assert decision.chosen == "lightgbm"
    assert "the simpler linear 0.7600 by 0.0100" in decision.gate.reason


def test_a_tie_goes_to_the_simpler_model() -> None:
    tied = [
        Scored("dummy", 0, {"f1_macro": 0.19, "log_loss": 1.09}),
        Scored("linear", 1, {"f1_macro": 1.0, "log_loss": 0.03}),
        Scored("lightgbm", 2, {"f1_macro": 1.0, "log_loss": 0.01}),
    ]
    decision = select_model(tied, metric="f1_macro", margin=0.005)
    assert decision.chosen == "linear"
    assert "lightgbm 1.0000 ties it" in decision.gate.reason


def test_a_tie_within_a_level_is_broken_by_the_proper_score() -> None:
    models = [
        auc("dummy", 0, 0.5, 0.36),
        auc("lightgbm", 2, 0.77, log_loss=0.31),
        auc("xgboost", 2, 0.77, log_loss=0.30),
        auc("hist_gradient_boosting", 2, 0.77, log_loss=0.32),
    ]
    assert select_model(models, metric="roc_auc", margin=0.005).chosen == "xgboost"


def test_nothing_is_registered_only_when_no_model_clears_the_floor() -> None:
    models = [auc("dummy", 0, 0.5), auc("linear", 1, 0.503), auc("xgboost", 2, 0.501)]
    decision = select_model(models, metric="roc_auc", margin=0.005)
    assert decision.chosen is None and not decision.gate.passed
    reason = decision.gate.reason
    assert "no model beats the trivial baseline dummy 0.5000" in reason
    assert "linear 0.5030" in reason and "lower gate.margin" in reason


def test_a_model_without_a_computable_metric_never_wins() -> None:
    models = [auc("dummy", 0, 0.5), auc("linear", 1, math.nan), auc("xgboost", 2, 0.7)]
    assert select_model(models, metric="roc_auc", margin=0.005).chosen == "xgboost"


def test_margins_are_relative_for_error_metrics_and_absolute_for_scores() -> None:
    assert required_gain("rmse", 0.005, 3000.0) == pytest.approx(15.0)
    assert required_gain("log_loss", 0.01, 0.2) == pytest.approx(0.002)
    assert required_gain("roc_auc", 0.005, 0.7) == 0.005
    # The same margin on a wage table (RMSE in dollars) and on a ratio table.
    wages = [rmse("dummy", 0, 9000.0), rmse("linear", 1, 3000.0), rmse("xgboost", 2, 2990.0)]
    ratios = [rmse("dummy", 0, 0.9), rmse("linear", 1, 0.3), rmse("xgboost", 2, 0.299)]
    assert select_model(wages, metric="rmse", margin=0.005).chosen == "linear"
    assert select_model(ratios, metric="rmse", margin=0.005).chosen == "linear"
    better = [rmse("dummy", 0, 9000.0), rmse("linear", 1, 3000.0), rmse("xgboost", 2, 2900.0)]
    assert select_model(better, metric="rmse", margin=0.005).chosen == "xgboost"


def test_without_a_floor_every_contender_is_eligible() -> None:
    models = [auc("linear", 1, 0.51), auc("xgboost", 2, 0.70)]
    assert select_model(models, metric="roc_auc", margin=0.005).chosen == "xgboost"
