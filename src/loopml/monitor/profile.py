"""The reference profile: what a model version was trained on, small enough to keep.

Every registered version stores one :class:`ReferenceProfile` built at training time from
its training rows and its holdout predictions. Monitoring compares live traffic with it
instead of re-reading the training table.

Its size does not grow with the table: a numeric column keeps at most ``points`` support
points. When the column has that many distinct values or fewer, the points are the
values themselves with their counts — the column exactly (``exact=True``). Otherwise
they are ``points`` quantiles at ``(i + 0.5) / points``, each standing for
``rows / points`` rows (``exact=False``); count, mean, standard deviation, min, max and
the number of distinct values are still computed over every row. A categorical column
keeps every category's count, up to :data:`MAX_CATEGORIES` (the rest are summed into
``other_rows``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from loopml.errors import RegistryError

__all__ = [
    "DEFAULT_POINTS",
    "MAX_CATEGORIES",
    "PROFILE_FILE",
    "CategoricalProfile",
    "ColumnProfile",
    "HoldoutSample",
    "NumericProfile",
    "ReferenceProfile",
    "categorical_profile",
    "category_values",
    "numeric_profile",
    "numeric_values",
]

PROFILE_FILE = "profile.json"
PROFILE_VERSION = 1
DEFAULT_POINTS = 2048
MAX_CATEGORIES = 10_000

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
SAMPLE_ROWS = 5_000
"""Holdout rows kept with a profile to tell a window's chance variation from a drop."""


