"""Seasonal references: compare a window with the reference *at the same hours*.

Predictions follow the clock when a feature does (people engage more in the evening): a
window of 5,000 predictions made between 2 and 4 a.m. differs from a month of holdout
predictions even when nothing changed. So the profile also keeps the prediction
distribution per value of the model's clock feature (the finest one, e.g. the hour), and
a window is compared with the mix of those groups in the proportions the window holds
them. Groups with too few holdout rows, and values the holdout never had, fall back to
the whole reference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from loopml.monitor.profile import (
    ColumnProfile,
    NumericProfile,
    SeasonalProfile,
    numeric_profile,
)

__all__ = ["MIN_GROUP_ROWS", "build_seasonal", "clock_keys", "mix"]

MIN_GROUP_ROWS = 50
GROUP_POINTS = 256
_SMALL_REFERENCE = 1000  # below this the drift test is KS on the exact data: no mixing


def clock_keys(values: Any) -> np.ndarray[Any, Any]:
    """Group keys of a clock feature's values: ``13.0`` and ``13`` are both ``"13"``.

    >>> clock_keys([13.0, 2, None, "Mon"]).tolist()
    ['13', '2', None, 'Mon']
    """
    raw = np.asarray(values, dtype=object)
    out = np.empty(len(raw), dtype=object)
    for i, value in enumerate(raw):
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            out[i] = None
        elif isinstance(value, float) and value.is_integer():
            out[i] = str(int(value))
        else:
            out[i] = str(value)
    return out


def build_seasonal(
    feature: str, clock_values: Any, predictions: np.ndarray[Any, Any]
) -> SeasonalProfile | None:
    """Per clock value, a small profile of the (numeric) predictions made at it."""
    keys = clock_keys(clock_values)
    groups: dict[str, ColumnProfile] = {}
    for key in sorted({k for k in keys if k is not None}):
        mask = keys == key
        if int(mask.sum()) >= MIN_GROUP_ROWS:
            groups[key] = numeric_profile("prediction", predictions[mask], GROUP_POINTS)
    return SeasonalProfile(feature, groups) if len(groups) >= 2 else None


def mix(seasonal: SeasonalProfile, reference: ColumnProfile, clock_values: Any) -> ColumnProfile:
    """The reference a window with these clock values should look like when nothing moved.

    Falls back to ``reference`` itself when it is small (its test needs the exact data),
    not numeric, or when no window value has a group.
    """
    if not isinstance(reference, NumericProfile) or reference.rows <= _SMALL_REFERENCE:
        return reference
    keys = clock_keys(clock_values)
    present = keys[keys != None]  # noqa: E711 -- elementwise on an object array
    if len(present) == 0:
        return reference
    names, counts = np.unique(present.astype(str), return_counts=True)
    parts: list[tuple[NumericProfile, float]] = []
    for key, count in zip(names.tolist(), counts.tolist(), strict=True):
        group = seasonal.groups.get(key)
        part = group if isinstance(group, NumericProfile) and group.rows else reference
        parts.append((part, count / len(present)))
    if all(part is reference for part, _ in parts):
        return reference
    return _mixture(reference, parts)


def _mixture(
    reference: NumericProfile, parts: list[tuple[NumericProfile, float]]
) -> NumericProfile:
    values = np.concatenate([p.values for p, _ in parts])
    weights = np.concatenate([p.weights * (share / p.weights.sum()) for p, share in parts])
    order = np.argsort(values, kind="stable")
    support, inverse = np.unique(values[order], return_inverse=True)
    merged = np.asarray(np.bincount(inverse, weights=weights[order]), dtype=np.float64)
    merged *= reference.rows
    mean = float(np.average(support, weights=merged))
    std = float(np.sqrt(np.average((support - mean) ** 2, weights=merged)))
    return NumericProfile(
        name=reference.name,
        rows=reference.rows,
        missing=0,
        unique=reference.unique,
        mean=mean,
        std=std,
        min=float(support[0]),
        max=float(support[-1]),
        values=support,
        weights=merged,
        exact=False,
    )
