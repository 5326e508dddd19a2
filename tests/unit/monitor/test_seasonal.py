from __future__ import annotations

import numpy as np
import pytest

from loopml.monitor.drift import column_drift
from loopml.monitor.profile import numeric_profile
from loopml.monitor.seasonal import build_seasonal, clock_keys, mix

pytestmark = pytest.mark.unit


def world(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hours of the day and predictions that follow them (lower at night)."""
    rng = np.random.default_rng(seed)
    hours = rng.integers(0, 24, n).astype(float)
    level = np.where((hours < 6) | (hours >= 22), 0.1, 0.4)
    return hours, np.clip(level + rng.normal(0, 0.05, n), 0, 1)


def test_a_night_window_matches_the_reference_night_not_the_whole_day() -> None:
    hours, predictions = world(40_000, seed=1)
    reference = numeric_profile("prediction", predictions)
    seasonal = build_seasonal("hour", hours, predictions)
    assert seasonal is not None and set(seasonal.groups) == {str(h) for h in range(24)}
    night_hours, night_predictions = world(20_000, seed=2)
    keep = night_hours < 4
    window_hours, window = night_hours[keep], night_predictions[keep]

    plain = column_drift(reference, window)
    matched = column_drift(mix(seasonal, reference, window_hours), window)
    assert plain.drifted and plain.statistic is not None and plain.statistic > 0.5
    assert not matched.drifted and matched.statistic is not None and matched.statistic < 0.05

    moved = column_drift(mix(seasonal, reference, window_hours), window + 0.2)
    assert moved.drifted  # a real change at the same hours is still seen


def test_hours_the_reference_never_had_fall_back_to_the_whole_reference() -> None:
    hours, predictions = world(5_000, seed=3)
    reference = numeric_profile("prediction", predictions)
    seasonal = build_seasonal("hour", hours, predictions)
    assert seasonal is not None
    assert mix(seasonal, reference, [99.0, 99.0, None]) is reference
    assert mix(seasonal, reference, []) is reference


def test_small_references_are_not_mixed_and_sparse_groups_are_dropped() -> None:
    hours, predictions = world(600, seed=4)
    reference = numeric_profile("prediction", predictions)
    seasonal = build_seasonal("hour", hours, predictions)  # ~25 rows an hour: too few
    assert seasonal is None
    big = build_seasonal("hour", *world(5_000, seed=5))
    assert big is not None
    assert mix(big, reference, hours) is reference  # 600 rows: KS on the exact data


def test_clock_keys_spell_numbers_and_names_alike() -> None:
    assert clock_keys([1.0, 1, "Tue", float("nan")]).tolist() == ["1", "1", "Tue", None]
