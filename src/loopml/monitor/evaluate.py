"""One window against the reference profile: drift, data quality, performance, metrics.

Pure: a decoded window and the profile in, a :class:`~loopml.monitor.results.WindowReport`
out. The flat ``metrics`` of the report are what alert rules and gauges read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from loopml.config import DriftTestConfig, MonitorConfig
from loopml.monitor.drift import column_drift, histogram
from loopml.monitor.performance import drops, performance_report
from loopml.monitor.profile import CategoricalProfile, ColumnProfile, ReferenceProfile
from loopml.monitor.results import ColumnDrift, FeatureReport, WindowReport
from loopml.monitor.seasonal import mix
from loopml.monitor.windows import DecodedWindow, WindowData

__all__ = ["evaluate_window", "flat_metrics"]

UNSEEN_EXAMPLES = 5


def evaluate_window(
    profile: ReferenceProfile,
    window: WindowData,
    decoded: DecodedWindow,
    config: MonitorConfig,
    spec: str,
    primary: str | None = None,
) -> WindowReport:
    """Everything monitoring says about one window.

    ``primary`` is the metric the model is judged by (the gate metric); its drops are
    also reported unsuffixed, as ``realized_drop`` and ``estimated_drop``.
    """
    rows = window.rows
    enough = rows >= config.min_rows
    features = [_feature(profile, column, decoded, config, rows) for column in profile.features]
    prediction = _column_report(
        _prediction_reference(profile, decoded, config),
        decoded.prediction,
        config.prediction,
        config.min_rows,
    )
    tested = [f for f in features if f.drift.status == "ok"]
    drifted = [f.name for f in tested if f.drift.drifted]
    share = len(drifted) / len(tested) if tested else None
    performance = performance_report(
        profile.task,
        profile.classes,
        profile.calibration,
        profile.holdout_metrics,
        decoded.scores,
        decoded.labels,
        frame=_slice_frame(decoded),
        slice_columns=list(decoded.slices),
        threshold=profile.threshold,
    )
    report = WindowReport(
        model=profile.model,
        version=window.version,
        arm=window.arm,
        window=spec,
        index=window.index,
        start_ts=window.start_ts,
        end_ts=window.end_ts,
        rows=rows,
        status="ok" if enough else "not_enough_data",
        reason=None if enough else f"not enough data: {rows} rows, needs {config.min_rows}",
        features=features,
        prediction=prediction,
        drift_share=share,
        drifted_features=drifted,
        dataset_drift=share is not None and share >= config.drift_share,
        performance=performance,
        metrics={},
        complete=window.complete,
    )
    return replace(report, metrics=flat_metrics(report, primary))


def _prediction_reference(
    profile: ReferenceProfile, decoded: DecodedWindow, config: MonitorConfig
) -> ColumnProfile:
    """The holdout's predictions, mixed to the window's hours when they follow the clock."""
    seasonal = profile.prediction_by
    if seasonal is None or config.prediction.test is not None:
        return profile.prediction
    values = decoded.features.get(seasonal.feature)
    return profile.prediction if values is None else mix(seasonal, profile.prediction, values)


def _feature(
    profile: ReferenceProfile,
    column: ColumnProfile,
    decoded: DecodedWindow,
    config: MonitorConfig,
    rows: int,
) -> FeatureReport:
    override = config.features.get(column.name, DriftTestConfig())
    if column.name in decoded.absent:
        return FeatureReport(
            name=column.name,
            kind=column.kind,
            drift=_not_tested(column, "not computable: the feature is missing from the ledger"),
            missing_rate=1.0 if rows else None,
            reference_missing_rate=column.missing_rate,
        )
    return _column_report(column, decoded.features[column.name], override, config.min_rows)


def _column_report(
    column: ColumnProfile, values: np.ndarray[Any, Any], override: DriftTestConfig, min_rows: int
) -> FeatureReport:
    if not override.enabled:
        drift = _not_tested(column, "not tested: disabled in the project file")
    elif column.clock and override.test is None:
        drift = _not_tested(
            column,
            f"not tested: it follows the clock ({column.clock} of the time column), so a "
            f"short window never matches the reference; set monitor.features.{column.name}"
            ".test to test it anyway",
        )
    else:
        drift = column_drift(
            column, values, test=override.test, threshold=override.threshold, min_rows=min_rows
        )
    missing = _missing_rate(values)
    unseen, examples = _unseen(column, values)
    return FeatureReport(
        name=column.name,
        kind=column.kind,
        drift=drift,
        missing_rate=missing,
        reference_missing_rate=column.missing_rate,
        unseen_rate=unseen,
        unseen_examples=examples,
        histogram=histogram(column, values),
    )


def _not_tested(column: ColumnProfile, reason: str) -> ColumnDrift:
    return ColumnDrift(
        name=column.name,
        test="none",
        kind="distance",
        threshold=math.nan,
        statistic=None,
        drifted=False,
        status="not_computable",
        reason=reason,
        reference_rows=column.rows,
    )


def _missing_rate(values: np.ndarray[Any, Any]) -> float | None:
    if len(values) == 0:
        return None
    if values.dtype == object:
        return float(np.count_nonzero(values == None)) / len(values)  # noqa: E711
    return float(np.count_nonzero(~np.isfinite(values))) / len(values)


def _unseen(column: ColumnProfile, values: np.ndarray[Any, Any]) -> tuple[float | None, list[str]]:
    """Share of non-null values in categories the reference never had (categorical only;
    unknowable when the profile dropped its rarest categories)."""
    if not isinstance(column, CategoricalProfile) or column.other_rows:
        return None, []
    present = values[values != None]  # noqa: E711
    if len(present) == 0:
        return None, []
    known = pd.Series(present, dtype=object).isin(column.counts.keys()).to_numpy()
    new = present[~known]
    examples = sorted({str(v) for v in new[:1000]})[:UNSEEN_EXAMPLES]
    return float(len(new)) / len(present), examples


def _slice_frame(decoded: DecodedWindow) -> Any:
    if not decoded.slices:
        return None
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in decoded.slices.items()})


def flat_metrics(report: WindowReport, primary: str | None = None) -> dict[str, float]:
    """The window as ``{name: value}`` for alert rules and gauges (finite values only)."""
    out: dict[str, float] = {"rows": float(report.rows)}
    if report.status == "ok" and report.drift_share is not None:
        out["drift_share"] = report.drift_share
        out["drifted_features"] = float(len(report.drifted_features))
        out["dataset_drift"] = float(report.dataset_drift)
    for feature in report.features:
        _column_metrics(out, feature, feature.name)
    if report.prediction is not None and report.prediction.drift.status == "ok":
        out["prediction_drift"] = float(report.prediction.drift.drifted)
        out["prediction_drift_score"] = float(report.prediction.drift.statistic or 0.0)
    perf = report.performance
    out["labelled_rows"] = float(perf.labelled_rows)
    _named(out, "realized", perf.realized)
    _named(out, "estimated", perf.estimated)
    reference = {k: v for k, v in perf.reference.items() if v is not None}
    for kind, values in (("realized", perf.realized), ("estimated", perf.estimated)):
        dropped = drops(reference, _finite(values))
        _named(out, f"{kind}_drop", dropped)
        if primary is not None and primary in dropped:
            out[f"{kind}_drop"] = dropped[primary]
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _column_metrics(out: dict[str, float], feature: FeatureReport, name: str) -> None:
    drift = feature.drift
    if drift.status == "ok" and drift.statistic is not None:
        out[f"drift.{name}"] = float(drift.drifted)
        out[f"drift_score.{name}"] = float(drift.statistic)
    if feature.missing_rate is not None:
        out[f"missing_rate.{name}"] = feature.missing_rate
        out[f"missing_increase.{name}"] = feature.missing_rate - feature.reference_missing_rate
    if feature.unseen_rate is not None:
        out[f"unseen_rate.{name}"] = feature.unseen_rate


def _named(out: dict[str, float], prefix: str, values: Mapping[str, float | None]) -> None:
    for key, value in values.items():
        if value is not None:
            out[f"{prefix}.{key}"] = float(value)


def _finite(values: Mapping[str, float | None]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}
