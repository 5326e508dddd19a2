"""Drift tests: one pure function per test, registered explicitly with its metadata.

Each test takes a reference :data:`~loopml.monitor.profile.ColumnProfile` and the current
values (numeric: float64, NaN = missing; categorical: object array of ``str``, ``None`` =
missing) and returns one float: a p-value or a distance. On an exact profile the result
equals Evidently 0.7's (``evidently.legacy.calculations.stattests``) on the same rows; on
a quantile sketch it is an approximation (measured in ``bench/bench_drift.py``).

What Evidently 0.7 does, read from its source:

- Missing values: ``data_drift.get_one_column_drift`` turns +-inf into NaN and drops NaN on
  both sides before a test is chosen and run.
- ``ks`` (``ks_stattest._ks_stat_test``): ``scipy.stats.ks_2samp`` p-value, two-sided,
  method "auto" (exact when both samples have <= 10,000 values, else Smirnov's asymptotic
  law ``kstwo.sf(D, round(n*m/(n+m)))``). Drift when ``p <= threshold`` (0.05).
- ``chi_square`` (``chisquare_stattest._chi_stat_test``): ``scipy.stats.chisquare`` of the
  current counts against the reference counts times ``n_current / n_reference``, one cell
  per value. Drift when ``p < threshold`` (0.05).
- ``z`` (``z_stattest._z_stat_test``): two-proportion z-test of "not the smallest value"
  with pooled variance, ``p = 2 * (1 - Phi(|z|))``; ``p = 1`` when both sides hold one
  and the same value. Drift when ``p < threshold`` (0.05).
- ``wasserstein`` (``wasserstein_distance_norm._wasserstein_distance_norm``):
  ``scipy.stats.wasserstein_distance / max(std(reference, ddof=0), 0.001)``. Drift when
  ``>= threshold`` (0.1).
- ``jensen_shannon`` (``jensenshannon._jensenshannon``) and ``psi`` (``psi._psi``) share
  ``utils.get_binned_data``: a numeric column with more than 20 distinct reference values
  is cut by ``np.histogram_bin_edges(reference + current, "sturges")``; any other column
  has one bin per value seen on either side. Shares are counts over each side's rows.
  ``psi`` replaces empty shares by ``min(non-zero share) / 1e6`` when that minimum is
  <= 1e-4, else by 1e-4, and sums ``(r - c) * ln(r / c)``; ``jensen_shannon`` keeps the
  zeros (``scipy.spatial.distance.jensenshannon``, natural log). Drift when ``>= 0.1``.

Deviations, on purpose:

- ``chi_square`` and ``z`` leave out current values never seen in the reference (they are
  reported as the unseen-category rate): in Evidently one new category gets an expected
  count of 0 and turns the p-value into 0, whatever the other categories do.
  ``jensen_shannon`` and ``psi`` keep them, as Evidently does.
- Non-finite values are always missing (Evidently keeps +-inf in a column that has no NaN,
  and its statistic becomes NaN). A constant reference for a test that needs spread is
  "not computable" (see :mod:`loopml.monitor.drift`) where Evidently divides by 0.001.
- Evidently bins integer-typed columns with a width of at least 1; a profile keeps no
  dtype, so a numeric column of 21+ integers spanning fewer than ~log2(n) + 1 units gets
  numpy's float Sturges bins here.
- A categorical profile that folded its rarest categories into ``other_rows`` compares
  them, and every current category it does not list, as one "(other)" cell.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from scipy import special, stats
from scipy.spatial import distance

from loopml.errors import ConfigError
from loopml.monitor.profile import CategoricalProfile, ColumnProfile, NumericProfile

__all__ = [
    "TESTS",
    "NotComputable",
    "StatTest",
    "bin_counts",
    "finite_values",
    "get_test",
    "is_drift",
    "register_test",
    "sturges_edges",
    "weighted_counts",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
Values = np.ndarray[Any, Any]
StatFn = Callable[[ColumnProfile, Values], float]

_KS_EXACT_N = 10_000  # scipy.stats.ks_2samp(method="auto") is exact up to this many values
_BINNED_MAX_UNIQUE = 20  # get_binned_data: more distinct reference values -> histogram
_W_NORM_FLOOR = 0.001  # Evidently's floor for the reference std in the wasserstein norm
_BLOCK = 1 << 15  # reference values merged at a time, to keep memory small


class NotComputable(Exception):
    """The test has no statistic on these values; the message says why."""


@dataclass(frozen=True)
class StatTest:
    """A drift test and what the monitor needs to know about it.

    ``drift_at_threshold`` says whether a statistic equal to the threshold is drift:
    Evidently's ks (``p <= t``) and distances (``d >= t``) say yes, chi-square and z
    (``p < t``) say no. ``needs_spread`` lists the column kinds for which a reference with
    a single distinct value makes the test meaningless.
    """

    name: str
    kind: Literal["p_value", "distance"]
    default_threshold: float
    column_kinds: frozenset[str]
    fn: StatFn
    description: str
    drift_at_threshold: bool = True
    needs_spread: frozenset[str] = frozenset()


_REGISTRY: dict[str, StatTest] = {}
TESTS: Mapping[str, StatTest] = MappingProxyType(_REGISTRY)


def register_test(test: StatTest) -> StatTest:
    """Add a test to :data:`TESTS`; a name can be registered once."""
    if test.name in _REGISTRY:
        raise ValueError(f"a drift test named {test.name!r} is already registered")
    _REGISTRY[test.name] = test
    return test


def get_test(name: str) -> StatTest:
    """The registered test called ``name``.

    >>> get_test("ks").default_threshold
    0.05
    """
    test = _REGISTRY.get(name)
    if test is None:
        available = ", ".join(sorted(_REGISTRY))
        raise ConfigError(
            f"unknown drift test {name!r}",
            detail=f"available tests: {available}",
            fix=f"set monitor.features.<col>.test to one of {available}",
        )
    return test


def is_drift(test: StatTest | str, statistic: float, threshold: float) -> bool:
    """Evidently's decision: p-values drift below the threshold, distances at or above it.

    >>> is_drift("ks", 0.05, 0.05), is_drift("chi_square", 0.05, 0.05)
    (True, False)
    """
    spec = get_test(test) if isinstance(test, str) else test
    if spec.kind == "p_value":
        return statistic <= threshold if spec.drift_at_threshold else statistic < threshold
    return statistic >= threshold if spec.drift_at_threshold else statistic > threshold


def finite_values(current: Any) -> FloatArray:
    """The finite values of a numeric column (NaN and +-inf are missing)."""
    values = np.asarray(current, dtype=np.float64)
    keep = np.isfinite(values)
    return values if keep.all() else values[keep]


# -- counts per value (chi_square, z, and binned tests on low-cardinality columns) --------


@dataclass(frozen=True)
class _Counts:
    reference: FloatArray  # rows per reference value
    current: FloatArray  # current rows per reference value
    unseen: FloatArray  # current rows per distinct value the reference never held
    first: int  # index of the smallest reference value (the z-test's "0")


def _counts(reference: ColumnProfile, current: Values) -> _Counts:
    if isinstance(reference, NumericProfile):
        return _numeric_counts(reference, finite_values(current))
    return _categorical_counts(reference, current)


def _numeric_counts(reference: NumericProfile, values: FloatArray) -> _Counts:
    if not reference.exact:
        raise NotComputable("the test counts values and the profile is a quantile sketch")
    keys = reference.values
    index = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
    seen = keys[index] == values
    current = np.bincount(index[seen], minlength=len(keys)).astype(np.float64)
    _, unseen = np.unique(values[~seen], return_counts=True)
    return _Counts(reference.weights, current, unseen.astype(np.float64), 0)


def _categorical_counts(reference: CategoricalProfile, current: Values) -> _Counts:
    tally = Counter(current.tolist())
    tally.pop(None, None)
    keys = list(reference.counts)
    ref = np.fromiter(reference.counts.values(), dtype=np.float64, count=len(keys))
    cur = np.array([tally.pop(key, 0) for key in keys], dtype=np.float64)
    unseen = np.fromiter(tally.values(), dtype=np.float64, count=len(tally))
    if reference.other_rows:
        # The folded categories are unnamed: any current category not listed may be one.
        ref = np.append(ref, float(reference.other_rows))
        cur = np.append(cur, unseen.sum())
        unseen = np.empty(0, dtype=np.float64)
    first = min(range(len(keys)), key=keys.__getitem__) if keys else 0
    return _Counts(ref, cur, unseen, first)


def _seen_rows(counts: _Counts) -> float:
    rows = float(counts.current.sum())
    if rows == 0:
        raise NotComputable("every current value is one the reference never held")
    return rows


def _chi_square(reference: ColumnProfile, current: Values) -> float:
    counts = _counts(reference, current)
    expected = counts.reference * (_seen_rows(counts) / float(counts.reference.sum()))
    statistic = np.sum((counts.current - expected) ** 2 / expected)
    return float(special.chdtrc(len(expected) - 1, statistic))


def _z(reference: ColumnProfile, current: Values) -> float:
    counts = _counts(reference, current)
    n2 = _seen_rows(counts)
    if len(counts.reference) == 1:
        return 1.0  # both sides hold the same single value
    n1 = float(counts.reference.sum())
    p1 = (n1 - counts.reference[counts.first]) / n1
    p2 = (n2 - counts.current[counts.first]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - special.ndtr(abs(z))))


# -- numeric tests ------------------------------------------------------------------------


def _numeric(reference: ColumnProfile) -> NumericProfile:
    if not isinstance(reference, NumericProfile):
        raise TypeError(f"column {reference.name!r} is not numeric")
    return reference


def _ks(reference: ColumnProfile, current: Values) -> float:
    ref = _numeric(reference)
    values = finite_values(current)
    if ref.exact and max(ref.rows, len(values)) <= _KS_EXACT_N:
        with warnings.catch_warnings():
            # scipy says when its exact method falls back to the asymptotic one, as it must
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(stats.ks_2samp(ref.sample(), values).pvalue)
    big, small = sorted([float(ref.rows), float(len(values))], reverse=True)
    effective = np.round(big * small / (big + small))
    return float(np.clip(stats.kstwo.sf(_ks_distance(ref, values), effective), 0, 1))


def _ks_distance(reference: NumericProfile, values: FloatArray) -> float:
    """``ks_2samp``'s D from the profile's cumulative weights, without sorting ``values``.

    Between two reference values the reference CDF is flat, so |F - G| peaks at a
    reference value or just before the next one; both are data points scipy looks at.
    """
    support, n = reference.values, len(values)
    f_at = np.cumsum(reference.weights)
    f_at /= f_at[-1]
    at_or_below = np.cumsum(np.bincount(np.searchsorted(support, values), minlength=len(support)))
    at = f_at - at_or_below[: len(support)] / n  # F - G at each reference value
    below = np.cumsum(
        np.bincount(np.searchsorted(support, values, "right"), minlength=len(support))
    )
    before = np.concatenate(([0.0], f_at[:-1])) - below[: len(support)] / n  # just before it
    low, high = min(float(at.min()), float(before.min())), max(float(at.max()), float(before.max()))
    return max(min(max(-low, 0.0), 1.0), high)


def _wasserstein(reference: ColumnProfile, current: Values) -> float:
    ref = _numeric(reference)
    if not math.isfinite(ref.std):
        raise NotComputable("the reference's standard deviation overflows")
    distance_ = _w1(ref.values, ref.weights, np.sort(finite_values(current)))
    return distance_ / max(ref.std, _W_NORM_FLOOR)


def _w1(u: FloatArray, weights: FloatArray, v: FloatArray) -> float:
    """``scipy.stats.wasserstein_distance(u, v, weights)`` for sorted ``u`` and ``v``.

    The integral of |U - V| over the merged support, merged one block of ``u`` at a time
    so a million reference values need a few MB, not ten copies of the column.
    """
    u_total, n_v, result, u_before = float(weights.sum()), len(v), 0.0, 0.0
    for start in range(0, len(u), _BLOCK):
        stop = min(start + _BLOCK, len(u))
        last = stop == len(u)
        v_start = 0 if start == 0 else int(np.searchsorted(v, u[start]))
        v_stop = n_v if last else int(np.searchsorted(v, u[stop]))
        points = np.concatenate((u[start:stop], v[v_start:v_stop]))
        order = np.argsort(points, kind="stable")
        points = points[order]
        cdf = np.concatenate((weights[start:stop], np.zeros(v_stop - v_start)))[order]
        np.cumsum(cdf, out=cdf)
        cdf += u_before
        cdf /= u_total  # U at each point
        v_cdf = np.cumsum(order >= stop - start, dtype=np.float64)
        del order
        v_cdf += v_start
        v_cdf /= n_v
        cdf -= v_cdf
        del v_cdf
        np.abs(cdf, out=cdf)
        widths = np.diff(points) if last else np.diff(points, append=u[stop])
        result += float(np.dot(cdf[: len(widths)], widths))
        u_before += float(weights[start:stop].sum())
    return result


# -- binned tests (jensen_shannon, psi) ---------------------------------------------------


def _binned(reference: ColumnProfile, current: Values) -> tuple[FloatArray, FloatArray]:
    """``get_binned_data``: reference and current shares over the same bins."""
    if isinstance(reference, NumericProfile) and reference.unique > _BINNED_MAX_UNIQUE:
        return _histogram_shares(reference, finite_values(current))
    counts = _counts(reference, current)
    ref = np.concatenate((counts.reference, np.zeros(len(counts.unseen))))
    cur = np.concatenate((counts.current, counts.unseen))
    return ref / float(reference.rows), cur / float(cur.sum())


def sturges_edges(low: float, high: float, size: int) -> FloatArray:
    """``np.histogram_bin_edges(data, "sturges")`` from the data's min, max and size."""
    if low == high:
        return np.array([low - 0.5, high + 0.5])
    width = np.subtract(np.float64(high), np.float64(low)) / (np.log2(size) + 1.0)
    bins = int(np.ceil((high - low) / width))
    return np.linspace(low, high, bins + 1, endpoint=True, dtype=np.float64)


