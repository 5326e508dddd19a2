"""The monitor as a background job: ``loopml monitor run`` every ``interval_seconds``.

Whoever starts a process composes it (``loopml serve`` gives it to the server; the agent
will run the same object): it runs on its own thread, off the request path, and keeps the
newest results for the ``/metrics`` gauges (re-read from the monitor store after each
run, so windows computed by a ``loopml monitor run`` elsewhere show too). A failed run is
logged and counted; the next one tries again. One run at a time per model across every
process and host: a scheduled run that finds another holding the lease skips its turn,
a run asked for now (``POST /admin/monitor``) waits for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from loopml.config import ProjectConfig
from loopml.errors import LoopmlError
from loopml.jobs import JobStatus, PeriodicJob
from loopml.monitor.gauges import MonitorSnapshot
from loopml.monitor.lease import LeaseBusy
from loopml.monitor.results import WindowReport
from loopml.monitor.run import WAIT_SECONDS, MonitorRun, run_monitor
from loopml.monitor.store import MonitorStore
from loopml.monitor.windows import WindowSpec

__all__ = ["MonitorJob", "monitor_job"]

log = logging.getLogger("loopml.monitor")
JOB_NAME = "monitor"

RunMonitor = Callable[[float], MonitorRun]
"""One monitor run that waits at most this many seconds for another to finish."""


class MonitorJob:
    """The monitor job: calls ``run`` every ``interval`` seconds (first after one interval)
    and keeps the snapshot the gauges read."""

    def __init__(
        self,
        run: RunMonitor,
        interval: float,
        read: Callable[[], MonitorSnapshot | None] | None = None,
    ) -> None:
        self._run = run
        self._read = read
        self._snapshot = (read() if read else None) or MonitorSnapshot()
        self._job: PeriodicJob[MonitorRun] = PeriodicJob(
            JOB_NAME,
            lambda: self._run_and_keep(wait=True),
            interval,
            scheduled=self._scheduled,
            on_failure=lambda _exc: self._count_failure(),
        )

    @property
    def name(self) -> str:
        return JOB_NAME

    def start(self) -> None:
        self._job.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._job.stop(timeout)

    def status(self) -> JobStatus:
        return self._job.status()

    def snapshot(self) -> MonitorSnapshot:
        return self._snapshot

    def run_now(self) -> MonitorRun:
        """One run, now, on the calling thread (waits for a run in progress)."""
        return self._job.run_now()

    def _scheduled(self) -> MonitorRun | None:
        try:
            return self._run_and_keep(wait=False)
        except LeaseBusy as exc:  # another process runs it now: this turn is its
            log.info("monitor run skipped: %s", exc.headline)
            return None

    def _run_and_keep(self, *, wait: bool) -> MonitorRun:
        result = self._run(WAIT_SECONDS if wait else 0.0)
        merged = _merge(self._snapshot, result)
        # The store also holds what other runs (``loopml monitor run``) computed.
        stored = self._read() if self._read else None
        if stored is not None:
            merged = replace(merged, windows=stored.windows, active_alerts=stored.active_alerts)
        self._snapshot = merged
        return result

    def _count_failure(self) -> None:
        self._snapshot = _failed(self._snapshot)


def monitor_job(project: ProjectConfig) -> MonitorJob:
    """The project's monitor as a job, seeded with the stored results so gauges show at
    once."""
    return MonitorJob(
        lambda wait: run_monitor(project, wait=wait),
        project.monitor.interval_seconds,
        read=lambda: stored_snapshot(project),
    )


def _merge(old: MonitorSnapshot, result: MonitorRun) -> MonitorSnapshot:
    """The newest complete window per (version, arm), old ones kept where nothing new."""
    latest: dict[tuple[str, str], WindowReport] = {(w.version, w.arm): w for w in old.windows}
    for window in result.complete_windows:
        latest[(window.version, window.arm)] = window
    return MonitorSnapshot(
        windows=list(latest.values()),
        active_alerts=list(result.active),
        last_run_ts=time.time(),
        runs_failed=old.runs_failed,
        errors=tuple(result.errors),
    )


def _failed(old: MonitorSnapshot) -> MonitorSnapshot:
    return MonitorSnapshot(
        old.windows, old.active_alerts, old.last_run_ts, old.runs_failed + 1, old.errors
    )


def stored_snapshot(project: ProjectConfig) -> MonitorSnapshot | None:
    """What the monitor store holds now; None (and a warning) when it cannot be read."""
    spec = WindowSpec.parse(project.monitor.window).text
    try:
        store = MonitorStore.open(project.monitor.store, project.root)
    except LoopmlError as exc:
        log.warning("monitor store unreadable, gauges start empty: %s", exc.headline)
        return None
    try:
        return MonitorSnapshot(
            windows=store.latest_windows(project.name, spec),
            active_alerts=store.active_alerts(project.name),
        )
    finally:
        store.close()
