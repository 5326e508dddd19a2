"""``run_monitor`` over a real SQLite ledger and store: resuming, and runs at once."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import orjson
import pytest

from loopml.config import ProjectConfig, parse_project
from loopml.ledger.backend import PredictionOp
from loopml.ledger.records import PredictionRow
from loopml.ledger.sqlite import SqliteBackend
from loopml.monitor.profile import ReferenceProfile, categorical_profile, numeric_profile
from loopml.monitor.run import MonitorRun, run_monitor
from loopml.monitor.store import MonitorStore

pytestmark = pytest.mark.unit


def project(root: Path) -> ProjectConfig:
    raw = {
        "name": "m",
        "data": {"source": {"path": "t.csv"}, "target": "y", "task": "binary"},
        "serve": {"ledger": {"url": "sqlite:///ledger.db"}},
        "monitor": {"window": 100, "min_rows": 50, "store": "sqlite:///monitor.db"},
    }
    return parse_project(raw, root=root, source="test")


def profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    return ReferenceProfile(
        model="m", task="binary", target="y", classes=("0", "1"),
        features=(numeric_profile("x", rng.normal(size=3000)),
                  categorical_profile("c", rng.choice(["a", "b"], 3000))),
        prediction=numeric_profile("prediction", rng.random(3000)),
        label=categorical_profile("y", rng.choice(["0", "1"], 3000)),
        holdout_metrics={"roc_auc": 0.7}, holdout_rows=3000, train_rows=3000, points=2048,
    )  # fmt: skip


def record(root: Path, start: int, n: int, shift: float = 0.0) -> None:
    rng = np.random.default_rng(start)
    rows = [
        PredictionRow(
            f"r{i:05d}", 0, 1000.0 + i, "m", "1", "champion", None,
            orjson.dumps({"x": float(rng.normal() + shift),
                          "c": str(rng.choice(["a", "b"]))}).decode(),
            orjson.dumps({"label": "1", "proba_0": 0.4, "proba_1": 0.6}).decode(), 0.1,
        )
        for i in range(start, start + n)
    ]  # fmt: skip
    backend = SqliteBackend.from_url("sqlite:///ledger.db", root)
    try:
        backend.commit([PredictionOp(rows)])
    finally:
        backend.close()


def monitor(config: ProjectConfig) -> MonitorRun:
    reference = profile()
    return run_monitor(config, profiles=lambda _version: reference, write_reports=False)


def test_each_run_goes_on_where_the_last_one_stopped(tmp_path: Path) -> None:
    config = project(tmp_path)
    record(tmp_path, 0, 250)
    first = monitor(config)
    assert [(w.index, w.rows, w.complete) for w in first.windows] == [
        (0, 100, True), (1, 100, True), (2, 50, False)
    ]  # fmt: skip
    record(tmp_path, 250, 100)
    second = monitor(config)
    assert [(w.index, w.rows, w.complete) for w in second.windows] == [
        (2, 100, True),
        (3, 50, False),
    ]
    assert monitor(config).complete_windows == []


def test_runs_at_the_same_time_store_each_window_once(tmp_path: Path) -> None:
    config = project(tmp_path)
    record(tmp_path, 0, 400)
    results: list[MonitorRun] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(monitor(config))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(len(r.complete_windows) for r in results) == [0, 0, 4]
    with MonitorStore.open(config.monitor.store, tmp_path) as store:
        assert [w.index for w in store.windows("m")] == [0, 1, 2, 3]


def test_alert_messages_of_a_real_run_give_the_test_statistic_and_threshold(
    tmp_path: Path,
) -> None:
    raw = {
        "name": "m",
        "data": {"source": {"path": "t.csv"}, "target": "y", "task": "binary"},
        "serve": {"ledger": {"url": "sqlite:///ledger.db"}},
        "monitor": {
            "window": 100, "min_rows": 50, "store": "sqlite:///monitor.db",
            "alerts": [{"name": "feature-drift", "metric": "drift.*", "above": 0.5,
                        "min_rows": 50, "raise_after": 1, "severity": "critical"}],
        },
    }  # fmt: skip
    config = parse_project(raw, root=tmp_path, source="test")
    record(tmp_path, 0, 100, shift=3.0)
    result = monitor(config)
    raised = [e for e in result.events if e.metric == "drift.x"]
    assert raised, [e.message for e in result.events]
    facts = raised[0].evidence["feature"]
    assert facts["feature"] == "x" and facts["test"] == "wasserstein"
    assert raised[0].message.startswith(
        f"feature-drift raised on m champion v1: x drifted (wasserstein "
        f"{facts['statistic']:.3g} against threshold {facts['threshold']:g}) in window 0"
    )
    state = next(a for a in result.active if a.metric == "drift.x")
    assert (state.raised_value, state.raised_window, state.severity) == (1.0, 0, "critical")