def weighted_counts(reference: NumericProfile, edges: FloatArray) -> FloatArray:
    """``np.histogram(reference, edges)`` from the profile (last bin closed on the right)."""
    positions = np.searchsorted(reference.values, edges)
    positions[-1] = np.searchsorted(reference.values, edges[-1], side="right")
    weights = reference.weights
    return np.array([weights[a:b].sum() for a, b in pairwise(positions.tolist())])


def bin_counts(values: FloatArray, edges: FloatArray) -> FloatArray:
    """``np.histogram(values, edges)`` for values inside the edges, without sorting."""
    bins = len(edges) - 1
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    return np.bincount(index, minlength=bins).astype(np.float64)


def _histogram_shares(
    reference: NumericProfile, values: FloatArray
) -> tuple[FloatArray, FloatArray]:
    low = min(reference.min, float(values.min()))
    high = max(reference.max, float(values.max()))
    edges = sturges_edges(low, high, reference.rows + len(values))
    ref = weighted_counts(reference, edges) / float(reference.rows)
    return ref, bin_counts(values, edges) / float(len(values))


def _fill_zeros(shares: FloatArray) -> FloatArray:
    """``get_binned_data(feel_zeroes=True)``: empty bins get a small share, so log works."""
    smallest = float(shares[shares != 0].min())
    fill = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return np.where(shares == 0, fill, shares)


