"""The drift tests against scipy and Evidently 0.7's formulas, on raw arrays."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from loopml.errors import ConfigError
from loopml.monitor import stattests
from loopml.monitor.profile import (
    CategoricalProfile,
    categorical_profile,
    numeric_profile,
)
from loopml.monitor.stattests import (
    TESTS,
    NotComputable,
    StatTest,
    get_test,
    is_drift,
    register_test,
)

pytestmark = pytest.mark.unit


def run(name: str, reference: Any, current: Any) -> float:
    return get_test(name).fn(reference, current)


def objects(values: list[str | None]) -> np.ndarray[Any, Any]:
    return np.array(values, dtype=object)


# -- Evidently 0.7's code on raw arrays, written out (evidently/legacy/calculations/stattests)


def evidently_binned(ref: pd.Series, cur: pd.Series, numeric: bool, fill: bool) -> Any:
    if numeric and ref.nunique() > 20:
        bins = np.histogram_bin_edges(np.asarray(pd.concat([ref, cur]).values), bins="sturges")
        r = np.histogram(ref, bins)[0] / len(ref)
        c = np.histogram(cur, bins)[0] / len(cur)
    else:
        keys = list(set(ref.dropna().unique()) | set(cur.dropna().unique()))
        rd = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
        cd = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
        r = np.array([rd[k] / len(ref) for k in keys])
        c = np.array([cd[k] / len(cur) for k in keys])
    if fill:
        for shares in (r, c):
            low = min(shares[shares != 0])
            np.place(shares, shares == 0, low / 10**6 if low <= 0.0001 else 0.0001)
    return r, c


def evidently_chi(ref: pd.Series, cur: pd.Series) -> float:
    keys = list(set(ref.unique()) | set(cur.unique()))
    rd = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
    cd = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
    k = cur.shape[0] / ref.shape[0]
    return float(stats.chisquare([cd[x] for x in keys], [rd[x] * k for x in keys])[1])


def evidently_z(ref: pd.Series, cur: pd.Series) -> float:
    if ref.nunique() == 1 and cur.nunique() == 1 and ref.unique()[0] == cur.unique()[0]:
        return 1.0
    first = sorted(set(ref.unique()) | set(cur.unique()))[0]
    a, b = (ref != first).astype(int), (cur != first).astype(int)
    n1, n2 = len(a), len(b)
    p1, p2 = float(a.sum()) / n1, float(b.sum()) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def evidently(name: str, ref: np.ndarray[Any, Any], cur: np.ndarray[Any, Any]) -> float:
    numeric = ref.dtype != object
    r, c = pd.Series(ref), pd.Series(cur)
    if name == "ks":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # exact -> asymptotic fallback
            return float(stats.ks_2samp(ref, cur)[1])
    if name == "wasserstein":
        return float(stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001))
    if name == "chi_square":
        return evidently_chi(r, c)
    if name == "z":
        return evidently_z(r, c)
    shares = evidently_binned(r, c, numeric, fill=name == "psi")
    if name == "jensen_shannon":
        return float(distance.jensenshannon(*shares))
    rs, cs = shares
    return float(np.sum((rs - cs) * np.log(rs / cs)))


# -- each test against scipy / Evidently ---------------------------------------------------


@pytest.mark.parametrize(("ref_rows", "cur_rows"), [(300, 200), (800, 50_000), (20_000, 15_000)])
def test_ks_matches_scipy_exact_and_asymptotic(ref_rows: int, cur_rows: int) -> None:
    rng = np.random.default_rng(ref_rows)
    ref, cur = rng.normal(size=ref_rows), rng.normal(0.05, 1.1, size=cur_rows)
    profile = numeric_profile("x", ref, points=None)
    assert run("ks", profile, cur) == pytest.approx(stats.ks_2samp(ref, cur).pvalue, abs=1e-12)


def test_ks_with_ties_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 40, 20_000).astype(float)
    cur = rng.integers(3, 45, 30_000).astype(float)
    profile = numeric_profile("x", ref, points=None)
    assert run("ks", profile, cur) == pytest.approx(stats.ks_2samp(ref, cur).pvalue, abs=1e-12)


def test_wasserstein_is_scipy_over_reference_std() -> None:
    rng = np.random.default_rng(4)
    ref, cur = rng.gamma(2.0, 3.0, 5000), rng.gamma(2.2, 3.0, 3000)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert run("wasserstein", numeric_profile("x", ref, None), cur) == pytest.approx(expected)


def test_wasserstein_merges_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=3000), np.round(rng.normal(0.2, 1, 2000), 1)
    ref[:50] = cur[:50]  # ties between the samples, some on block boundaries
    monkeypatch.setattr(stattests, "_BLOCK", 97)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert run("wasserstein", numeric_profile("x", ref, None), cur) == pytest.approx(expected)


def test_chi_square_is_scipy_chisquare() -> None:
    ref = objects(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    cur = objects(["a"] * 30 + ["b"] * 30 + ["c"] * 40)
    expected = stats.chisquare([30, 30, 40], [50 * 1.0, 30 * 1.0, 20 * 1.0]).pvalue
    assert run("chi_square", categorical_profile("c", ref), cur) == pytest.approx(expected)


def test_z_is_two_proportion_z_test() -> None:
    ref = objects(["no"] * 70 + ["yes"] * 30)
    cur = objects(["no"] * 50 + ["yes"] * 50)
    p1, p2, pooled = 0.3, 0.5, 0.4  # share of values other than the smallest, "no"
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 100))
    expected = 2 * (1 - stats.norm.cdf(abs(z)))
    assert run("z", categorical_profile("c", ref), cur) == pytest.approx(expected)


def test_z_is_one_when_both_sides_hold_the_same_single_value() -> None:
    ref, cur = objects(["a"] * 10), objects(["a"] * 5)
    assert run("z", categorical_profile("c", ref), cur) == 1.0


def test_jensen_shannon_of_categories_is_scipy() -> None:
    ref = objects(["a"] * 60 + ["b"] * 40)
    cur = objects(["a"] * 30 + ["b"] * 50 + ["new"] * 20)
    expected = distance.jensenshannon([0.6, 0.4, 0.0], [0.3, 0.5, 0.2])
    assert run("jensen_shannon", categorical_profile("c", ref), cur) == pytest.approx(expected)


def test_psi_by_hand_with_evidently_fill_for_a_new_category() -> None:
    ref = objects(["a"] * 60 + ["b"] * 40)
    cur = objects(["a"] * 30 + ["b"] * 50 + ["new"] * 20)
    r, c = np.array([0.6, 0.4, 0.0001]), np.array([0.3, 0.5, 0.2])  # 0 -> 1e-4
    expected = float(np.sum((r - c) * np.log(r / c)))
    assert run("psi", categorical_profile("c", ref), cur) == pytest.approx(expected)


def test_psi_fill_is_a_millionth_of_the_smallest_share_when_that_is_tiny() -> None:
    shares = np.array([0.99995, 0.00005, 0.0])
    assert stattests._fill_zeros(shares)[2] == pytest.approx(0.00005 / 1e6)


def test_binned_tests_on_continuous_values_use_sturges_bins() -> None:
    rng = np.random.default_rng(6)
    ref, cur = rng.normal(size=4000), rng.normal(0.3, 1, size=2500)
    profile = numeric_profile("x", ref, points=None)
    for name in ("jensen_shannon", "psi"):
        assert run(name, profile, cur) == pytest.approx(evidently(name, ref, cur), abs=1e-12)


def test_histogram_helpers_equal_numpy() -> None:
    rng = np.random.default_rng(7)
    ref, cur = np.round(rng.normal(size=3000), 2), rng.normal(size=700)
    combined = np.concatenate([ref, cur])
    edges = stattests.sturges_edges(combined.min(), combined.max(), combined.size)
    np.testing.assert_array_equal(edges, np.histogram_bin_edges(combined, bins="sturges"))
    profile = numeric_profile("x", ref, points=None)
    np.testing.assert_array_equal(
        stattests.weighted_counts(profile, edges), np.histogram(ref, edges)[0]
    )
    np.testing.assert_array_equal(stattests.bin_counts(cur, edges), np.histogram(cur, edges)[0])


# -- deviations and edge semantics ---------------------------------------------------------


@pytest.mark.parametrize("name", ["chi_square", "z"])
def test_chi_square_and_z_leave_out_values_the_reference_never_held(name: str) -> None:
    ref = objects(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    seen = ["a"] * 45 + ["b"] * 35 + ["c"] * 20
    profile = categorical_profile("c", ref)
    with_new = run(name, profile, objects([*seen, "new", "new", None]))
    assert with_new == pytest.approx(run(name, profile, objects(seen)))
    assert with_new > 0.05


@pytest.mark.parametrize("name", ["chi_square", "z"])
def test_chi_square_and_z_with_only_unseen_values_are_not_computable(name: str) -> None:
    profile = categorical_profile("c", objects(["a", "b", "c"] * 10))
    with pytest.raises(NotComputable, match="never held"):
        run(name, profile, objects(["zzz"] * 40))


def test_missing_and_infinite_current_values_are_dropped() -> None:
    rng = np.random.default_rng(8)
    ref, cur = rng.normal(size=500), rng.normal(size=300)
    dirty = np.concatenate([cur, [np.nan, np.inf, -np.inf]])
    profile = numeric_profile("x", ref, points=None)
    for name in ("ks", "wasserstein", "jensen_shannon", "psi"):
        assert run(name, profile, dirty) == run(name, profile, cur)


def test_folded_categories_and_unlisted_current_values_share_one_cell() -> None:
    profile = CategoricalProfile("c", rows=100, missing=0, counts={"a": 60, "b": 20}, other_rows=20)
    cur = objects(["a"] * 60 + ["b"] * 20 + ["x"] * 10 + ["y"] * 10)
    assert run("jensen_shannon", profile, cur) == pytest.approx(0.0, abs=1e-12)


def test_counting_tests_refuse_a_quantile_sketch() -> None:
    rng = np.random.default_rng(9)
    sketch = numeric_profile("x", rng.normal(size=5000), points=64)
    with pytest.raises(NotComputable, match="sketch"):
        run("chi_square", sketch, rng.normal(size=100))


def test_sketch_wasserstein_is_close_to_exact_on_large_data() -> None:
    rng = np.random.default_rng(10)
    ref, cur = rng.lognormal(0, 0.7, 200_000), rng.lognormal(0.05, 0.7, 50_000)
    exact = run("wasserstein", numeric_profile("x", ref, points=None), cur)
    sketch = run("wasserstein", numeric_profile("x", ref, points=2048), cur)
    assert exact > 0.04
    assert abs(sketch - exact) < 0.002


def test_sketch_ks_is_close_to_exact() -> None:
    rng = np.random.default_rng(11)
    ref, cur = rng.normal(size=100_000), rng.normal(0.02, 1, size=20_000)
    exact = run("ks", numeric_profile("x", ref, points=None), cur)
    sketch = run("ks", numeric_profile("x", ref, points=2048), cur)
    assert abs(sketch - exact) < 0.05


# -- exact profile == raw arrays (property) -----------------------------------------------

small_ints = st.lists(st.integers(0, 7), min_size=3, max_size=60)
floats = st.lists(
    st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False).map(lambda x: round(x, 1)),
    min_size=3,
    max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(ref=floats, cur=floats)
def test_exact_profile_equals_raw_arrays_continuous(ref: list[float], cur: list[float]) -> None:
    r, c = np.array(ref), np.array(cur)
    profile = numeric_profile("x", r, points=None)
    names = ["ks", "jensen_shannon", "psi"] + (["wasserstein"] if np.std(r) > 0 else [])
    for name in names:
        expected = evidently(name, r, c)
        assert run(name, profile, c) == pytest.approx(expected, rel=1e-9, abs=1e-12), name


@settings(max_examples=60, deadline=None)
@given(ref=small_ints, cur=small_ints)
def test_exact_profile_equals_raw_arrays_discrete(ref: list[int], cur: list[int]) -> None:
    r, c = np.array(ref, dtype=float), np.array(cur, dtype=float)
    c_seen = c[np.isin(c, r)]  # chi_square and z leave unseen values out
    profile = numeric_profile("x", r, points=None)
    for name in ("jensen_shannon", "psi"):
        assert run(name, profile, c) == pytest.approx(evidently(name, r, c), abs=1e-12), name
    if len(c_seen) and len(set(ref)) > 1:
        for name in ("chi_square", "z"):
            expected = evidently(name, r, c_seen)
            assert run(name, profile, c) == pytest.approx(expected, abs=1e-12), name


@settings(max_examples=40, deadline=None)
@given(ref=st.lists(st.sampled_from("abcde"), min_size=2, max_size=50), cur=small_ints)
def test_categorical_profile_equals_raw_arrays(ref: list[str], cur: list[int]) -> None:
    r = objects(list(ref))
    c = objects(["abcdefgh"[i] for i in cur])
    profile = categorical_profile("c", r)
    for name in ("jensen_shannon", "psi"):
        assert run(name, profile, c) == pytest.approx(evidently(name, r, c), abs=1e-12), name
    c_seen = objects([v for v in c if v in set(ref)])
    if len(c_seen) and len(set(ref)) > 1:
        for name in ("chi_square", "z"):
            expected = evidently(name, r, c_seen)
            assert run(name, profile, c) == pytest.approx(expected, abs=1e-12), name


# -- registry and decisions ------------------------------------------------------------------


def test_registry_holds_the_six_tests_read_only() -> None:
    assert set(TESTS) == {"ks", "chi_square", "z", "wasserstein", "jensen_shannon", "psi"}
    assert {n: t.kind for n, t in TESTS.items()}["wasserstein"] == "distance"
    with pytest.raises(TypeError):
        TESTS["mine"] = TESTS["ks"]  # type: ignore[index]


def test_registering_a_name_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_test(StatTest("ks", "p_value", 0.05, frozenset({"numeric"}), run, "again"))  # type: ignore[arg-type]


def test_unknown_test_names_the_available_ones_and_the_fix() -> None:
    with pytest.raises(ConfigError) as info:
        get_test("kolmogorov")
    assert "'kolmogorov'" in info.value.headline
    assert "chi_square" in info.value.detail and "wasserstein" in info.value.detail
    assert info.value.fix.startswith("set monitor.features.<col>.test to one of")


@pytest.mark.parametrize(
    ("name", "statistic", "expected"),
    [
        ("ks", 0.05, True),
        ("ks", 0.0500001, False),
        ("chi_square", 0.05, False),
        ("chi_square", 0.0499, True),
        ("z", 0.05, False),
        ("wasserstein", 0.1, True),
        ("wasserstein", 0.0999, False),
        ("jensen_shannon", 0.1, True),
        ("psi", 0.1, True),
    ],
)
def test_is_drift_uses_evidently_comparisons(name: str, statistic: float, expected: bool) -> None:
    threshold = get_test(name).default_threshold
    assert is_drift(name, statistic, threshold) is expected
