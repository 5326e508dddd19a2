"""What monitoring computes, as plain typed values: per column, per window, per run.

Every result serialises to JSON with :meth:`to_dict` (no NaN: a value that cannot be
computed is ``None`` with a ``status`` and a ``reason`` saying why) and is read back with
``from_dict``: ``WindowReport.from_dict(report.to_dict()).to_dict() == report.to_dict()``,
so a stored window is the same typed object it was written as. The JSON report, the HTML
report, the Prometheus gauges and the alert rules all read these objects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "ColumnDrift",
    "FeatureReport",
    "Histogram",
    "PerformanceReport",
    "Status",
    "WindowReport",
]

Status = Literal["ok", "not_enough_data", "not_computable"]


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift test in one window.

    ``statistic`` is a p-value for ``kind == "p_value"`` tests (drift when it is below
    ``threshold``) and a distance for ``kind == "distance"`` tests (drift when it reaches
    ``threshold``). When ``status`` is not ``"ok"``, ``statistic`` is ``None``,
    ``drifted`` is ``False`` and ``reason`` says why, e.g. ``"not enough data: 3 rows,
    the test needs 30"`` or ``"not computable: constant reference"``.
    """

    name: str
    test: str
    kind: Literal["p_value", "distance"]
    threshold: float
    statistic: float | None
    drifted: bool
    status: Status = "ok"
    reason: str | None = None
    reference_rows: int = 0
    current_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _clean_dict(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnDrift:
        return cls(
            name=str(data["name"]),
            test=str(data["test"]),
            kind=data["kind"],
            threshold=_number(data["threshold"]),
            statistic=_optional(data.get("statistic")),
            drifted=bool(data["drifted"]),
            status=data.get("status", "ok"),
            reason=data.get("reason"),
            reference_rows=int(data.get("reference_rows", 0)),
            current_rows=int(data.get("current_rows", 0)),
        )


@dataclass(frozen=True)
class Histogram:
    """Reference and current shares over the same bins, for the report's charts.

    Numeric columns: ``edges`` has one more entry than the shares, and ``labels`` names
    each bin. Categorical columns: ``edges`` is ``None`` and ``labels`` are categories
    (the most frequent ones, then ``"(other)"``). Shares are fractions of non-null rows.
    """

    labels: list[str]
    reference: list[float]
    current: list[float]
    edges: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return _clean_dict(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        edges = data.get("edges")
        return cls(
            labels=[str(label) for label in data["labels"]],
            reference=[_number(v) for v in data["reference"]],
            current=[_number(v) for v in data["current"]],
            edges=None if edges is None else [_number(v) for v in edges],
        )


@dataclass(frozen=True)
class FeatureReport:
    """Everything about one input column (or the prediction) in one window."""

    name: str
    kind: Literal["numeric", "categorical"]
    drift: ColumnDrift
    missing_rate: float | None  # None when the window has no rows
    reference_missing_rate: float
    unseen_rate: float | None = None  # categorical: share of values never seen in training
    unseen_examples: list[str] = field(default_factory=list)
    histogram: Histogram | None = None

    def to_dict(self) -> dict[str, Any]:
        out = _clean_dict(asdict(self))
        out["drift"] = self.drift.to_dict()
        out["histogram"] = None if self.histogram is None else self.histogram.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureReport:
        histogram = data.get("histogram")
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            drift=ColumnDrift.from_dict(data["drift"]),
            missing_rate=_optional(data.get("missing_rate")),
            reference_missing_rate=_number(data["reference_missing_rate"]),
            unseen_rate=_optional(data.get("unseen_rate")),
            unseen_examples=[str(e) for e in data.get("unseen_examples") or []],
            histogram=None if histogram is None else Histogram.from_dict(histogram),
        )


@dataclass(frozen=True)
class PerformanceReport:
    """Quality in one window: realized where labels arrived, estimated where they did not.

    ``slices`` holds ``{"column", "value", "rows", "metrics"}`` records of realized
    metrics per slice. ``estimated`` comes from confidence-based performance estimation
    (classification only) over every row of the window, labelled or not, and is always
    reported as an estimate. ``reference`` is the version's holdout metrics.

    ``realized_noise`` / ``estimated_noise`` are the drops (on the gate's scale) a window
    of this many labelled / all rows shows by chance at the 99 % level
    (:mod:`loopml.monitor.noise`); empty when the profile has no holdout sample or the
    window too few rows. ``realized_z`` is each realized drop in standard deviations of
    chance. ``absent_classes`` are the model's classes none of the window's labels hold:
    their per-class metrics are undefined and macro averages leave them out.
    """

    labelled_rows: int
    realized: dict[str, float | None]
    estimated: dict[str, float | None]
    reference: dict[str, float | None]
    slices: list[dict[str, Any]] = field(default_factory=list)
    status: Status = "ok"
    reason: str | None = None
    realized_noise: dict[str, float | None] = field(default_factory=dict)
    estimated_noise: dict[str, float | None] = field(default_factory=dict)
    realized_z: dict[str, float | None] = field(default_factory=dict)
    absent_classes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _clean_dict(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerformanceReport:
        return cls(
            labelled_rows=int(data["labelled_rows"]),
            realized=_values(data.get("realized")),
            estimated=_values(data.get("estimated")),
            reference=_values(data.get("reference")),
            slices=[dict(record) for record in data.get("slices") or []],
            status=data.get("status", "ok"),
            reason=data.get("reason"),
            realized_noise=_values(data.get("realized_noise")),
            estimated_noise=_values(data.get("estimated_noise")),
            realized_z=_values(data.get("realized_z")),
            absent_classes=[str(c) for c in data.get("absent_classes") or []],
        )


@dataclass(frozen=True)
class WindowReport:
    """One window of one model version and arm.

    ``metrics`` is the flat ``{name: value}`` view that alert rules and gauges read, e.g.
    ``rows``, ``drift_share``, ``dataset_drift``, ``prediction_drift``,
    ``drift.<feature>``, ``drift_score.<feature>``, ``missing_rate.<feature>``,
    ``missing_increase.<feature>``, ``unseen_rate.<feature>``, ``labelled_rows``,
    ``realized.<metric>``, ``estimated.<metric>``, ``realized_drop.<metric>``,
    ``estimated_drop.<metric>`` (drops on the gate's scale), ``realized_noise.<metric>``
    / ``estimated_noise.<metric>`` (the drop chance gives at the window's size), and
    ``realized_drop`` / ``estimated_drop`` / ``realized_noise`` / ``estimated_noise`` /
    ``realized_z`` for the metric the model is gated by, and ``performance_cusum`` (the
    evidence of a sustained drop across windows, :mod:`loopml.monitor.cusum`). Metrics
    that cannot be computed are absent.

    ``drift_share`` is over every monitored feature (``monitored_features``: those with
    drift testing on that do not follow the clock); a monitored feature with too few
    values to test is in ``untested_features`` and counts as not drifted.
    ``monitored_features`` is 0 in windows stored before it was recorded.
    """

    model: str
    version: str
    arm: str
    window: str  # the window spec, e.g. "5000 rows" or "1h"
    index: int  # 0, 1, ... in time order within this version and arm
    start_ts: float
    end_ts: float
    rows: int
    status: Status
    reason: str | None
    features: list[FeatureReport]
    prediction: FeatureReport | None
    drift_share: float | None
    drifted_features: list[str]
    dataset_drift: bool
    performance: PerformanceReport
    metrics: dict[str, float]
    complete: bool = True  # False for the newest window of a run that is still filling
    monitored_features: int = 0  # the features ``drift_share`` is a share of (0: unknown)
    untested_features: list[str] = field(default_factory=list)  # monitored, not tested

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "arm": self.arm,
            "window": self.window,
            "index": self.index,
            "start_ts": self.start_ts,
            "end_ts": self.end_ts,
            "rows": self.rows,
            "status": self.status,
            "reason": self.reason,
            "complete": self.complete,
            "monitored_features": self.monitored_features,
            "untested_features": list(self.untested_features),
            "drift_share": _value(self.drift_share),
            "drifted_features": list(self.drifted_features),
            "dataset_drift": self.dataset_drift,
            "features": [f.to_dict() for f in self.features],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "performance": self.performance.to_dict(),
            "metrics": {k: v for k, v in self.metrics.items() if math.isfinite(v)},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowReport:
        """The report :meth:`to_dict` wrote (a stored window, a JSON report's window)."""
        prediction = data.get("prediction")
        return cls(
            model=str(data["model"]),
            version=str(data["version"]),
            arm=str(data["arm"]),
            window=str(data["window"]),
            index=int(data["index"]),
            start_ts=_number(data["start_ts"]),
            end_ts=_number(data["end_ts"]),
            rows=int(data["rows"]),
            status=data["status"],
            reason=data.get("reason"),
            features=[FeatureReport.from_dict(f) for f in data.get("features") or []],
            prediction=None if prediction is None else FeatureReport.from_dict(prediction),
            drift_share=_optional(data.get("drift_share")),
            drifted_features=[str(name) for name in data.get("drifted_features") or []],
            dataset_drift=bool(data.get("dataset_drift", False)),
            performance=PerformanceReport.from_dict(data["performance"]),
            metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
            complete=bool(data.get("complete", True)),
            monitored_features=int(data.get("monitored_features", 0)),
            untested_features=[str(name) for name in data.get("untested_features") or []],
        )


def _number(value: Any) -> float:
    """A float field read back: ``None`` was a non-finite value (JSON has no NaN)."""
    return math.nan if value is None else float(value)


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def _values(data: Mapping[str, Any] | None) -> dict[str, float | None]:
    return {str(k): _optional(v) for k, v in (data or {}).items()}


def _value(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _clean_dict(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _clean(v) for k, v in data.items()}


def _clean(data: Any) -> Any:
    """Non-finite floats become ``None`` all the way down (JSON has no NaN)."""
    if isinstance(data, float):
        return _value(data)
    if isinstance(data, dict):
        return {k: _clean(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_clean(v) for v in data]
    return data
