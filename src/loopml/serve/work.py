"""Where a request's CPU work runs: inline when its body is small, in a worker thread when
it is large, so probes and small requests keep answering while a large one is decoded and
scored.

A thread hop costs ~50-100 µs, a sizeable share of a one-record request (~1 ms), so bodies
under :data:`OFF_LOOP_BYTES` stay on the event loop: they are decoded and scored in well
under a millisecond. Larger ones (up to ``serve.max_body_bytes``: 10,000 rows, a 1M-row
body refused at 413) run in one of a few worker threads; a capacity limiter keeps many
large requests from running at once (they queue for a thread, the loop stays free).
NumPy, onnxruntime and zlib release the GIL while they work; Python code between them
gives it back every ``sys.getswitchinterval()`` (5 ms).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")
OFF_LOOP_BYTES = 64 * 1024
"""Bodies at least this large are decoded and scored in a worker thread."""


class Offload:
    """Runs a request's work inline or in a worker thread, by the size of its body."""

    def __init__(self, threads: int | None = None, min_bytes: int = OFF_LOOP_BYTES) -> None:
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self.min_bytes = min_bytes
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, size: int, work: Callable[[], T]) -> T:
        """``work()``, in a worker thread when ``size`` (the body's bytes) is large."""
        if size < self.min_bytes:
            return work()
        if self._limiter is None:  # made in the event loop, on first use
            self._limiter = anyio.CapacityLimiter(self.threads)
        return await anyio.to_thread.run_sync(work, limiter=self._limiter)
