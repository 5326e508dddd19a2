"""The ledger's front: a bounded queue and one writer thread with group commit.

``submit`` puts a request's rows on the queue and returns a future at once; the writer
thread takes everything queued (up to ``batch_rows`` rows), writes it as one group, and
resolves every future of the group. Whether acknowledged means durable is the caller's
choice: ``durable`` mode awaits the future before answering, ``async`` mode does not.

An asyncio server should await :meth:`Ledger.submit_async` instead of wrapping
``submit``'s future: the writer then wakes each event loop once per group rather than once
per request, which more than doubles what one core sustains at 64 concurrent requests.

The queue is counted in rows and includes the group being written, so memory is bounded
by ``queue_size``. A full queue raises :class:`LedgerFull` immediately — never a block,
never a silent drop. Feedback goes through the same queue and thread, so it is written
after every prediction submitted before it.

A group whose commit fails is split in halves and written again, down to the submission
that fails alone: one submission the database refuses (a value out of range, whatever the
driver raises) never fails the submissions grouped with it. A commit that took
:data:`SPLIT_SECONDS` or more to fail (a connection timing out: the database is away,
not a value) is not split, so an outage never costs a group more than one wait.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from loopml.ledger.backend import FeedbackOp, LedgerBackend, Op, OpResult, PredictionOp
from loopml.ledger.records import (
    Feedback,
    FeedbackResult,
    LedgerClosed,
    LedgerError,
    LedgerFull,
    LedgerStats,
    PredictionRow,
)

logger = logging.getLogger("loopml.ledger")
SPLIT_SECONDS = 1.0
"""A failed commit faster than this is split to find the submission at fault."""

Mode = Literal["durable", "async"]
# What a submitter waits on: a thread-safe future (submit) or an asyncio one (submit_async).
Waiter = Future[Any] | asyncio.Future[Any]
# One settled submission: (asyncio future, result, error).
_Settled = tuple["asyncio.Future[Any]", Any, BaseException | None]


@dataclass(slots=True)
class _Entry:
    op: Op
    rows: int
    waiter: Waiter
    enqueued: float  # time.monotonic()
    live: bool = True  # False once the caller cancelled the future (it is still written)


@dataclass(slots=True)
class _Counters:
    committed_rows: int = 0
    failed_rows: int = 0
    duplicate_rows: int = 0
    commits: int = 0
    failed_commits: int = 0  # consecutive, for logging the outage once
    last_commit_seconds: float = 0.0


class Ledger:
    """Records predictions and labels through one writer thread (DESIGN.md decision 4).

    >>> import pathlib, tempfile
    >>> from loopml.ledger.sqlite import SqliteBackend
    >>> backend = SqliteBackend(pathlib.Path(tempfile.mkdtemp()) / "ledger.db")
    >>> row = PredictionRow("r1", 0, 1.7e9, "feed", "1", "champion", None, "{}", "{}", 0.3)
    >>> with Ledger(backend, queue_size=100, batch_rows=10) as ledger:
    ...     ledger.submit([row]).result(timeout=10)  # resolves once committed
    ...     ledger.stats().committed_rows
    1
    """

    def __init__(
        self,
        backend: LedgerBackend,
        *,
        queue_size: int,
        batch_rows: int,
        retry_after: int = 1,
        mode: Mode = "durable",
    ) -> None:
        if queue_size < 1 or batch_rows < 1:
            raise ValueError("queue_size and batch_rows must be at least 1")
        self.backend = backend
        self.mode: Mode = mode  # informational: the caller awaits futures (durable) or not
        self._capacity = queue_size
        self._batch_rows = batch_rows
        self._retry_after = retry_after
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_Entry] = deque()
        self._pending_rows = 0  # queued + being written
        self._writing_since: float | None = None  # enqueue time of the oldest in the group
        self._closing = False
        self._thread: threading.Thread | None = None
        self._counters = _Counters()

    def start(self) -> None:
        """Start the writer thread (once; later calls do nothing)."""
        with self._cond:
            if self._thread is not None or self._closing:
                return
            self._thread = threading.Thread(
                target=self._run, name="loopml-ledger-writer", daemon=True
            )
        self._thread.start()

    def __enter__(self) -> Ledger:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def submit(self, rows: Sequence[PredictionRow]) -> Future[None]:
        """Queue one request's rows; the future resolves once they are committed.

        It fails with :class:`DuplicateRequest` if a key is already recorded (then none of
        these rows is), or :class:`LedgerError` if the database failed. Raises
        :class:`LedgerFull` or :class:`LedgerClosed` at once instead of queueing.
        """
        future: Future[None] = Future()
        self._enqueue(PredictionOp(tuple(rows)), len(rows), future, None)
        return future

    def submit_feedback(self, items: Sequence[Feedback]) -> Future[FeedbackResult]:
        """Queue labels; the future gives how many were stored and the unknown keys."""
        future: Future[FeedbackResult] = Future()
        self._enqueue(FeedbackOp(tuple(items)), len(items), future, FeedbackResult(0, []))
        return future

    def submit_async(self, rows: Sequence[PredictionRow]) -> asyncio.Future[None]:
        """:meth:`submit` for the running event loop: await the result to be durable.

        Call it in the loop's thread. Raises :class:`LedgerFull` / :class:`LedgerClosed` at
        once; a cancelled await does not stop the rows from being written.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(PredictionOp(tuple(rows)), len(rows), waiter, None)
        return waiter

    def submit_feedback_async(self, items: Sequence[Feedback]) -> asyncio.Future[FeedbackResult]:
        """:meth:`submit_feedback` for the running event loop."""
        waiter: asyncio.Future[FeedbackResult] = asyncio.get_running_loop().create_future()
        self._enqueue(FeedbackOp(tuple(items)), len(items), waiter, FeedbackResult(0, []))
        return waiter

    def _enqueue(self, op: Op, rows: int, waiter: Waiter, empty: Any) -> None:
        if rows == 0:
            waiter.set_result(empty)
            return
        if rows > self._capacity:
            raise LedgerError(
                f"a submission of {rows:,} rows is larger than the ledger queue "
                f"({self._capacity:,} rows)",
                fix="raise serve.ledger.queue_size to at least serve.max_rows",
            )
        with self._cond:
            if self._closing:
                raise LedgerClosed()
            if self._pending_rows + rows > self._capacity:
                raise LedgerFull(self._pending_rows, self._capacity, self._retry_after)
            self._queue.append(_Entry(op, rows, waiter, time.monotonic()))
            self._pending_rows += rows
            self._cond.notify()

    def stats(self) -> LedgerStats:
        """Queue depth, write lag and counters (cheap: one lock, no database access)."""
        now = time.monotonic()
        with self._cond:
            oldest = self._writing_since
            if oldest is None and self._queue:
                oldest = self._queue[0].enqueued
            c = self._counters
            return LedgerStats(
                queue_rows=self._pending_rows,
                queue_capacity=self._capacity,
                oldest_wait_seconds=0.0 if oldest is None else max(0.0, now - oldest),
                last_commit_seconds=c.last_commit_seconds,
                committed_rows=c.committed_rows,
                failed_rows=c.failed_rows,
                duplicate_rows=c.duplicate_rows,
                commits=c.commits,
            )

    def close(self, timeout: float = 10.0) -> None:
        """Stop accepting (:class:`LedgerClosed`), write what is queued, stop the thread.

        If the writer is still busy after ``timeout`` seconds (a hung database), what is
        still queued fails with :class:`LedgerError` and so does this call. The writer is a
        daemon thread: a process that exits without ``close`` loses what was still queued.
        """
        with self._cond:
            already = self._closing
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is None:
            if not already:
                self._run()  # never started: drain here
                self.backend.close()
            return
        thread.join(timeout)
        if thread.is_alive():
            self._abandon(timeout)
        elif not already:
            self.backend.close()

    def _abandon(self, timeout: float) -> None:
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            self._pending_rows -= sum(e.rows for e in left)
        error = LedgerError(
            f"the ledger did not finish writing within {timeout:g} s",
            detail=f"{sum(e.rows for e in left):,} queued rows were not written",
            fix="check that the ledger database is reachable and not locked",
        )
        for entry in left:
            if isinstance(entry.waiter, Future):
                entry.live = entry.waiter.set_running_or_notify_cancel()
        _settle([(entry, None, error) for entry in left])
        raise error

    def _run(self) -> None:
        while (group := self._take()) is not None:
            self._write(group)

    def _take(self) -> list[_Entry] | None:
        """Everything queued, up to ``batch_rows`` rows (always at least one submission)."""
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            group = [self._queue.popleft()]
            rows = group[0].rows
            while self._queue and rows + self._queue[0].rows <= self._batch_rows:
                entry = self._queue.popleft()
                rows += entry.rows
                group.append(entry)
            self._writing_since = group[0].enqueued
        for entry in group:
            if isinstance(entry.waiter, Future):
                # From here on cancel() is refused; a cancelled one is still written.
                entry.live = entry.waiter.set_running_or_notify_cancel()
        return group

    def _write(self, group: list[_Entry]) -> None:
        """Commit a group; when it fails, commit its halves apart, down to the submission
        that fails alone, so that one poisoned submission never takes others with it."""
        started = time.perf_counter()
        try:
            results = self.backend.commit([entry.op for entry in group])
        except Exception as exc:  # the writer must survive anything a backend throws
            if len(group) > 1 and time.perf_counter() - started < SPLIT_SECONDS:
                half = len(group) // 2
                self._write(group[:half])
                self._write(group[half:])
                return
            self._failed(group, _as_ledger_error(exc), time.perf_counter() - started)
            return
        self._committed(group, results, time.perf_counter() - started)

    def _committed(self, group: list[_Entry], results: list[OpResult], seconds: float) -> None:
        pairs = list(zip(group, results, strict=True))
        with self._cond:
            c = self._counters
            recovered, c.failed_commits = c.failed_commits, 0
            c.commits += 1
            c.last_commit_seconds = seconds
            c.committed_rows += sum(_predictions(e) for e, r in pairs if r is None)
            c.duplicate_rows += sum(_predictions(e) for e, r in pairs if r is not None)
            self._release(sum(e.rows for e in group))
        if recovered:
            logger.warning("ledger writes recovered after %d failed commits", recovered)
        _settle([(e, None, r) if isinstance(r, Exception) else (e, r, None) for e, r in pairs])

    def _failed(self, group: list[_Entry], error: LedgerError, seconds: float) -> None:
        with self._cond:
            c = self._counters
            c.failed_commits += 1
            c.last_commit_seconds = seconds
            c.failed_rows += sum(_predictions(e) for e in group)
            self._release(sum(e.rows for e in group))
            first = c.failed_commits == 1
        # One line per outage, not one per failed group.
        logger.log(logging.ERROR if first else logging.DEBUG, "ledger commit failed: %s", error)
        _settle([(entry, None, error) for entry in group])

    def _release(self, rows: int) -> None:
        self._pending_rows -= rows
        self._writing_since = None


