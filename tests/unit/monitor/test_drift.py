"""Test selection, column drift results and their edge cases, histograms."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from loopml.errors import ConfigError
from loopml.monitor import drift
from loopml.monitor.drift import OTHER, choose_test, column_drift, dataset_drift, histogram
from loopml.monitor.profile import CategoricalProfile, categorical_profile, numeric_profile
from loopml.monitor.results import ColumnDrift
from loopml.monitor.stattests import StatTest, get_test

pytestmark = pytest.mark.unit


def objects(values: list[Any]) -> np.ndarray[Any, Any]:
    return np.array(values, dtype=object)


def numeric_with(rows: int, unique: int) -> Any:
    return numeric_profile("x", np.arange(rows) % unique)


def categorical_with(rows: int, unique: int) -> Any:
    return categorical_profile("c", [f"v{i % unique}" for i in range(rows)])


# -- choose_test ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "unique", "expected"),
    [
        (999, 6, "ks"),
        (1000, 6, "ks"),
        (1001, 6, "wasserstein"),
        (1000, 5, "chi_square"),
        (1001, 5, "jensen_shannon"),
        (1000, 3, "chi_square"),
        (1000, 2, "z"),
        (1001, 2, "jensen_shannon"),
    ],
)
def test_numeric_default_by_reference_size_and_distinct_values(
    rows: int, unique: int, expected: str
) -> None:
    assert choose_test(numeric_with(rows, unique)) == expected


@pytest.mark.parametrize(
    ("rows", "unique", "expected"),
    [
        (999, 2, "z"),
        (1000, 3, "chi_square"),
        (1000, 40, "chi_square"),
        (1001, 2, "jensen_shannon"),
        (1001, 3, "jensen_shannon"),
    ],
)
def test_categorical_default_by_reference_size_and_categories(
    rows: int, unique: int, expected: str
) -> None:
    assert choose_test(categorical_with(rows, unique)) == expected


def test_reference_size_counts_non_missing_rows_only() -> None:
    values = np.concatenate([np.arange(1000.0), [np.nan] * 50])
    assert choose_test(numeric_profile("x", values)) == "ks"


# -- column_drift: results ------------------------------------------------------------------


def test_default_test_result_equals_the_statistic_and_decision() -> None:
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(size=800), rng.normal(0.5, 1, size=400)
    result = column_drift(numeric_profile("x", ref), cur)
    assert result.test == "ks" and result.kind == "p_value" and result.threshold == 0.05
    assert result.statistic == pytest.approx(stats.ks_2samp(ref, cur).pvalue)
    assert result.drifted and result.status == "ok" and result.reason is None
    assert (result.reference_rows, result.current_rows) == (800, 400)


def test_explicit_test_and_threshold_are_used() -> None:
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(size=5000), rng.normal(0.05, 1, size=3000)
    profile = numeric_profile("x", ref)
    loose = column_drift(profile, cur, test="wasserstein", threshold=0.5)
    strict = column_drift(profile, cur, test="wasserstein", threshold=0.01)
    assert loose.statistic == strict.statistic
    assert loose.statistic is not None and 0.01 < loose.statistic < 0.5
    assert (loose.drifted, strict.drifted) == (False, True)
    assert loose.threshold == 0.5


def test_same_data_does_not_drift() -> None:
    rng = np.random.default_rng(3)
    ref = rng.choice(["a", "b", "c", "d"], size=5000, p=[0.4, 0.3, 0.2, 0.1])
    profile = categorical_profile("c", ref)
    result = column_drift(profile, objects(list(ref[:2000])))
    assert result.test == "jensen_shannon"
    assert result.statistic is not None and result.statistic < 0.05
    assert not result.drifted


def test_missing_and_infinite_values_are_not_counted() -> None:
    rng = np.random.default_rng(4)
    cur = np.concatenate([rng.normal(size=40), [np.nan] * 30, [np.inf, -np.inf]])
    result = column_drift(numeric_profile("x", rng.normal(size=500)), cur)
    assert result.current_rows == 40 and result.status == "ok"


def test_categorical_current_can_be_any_array_of_values() -> None:
    profile = categorical_profile("c", ["1", "2"] * 50)
    result = column_drift(profile, np.array([1, 2, 2, 2] * 20))
    assert result.status == "ok" and result.current_rows == 80
    assert result.statistic is not None and result.statistic < 0.05


# -- column_drift: edge cases ----------------------------------------------------------------


def expect(result: ColumnDrift, status: str, reason: str) -> None:
    assert (result.status, result.reason) == (status, reason)
    assert result.statistic is None and result.drifted is False
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert "NaN" not in text


@pytest.mark.parametrize("current", [np.array([]), np.array([1.0, 2.0, 3.0])])
def test_too_few_values_is_not_enough_data(current: np.ndarray[Any, Any]) -> None:
    result = column_drift(numeric_profile("x", np.arange(100.0)), current)
    expect(result, "not_enough_data", f"not enough data: {len(current)} values, needs 30")


def test_all_null_current_is_not_enough_data() -> None:
    numeric = column_drift(numeric_profile("x", np.arange(100.0)), np.full(50, np.nan))
    expect(numeric, "not_enough_data", "no values: every row is null")
    categorical = column_drift(categorical_with(100, 3), objects([None] * 50))
    expect(categorical, "not_enough_data", "no values: every row is null")


def test_min_rows_is_configurable() -> None:
    profile = numeric_profile("x", np.arange(100.0))
    assert column_drift(profile, np.arange(5.0), min_rows=5).status == "ok"
    assert column_drift(profile, np.arange(5.0), min_rows=6).status == "not_enough_data"


def test_reference_without_values_is_not_computable() -> None:
    profile = numeric_profile("x", [np.nan, None])
    expect(column_drift(profile, np.arange(50.0)), "not_computable", "no reference values")


@pytest.mark.parametrize("test", ["wasserstein", "ks", "psi"])
def test_constant_numeric_reference_is_not_computable_for_spread_tests(test: str) -> None:
    profile = numeric_profile("x", np.full(2000, 3.0))
    result = column_drift(profile, np.arange(50.0), test=test)
    expect(result, "not_computable", "not computable: constant reference")
    assert result.test == test


def test_constant_reference_is_fine_for_tests_of_shares() -> None:
    profile = numeric_profile("x", np.full(2000, 3.0))
    result = column_drift(profile, np.full(50, 4.0))  # jensen_shannon
    assert result.status == "ok" and result.drifted


def test_chi_square_with_one_category_is_not_computable() -> None:
    profile = categorical_profile("c", ["a"] * 100)
    result = column_drift(profile, objects(["a"] * 50), test="chi_square")
    expect(result, "not_computable", "not computable: constant reference")


def test_only_unseen_categories_is_not_computable_for_chi_square() -> None:
    result = column_drift(categorical_with(300, 4), objects(["new"] * 50))
    assert result.test == "chi_square"
    expect(
        result,
        "not_computable",
        "not computable: every current value is one the reference never held",
    )


def test_a_statistic_that_is_nan_is_not_computable(monkeypatch: pytest.MonkeyPatch) -> None:
    nan_test = StatTest(
        "ks", "p_value", 0.05, frozenset({"numeric"}), lambda r, c: math.nan, "broken"
    )
    monkeypatch.setattr(drift, "get_test", lambda name: nan_test)
    result = column_drift(numeric_profile("x", np.arange(100.0)), np.arange(50.0))
    expect(result, "not_computable", "not computable: ks gave nan")


@pytest.mark.parametrize("test", ["ks", "wasserstein"])
def test_numeric_only_test_on_a_categorical_column_is_a_config_error(test: str) -> None:
    with pytest.raises(ConfigError) as info:
        column_drift(categorical_with(100, 3), objects(["v1"] * 50), test=test)
    assert "does not apply to the categorical column 'c'" in info.value.headline
    assert info.value.fix.startswith("set monitor.features.c.test to one of chi_square")


def test_config_error_comes_before_data_checks() -> None:
    with pytest.raises(ConfigError):
        column_drift(categorical_with(100, 3), objects([]), test="ks")


def test_unknown_test_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown drift test 'kl'"):
        column_drift(numeric_with(100, 10), np.arange(50.0), test="kl")


@pytest.mark.parametrize(("test", "threshold"), [("ks", 1.5), ("ks", 0.0), ("psi", -1.0)])
def test_out_of_range_threshold_is_a_config_error(test: str, threshold: float) -> None:
    with pytest.raises(ConfigError, match="bad drift threshold"):
        column_drift(numeric_with(100, 10), np.arange(50.0), test=test, threshold=threshold)


def test_extreme_values_never_raise_or_give_nan() -> None:
    with np.errstate(all="ignore"):
        profile = numeric_profile("x", np.array([-1.7e308, 1.7e308, 0.0] * 400))
    current = np.array([1.7e308, -1.7e308, 5.0] * 20)
    for test in ("wasserstein", "ks", "psi", "jensen_shannon"):
        result = column_drift(profile, current, test=test)
        assert result.statistic is None or math.isfinite(result.statistic), test
        json.dumps(result.to_dict(), allow_nan=False)
    overflow = column_drift(profile, current, test="wasserstein")
    assert overflow.status == "not_computable" and "overflows" in str(overflow.reason)


def test_sketch_profile_gives_a_result_for_every_default_test() -> None:
    rng = np.random.default_rng(5)
    profile = numeric_profile("x", rng.normal(size=20_000), points=256)
    assert not profile.exact
    for test in ("wasserstein", "ks", "jensen_shannon", "psi"):
        result = column_drift(profile, rng.normal(size=500), test=test)
        assert result.status == "ok" and result.statistic is not None, test


# -- dataset_drift -----------------------------------------------------------------------------


def test_dataset_drift_counts_untested_columns_as_not_drifted() -> None:
    drifted = ColumnDrift("a", "ks", "p_value", 0.05, 0.001, True)
    calm = ColumnDrift("b", "ks", "p_value", 0.05, 0.4, False)
    skipped = ColumnDrift("c", "ks", "p_value", 0.05, None, False, "not_enough_data", "few")
    assert dataset_drift([drifted, calm, skipped], 0.5) == (pytest.approx(1 / 3), False)
    assert dataset_drift([drifted, drifted, skipped], 0.5) == (pytest.approx(2 / 3), True)
    assert dataset_drift([drifted, calm, calm], 0.5) == (pytest.approx(1 / 3), False)
    assert dataset_drift([skipped], 0.5) == (None, False)


# -- histogram ----------------------------------------------------------------------------------


def test_numeric_histogram_edges_cover_reference_and_current() -> None:
    profile = numeric_profile("x", np.arange(100.0))  # 0 .. 99
    cur = np.array([50.0, 120.0, np.nan])
    hist = histogram(profile, cur, bins=4)
    assert hist.edges == [0.0, 30.0, 60.0, 90.0, 120.0]
    assert hist.reference == [0.3, 0.3, 0.3, 0.1]
    assert hist.current == [0.0, 0.5, 0.0, 0.5]
    assert hist.labels == ["[0, 30)", "[30, 60)", "[60, 90)", "[90, 120]"]


def test_numeric_histogram_from_a_sketch_sums_to_one() -> None:
    rng = np.random.default_rng(6)
    profile = numeric_profile("x", rng.normal(size=10_000), points=128)
    hist = histogram(profile, rng.normal(size=300))
    assert len(hist.reference) == 20 and sum(hist.reference) == pytest.approx(1.0)
    assert sum(hist.current) == pytest.approx(1.0)


@pytest.mark.parametrize("current", [np.array([]), np.full(10, np.nan)])
def test_numeric_histogram_with_no_current_values(current: np.ndarray[Any, Any]) -> None:
    hist = histogram(numeric_profile("x", np.arange(10.0)), current, bins=5)
    assert hist.current == [0.0] * 5 and sum(hist.reference) == pytest.approx(1.0)


def test_histogram_with_no_values_anywhere_is_empty() -> None:
    hist = histogram(numeric_profile("x", [np.nan]), np.array([np.nan]))
    assert (hist.labels, hist.reference, hist.current, hist.edges) == ([], [], [], None)


def test_constant_numeric_histogram_has_a_positive_range() -> None:
    hist = histogram(numeric_profile("x", [2.0] * 5), np.array([2.0]), bins=2)
    assert hist.edges == [1.5, 2.0, 2.5]
    assert hist.reference == [0.0, 1.0] and hist.current == [0.0, 1.0]


def test_categorical_histogram_keeps_top_reference_categories_then_other() -> None:
    profile = CategoricalProfile(
        "c", rows=100, missing=0, counts={"a": 50, "b": 30, "c": 15}, other_rows=5
    )
    cur = objects(["b"] * 5 + ["new"] * 3 + ["c"] * 2 + [None] * 4)
    hist = histogram(profile, cur, top=2)
    assert hist.labels == ["a", "b", OTHER]
    assert hist.reference == [0.5, 0.3, 0.2]
    assert hist.current == [0.0, 0.5, 0.5]
    assert hist.edges is None


def test_categorical_histogram_with_empty_current() -> None:
    hist = histogram(categorical_with(10, 2), objects([]))
    assert hist.labels == ["v0", "v1"] and hist.current == [0.0, 0.0]


def test_statistic_matches_the_registry_function() -> None:
    rng = np.random.default_rng(7)
    ref = rng.choice(["x", "y", "z"], size=3000)
    cur = objects(list(rng.choice(["x", "y", "z", "w"], size=800)))
    profile = categorical_profile("c", ref)
    for name in ("jensen_shannon", "psi", "chi_square", "z"):
        result = column_drift(profile, cur, test=name)
        assert result.statistic == get_test(name).fn(profile, cur[cur != None]), name  # noqa: E711


def test_a_histogram_takes_values_at_the_ends_of_float64() -> None:
    """Found by fuzzing the server (issue 12, problem 10): served values of ±1.7e308 made
    the bin width overflow and the monitor answer 500."""
    current = np.array([-1.7e308, 0.0, 1.7e308])
    hist = histogram(numeric_profile("x", np.arange(10.0)), current, bins=4)
    assert hist.edges is not None and np.isfinite(hist.edges).all()
    assert sum(hist.current) == pytest.approx(1.0)
