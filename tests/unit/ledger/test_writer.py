from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from loopml.ledger import (
    DuplicateRequest,
    Feedback,
    FeedbackResult,
    Ledger,
    LedgerClosed,
    LedgerError,
    LedgerFull,
)
from tests.unit.ledger.fakes import FakeBackend, row, wait_taken

pytestmark = pytest.mark.unit


def make(backend: FakeBackend, queue_size: int = 100, batch_rows: int = 50) -> Ledger:
    return Ledger(backend, queue_size=queue_size, batch_rows=batch_rows, retry_after=7)


def test_a_group_takes_queued_submissions_up_to_batch_rows() -> None:
    backend = FakeBackend()
    with make(backend, batch_rows=7) as ledger:
        with backend.hold():
            first = ledger.submit([row("first")])
            wait_taken(first)
            futures = [ledger.submit([row(f"r{i}", k) for k in range(3)]) for i in range(5)]
            big = ledger.submit([row("big", k) for k in range(10)])  # > batch_rows: alone
        for future in [first, *futures, big]:
            assert future.result(timeout=10) is None
    assert backend.groups == [[1], [3, 3], [3, 3], [3], [10]]
    assert len(backend.rows) == 26


def test_queue_capacity_counts_rows_including_the_group_being_written() -> None:
    backend = FakeBackend()
    with make(backend, queue_size=5) as ledger:
        with backend.hold():
            taken = ledger.submit([row("a", 0), row("a", 1)])
            wait_taken(taken)
            queued = ledger.submit([row("b", 0), row("b", 1), row("b", 2)])
            stats = ledger.stats()
            assert (stats.queue_rows, stats.queue_capacity) == (5, 5)
            assert stats.oldest_wait_seconds > 0
            with pytest.raises(LedgerFull) as caught:
                ledger.submit([row("c")])
            assert caught.value.retry_after == 7
            assert "5 of 5 rows" in caught.value.headline
        queued.result(timeout=10)
        ledger.submit([row("c")]).result(timeout=10)
        stats = ledger.stats()
    assert (stats.queue_rows, stats.oldest_wait_seconds, stats.committed_rows) == (0, 0.0, 6)


def test_a_submission_larger_than_the_whole_queue_is_a_configuration_error() -> None:
    ledger = make(FakeBackend(), queue_size=3)
    with pytest.raises(LedgerError, match="larger than the ledger queue") as caught:
        ledger.submit([row("big", k) for k in range(4)])
    assert "queue_size" in caught.value.fix


def test_empty_submissions_resolve_at_once_without_a_commit() -> None:
    backend = FakeBackend()
    ledger = make(backend)
    assert ledger.submit([]).result(timeout=1) is None
    assert ledger.submit_feedback([]).result(timeout=1) == FeedbackResult(0, [])
    ledger.close()
    assert backend.groups == []


def test_duplicates_fail_only_their_submission_and_are_counted() -> None:
    backend = FakeBackend()
    with make(backend) as ledger:
        ledger.submit([row("a")]).result(timeout=10)
        duplicate = ledger.submit([row("a"), row("x")])
        fine = ledger.submit([row("b")])
        with pytest.raises(DuplicateRequest):
            duplicate.result(timeout=10)
        fine.result(timeout=10)
        stats = ledger.stats()
    assert (stats.committed_rows, stats.duplicate_rows) == (2, 2)


def test_feedback_is_ordered_after_earlier_predictions() -> None:
    backend = FakeBackend()
    with make(backend) as ledger:
        ledger.submit([row("a")])  # not awaited
        result = ledger.submit_feedback([Feedback("a", 0, "1", 1.0), Feedback("n", 0, "0", 1.0)])
        assert result.result(timeout=10) == FeedbackResult(1, [("n", 0)])
    assert backend.labels == {("a", 0): "1"}


def test_an_unexpected_backend_exception_fails_the_group_and_the_writer_lives_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = FakeBackend()
    with make(backend) as ledger:
        backend.fail = RuntimeError("driver bug")
        with caplog.at_level(logging.DEBUG, logger="loopml.ledger"):
            for name in ("x", "y"):
                with pytest.raises(LedgerError, match="RuntimeError: driver bug"):
                    ledger.submit([row(name)]).result(timeout=10)
            backend.fail = None
            ledger.submit([row("z")]).result(timeout=10)
        stats = ledger.stats()
    assert (stats.failed_rows, stats.committed_rows, stats.commits) == (2, 1, 1)
    failed = [r.levelno for r in caplog.records if r.getMessage().startswith("ledger commit")]
    assert failed == [logging.ERROR, logging.DEBUG]  # one error line per outage
    assert any("recovered after 2 failed commits" in r.getMessage() for r in caplog.records)


def test_a_backend_ledger_error_reaches_the_caller_unchanged() -> None:
    backend = FakeBackend()
    backend.fail = LedgerError("cannot write to the prediction ledger", fix="start it")
    with make(backend) as ledger, pytest.raises(LedgerError) as caught:
        ledger.submit([row("a")]).result(timeout=10)
    assert caught.value is backend.fail


