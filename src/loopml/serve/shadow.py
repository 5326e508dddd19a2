"""The shadow queue: challenger scoring off the response path, bounded, one worker thread.

In a shadow stage the champion answers every request; once the answer is sent, the
request's validated rows are offered here and the challenger scores them on this queue's
thread. The queue holds ``rollout.shadow_queue`` requests: when it is full the request is
dropped and counted (a slow challenger never slows the champion, nor grows memory without
bound). A job handles its own failures; one that raises anyway is logged, never fatal.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["ShadowQueue"]

log = logging.getLogger("loopml.serve")
Job = Callable[[], None]


class ShadowQueue:
    """At most ``capacity`` waiting jobs, run one at a time on a daemon thread."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def offer(self, job: Job) -> bool:
        """Queue ``job``; False (and nothing queued) when the queue is full."""
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            return False
        return True

    @property
    def waiting(self) -> int:
        return self._jobs.qsize()

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="loopml-shadow",
                                                daemon=True)  # fmt: skip
                self._thread.start()

    def drain(self) -> None:
        """Wait until every queued job has run (the worker must be started)."""
        self._jobs.join()

    def stop(self, timeout: float = 10.0) -> None:
        """Run what is queued (up to ``timeout``), then end the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._jobs.put(None)  # after every queued job: they all run first
        thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                job()
            except Exception:  # a job's own bug must not end shadow scoring
                log.exception("a shadow job failed")
            finally:
                self._jobs.task_done()
