"""Evaluation on the holdout: metrics, bootstrap confidence intervals, per-slice metrics.

:func:`evaluate` turns holdout labels and predictions into an :class:`Evaluation`, a plain
value that round-trips through JSON (it is stored with each run in MLflow) and that
:func:`compare` uses to decide whether a new model beats an old one (``loopml promote``).

Bootstrap: every resample draws, within each class separately (stratified, so every
resample keeps both classes and AUC stays defined), as many rows as the class has, with
replacement. A resample is represented by how many times each row was drawn and passed to
the metrics as row weights — exactly equivalent to copying the rows, without the copies.
The holdout is sorted by score once, so the rank metrics do not re-sort it per resample;
200 resamples of a 200k-row binary holdout take a few seconds on one core, and the
intervals are those of the full holdout (no subsampling). Intervals are the 2.5th and
97.5th percentiles of each metric over the resamples (NaN resamples ignored).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from loopml.config import Task
from loopml.errors import ConfigError, TrackingError, TrainingError
from loopml.train.metrics import (
    FloatArray,
    check_predictions,
    compute_metrics,
    decisions,
    metrics_for,
)

MISSING = "(missing)"
Progress = Callable[[int, int], None]
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Interval:
    """A 95% percentile bootstrap confidence interval."""

    low: float
    high: float


@dataclass(frozen=True)
class SliceResult:
    """Metrics on the holdout rows where ``column == value`` (``value`` is a display string)."""

    column: str
    value: str
    rows: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class Evaluation:
    """A model's evaluation on one holdout."""

    task: Task
    rows: int
    metrics: dict[str, float]
    intervals: dict[str, Interval] = field(default_factory=dict)
    slices: tuple[SliceResult, ...] = ()
    classes: tuple[str, ...] = ()
    threshold: float | None = None
    """The decision threshold the label metrics of a binary model were computed at."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN becomes ``None``); :meth:`from_dict` reads it back."""
        return {
            "version": _FORMAT_VERSION,
            "task": self.task,
            "rows": self.rows,
            "classes": list(self.classes),
            "threshold": self.threshold,
            "metrics": _encode(self.metrics),
            "intervals": {
                name: [_encode_num(iv.low), _encode_num(iv.high)]
                for name, iv in self.intervals.items()
            },
            "slices": [
                {
                    "column": s.column,
                    "value": s.value,
                    "rows": s.rows,
                    "metrics": _encode(s.metrics),
                }
                for s in self.slices
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Rebuild an evaluation written by :meth:`to_dict`."""
        try:
            if data["task"] not in ("binary", "multiclass", "regression"):
                raise ValueError(f"unknown task {data['task']!r}")
            return cls(
                task=data["task"],
                rows=int(data["rows"]),
                metrics=_decode(data["metrics"]),
                intervals={
                    name: Interval(_decode_num(low), _decode_num(high))
                    for name, (low, high) in data.get("intervals", {}).items()
                },
                slices=tuple(
                    SliceResult(
                        str(s["column"]), str(s["value"]), int(s["rows"]), _decode(s["metrics"])
                    )
                    for s in data.get("slices", [])
                ),
                classes=tuple(str(c) for c in data.get("classes", [])),
                threshold=None if data.get("threshold") is None else float(data["threshold"]),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise TrackingError(
                "a stored evaluation is malformed",
                detail=f"{type(exc).__name__}: {exc}",
                fix="re-run 'loopml train' to evaluate and log the model again",
            ) from exc


def _encode_num(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _decode_num(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _encode(metrics: Mapping[str, float]) -> dict[str, float | None]:
    return {name: _encode_num(v) for name, v in metrics.items()}


def _decode(metrics: Mapping[str, float | None]) -> dict[str, float]:
    return {str(name): _decode_num(v) for name, v in metrics.items()}


def evaluate(
    task: Task,
    y_true: NDArray[np.generic],
    pred: NDArray[np.generic],
    *,
    classes: Sequence[str],
    frame: pd.DataFrame | None,
    slice_columns: Sequence[str],
    bootstrap: int,
    seed: int,
    min_slice_rows: int = 200,
    max_slices_per_column: int = 20,
    progress: Progress | None = None,
    threshold: float | None = None,
) -> Evaluation:
    """Evaluate predictions on the holdout.

    ``frame`` holds the holdout's raw columns, row-aligned with ``y_true``, for slicing;
    ``bootstrap`` is the number of resamples (0 or 1: no intervals). ``progress`` is called
    with ``(done, total)`` after each resample. A binary model's label metrics decide at
    its ``threshold`` (default 0.5).

    >>> import numpy as np
    >>> ev = evaluate("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]),
    ...               classes=[], frame=None, slice_columns=[], bootstrap=0, seed=0)
    >>> round(ev.metrics["mae"], 4)
    0.3333
    """
    n_classes = len(classes)
    y, p = check_predictions(task, y_true, pred, n_classes)
    _check_finite(p)
    metrics = compute_metrics(task, y, p, n_classes, threshold=threshold)
    rng = np.random.default_rng(seed)
    intervals = bootstrap_intervals(
        task, y, p, n_classes=n_classes, resamples=bootstrap, rng=rng, progress=progress,
        threshold=threshold,
    )  # fmt: skip
    slices: tuple[SliceResult, ...] = ()
    if frame is not None and slice_columns:
        slices = slice_metrics(
            task,
            y,
            p,
            n_classes=n_classes,
            frame=frame,
            columns=slice_columns,
            min_rows=min_slice_rows,
            max_per_column=max_slices_per_column,
            threshold=threshold,
        )
    used = threshold if task == "binary" else None
    return Evaluation(task, int(y.shape[0]), metrics, intervals, slices, tuple(classes), used)


def _check_finite(pred: FloatArray) -> None:
    bad = ~np.isfinite(pred)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1) if bad.ndim == 2 else bad)
        raise TrainingError(
            f"the model produced {rows.size} non-finite predictions on the holdout",
            detail=f"holdout rows {', '.join(str(r) for r in rows[:5])}"
            + (" ..." if rows.size > 5 else ""),
            fix="check the features for infinite values or extreme magnitudes",
        )


def bootstrap_intervals(
    task: Task,
    y: NDArray[np.generic],
    pred: FloatArray,
    *,
    n_classes: int,
    resamples: int,
    rng: np.random.Generator,
    progress: Progress | None = None,
    threshold: float | None = None,
) -> dict[str, Interval]:
    """Percentile 95% intervals for every metric of ``task`` (empty if ``resamples < 2``)."""
    if resamples < 2 or y.shape[0] == 0:
        return {}
    if task == "binary":
        # Sort once by score: the rank metrics' stable sort is then almost free.
        order = np.argsort(-pred[:, 1], kind="stable")
        y, pred = y[order], pred[order]
    if task == "regression":
        strata = [np.arange(y.shape[0])]
    else:
        strata = [idx for idx in (np.flatnonzero(y == c) for c in range(n_classes)) if idx.size]
    specs = metrics_for(task)
    decided = pred if task == "regression" else decisions(pred, threshold)
    inputs = [pred if spec.needs_proba else decided for spec in specs]
    values = np.empty((resamples, len(specs)))
    for r in range(resamples):
        draws = np.concatenate([idx[rng.integers(0, idx.size, idx.size)] for idx in strata])
        weight = np.bincount(draws, minlength=y.shape[0]).astype(np.float64)
        values[r] = [spec.fn(y, given, weight) for spec, given in zip(specs, inputs, strict=True)]
        if progress is not None:
            progress(r + 1, resamples)
    return {spec.name: percentile_interval(values[:, j]) for j, spec in enumerate(specs)}


def percentile_interval(values: FloatArray) -> Interval:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Interval(float("nan"), float("nan"))
    low, high = np.percentile(finite, [2.5, 97.5])
    return Interval(float(low), float(high))


def slice_metrics(
    task: Task,
    y: NDArray[np.generic],
    pred: FloatArray,
    *,
    n_classes: int,
    frame: pd.DataFrame,
    columns: Sequence[str],
    min_rows: int,
    max_per_column: int,
    threshold: float | None = None,
) -> tuple[SliceResult, ...]:
    """Metrics per value of each slice column: its most frequent values with enough rows."""
    if len(frame) != y.shape[0]:
        raise ValueError(f"frame has {len(frame)} rows but there are {y.shape[0]} labels")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"slice column(s) {', '.join(map(repr, missing))} not in the holdout",
            detail=f"available columns: {', '.join(map(str, frame.columns))}",
            fix="fix the slice columns in loopml.yaml",
        )
    results: list[SliceResult] = []
    for column in columns:
        for label, mask in slice_rows(frame[column], min_rows, max_per_column):
            metrics = compute_metrics(task, y[mask], pred[mask], n_classes, threshold=threshold)
            results.append(SliceResult(str(column), label, int(mask.sum()), metrics))
    return tuple(results)


def slice_rows(
    series: pd.Series, min_rows: int, max_slices: int
) -> list[tuple[str, NDArray[np.bool_]]]:
    """(display value, row mask) for the most frequent values with at least ``min_rows``."""
    counts = series.value_counts(dropna=False)
    counts = counts[counts >= max(min_rows, 1)].head(max_slices)
    is_missing = series.isna().to_numpy()
    values = series.to_numpy()
    out: list[tuple[str, NDArray[np.bool_]]] = []
    for value in counts.index:
        if pd.isna(value):
            out.append((MISSING, is_missing))
        else:
            out.append((str(value), (values == value) & ~is_missing))
    return out


def model_scores(pipeline: Any, features: pd.DataFrame, task: Task) -> FloatArray:
    """What :func:`evaluate` takes: class probabilities (n, k), or values for regression."""
    if task == "regression":
        return np.asarray(pipeline.predict(features), dtype=np.float64)
    return np.asarray(pipeline.predict_proba(features), dtype=np.float64)
