"""PeriodicJob: on demand, on a timer, one run at a time, failures counted not fatal."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from loopml.errors import LoopmlError
from loopml.jobs import PeriodicJob

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Ran:
    n: int

    def summary(self) -> dict[str, Any]:
        return {"n": self.n}


def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_run_now_returns_the_result_and_counts_it() -> None:
    seen: list[Ran] = []
    job = PeriodicJob("count", lambda: Ran(len(seen) + 1), 0, on_result=seen.append)
    assert job.run_now() == Ran(1)
    status = job.status()
    assert (status.name, status.runs, status.failures, status.running) == ("count", 1, 0, False)
    assert seen == [Ran(1)]
    assert status.last_finished is not None and status.last_started is not None


def test_a_failed_run_is_counted_reraised_and_the_next_one_clears_it() -> None:
    calls = iter([LoopmlError("store away", fix="start it"), None])
    failures: list[BaseException] = []

    def run() -> Ran:
        error = next(calls)
        if error is not None:
            raise error
        return Ran(1)

    job = PeriodicJob("flaky", run, 0, on_failure=failures.append)
    with pytest.raises(LoopmlError, match="store away"):
        job.run_now()
    assert (job.status().failures, job.status().last_error) == (1, "store away")
    assert job.run_now() == Ran(1)
    assert (job.status().runs, job.status().last_error) == (1, None)
    assert len(failures) == 1


def test_the_timer_runs_it_survives_a_bug_and_stops() -> None:
    calls: list[int] = []

    def run() -> Ran:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a bug")
        return Ran(len(calls))

    job = PeriodicJob("tick", run, 0.02)
    job.start()
    wait_until(lambda: len(calls) >= 4)
    job.stop()
    stopped_at = len(calls)
    time.sleep(0.1)
    assert len(calls) == stopped_at
    assert job.status().failures == 1 and job.status().runs >= 3


def test_a_scheduled_run_may_skip_and_is_not_counted() -> None:
    ran = threading.Event()
    job = PeriodicJob("maybe", lambda: Ran(1), 0.02, scheduled=ran.set)
    job.start()
    assert ran.wait(10)
    job.stop()
    assert job.status().runs == 0 and job.status().failures == 0


def test_one_run_at_a_time_a_run_now_waits_for_the_running_one() -> None:
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def slow() -> Ran:
        order.append("slow")
        inside.set()
        release.wait(10)
        return Ran(1)

    job = PeriodicJob("slow", slow, 0.01, scheduled=slow)
    job.start()
    assert inside.wait(10)
    assert job.status().running
    done = threading.Thread(target=lambda: order.append(f"now {job.run_now().n}"))
    done.start()
    time.sleep(0.05)
    assert order == ["slow"]  # still waiting behind the scheduled run
    job.stop(timeout=0)
    release.set()
    done.join(10)
    assert order[-1] == "now 1"
