"""Column drift: which test a column gets, its result in one window, and its histogram.

The default test follows Evidently 0.7 (``evidently.legacy.calculations.stattests.registry.
_get_default_stattest``), on the reference's non-missing rows:

==================  ===========================  =======================================
reference rows      numeric, > 5 distinct        categorical, or numeric with <= 5
==================  ===========================  =======================================
<= 1000             ``ks``                       ``chi_square`` if > 2 distinct, else ``z``
> 1000              ``wasserstein``              ``jensen_shannon``
==================  ===========================  =======================================

Evidently counts the distinct values of reference and current together; loopml counts the
reference's only, so a column keeps the same test in every window of a model version (a
new value is reported as the unseen rate, and does not switch the test).

A window drifts as a whole when at least ``drift_share`` of its monitored columns drift
(``data_drift.get_dataset_drift``: ``share >= drift_share``; a column too thin to test
counts as not drifted), see :func:`dataset_drift`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from loopml.errors import ConfigError
from loopml.monitor.profile import (
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    category_values,
)
from loopml.monitor.results import ColumnDrift, Histogram, Status
from loopml.monitor.stattests import (
    TESTS,
    NotComputable,
    StatTest,
    bin_counts,
    finite_values,
    get_test,
    is_drift,
    weighted_counts,
)

__all__ = [
    "OTHER",
    "choose_test",
    "column_drift",
    "dataset_drift",
    "histogram",
    "snap_to_reference",
]

OTHER = "(other)"
_SMALL_REFERENCE = 1000  # rows; Evidently: reference_data.shape[0] <= 1000
_FEW_VALUES = 5  # distinct values; Evidently treats fewer numeric values as categories
_FEW_CATEGORIES = 2  # distinct values; chi-square above, z-test at or below
SNAP_RTOL = 1e-7  # a float32 holds ~7 significant digits


def choose_test(reference: ColumnProfile) -> str:
    """The default drift test for a column, from its kind and reference size (see above).

    >>> from loopml.monitor.profile import numeric_profile
    >>> choose_test(numeric_profile("x", range(1001))), choose_test(numeric_profile("x", range(6)))
    ('wasserstein', 'ks')
    """
    continuous = reference.kind == "numeric" and reference.unique > _FEW_VALUES
    if reference.rows <= _SMALL_REFERENCE:
        if continuous:
            return "ks"
        return "chi_square" if reference.unique > _FEW_CATEGORIES else "z"
    return "wasserstein" if continuous else "jensen_shannon"


def column_drift(
    reference: ColumnProfile,
    current: Any,
    *,
    test: str | None = None,
    threshold: float | None = None,
    min_rows: int = 30,
) -> ColumnDrift:
    """Test one column of one window against its reference.

    ``current`` holds the window's values (numeric: floats with NaN for missing;
    categorical: ``str`` with ``None`` for missing). ``test`` and ``threshold`` override
    the defaults. Data never makes this raise or return NaN: a window with fewer than
    ``min_rows`` non-missing values is ``"not_enough_data"``, a test with no answer is
    ``"not_computable"``, each with a ``reason``. A test that does not apply to the
    column's kind is a configuration error (:class:`~loopml.errors.ConfigError`).

    >>> from loopml.monitor.profile import categorical_profile
    >>> ref = categorical_profile("colour", ["red"] * 60 + ["blue"] * 40)
    >>> result = column_drift(ref, np.array(["red"] * 20 + ["blue"] * 80, dtype=object))
    >>> result.test, round(result.statistic, 6), result.drifted
    ('z', 0.0, True)
    """
    name = test or choose_test(reference)
    spec = _applicable(get_test(name), reference)
    limit = _threshold(spec, reference, threshold)
    values = _present(reference, current)
    rows = len(values)

    def result(status: Status, reason: str, statistic: float | None = None) -> ColumnDrift:
        drifted = statistic is not None and is_drift(spec, statistic, limit)
        return ColumnDrift(
            name=reference.name,
            test=name,
            kind=spec.kind,
            threshold=limit,
            statistic=statistic,
            drifted=drifted,
            status=status,
            reason=reason or None,
            reference_rows=reference.rows,
            current_rows=rows,
        )

    problem = _unusable(spec, reference, len(current), rows, min_rows)
    if problem is not None:
        return result(*problem)
    try:
        with np.errstate(all="ignore"):  # a non-finite statistic is reported below
            statistic = spec.fn(reference, values)
    except NotComputable as exc:
        return result("not_computable", f"not computable: {exc}")
    if not math.isfinite(statistic):
        return result("not_computable", f"not computable: {name} gave {statistic}")
    return result("ok", "", statistic)


def _applicable(spec: StatTest, reference: ColumnProfile) -> StatTest:
    if reference.kind in spec.column_kinds:
        return spec
    fitting = sorted(n for n, t in TESTS.items() if reference.kind in t.column_kinds)
    raise ConfigError(
        f"drift test {spec.name!r} does not apply to the {reference.kind} column "
        f"{reference.name!r}",
        detail=f"{spec.name} tests {' or '.join(sorted(spec.column_kinds))} columns",
        fix=f"set monitor.features.{reference.name}.test to one of {', '.join(fitting)}, "
        "or leave it out to let loopml choose",
    )


def _threshold(spec: StatTest, reference: ColumnProfile, threshold: float | None) -> float:
    limit = spec.default_threshold if threshold is None else float(threshold)
    upper = 1.0 if spec.kind == "p_value" else math.inf
    if not 0 < limit < upper:
        bound = "between 0 and 1" if spec.kind == "p_value" else "above 0"
        raise ConfigError(
            f"bad drift threshold {limit} for column {reference.name!r}",
            detail=f"{spec.name} gives a {spec.kind.replace('_', '-')}; its threshold must "
            f"be {bound}",
            fix=f"set monitor.features.{reference.name}.threshold to e.g. {spec.default_threshold}",
        )
    return limit


def _present(reference: ColumnProfile, current: Any) -> np.ndarray[Any, Any]:
    """The non-missing current values, in the form the tests take."""
    if isinstance(reference, NumericProfile):
        return snap_to_reference(reference, finite_values(current))
    values = np.asarray(current)
    if values.dtype != object:
        values = category_values(values)
    present = values != None  # noqa: E711 -- elementwise on an object array
    return values if present.all() else values[present]


def snap_to_reference(
    reference: NumericProfile, values: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """Current values within a relative :data:`SNAP_RTOL` of a value an exact profile holds
    become that value: a client that sends 0.05068011874 for 0.0506801187398187 (10
    significant digits, as pandas' ``to_json`` writes, or a float32) sends the same value,
    and a test that counts values, or steps at them as KS does, must see it as the same.

    >>> from loopml.monitor.profile import numeric_profile
    >>> ref = numeric_profile("sex", [0.0506801187398187, -0.044641636506989])
    >>> snap_to_reference(ref, np.array([0.05068011874, -0.04464163651, 0.7])).tolist()
    [0.0506801187398187, -0.044641636506989, 0.7]
    """
    keys = reference.values
    if not reference.exact or not len(values) or not len(keys):
        return values
    right = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
    left = np.maximum(right - 1, 0)
    nearest = np.where(np.abs(keys[left] - values) <= np.abs(keys[right] - values), left, right)
    close = np.abs(keys[nearest] - values) <= SNAP_RTOL * np.abs(keys[nearest])
    snapped: np.ndarray[Any, Any] = np.where(close, keys[nearest], values)
    return snapped


def _unusable(
    spec: StatTest, reference: ColumnProfile, length: int, rows: int, min_rows: int
) -> tuple[Status, str] | None:
    if reference.rows == 0:
        return "not_computable", "no reference values"
    if length and not rows:
        return "not_enough_data", "no values: every row is null"
    if rows < min_rows:
        return "not_enough_data", f"not enough data: {rows} values, needs {min_rows}"
    if reference.kind in spec.needs_spread and _constant(reference):
        return "not_computable", "not computable: constant reference"
    return None


def _constant(reference: ColumnProfile) -> bool:
    if isinstance(reference, NumericProfile):
        return reference.unique < 2 or not reference.std > 0
    return reference.unique < 2


def dataset_drift(columns: Sequence[ColumnDrift], drift_share: float) -> tuple[float | None, bool]:
    """The share of drifted columns among every monitored one, and whether it reaches
    ``drift_share``.

    ``columns`` are the monitored columns' results. A column whose test could not run
    (status not ``"ok"``, e.g. too few values) stays in the denominator as not drifted:
    a window where most columns shifted is dataset drift whatever the nulls elsewhere.
    With no column tested the share is ``None``.

    >>> ok = ColumnDrift("a", "ks", "p_value", 0.05, 0.01, True)
    >>> few = ColumnDrift("c", "ks", "p_value", 0.05, None, False, "not_enough_data")
    >>> dataset_drift([ok, ColumnDrift("b", "ks", "p_value", 0.05, 0.5, False)], 0.5)
    (0.5, True)
    >>> dataset_drift([ok, ok, few], 0.5)
    (0.6666666666666666, True)
    """
    if not any(c.status == "ok" for c in columns):
        return None, False
    share = sum(c.status == "ok" and c.drifted for c in columns) / len(columns)
    return share, share >= drift_share


def histogram(reference: ColumnProfile, current: Any, bins: int = 20, top: int = 12) -> Histogram:
    """Reference and current shares over common bins, for the report's charts.

    Numeric: ``bins`` equal-width bins over the reference's range stretched to the
    current's. Categorical: the ``top`` most frequent reference categories, then
    ``"(other)"`` for the rest (unseen current categories included). Shares are fractions
    of each side's non-missing rows; a side with none has all-zero shares. With no values
    on either side the histogram is empty.
    """
    if isinstance(reference, NumericProfile):
        return _numeric_histogram(reference, finite_values(current), bins)
    return _categorical_histogram(reference, _present(reference, current), top)


def _numeric_histogram(
    reference: NumericProfile, values: np.ndarray[Any, Any], bins: int
) -> Histogram:
    ends = [reference.min, reference.max] if reference.rows else []
    if len(values):
        ends += [float(values.min()), float(values.max())]
    if not ends:
        return Histogram(labels=[], reference=[], current=[], edges=None)
    low, high = min(ends), max(ends)
    if low == high:  # numpy's rule for an empty range
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    if not np.isfinite(edges).all():  # a range wider than float64 holds (values near 1e308)
        edges = np.linspace(low / 2, high / 2, bins + 1) * 2
    ref = weighted_counts(reference, edges) if reference.rows else np.zeros(bins)
    cur = bin_counts(values, edges)
    labels = [f"[{a:.4g}, {b:.4g})" for a, b in pairwise(edges.tolist())]
    labels[-1] = labels[-1][:-1] + "]"  # the last bin holds its right edge
    return Histogram(
        labels=labels,
        reference=_shares(ref, reference.rows),
        current=_shares(cur, len(values)),
        edges=edges.tolist(),
    )


def _categorical_histogram(
    reference: CategoricalProfile, values: np.ndarray[Any, Any], top: int
) -> Histogram:
    tally = Counter(values.tolist())
    ranking = reference.counts or dict(tally)
    labels = sorted(ranking, key=lambda k: (-ranking[k], k))[:top]
    ref = [float(reference.counts.get(k, 0)) for k in labels]
    cur = [float(tally.get(k, 0)) for k in labels]
    ref_other, cur_other = reference.rows - sum(ref), len(values) - sum(cur)
    if ref_other > 0 or cur_other > 0:
        labels, ref, cur = [*labels, OTHER], [*ref, ref_other], [*cur, cur_other]
    return Histogram(
        labels=labels,
        reference=_shares(np.asarray(ref), reference.rows),
        current=_shares(np.asarray(cur), len(values)),
    )


def _shares(counts: np.ndarray[Any, Any], rows: int) -> list[float]:
    if rows == 0:
        return [0.0] * len(counts)
    return [float(c) / rows for c in counts]
