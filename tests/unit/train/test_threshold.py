"""The decision threshold: each objective, fixed values, ties, and the sentence a person reads."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from loopml.config import ThresholdConfig
from loopml.train.threshold import choose_threshold

pytestmark = pytest.mark.unit
Y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
P = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.9])


def labels_at(threshold: float) -> np.ndarray:
    return (threshold <= P).astype(int)


def test_f1_picks_the_cut_with_the_best_f1_between_two_scores() -> None:
    chosen = choose_threshold(Y, P, ThresholdConfig())
    assert chosen.value == pytest.approx(0.325)  # halfway between 0.3 and 0.35
    predicted = labels_at(chosen.value)
    tp = int(((predicted == 1) & (Y == 1)).sum())
    assert chosen.score == pytest.approx(2 * tp / (predicted.sum() + Y.sum()))


def test_accuracy_balanced_accuracy_and_cost() -> None:
    accuracy = choose_threshold(Y, P, ThresholdConfig(objective="accuracy"))
    assert (labels_at(accuracy.value) == Y).mean() == pytest.approx(accuracy.score) == 0.875
    costly_misses = ThresholdConfig(objective="cost", false_negative_cost=10.0)
    assert choose_threshold(Y, P, costly_misses).value < accuracy.value
    costly_alarms = ThresholdConfig(objective="cost", false_positive_cost=10.0)
    strict = choose_threshold(Y, P, costly_alarms)
    assert strict.value >= accuracy.value and labels_at(strict.value)[Y == 0].sum() == 0


def test_a_fixed_threshold_is_kept_and_must_be_given() -> None:
    assert choose_threshold(Y, P, ThresholdConfig(objective="fixed", value=0.8)).value == 0.8
    with pytest.raises(ValidationError, match="value"):
        ThresholdConfig(objective="fixed")
    with pytest.raises(ValidationError, match="value"):
        ThresholdConfig(objective="f1", value=0.3)


def test_rare_positives_get_a_low_threshold_that_finds_them() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(1, 30, 20_000)
    y = (rng.random(20_000) < p).astype(int)
    chosen = choose_threshold(y, p, ThresholdConfig())
    assert chosen.value < 0.5
    assert labels_at_any(p, chosen.value).sum() > 0


def labels_at_any(p: np.ndarray, threshold: float) -> np.ndarray:
    return (p >= threshold).astype(int)


def test_the_description_names_the_positive_class() -> None:
    text = choose_threshold(Y, P, ThresholdConfig()).describe("churned")
    assert text.startswith("label 'churned' when P(churned) >= 0.325")
    assert "f1" in text and "8 validation rows" in text
