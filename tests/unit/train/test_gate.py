from __future__ import annotations

import math

import pytest

from loopml.train.compare import Comparison, SliceRegression
from loopml.train.gate import choose_best, promotion_gate

pytestmark = pytest.mark.unit


def test_choose_best_respects_direction_and_skips_nan() -> None:
    scores = {"a": {"roc_auc": 0.7}, "b": {"roc_auc": 0.8}, "c": {"roc_auc": math.nan}}
    assert choose_best(scores, "roc_auc") == "b"
    errors = {"a": {"rmse": 2.0}, "b": {"rmse": 1.5}}
    assert choose_best(errors, "rmse") == "b"
    assert choose_best({"x": {"roc_auc": 0.7}, "y": {"roc_auc": 0.7}}, "roc_auc") == "x"
    with pytest.raises(ValueError, match="computable"):
        choose_best({"a": {"roc_auc": math.nan}}, "roc_auc")


def _comparison(beats: bool, slices: tuple[SliceRegression, ...] = ()) -> Comparison:
    return Comparison("roc_auc", True, 0.8, 0.79, 0.01, beats, "why", slices)


def test_promotion_gate_passes_a_clear_winner_and_blocks_slice_regressions() -> None:
    assert promotion_gate(_comparison(True), metric="roc_auc", force=False).passed
    regression = SliceRegression("country", "FR", 0.70, 0.80, 0.10)
    blocked = promotion_gate(_comparison(True, (regression,)), metric="roc_auc", force=False)
    assert not blocked.passed and "country=FR" in blocked.reason
    assert not promotion_gate(_comparison(False), metric="roc_auc", force=False).passed


def test_force_passes_and_says_so() -> None:
    forced = promotion_gate(_comparison(False), metric="roc_auc", force=True)
    assert forced.passed and forced.forced and forced.reason.startswith("forced")
    clean = promotion_gate(_comparison(True), metric="roc_auc", force=True)
    assert clean.passed and not clean.forced
