from __future__ import annotations

import threading

import anyio
import pytest

from loopml.serve.work import Offload

pytestmark = pytest.mark.unit


def test_small_work_runs_inline_and_large_work_in_a_worker_thread() -> None:
    offload = Offload(threads=2, min_bytes=1_000)

    async def main() -> tuple[str, str, str]:
        here = threading.current_thread().name
        small = await offload.run(999, lambda: threading.current_thread().name)
        large = await offload.run(1_000, lambda: threading.current_thread().name)
        return here, small, large

    here, small, large = anyio.run(main)
    assert small == here and large != here


def test_at_most_threads_large_requests_run_at_once() -> None:
    offload = Offload(threads=2, min_bytes=0)
    running, peak = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.05)
        with lock:
            running -= 1

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(offload.run, 10, work)

    anyio.run(main)
    assert peak == 2
