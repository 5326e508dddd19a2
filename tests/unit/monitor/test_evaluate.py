"""One window against a profile, including every kind of bad or thin window: each gives
a defined result (a status and a reason), never an exception, a NaN or a false alarm."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import orjson
import pytest

from loopml.config import DriftTestConfig, MonitorConfig
from loopml.ledger.records import LedgerRecord
from loopml.monitor.evaluate import evaluate_window
from loopml.monitor.performance import fit_calibration
from loopml.monitor.profile import ReferenceProfile, categorical_profile, numeric_profile
from loopml.monitor.results import WindowReport
from loopml.monitor.windows import WindowData, decode_window

pytestmark = pytest.mark.unit

N_REF = 5_000


def make_profile() -> ReferenceProfile:
    rng = np.random.default_rng(7)
    scores = rng.random(N_REF)
    y = (rng.random(N_REF) < scores).astype(np.int64)
    proba = np.column_stack([1 - scores, scores])
    return ReferenceProfile(
        model="m", task="binary", target="y", classes=("0", "1"),
        features=(
            numeric_profile("x", rng.normal(size=N_REF)),
            categorical_profile("c", rng.choice(["a", "b", "c"], N_REF)),
            numeric_profile("flat", np.full(N_REF, 5.0)),
            numeric_profile("gone", rng.normal(size=N_REF)),
        ),
        prediction=numeric_profile("prediction", scores),
        label=categorical_profile("y", y.astype(str)),
        holdout_metrics={"roc_auc": 0.83}, holdout_rows=N_REF, train_rows=N_REF, points=2048,
        calibration=fit_calibration("binary", proba, y),
    )  # fmt: skip


def window(rows: list[dict[str, Any]], seed: int = 0, labels: bool = True) -> WindowData:
    rng = np.random.default_rng(seed)
    records = []
    for i, features in enumerate(rows):
        p = float(rng.random())
        label = str(int(rng.random() < p)) if labels else None
        records.append(LedgerRecord(
            f"r{i}", 0, float(i), "m", "1", "champion", None, orjson.dumps(features).decode(),
            orjson.dumps({"label": "1", "proba_0": 1 - p, "proba_1": p}).decode(), 0.1,
            label, None,
        ))  # fmt: skip
    end = float(len(records))
    return WindowData("1", "champion", 0, 0.0, end, True, records)


def stationary(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {"x": float(x), "c": str(c), "flat": 5.0}
        for x, c in zip(rng.normal(size=n), rng.choice(["a", "b", "c"], n), strict=True)
    ]


def run(rows: list[dict[str, Any]], config: MonitorConfig | None = None, **kw: Any) -> WindowReport:
    profile = make_profile()
    data = window(rows, **kw)
    decoded = decode_window(data.records, profile, ["c"])
    report = evaluate_window(profile, data, decoded, config or MonitorConfig(), "100 rows",
                             primary="roc_auc")  # fmt: skip
    json.dumps(report.to_dict(), allow_nan=False)  # never a NaN in what is written
    return report


def by_name(report: WindowReport) -> dict[str, Any]:
    return {f.name: f for f in report.features}


def test_a_stationary_window_raises_no_flag_and_measures_everything() -> None:
    report = run(stationary(2_000))
    assert report.status == "ok" and not report.dataset_drift and report.drifted_features == []
    assert report.drift_share == 0.0
    m = report.metrics
    assert m["rows"] == 2_000 and m["dataset_drift"] == 0.0 and m["drift.x"] == 0.0
    assert "realized.roc_auc" in m and "estimated.roc_auc" in m and "realized_drop" in m
    assert m["unseen_rate.c"] == 0.0 and m["missing_rate.x"] == 0.0


def test_a_drifted_window_is_flagged_with_its_statistics() -> None:
    rows = [r | {"x": r["x"] + 2.0, "c": "a"} for r in stationary(2_000)]
    report = run(rows)
    drifted = by_name(report)
    assert drifted["x"].drift.drifted and drifted["x"].drift.test == "wasserstein"
    assert drifted["c"].drift.drifted and drifted["c"].drift.test == "jensen_shannon"
    assert report.metrics["drift_score.x"] == pytest.approx(2.0, rel=0.1)


def test_an_empty_window_is_not_enough_data() -> None:
    report = run([])
    assert report.status == "not_enough_data" and report.rows == 0
    assert not report.dataset_drift and report.drift_share is None
    assert all(f.drift.status != "ok" and not f.drift.drifted for f in report.features)
    assert report.metrics == {
        "rows": 0.0, "labelled_rows": 0.0, "performance_cusum": 0.0,
        "performance_level": 0.0, "performance_level_windows": 0.0,
    }  # fmt: skip


def test_a_window_of_one_row_is_not_enough_data_and_no_alarm() -> None:
    report = run([{"x": 40.0, "c": "zzz", "flat": 9.0}])
    assert report.status == "not_enough_data"
    assert "not enough data" in (report.reason or "")
    assert not report.dataset_drift and report.drifted_features == []
    assert all(f.drift.status == "not_enough_data" for f in report.features if f.name != "gone")
    assert "drift_share" not in report.metrics


def test_a_feature_missing_from_the_ledger_is_not_computable_and_counts_as_missing() -> None:
    report = run(stationary(500))
    gone = by_name(report)["gone"]
    assert gone.drift.status == "not_computable"
    assert "missing from the ledger" in (gone.drift.reason or "")
    assert report.metrics["missing_increase.gone"] == 1.0
    assert "drift.gone" not in report.metrics


def test_an_all_null_feature_is_reported_as_missing_not_as_drift() -> None:
    rows = [r | {"x": None} for r in stationary(500)]
    x = by_name(run(rows))["x"]
    assert x.drift.status == "not_enough_data" and not x.drift.drifted
    assert x.missing_rate == 1.0 and x.histogram is not None


def test_a_constant_reference_column_is_defined() -> None:
    same = by_name(run(stationary(500)))["flat"]
    assert same.drift.status == "ok" and not same.drift.drifted  # few values: a category test
    forced = MonitorConfig(features={"flat": DriftTestConfig(test="wasserstein")})
    flat = by_name(run(stationary(500), forced))["flat"]
    assert flat.drift.status == "not_computable"
    assert flat.drift.reason == "not computable: constant reference"


def test_categories_never_seen_in_training_are_a_rate_not_a_false_alarm() -> None:
    rows = stationary(2_000)
    for r in rows[:20]:
        r["c"] = "brand-new"
    c = by_name(run(rows))["c"]
    assert c.unseen_rate == pytest.approx(0.01) and c.unseen_examples == ["brand-new"]
    assert not c.drift.drifted


def test_disabled_and_clock_features_are_not_tested() -> None:
    config = MonitorConfig(features={"x": DriftTestConfig(enabled=False)})
    x = by_name(run(stationary(500), config))["x"]
    assert x.drift.status == "not_computable" and "disabled" in (x.drift.reason or "")


def test_a_feature_that_follows_the_clock_is_skipped_unless_asked_for() -> None:
    profile = make_profile()
    hour = dataclasses.replace(profile.features[0], clock="hour")
    profile = dataclasses.replace(profile, features=(hour, *profile.features[1:]))
    rows = [r | {"x": 3.0} for r in stationary(500)]  # one hour of the day: always "drifts"
    data = window(rows)
    decoded = decode_window(data.records, profile, [])
    report = evaluate_window(profile, data, decoded, MonitorConfig(), "500 rows")
    x = by_name(report)["x"]
    assert x.drift.status == "not_computable" and "follows the clock" in (x.drift.reason or "")
    asked = MonitorConfig(features={"x": DriftTestConfig(test="wasserstein")})
    report = evaluate_window(profile, data, decoded, asked, "500 rows")
    assert by_name(report)["x"].drift.drifted


def test_no_labels_yet_still_estimates_performance() -> None:
    report = run(stationary(1_000), labels=False)
    assert report.performance.labelled_rows == 0 and report.performance.realized == {}
    assert "estimated.roc_auc" in report.metrics and "realized_drop" not in report.metrics