def test_a_cancelled_submission_is_still_written_and_the_writer_survives() -> None:
    backend = FakeBackend()
    with make(backend) as ledger:
        with backend.hold():
            taken = ledger.submit([row("a")])
            wait_taken(taken)
            assert not taken.cancel()  # the writer holds it: too late to cancel
            dropped = ledger.submit([row("b")])
            assert dropped.cancel()  # e.g. the client went away
        taken.result(timeout=10)
        ledger.submit([row("c")]).result(timeout=10)
    assert sorted(backend.rows) == [("a", 0), ("b", 0), ("c", 0)]


def test_close_drains_even_a_ledger_that_was_never_started() -> None:
    backend = FakeBackend()
    ledger = make(backend)
    futures = [ledger.submit([row(f"r{i}")]) for i in range(10)]
    ledger.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(backend.rows) == 10
    assert backend.closed
    with pytest.raises(LedgerClosed):
        ledger.submit([row("late")])
    with pytest.raises(LedgerClosed):
        ledger.submit_feedback([Feedback("r1", 0, "1", 1.0)])
    ledger.start()  # after close: nothing starts
    ledger.close()


def test_close_with_a_hung_backend_fails_what_is_queued_and_says_so() -> None:
    backend = FakeBackend()
    ledger = make(backend)
    ledger.start()
    with backend.hold():
        stuck = ledger.submit([row("stuck")])
        wait_taken(stuck)
        queued = ledger.submit([row("queued", 0), row("queued", 1)])
        with pytest.raises(LedgerError, match="did not finish") as caught:
            ledger.close(timeout=0.05)
        assert "2 queued rows were not written" in caught.value.detail
        with pytest.raises(LedgerError):
            queued.result(timeout=10)
        assert not backend.closed  # the writer still uses it
    stuck.result(timeout=10)
    assert ledger.stats().queue_rows == 0


def test_many_threads_each_get_their_own_outcome() -> None:
    backend = FakeBackend()
    outcomes: dict[str, str] = {}

    def submit(i: int) -> None:
        future = ledger.submit([row(f"r{i % 20}")])  # 20 keys, 80 submitters
        try:
            future.result(timeout=10)
            outcomes[f"{i}"] = "ok"
        except DuplicateRequest:
            outcomes[f"{i}"] = "duplicate"

    with make(backend, queue_size=1000) as ledger:
        threads = [threading.Thread(target=submit, args=(i,)) for i in range(80)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(outcomes.values()).count("ok") == 20
    assert len(backend.rows) == 20


def test_bad_sizes_and_arms_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Ledger(FakeBackend(), queue_size=0, batch_rows=1)
    with pytest.raises(ValueError, match="arm must be one of"):
        row("a").__class__("a", 0, 1.0, "m", "1", "canary", None, "{}", "{}", 0.1)


def test_submit_async_settles_on_the_event_loop_with_the_same_outcomes() -> None:
    backend = FakeBackend()

    async def scenario(ledger: Ledger) -> list[object]:
        ok = ledger.submit_async([row("a")])
        duplicate = ledger.submit_async([row("a")])
        feedback = ledger.submit_feedback_async([Feedback("a", 0, "1", 1.0)])
        empty = ledger.submit_async([])
        outcomes = await asyncio.gather(ok, duplicate, feedback, empty, return_exceptions=True)
        return [type(o).__name__ if isinstance(o, Exception) else o for o in outcomes]

    with make(backend) as ledger:
        outcomes = asyncio.run(scenario(ledger))
    assert outcomes == [None, "DuplicateRequest", FeedbackResult(1, []), None]


def test_submit_async_refuses_at_once_and_a_cancelled_await_is_still_written() -> None:
    backend = FakeBackend()

    async def scenario(ledger: Ledger) -> None:
        with backend.hold():
            first = ledger.submit_async([row("a")])
            second = ledger.submit_async([row("b")])
            with pytest.raises(LedgerFull):
                ledger.submit_async([row("c")])
            second.cancel()  # the client went away
        await first
        await ledger.submit_async([row("d")])  # the loop callback skipped 'b' quietly

    with make(backend, queue_size=2) as ledger:
        asyncio.run(scenario(ledger))
    assert sorted(backend.rows) == [("a", 0), ("b", 0), ("d", 0)]


def test_coroutines_queued_together_are_written_together() -> None:
    backend = FakeBackend()

    async def scenario(ledger: Ledger) -> None:
        with backend.hold():
            first = ledger.submit_async([row("first")])
            waiters = [ledger.submit_async([row(f"r{i}")]) for i in range(50)]
        await asyncio.gather(first, *waiters)

    with make(backend) as ledger:
        asyncio.run(scenario(ledger))
    assert len(backend.rows) == 51
    assert len(backend.groups) <= 2