def _settle(outcomes: list[tuple[_Entry, Any, BaseException | None]]) -> None:
    """Resolve each waiter: thread-safe futures here, asyncio ones once per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
    for entry, result, error in outcomes:
        waiter = entry.waiter
        if isinstance(waiter, Future):
            if not entry.live:
                continue
            if error is None:
                waiter.set_result(result)
            else:
                waiter.set_exception(error)
        else:
            by_loop.setdefault(waiter.get_loop(), []).append((waiter, result, error))
    for loop, settled in by_loop.items():
        with suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_settle_in_loop, settled)


def _settle_in_loop(settled: list[_Settled]) -> None:
    for waiter, result, error in settled:
        if waiter.done():  # cancelled by its caller
            continue
        if error is None:
            waiter.set_result(result)
        else:
            waiter.set_exception(error)


def _predictions(entry: _Entry) -> int:
    """Prediction rows of a queue entry (labels are not counted as predictions)."""
    return entry.rows if isinstance(entry.op, PredictionOp) else 0


def _as_ledger_error(exc: Exception) -> LedgerError:
    if isinstance(exc, LedgerError):
        return exc
    logger.exception("unexpected error in the ledger writer")
    return LedgerError(
        f"the ledger writer failed: {type(exc).__name__}: {exc}",
        detail="this is a bug in loopml or its database driver",
        fix="report it with the log above; later writes are attempted as usual",
    )
