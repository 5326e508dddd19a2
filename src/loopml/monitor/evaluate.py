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
from loopml.monitor.cusum import Cusum
from loopml.monitor.drift import column_drift, dataset_drift, histogram
from loopml.monitor.noise import ChanceTable
from loopml.monitor.performance import absent_classes, drops, performance_report
from loopml.monitor.profile import CategoricalProfile, ColumnProfile, ReferenceProfile
from loopml.monitor.results import ColumnDrift, FeatureReport, PerformanceReport, WindowReport
from loopml.monitor.seasonal import mix
from loopml.monitor.windows import DecodedWindow, WindowData

__all__ = ["TEST_MIN_VALUES", "drift_summary", "evaluate_window", "flat_metrics"]

UNSEEN_EXAMPLES = 5
TEST_MIN_VALUES = 30  # non-null values a feature's drift test needs


def evaluate_window(
    profile: ReferenceProfile,
    window: WindowData,
    decoded: DecodedWindow,
    config: MonitorConfig,
    spec: str,
    primary: str | None = None,
    *,
    chance: ChanceTable | None = None,
    cusum: Cusum | None = None,
) -> WindowReport:
    """Everything monitoring says about one window.

    ``primary`` is the metric the model is judged by (the gate metric); its drops are
    also reported unsuffixed, as ``realized_drop`` and ``estimated_drop``. ``chance``
    tells drops from chance variation (none: drops are reported without a chance
    level); ``cusum`` is the sum of evidence after the version's previous window.
    """
    rows = window.rows
    enough = rows >= config.min_rows
    features = [_feature(profile, column, decoded, config, rows) for column in profile.features]
    prediction = _column_report(
        _prediction_reference(profile, decoded, config),
        decoded.prediction,
        config.prediction,
        _test_rows(config),
    )
    pairs = zip(features, profile.features, strict=True)
    monitored = [feature for feature, column in pairs if _monitored(column, config)]
    share, drifted, untested = drift_summary(monitored)
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
        performance=_performance(profile, decoded, chance),
        metrics={},
        complete=window.complete,
        monitored_features=len(monitored),
        untested_features=untested,
    )
    return replace(report, metrics=flat_metrics(report, primary, cusum=cusum or Cusum()))


def drift_summary(monitored: list[FeatureReport]) -> tuple[float | None, list[str], list[str]]:
    """The drift share over every monitored feature (:func:`~loopml.monitor.drift.
    dataset_drift`), the drifted and the untested ones."""
    share, _ = dataset_drift([f.drift for f in monitored], 1.0)
    drifted = [f.name for f in monitored if f.drift.status == "ok" and f.drift.drifted]
    untested = [f.name for f in monitored if f.drift.status != "ok"]
    return share, (drifted if share is not None else []), untested


def _monitored(column: ColumnProfile, config: MonitorConfig) -> bool:
    """Whether a feature is tested for drift at all (on, and not following the clock)."""
    override = config.features.get(column.name, DriftTestConfig())
    return override.enabled and not (column.clock and override.test is None)


def _test_rows(config: MonitorConfig) -> int:
    """Non-null values a feature's drift test needs: nulls are the missing-value check's
    business, so a window big enough to evaluate tests every feature with some values."""
    return min(config.min_rows, TEST_MIN_VALUES)


def _performance(
    profile: ReferenceProfile, decoded: DecodedWindow, chance: ChanceTable | None
) -> PerformanceReport:
    report = performance_report(
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
    absent = absent_classes(profile.task, profile.classes, decoded.labels)
    if chance is None:
        return replace(report, absent_classes=absent)
    realized = chance.realized(report.labelled_rows) if report.realized else {}
    estimated = chance.estimated(len(decoded.scores)) if report.estimated else {}
    realized_drops = drops(profile.holdout_metrics, _finite(report.realized))
    return replace(
        report,
        absent_classes=absent,
        realized_noise={k: c.level for k, c in realized.items() if k in report.realized},
        estimated_noise={k: c.level for k, c in estimated.items() if k in report.estimated},
        realized_z={k: realized[k].z(drop) for k, drop in realized_drops.items() if k in realized},
    )


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
    return _column_report(column, decoded.features[column.name], override, _test_rows(config))


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


def flat_metrics(
    report: WindowReport, primary: str | None = None, *, cusum: Cusum | None = None
) -> dict[str, float]:
    """The window as ``{name: value}`` for alert rules and gauges (finite values only).

    ``cusum`` is the sum of evidence of a sustained drop after the previous window; this
    window's ``performance_cusum`` adds its own primary ``realized_z`` to it.
    """
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
    out["labelled_rows"] = float(report.performance.labelled_rows)
    _performance_metrics(out, report.performance, primary)
    out |= (cusum or Cusum()).step(out.get("realized_z"), report.index).metrics()
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _performance_metrics(
    out: dict[str, float], perf: PerformanceReport, primary: str | None
) -> None:
    _named(out, "realized", perf.realized)
    _named(out, "estimated", perf.estimated)
    reference = {k: v for k, v in perf.reference.items() if v is not None}
    for kind, values, noise in (
        ("realized", perf.realized, perf.realized_noise),
        ("estimated", perf.estimated, perf.estimated_noise),
    ):
        dropped = drops(reference, _finite(values))
        _named(out, f"{kind}_drop", dropped)
        _named(out, f"{kind}_noise", noise)
        if primary is not None and primary in dropped:
            out[f"{kind}_drop"] = dropped[primary]
            if noise.get(primary) is not None:
                out[f"{kind}_noise"] = float(noise[primary])  # type: ignore[arg-type]
    _named(out, "realized_z", perf.realized_z)
    if primary is not None and perf.realized_z.get(primary) is not None:
        out["realized_z"] = float(perf.realized_z[primary])  # type: ignore[arg-type]


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
