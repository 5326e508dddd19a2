"""Background jobs: work a process runs on a schedule, started and stopped by its host.

A job is a name, a function and an interval. Whoever starts a process composes the jobs
it runs — the server never hard-wires one (DESIGN.md decision 11): ``loopml serve`` gives
the server the monitor job, and ``loopml agent`` runs the same job objects. The host only
starts, stops, runs now and reads the status; what a run does, and whether another
process already does it (a lease in a database), is the job's business.

>>> job = PeriodicJob("count", lambda: Done(1), interval=0)
>>> job.run_now().summary(), job.status().runs
({'n': 1}, 1)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from loopml.errors import LoopmlError

__all__ = ["Job", "JobResult", "JobStatus", "PeriodicJob"]

log = logging.getLogger("loopml.jobs")


class JobResult(Protocol):
    """What one run did, as its host reports it (an admin route, a log line)."""

    def summary(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=JobResult)


class _Skipped(Exception):
    """A scheduled run said it had nothing to do (it returned None)."""


@dataclass(frozen=True)
class JobStatus:
    """How a job has fared since its process started."""

    name: str
    interval_seconds: float
    running: bool
    runs: int
    failures: int
    last_started: float | None
    last_finished: float | None
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "interval_seconds": self.interval_seconds,
            "running": self.running,
            "runs": self.runs,
            "failures": self.failures,
            "last_started": self.last_started,
            "last_finished": self.last_finished,
            "last_error": self.last_error,
        }


class Job(Protocol):
    """A background job as its host sees it."""

    @property
    def name(self) -> str: ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 30.0) -> None: ...

    def run_now(self) -> JobResult: ...

    def status(self) -> JobStatus: ...


@dataclass(frozen=True)
class Done:
    """The smallest result: a count (for examples and tests)."""

    n: int

    def summary(self) -> dict[str, Any]:
        return {"n": self.n}


class PeriodicJob(Generic[R]):
    """Calls ``run`` every ``interval`` seconds on its own thread (first after one
    interval); ``interval <= 0`` runs only when asked (:meth:`run_now`).

    One run at a time within the process: a :meth:`run_now` during a scheduled run waits
    for it. A run that raises is logged and counted, and the next one tries again — a bug
    in a job must not kill the process that hosts it. ``on_result`` and ``on_failure``
    are called after each run (on the job's thread, or the caller's for ``run_now``).
    ``scheduled``, when given, is what the timer calls instead of ``run``; it may return
    None to say it skipped (another process holds the job's lease, say).
    """

    def __init__(
        self,
        name: str,
        run: Callable[[], R],
        interval: float,
        *,
        on_result: Callable[[R], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
        scheduled: Callable[[], R | None] | None = None,
    ) -> None:
        self._name = name
        self._run = run
        self._scheduled = scheduled
        self._interval = interval
        self._on_result = on_result
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runs = 0
        self._failures = 0
        self._started: float | None = None
        self._finished: float | None = None
        self._error: str | None = None

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> None:
        if self._interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name=f"loopml-{self._name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_now(self) -> R:
        """One run, now, on the calling thread (waits for a run in progress)."""
        return self._call(self._run)

    def status(self) -> JobStatus:
        return JobStatus(
            name=self._name,
            interval_seconds=self._interval,
            running=self._lock.locked(),
            runs=self._runs,
            failures=self._failures,
            last_started=self._started,
            last_finished=self._finished,
            last_error=self._error,
        )

    def _call(self, run: Callable[[], R | None]) -> R:
        with self._lock:
            self._started = time.time()
            try:
                result = run()
            except BaseException as exc:
                self._failures += 1
                self._error = exc.headline if isinstance(exc, LoopmlError) else repr(exc)
                if self._on_failure is not None:
                    self._on_failure(exc)
                raise
            finally:
                self._finished = time.time()
            self._error = None
            if result is None:  # a scheduled run that had nothing to do
                raise _Skipped
            self._runs += 1
            if self._on_result is not None:
                self._on_result(result)
            return result

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._call(self._scheduled or self._run)
            except _Skipped:
                continue
            except LoopmlError as exc:
                log.warning("%s job failed: %s", self._name, exc.headline)
            except Exception:  # a bug must not kill the host: log it, try next time
                log.exception("%s job failed unexpectedly", self._name)
