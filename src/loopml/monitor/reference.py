"""Build a version's :class:`~loopml.monitor.profile.ReferenceProfile` at training time.

The features are profiled from the training rows as the feature pipeline sees them
(:func:`loopml.features.pipeline.feature_frame`), so categories are spelled the way the
server records them in the ledger. The prediction and label distributions and the
calibration come from the holdout, which the model did not train on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from loopml.data.contract import Contract
from loopml.features.pipeline import MISSING
from loopml.monitor.calibration import fit_calibration
from loopml.monitor.profile import (
    DEFAULT_POINTS,
    ColumnProfile,
    HoldoutSample,
    ReferenceProfile,
    categorical_profile,
    numeric_profile,
)
from loopml.monitor.seasonal import build_seasonal

__all__ = [
    "PREDICTION",
    "PROBABILITY_DECIMALS",
    "build_profile",
    "clock_of",
    "positive_probability",
    "prediction_values",
]

PREDICTION = "prediction"
"""The name of the prediction column in profiles and windows."""

PROBABILITY_DECIMALS = 6
"""Prediction drift compares positive-class probabilities to this many decimals. The
model serves in float32 (ONNX) and was profiled in float64: a confident model's tiny
probabilities (1e-9) are exactly 0 when served, and without rounding a test on the
served values sees a pile-up at 0 the reference never had."""

CLOCK_MATCH = 0.99
"""Share of rows a feature must equal a part of the time column in to follow the clock."""

Array = np.ndarray[Any, Any]


def prediction_values(task: str, classes: tuple[str, ...] | list[str], scores: Array) -> Array:
    """What prediction drift watches: the positive-class probability (binary), the
    predicted class (multiclass) or the predicted value (regression).

    >>> prediction_values("binary", ("0", "1"), np.array([[0.3, 0.7]])).tolist()
    [0.7]
    >>> prediction_values("multiclass", ("a", "b", "c"), np.array([[0.2, 0.5, 0.3]])).tolist()
    ['b']
    """
    if task == "regression":
        return np.asarray(scores, dtype=np.float64).reshape(-1)
    probabilities = np.asarray(scores, dtype=np.float64)
    if task == "binary":
        return positive_probability(probabilities)
    names: Array = np.asarray(list(classes), dtype=object)
    chosen: Array = names[np.argmax(probabilities, axis=1)]
    return chosen


def positive_probability(probabilities: Array) -> Array:
    """The positive class's probability as prediction drift compares it, in float64 or
    float32 alike (see :data:`PROBABILITY_DECIMALS`).

    >>> positive_probability(np.array([[1.0, 3e-10], [0.25, 0.75]])).tolist()
    [0.0, 0.75]
    """
    positive = np.asarray(probabilities, dtype=np.float64)[:, 1]
    rounded: Array = np.round(positive, PROBABILITY_DECIMALS)
    return rounded


def prediction_profile(task: str, name: str, values: Array, points: int | None) -> ColumnProfile:
    if task == "multiclass":
        return categorical_profile(name, values)
    return numeric_profile(name, values, points)


def build_profile(
    contract: Contract,
    train_features: pd.DataFrame,
    holdout_scores: Array,
    y_holdout: Array,
    holdout_metrics: Mapping[str, float],
    *,
    model: str,
    points: int | None = DEFAULT_POINTS,
    times: pd.Series | None = None,
    holdout_features: pd.DataFrame | None = None,
    threshold: float | None = None,
) -> ReferenceProfile:
    """Profile the training features, the holdout predictions and labels.

    ``train_features`` is ``feature_frame(train, contract)``; ``holdout_scores`` are class
    probabilities (n, k) or regression values; ``y_holdout`` are class codes (index into
    ``contract.classes``) or values. ``points=None`` keeps every distinct numeric value.
    ``threshold`` is a binary version's decision threshold. ``times`` (the training rows'
    time column) lets features that follow the clock be
    recognised (see :func:`clock_of`); with ``holdout_features`` too, the predictions
    are also profiled per value of the finest clock feature (see
    :mod:`loopml.monitor.seasonal`).
    """
    classes = tuple(contract.classes)
    features = _feature_profiles(contract, train_features, points, _clock_parts(times))
    task = contract.task
    predicted = prediction_values(task, classes, holdout_scores)
    prediction = prediction_profile(task, PREDICTION, predicted, points)
    seasonal = None
    clock = _finest_clock(features, holdout_features)
    if clock is not None and holdout_features is not None and task != "multiclass":
        seasonal = build_seasonal(clock, holdout_features[clock].to_numpy(object), predicted)
    label, calibration = _label_profile(contract, holdout_scores, y_holdout, points)
    return ReferenceProfile(
        model=model,
        task=task,
        target=contract.target,
        classes=classes,
        features=tuple(features),
        prediction=prediction,
        label=label,
        holdout_metrics={k: float(v) for k, v in holdout_metrics.items()},
        holdout_rows=len(holdout_scores),
        train_rows=len(train_features),
        points=points,
        calibration=calibration,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        prediction_by=seasonal,
        threshold=threshold if task == "binary" else None,
        holdout_sample=HoldoutSample.draw(task, y_holdout, holdout_scores),
    )


def _feature_profiles(
    contract: Contract,
    train_features: pd.DataFrame,
    points: int | None,
    clocks: dict[str, pd.Series],
) -> list[ColumnProfile]:
    """Each contract feature the training rows carry, marked when it follows the clock."""
    features: list[ColumnProfile] = []
    for spec in contract.features:
        if spec.name not in train_features.columns:
            continue
        column = train_features[spec.name]
        profiled: ColumnProfile
        if spec.is_numeric:
            profiled = numeric_profile(spec.name, column, points)
        else:
            profiled = categorical_profile(spec.name, column, missing=[MISSING])
        clock = clock_of(column, clocks)
        features.append(dataclasses.replace(profiled, clock=clock) if clock else profiled)
    return features


def _label_profile(
    contract: Contract, holdout_scores: Array, y_holdout: Array, points: int | None
) -> tuple[ColumnProfile, dict[str, Any] | None]:
    """The holdout labels' distribution and, for classifiers, the scores' calibration."""
    if contract.task == "regression":
        return numeric_profile(contract.target, y_holdout, points), None
    names = np.asarray(tuple(contract.classes), dtype=object)[np.asarray(y_holdout, dtype=np.int64)]
    label = categorical_profile(contract.target, names)
    return label, fit_calibration(contract.task, holdout_scores, np.asarray(y_holdout))


def _finest_clock(features: list[ColumnProfile], holdout: pd.DataFrame | None) -> str | None:
    """The clock feature with the most distinct values (the hour before the weekday)."""
    clocks = [f for f in features if f.clock and holdout is not None and f.name in holdout]
    return max(clocks, key=lambda f: f.unique).name if clocks else None


def _clock_parts(times: pd.Series | None) -> dict[str, pd.Series]:
    """Parts of the time column a feature may be derived from, by name."""
    if times is None:
        return {}
    stamps = pd.to_datetime(pd.Series(times), errors="coerce", utc=True)
    if stamps.notna().sum() == 0:
        return {}
    dt = stamps.dt
    weekday = dt.day_of_week.astype("float64")
    return {
        "hour": dt.hour.astype("float64"),
        "weekday": weekday,
        "weekday (Sunday = 0)": (weekday + 1) % 7,
        "weekday (Monday = 1)": weekday + 1,
        "day of month": dt.day.astype("float64"),
        "month": dt.month.astype("float64"),
        "weekday name": dt.day_name().astype(object),
        "weekday abbreviation": dt.day_name().str[:3].astype(object),
    }


def clock_of(column: pd.Series, parts: dict[str, pd.Series]) -> str | None:
    """Which part of the time column a feature is (``"hour"``, ``"weekday"``...), if any.

    Such a feature's distribution in a window is set by the window's span (a 2-hour
    window holds two hours of the day), not by the world, so drift tests on it always
    fire: monitoring skips them unless the project file asks for a test.

    >>> ts = pd.Series(pd.date_range("2026-01-05", periods=48, freq="h"))
    >>> clock_of(pd.Series(ts.dt.hour.astype(float)), _clock_parts(ts))
    'hour'
    >>> clock_of(pd.Series(np.arange(48.0)), _clock_parts(ts)) is None
    True
    """
    values = column.reset_index(drop=True)
    numeric = pd.api.types.is_numeric_dtype(values.dtype)
    for name, part in parts.items():
        if numeric != pd.api.types.is_numeric_dtype(part.dtype) or part.nunique() < 2:
            continue
        both = values.notna() & part.reset_index(drop=True).notna()
        if both.sum() == 0:
            continue
        same = (values[both].astype(part.dtype) == part.reset_index(drop=True)[both]).mean()
        if same >= CLOCK_MATCH:
            return name
    return None
