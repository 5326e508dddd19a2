"""The server's background monitor: ``loopml monitor run`` every ``interval_seconds``.

It runs on its own thread, off the request path, and keeps the newest results for the
``/metrics`` gauges (re-read from the monitor store after each run, so windows computed
by a ``loopml monitor run`` elsewhere show too). A failed run is logged and counted; the
next one tries again. Only one run happens at a time, whether it comes from the timer or
from ``POST /admin/monitor``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from loopml.config import ProjectConfig
from loopml.errors import LoopmlError
from loopml.monitor.gauges import MonitorSnapshot
from loopml.monitor.run import MonitorRun
from loopml.monitor.store import MonitorStore
from loopml.monitor.windows import WindowSpec

__all__ = ["MonitorLoop"]

log = logging.getLogger("loopml.monitor")


class MonitorLoop:
    """Calls ``run`` every ``interval`` seconds (first after ``interval``)."""

    def __init__(
        self,
        run: Callable[[], MonitorRun],
        interval: float,
        read: Callable[[], MonitorSnapshot | None] | None = None,
    ) -> None:
        self._run = run
        self._interval = interval
        self._read = read
        self._snapshot = (read() if read else None) or MonitorSnapshot()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="loopml-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def snapshot(self) -> MonitorSnapshot:
        return self._snapshot

    def run_now(self) -> MonitorRun:
        """One run, now, on the calling thread (waits for a run in progress)."""
        with self._lock:
            try:
                result = self._run()
            except Exception:
                self._snapshot = _failed(self._snapshot)
                raise
            merged = _merge(self._snapshot, result)
            # The store also holds what other runs (``loopml monitor run``) computed.
            stored = self._read() if self._read else None
            if stored is not None:
                merged = replace(merged, windows=stored.windows, active_alerts=stored.active_alerts)
            self._snapshot = merged
            return result

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_now()
            except LoopmlError as exc:
                log.warning("monitor run failed: %s", exc.headline)
            except Exception:  # a bug must not kill monitoring: log it, try next time
                log.exception("monitor run failed unexpectedly")


def _merge(old: MonitorSnapshot, result: MonitorRun) -> MonitorSnapshot:
    """The newest complete window per (version, arm), old ones kept where nothing new."""
    latest: dict[tuple[Any, Any], dict[str, Any]] = {
        (w.get("version"), w.get("arm")): dict(w) for w in old.windows
    }
    for window in result.complete_windows:
        latest[(window.version, window.arm)] = window.to_dict()
    return MonitorSnapshot(
        windows=list(latest.values()),
        active_alerts=[a.to_dict() for a in result.active],
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
            active_alerts=[a.to_dict() for a in store.active_alerts(project.name)],
        )
    finally:
        store.close()
