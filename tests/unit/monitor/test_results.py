"""A window report read back is the typed report that was written: ``from_dict`` undoes
``to_dict``, over real reports of every kind (drifted, thin, empty, unlabelled...)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from loopml.monitor.results import ColumnDrift, FeatureReport, WindowReport
from loopml.monitor.store import MonitorStore, StoredWindow
from tests.unit.monitor.test_evaluate import run, stationary

pytestmark = pytest.mark.unit


def real_reports() -> list[WindowReport]:
    """Windows that evaluate_window computed, one of each kind it can give."""
    drifted = [r | {"x": r["x"] + 2.0, "c": "a"} for r in stationary(1_000)]
    unseen = stationary(1_000)
    for row in unseen[:20]:
        row["c"] = "brand-new"
    return [
        run(stationary(1_000)),
        run(drifted),
        run([]),
        run([{"x": 40.0, "c": "zzz", "flat": 9.0}]),
        run([r | {"x": None} for r in stationary(300)]),
        run(unseen, labels=False),
    ]


def test_from_dict_round_trips_to_dict_over_real_reports() -> None:
    for report in real_reports():
        written = report.to_dict()
        again = WindowReport.from_dict(json.loads(json.dumps(written, allow_nan=False)))
        assert isinstance(again, WindowReport)
        assert again.to_dict() == written
        assert [f.name for f in again.features] == [f.name for f in report.features]
        assert isinstance(again.features[0], FeatureReport)
        assert isinstance(again.features[0].drift, ColumnDrift)
        assert again.performance.labelled_rows == report.performance.labelled_rows
        assert (again.prediction is None) == (report.prediction is None)
        assert again.metrics == {k: v for k, v in report.metrics.items() if math.isfinite(v)}


def test_the_drift_share_denominator_round_trips_and_old_windows_read_back() -> None:
    report = replace(real_reports()[0], monitored_features=7, untested_features=["flat", "x"])
    again = WindowReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert (again.monitored_features, again.untested_features) == (7, ["flat", "x"])
    old = {k: v for k, v in report.to_dict().items() if "features" not in k or k == "features"}
    assert "monitored_features" not in old
    read = WindowReport.from_dict(old)
    assert (read.monitored_features, read.untested_features) == (0, [])


def test_a_value_written_as_null_reads_back_as_not_a_number() -> None:
    drift = ColumnDrift("x", "ks", "p_value", 0.05, None, False, "not_enough_data", "3 rows")
    feature = FeatureReport("x", "numeric", drift, None, math.nan)
    again = FeatureReport.from_dict(feature.to_dict())
    assert feature.to_dict()["reference_missing_rate"] is None  # JSON has no NaN
    assert math.isnan(again.reference_missing_rate) and again.missing_rate is None
    assert again.drift == drift


def test_the_store_gives_back_the_typed_reports_it_was_given(tmp_path: Path) -> None:
    reports = real_reports()[:3]
    stored = [
        StoredWindow(
            model=r.model, version=r.version, arm=r.arm, spec=r.window, index=n,
            start_ts=r.start_ts, end_ts=float(n), rows=r.rows, complete=True,
            report=r, end_request_id=f"r{n}", end_row=0,
        )
        for n, r in enumerate(reports)
    ]  # fmt: skip
    with MonitorStore.open("sqlite:///monitor.db", tmp_path) as store:
        store.commit("m", {}, [], stored)
        found = store.windows("m")
        latest = store.latest_windows("m")
    assert all(isinstance(w, WindowReport) for w in [*found, *latest])
    assert [w.to_dict() for w in found] == [r.to_dict() for r in reports]
    assert [w.to_dict() for w in latest] == [reports[-1].to_dict()]
