"""The monitor job, without HTTP: runs over a real SQLite ledger and store, keeps the
gauges' snapshot, skips its turn while another process runs, counts failures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from loopml.config import ProjectConfig
from loopml.monitor.gauges import MonitorCollector
from loopml.monitor.job import MonitorJob, stored_snapshot
from loopml.monitor.run import run_monitor
from loopml.monitor.store import MonitorError, MonitorStore
from tests.unit.monitor.test_run import profile, project, record

pytestmark = pytest.mark.unit


def job(config: ProjectConfig, interval: float = 0.0) -> MonitorJob:
    reference = profile()
    return MonitorJob(
        lambda wait: run_monitor(
            config, profiles=lambda _v: reference, write_reports=False, wait=wait
        ),
        interval,
        read=lambda: stored_snapshot(config),
    )


def test_run_now_monitors_and_the_gauges_show_the_newest_window(tmp_path: Path) -> None:
    config = project(tmp_path)
    record(tmp_path, 0, 250)
    monitor = job(config)
    assert monitor.name == "monitor" and monitor.snapshot().windows == []
    run = monitor.run_now()
    assert run.summary()["windows"] == 2
    assert [w.index for w in monitor.snapshot().windows] == [1]
    registry = CollectorRegistry()
    registry.register(MonitorCollector(monitor.snapshot))
    text = generate_latest(registry).decode()
    assert 'loopml_drift_share{arm="champion",version="1"}' in text
    assert monitor.status().runs == 1


def test_a_new_job_starts_from_what_the_store_holds(tmp_path: Path) -> None:
    config = project(tmp_path)
    record(tmp_path, 0, 250)
    job(config).run_now()
    assert [w.index for w in job(config).snapshot().windows] == [1]


def test_a_scheduled_turn_is_skipped_while_another_process_holds_the_lease(
    tmp_path: Path,
) -> None:
    config = project(tmp_path)
    record(tmp_path, 0, 250)
    monitor = job(config, interval=0.05)
    with MonitorStore.open(config.monitor.store, tmp_path) as store:
        with store.lease("monitor-run:m"):
            monitor.start()
            time.sleep(0.4)
            assert monitor.status().runs == 0 and monitor.status().failures == 0
        deadline = time.monotonic() + 20
        while monitor.status().runs == 0:
            assert time.monotonic() < deadline, "the job never ran after the lease was free"
            time.sleep(0.05)
    monitor.stop()
    assert [w.index for w in monitor.snapshot().windows] == [1]


def test_a_failed_run_is_counted_in_the_status_and_the_gauges(tmp_path: Path) -> None:
    config = project(tmp_path)
    record(tmp_path, 0, 250)
    (tmp_path / "monitor.db").mkdir()  # the store cannot be opened
    monitor = job(config)
    with pytest.raises(MonitorError, match="monitor store"):
        monitor.run_now()
    assert monitor.status().failures == 1
    assert monitor.snapshot().runs_failed == 1
