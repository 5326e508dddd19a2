"""Prediction divergence: the monitor's drift distances between the two arms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.rollout.divergence import divergence_chance, prediction_divergence

pytestmark = pytest.mark.unit


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["binary", "regression"]))
def test_divergence_is_in_0_1_and_0_for_the_same_predictions(seed: int, task: str) -> None:
    rng = np.random.default_rng(seed)
    champion = rng.random(300) if task == "binary" else rng.normal(0, 1, 300)
    challenger = rng.beta(0.5, 3.0, 200) if task == "binary" else rng.normal(3, 1, 200)
    assert prediction_divergence(task, champion, champion) == pytest.approx(0.0, abs=1e-12)
    value = prediction_divergence(task, champion, challenger)
    assert value is not None and 0.0 < value <= 1.0


def test_divergence_grows_with_the_shift() -> None:
    rng = np.random.default_rng(1)
    champion = rng.beta(2, 5, 5000)
    values = [
        prediction_divergence("binary", champion, np.clip(champion + shift, 0, 1))
        for shift in (0.0, 0.05, 0.2, 0.5)
    ]
    assert values == sorted(values)  # type: ignore[type-var]
    assert values[0] == 0.0 and values[-1] is not None and values[-1] > 0.5


def test_multiclass_compares_the_predicted_class_shares() -> None:
    champion = np.array(["a"] * 50 + ["b"] * 50, dtype=object)
    assert prediction_divergence("multiclass", champion, champion[::-1].copy()) == 0.0
    only_c = np.array(["c"] * 100, dtype=object)
    assert prediction_divergence("multiclass", champion, only_c) == pytest.approx(
        np.sqrt(np.log(2))
    )


def test_too_few_rows_or_a_constant_regressor_give_no_value() -> None:
    assert (
        prediction_divergence("binary", np.random.default_rng(0).random(10), np.ones(100)) is None
    )
    assert prediction_divergence("regression", np.ones(100), np.zeros(100)) is None


def test_the_chance_level_falls_with_the_sample_and_a_real_difference_exceeds_it() -> None:
    rng = np.random.default_rng(3)
    small = divergence_chance("binary", rng.beta(2, 5, 200), rng.beta(2, 5, 200))
    large = divergence_chance("binary", rng.beta(2, 5, 5000), rng.beta(2, 5, 5000))
    assert small is not None and large is not None and large < small
    same_model = prediction_divergence("binary", rng.beta(2, 5, 200), rng.beta(2, 5, 200))
    assert same_model is not None and same_model <= small  # chance alone stays under it
    other = rng.beta(5, 2, 5000)
    found = prediction_divergence("binary", rng.beta(2, 5, 5000), other)
    assert found is not None and found > large
