from __future__ import annotations

import json

import numpy as np
import pytest

from loopml.errors import RegistryError
from loopml.monitor.profile import (
    MAX_CATEGORIES,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    categorical_profile,
    numeric_profile,
)

pytestmark = pytest.mark.unit


def test_exact_numeric_profile_is_the_data() -> None:
    values = np.random.default_rng(0).integers(0, 50, 5_000).astype(float)
    profile = numeric_profile("x", values)
    assert profile.exact and profile.rows == 5_000 and profile.unique == len(np.unique(values))
    assert np.array_equal(profile.sample(), np.sort(values))
    assert profile.std == pytest.approx(np.std(values)) and profile.mean == pytest.approx(
        values.mean()
    )


def test_sketch_is_bounded_whatever_the_table_size() -> None:
    values = np.random.default_rng(1).normal(3.0, 2.0, 200_000)
    profile = numeric_profile("x", values, points=256)
    assert not profile.exact and len(profile.values) == 256
    assert profile.weights.sum() == pytest.approx(200_000)
    # Count, spread and range are still over every row, not the sketch.
    assert profile.min == values.min() and profile.max == values.max()
    assert profile.std == pytest.approx(values.std())
    assert np.all(np.diff(profile.values) >= 0)
    with pytest.raises(ValueError, match="sketch"):
        profile.sample()


def test_missing_and_non_finite_values_are_counted_not_profiled() -> None:
    profile = numeric_profile("x", [1.0, None, np.nan, np.inf, 2.0])
    assert (profile.rows, profile.missing) == (2, 3)
    assert profile.missing_rate == pytest.approx(0.6)


def test_all_null_numeric_column_gives_an_empty_profile() -> None:
    profile = numeric_profile("x", [None, None])
    assert profile.rows == 0 and profile.missing == 2 and len(profile.values) == 0


def test_categorical_profile_counts_and_marker_for_missing() -> None:
    profile = categorical_profile("c", ["a", "b", "a", "__missing__", None, True], ["__missing__"])
    assert profile.counts == {"a": 2, "b": 1, "True": 1}
    assert (profile.rows, profile.missing) == (4, 2)


def test_categories_beyond_the_cap_are_summed() -> None:
    values = [f"c{i}" for i in range(MAX_CATEGORIES + 5)]
    profile = categorical_profile("c", values)
    assert len(profile.counts) == MAX_CATEGORIES and profile.other_rows == 5


def _profile() -> ReferenceProfile:
    rng = np.random.default_rng(2)
    return ReferenceProfile(
        model="m",
        task="binary",
        target="y",
        classes=("0", "1"),
        features=(
            numeric_profile("x", rng.normal(size=3_000)),
            categorical_profile("c", rng.choice(["a", "b"], 3_000)),
            numeric_profile("empty", [None] * 10),
        ),
        prediction=numeric_profile("prediction", rng.random(500)),
        label=categorical_profile("y", rng.choice(["0", "1"], 500)),
        holdout_metrics={"roc_auc": 0.75, "log_loss": float("nan")},
        holdout_rows=500,
        train_rows=3_000,
        points=2048,
    )


def test_json_round_trip_keeps_everything_and_has_no_nan() -> None:
    profile = _profile()
    text = profile.to_json()
    json.loads(text)  # strict JSON: NaN would not even be written (allow_nan=False)
    back = ReferenceProfile.from_json(text)
    assert back.feature_names == ["x", "c", "empty"]
    x = back.feature("x")
    assert isinstance(x, NumericProfile)
    assert np.array_equal(x.values, profile.features[0].values)  # type: ignore[union-attr]
    assert isinstance(back.feature("c"), CategoricalProfile)
    assert np.isnan(back.holdout_metrics["log_loss"])


def test_unreadable_or_newer_profiles_are_clear_errors() -> None:
    with pytest.raises(RegistryError, match="unreadable"):
        ReferenceProfile.from_json("{}")
    data = _profile().to_dict() | {"version": 99}
    with pytest.raises(RegistryError, match="format version 99"):
        ReferenceProfile.from_dict(data)