def _jensen_shannon(reference: ColumnProfile, current: Values) -> float:
    ref, cur = _binned(reference, current)
    return float(distance.jensenshannon(ref, cur))


def _psi(reference: ColumnProfile, current: Values) -> float:
    ref, cur = _binned(reference, current)
    ref, cur = _fill_zeros(ref), _fill_zeros(cur)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


_BOTH = frozenset({"numeric", "categorical"})
_NUMERIC = frozenset({"numeric"})

for _test in (
    StatTest(
        name="ks",
        kind="p_value",
        default_threshold=0.05,
        column_kinds=_NUMERIC,
        fn=_ks,
        description="two-sample Kolmogorov-Smirnov p-value (scipy ks_2samp)",
        needs_spread=_NUMERIC,
    ),
    StatTest(
        name="chi_square",
        kind="p_value",
        default_threshold=0.05,
        column_kinds=_BOTH,
        fn=_chi_square,
        description="chi-square p-value of current counts against reference shares "
        "(values the reference never held are left out)",
        drift_at_threshold=False,
        needs_spread=_BOTH,
    ),
    StatTest(
        name="z",
        kind="p_value",
        default_threshold=0.05,
        column_kinds=_BOTH,
        fn=_z,
        description="two-proportion z-test p-value (values the reference never held are left out)",
        drift_at_threshold=False,
    ),
    StatTest(
        name="wasserstein",
        kind="distance",
        default_threshold=0.1,
        column_kinds=_NUMERIC,
        fn=_wasserstein,
        description="Wasserstein-1 distance over the reference standard deviation",
        needs_spread=_NUMERIC,
    ),
    StatTest(
        name="jensen_shannon",
        kind="distance",
        default_threshold=0.1,
        column_kinds=_BOTH,
        fn=_jensen_shannon,
        description="Jensen-Shannon distance of binned shares (natural log)",
    ),
    StatTest(
        name="psi",
        kind="distance",
        default_threshold=0.1,
        column_kinds=_BOTH,
        fn=_psi,
        description="population stability index of binned shares",
        needs_spread=_NUMERIC,
    ),
):
    register_test(_test)