@dataclass(frozen=True, eq=False)
class HoldoutSample:
    """Up to :data:`SAMPLE_ROWS` holdout rows: the true target and what the model answered.

    ``labels`` are class codes (classification) or values (regression); ``scores`` the
    class probabilities ``(n, k)`` (binary keeps only the positive class, ``(n,)``) or the
    predicted values. Monitoring resamples them to learn how far a window of ``n``
    labelled rows strays from the holdout metric by chance alone
    (:mod:`loopml.monitor.noise`).
    """

    labels: FloatArray
    scores: FloatArray

    @property
    def rows(self) -> int:
        return int(self.labels.shape[0])

    @classmethod
    def draw(
        cls, task: str, labels: Any, scores: Any, rows: int = SAMPLE_ROWS, seed: int = 0
    ) -> HoldoutSample:
        """A seeded random subset of ``rows`` holdout rows (all of them when fewer)."""
        y = np.asarray(labels, dtype=np.float64).reshape(-1)
        s = np.asarray(scores, dtype=np.float64)
        if task == "binary" and s.ndim == 2:
            s = s[:, 1]
        if y.shape[0] > rows:
            keep = np.sort(np.random.default_rng(seed).choice(y.shape[0], rows, replace=False))
            y, s = y[keep], s[keep]
        return cls(labels=y, scores=s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": [float(v) for v in np.round(self.labels, 9)],
            "scores": np.round(self.scores, 7).tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HoldoutSample:
        return cls(
            labels=np.asarray(data["labels"], dtype=np.float64),
            scores=np.asarray(data["scores"], dtype=np.float64),
        )


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """One numeric column of the reference (see the module doc for ``exact``).

    ``values`` are sorted and distinct; ``weights[i]`` is how many reference rows
    ``values[i]`` stands for, and the weights sum to ``rows``. ``std`` is the population
    standard deviation (``ddof=0``), as Evidently normalises by.
    """

    name: str
    rows: int  # finite values
    missing: int  # nulls and non-finite values
    unique: int  # distinct finite values, counted over every row
    mean: float
    std: float
    min: float
    max: float
    values: FloatArray = field(repr=False)
    weights: FloatArray = field(repr=False)
    exact: bool = True
    clock: str | None = None  # "hour", "weekday"...: the column follows the time column
    kind: Literal["numeric"] = "numeric"

    @property
    def missing_rate(self) -> float:
        total = self.rows + self.missing
        return self.missing / total if total else 0.0

    def sample(self) -> FloatArray:
        """The reference values themselves, in sorted order (exact profiles only)."""
        if not self.exact:
            raise ValueError(f"the profile of {self.name!r} is a quantile sketch, not the data")
        return np.repeat(self.values, self.weights.astype(np.int64))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "rows": self.rows,
            "missing": self.missing,
            "unique": self.unique,
            "mean": _num(self.mean),
            "std": _num(self.std),
            "min": _num(self.min),
            "max": _num(self.max),
            "exact": self.exact,
            "clock": self.clock,
            "values": self.values.tolist(),
            "weights": self.weights.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        return cls(
            name=str(data["name"]),
            rows=int(data["rows"]),
            missing=int(data["missing"]),
            unique=int(data["unique"]),
            mean=_float(data["mean"]),
            std=_float(data["std"]),
            min=_float(data["min"]),
            max=_float(data["max"]),
            values=np.asarray(data["values"], dtype=np.float64),
            weights=np.asarray(data["weights"], dtype=np.float64),
            exact=bool(data["exact"]),
            clock=data.get("clock"),
        )


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """One categorical column of the reference: how many rows hold each category.

    Categories are the strings :func:`category_values` makes of the values, so a profile
    built from a training frame and a window read from the ledger spell them alike.
    """

    name: str
    rows: int  # non-null values
    missing: int
    counts: dict[str, int] = field(repr=False)
    other_rows: int = 0  # rows in categories beyond MAX_CATEGORIES, not listed
    clock: str | None = None  # "weekday"...: the column follows the time column
    kind: Literal["categorical"] = "categorical"

    @property
    def missing_rate(self) -> float:
        total = self.rows + self.missing
        return self.missing / total if total else 0.0

    @property
    def unique(self) -> int:
        return len(self.counts) + (1 if self.other_rows else 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "rows": self.rows,
            "missing": self.missing,
            "counts": self.counts,
            "other_rows": self.other_rows,
            "clock": self.clock,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalProfile:
        return cls(
            name=str(data["name"]),
            rows=int(data["rows"]),
            missing=int(data["missing"]),
            counts={str(k): int(v) for k, v in dict(data["counts"]).items()},
            other_rows=int(data.get("other_rows", 0)),
            clock=data.get("clock"),
        )


ColumnProfile = NumericProfile | CategoricalProfile


def numeric_values(values: Any) -> FloatArray:
    """A column as float64 with NaN for nulls (booleans count as 0 / 1).

    >>> numeric_values([1, None, 2.5]).tolist()
    [1.0, nan, 2.5]
    """
    series = pd.Series(values, copy=False)
    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype("Float64")
    converted = pd.to_numeric(series, errors="coerce")
    return np.asarray(converted.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def category_values(values: Any, missing: Sequence[str] = ()) -> np.ndarray[Any, Any]:
    """A column as an object array of ``str`` categories with ``None`` for nulls.

    ``missing`` lists spellings that also mean null (the feature pipeline's marker).

    >>> category_values(["a", None, 3, True, "__missing__"], missing=["__missing__"]).tolist()
    ['a', None, '3', 'True', None]
    """
    raw = pd.Series(values, copy=False, dtype=object)
    absent = raw.isna().to_numpy(dtype=bool, copy=True)
    # Converting values that are strings already is most of the cost: skip it then.
    if pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty"):
        text = raw.to_numpy(dtype=object, copy=True)
    else:
        text = raw.astype(str).to_numpy(dtype=object, copy=True)
    if missing:
        absent |= np.isin(text, list(missing))
    text[absent] = None
    return text


def numeric_profile(name: str, values: Any, points: int | None = DEFAULT_POINTS) -> NumericProfile:
    """Profile one numeric column; ``points=None`` keeps every distinct value (exact).

    >>> p = numeric_profile("x", [3.0, 1.0, 1.0, None, float("inf")])
    >>> p.rows, p.missing, p.unique, p.values.tolist(), p.weights.tolist(), p.exact
    (3, 2, 2, [1.0, 3.0], [2.0, 1.0], True)
    """
    column = numeric_values(values)
    finite = column[np.isfinite(column)]
    missing = len(column) - len(finite)
    if len(finite) == 0:
        empty = np.empty(0, dtype=np.float64)
        nan = math.nan
        return NumericProfile(name, 0, missing, 0, nan, nan, nan, nan, empty, empty)
    distinct, counts = np.unique(finite, return_counts=True)
    exact = points is None or len(distinct) <= points
    if exact:
        support, weights = distinct, counts.astype(np.float64)
    else:
        assert points is not None
        levels = (np.arange(points, dtype=np.float64) + 0.5) / points
        support = np.quantile(np.sort(finite), levels, method="inverted_cdf")
        weights = np.full(points, len(finite) / points)
    return NumericProfile(
        name=name,
        rows=len(finite),
        missing=missing,
        unique=len(distinct),
        mean=float(np.mean(finite)),
        std=float(np.std(finite)),
        min=float(distinct[0]),
        max=float(distinct[-1]),
        values=np.asarray(support, dtype=np.float64),
        weights=weights,
        exact=exact,
    )


def categorical_profile(
    name: str, values: Any, missing: Sequence[str] = (), max_categories: int = MAX_CATEGORIES
) -> CategoricalProfile:
    """Profile one categorical column (see :func:`category_values` for ``missing``).

    >>> p = categorical_profile("c", ["a", "b", "a", None])
    >>> p.rows, p.missing, p.counts
    (3, 1, {'a': 2, 'b': 1})
    """
    column = category_values(values, missing)
    present = column[column != None]  # noqa: E711 -- elementwise on an object array
    counts = pd.Series(present, dtype=object).value_counts(sort=True)
    kept = counts.iloc[:max_categories]
    return CategoricalProfile(
        name=name,
        rows=len(present),
        missing=len(column) - len(present),
        counts={str(k): int(v) for k, v in kept.items()},
        other_rows=int(counts.iloc[max_categories:].sum()),
    )


@dataclass(frozen=True, eq=False)
class SeasonalProfile:
    """A column's reference per value of a clock feature (e.g. predictions per hour).

    A window's expected distribution is the mix of the groups in the proportions the
    window holds them: a window of night hours is compared with the reference's night.
    """

    feature: str
    groups: dict[str, ColumnProfile] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "groups": {k: v.to_dict() for k, v in self.groups.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeasonalProfile:
        groups = {str(k): column_from_dict(v) for k, v in dict(data["groups"]).items()}
        return cls(feature=str(data["feature"]), groups=groups)


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """The whole reference of one model version.

    ``prediction`` profiles what the model answered on the holdout (the positive-class
    probability for binary, the predicted class for multiclass, the value for
    regression); ``label`` the holdout's true target. ``calibration`` is what
    confidence-based performance estimation needs (classification only), as written by
    :mod:`loopml.monitor.performance`.
    """

    model: str
    task: str
    target: str
    classes: tuple[str, ...]
    features: tuple[ColumnProfile, ...]
    prediction: ColumnProfile
    label: ColumnProfile
    holdout_metrics: dict[str, float]
    holdout_rows: int
    train_rows: int
    points: int | None
    calibration: dict[str, Any] | None = None
    created_at: str = ""
    prediction_by: SeasonalProfile | None = None
    version: int = PROFILE_VERSION
    threshold: float | None = None
    """A binary version's decision threshold: realized and estimated label metrics are
    computed at it, as its holdout metrics were."""
    holdout_sample: HoldoutSample | None = None
    """Holdout rows to measure chance variation with (None in profiles written before
    loopml kept them: drops are then judged by their threshold alone)."""

    def feature(self, name: str) -> ColumnProfile:
        for column in self.features:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "model": self.model,
            "task": self.task,
            "target": self.target,
            "classes": list(self.classes),
            "created_at": self.created_at,
            "points": self.points,
            "train_rows": self.train_rows,
            "holdout_rows": self.holdout_rows,
            "holdout_metrics": {k: _num(v) for k, v in self.holdout_metrics.items()},
            "features": [c.to_dict() for c in self.features],
            "prediction": self.prediction.to_dict(),
            "label": self.label.to_dict(),
            "calibration": self.calibration,
            "prediction_by": None if self.prediction_by is None else self.prediction_by.to_dict(),
            "threshold": self.threshold,
            "holdout_sample": None
            if self.holdout_sample is None
            else self.holdout_sample.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        found = int(data.get("version", 0))
        if found > PROFILE_VERSION:
            raise RegistryError(
                f"the reference profile has format version {found}; this loopml reads "
                f"{PROFILE_VERSION}",
                fix="upgrade loopml to monitor this model version",
            )
        return cls(
            model=str(data["model"]),
            task=str(data["task"]),
            target=str(data["target"]),
            classes=tuple(str(c) for c in data["classes"]),
            features=tuple(column_from_dict(c) for c in data["features"]),
            prediction=column_from_dict(data["prediction"]),
            label=column_from_dict(data["label"]),
            holdout_metrics={k: _float(v) for k, v in dict(data["holdout_metrics"]).items()},
            holdout_rows=int(data["holdout_rows"]),
            train_rows=int(data["train_rows"]),
            points=None if data.get("points") is None else int(data["points"]),
            calibration=data.get("calibration"),
            prediction_by=None
            if data.get("prediction_by") is None
            else SeasonalProfile.from_dict(data["prediction_by"]),
            created_at=str(data.get("created_at", "")),
            version=found,
            threshold=None if data.get("threshold") is None else float(data["threshold"]),
            holdout_sample=None
            if data.get("holdout_sample") is None
            else HoldoutSample.from_dict(data["holdout_sample"]),
        )

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(
                "the reference profile is unreadable",
                detail=f"{type(exc).__name__}: {exc}",
                fix="rebuild it with 'loopml monitor profile VERSION'",
            ) from exc


def column_from_dict(data: Mapping[str, Any]) -> ColumnProfile:
    if data.get("kind") == "numeric":
        return NumericProfile.from_dict(data)
    if data.get("kind") == "categorical":
        return CategoricalProfile.from_dict(data)
    raise ValueError(f"unknown column profile kind {data.get('kind')!r}")


def _num(value: float) -> float | None:
    """JSON has no NaN: a value that is not finite is written as null."""
    return float(value) if math.isfinite(value) else None


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)
