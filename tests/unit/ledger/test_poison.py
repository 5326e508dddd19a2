"""One submission cannot break the ledger: a value the database refuses fails only its own
submission, the transaction is rolled back whatever the exception, and every good
submission committed beside it is kept (issue 12, problem 1)."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.ledger import Feedback, Ledger, LedgerQuery
from loopml.ledger.backend import FeedbackOp, PredictionOp
from loopml.ledger.sqlite import SqliteBackend
from tests.unit.ledger.fakes import row

pytestmark = pytest.mark.unit

POISON_ROW = 2**63  # one past SQLite's INTEGER: OverflowError inside the driver


def poison(request_id: str) -> Feedback:
    return Feedback(request_id, POISON_ROW, "1", 1_700_000_000.0)


def test_an_overflowing_value_rolls_back_and_releases_the_write_lock(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "l.db")
    backend.commit([PredictionOp([row("a")])])
    with pytest.raises(OverflowError):
        backend.commit([FeedbackOp([poison("a")])])
    other = SqliteBackend(tmp_path / "l.db")  # another worker: the lock must be free
    other.commit([PredictionOp([row("b")])])
    backend.commit([PredictionOp([row("c")])])  # and this connection works again
    with other.reader() as reader:
        assert reader.count(LedgerQuery()) == 3
    backend.close()
    other.close()


def test_a_poisoned_submission_fails_alone_in_its_group(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "l.db")
    with Ledger(backend, queue_size=1_000, batch_rows=500) as ledger:
        good = [ledger.submit([row(f"g{i}")]) for i in range(20)]
        bad = ledger.submit_feedback([poison("g3")])
        more = [ledger.submit([row(f"h{i}")]) for i in range(20)]
        for future in [*good, *more]:
            assert future.result(timeout=30) is None
        with pytest.raises(Exception, match="OverflowError|too large"):
            bad.result(timeout=30)
        stats = ledger.stats()
    assert stats.committed_rows == 40 and stats.failed_rows == 0
    with SqliteBackend(tmp_path / "l.db").reader() as reader:
        assert reader.count(LedgerQuery()) == 40


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(["prediction", "label", "poison"]), min_size=1, max_size=40))
def test_every_good_acknowledged_submission_is_committed(tmp_path: Path, kinds: list[str]) -> None:
    folder = tmp_path / f"run-{abs(hash(tuple(kinds)))}"
    folder.mkdir()
    backend = SqliteBackend(folder / "l.db")
    submitted: list[tuple[str, str, Future[Any]]] = []
    with Ledger(backend, queue_size=1_000, batch_rows=64) as ledger:
        for n, kind in enumerate(kinds):
            if kind == "prediction":
                submitted.append((kind, f"p{n}", ledger.submit([row(f"p{n}"), row(f"p{n}", 1)])))
            elif kind == "label":
                label = Feedback(f"p{n - 1}", 0, '"1"', 1_700_000_000.0)
                submitted.append((kind, f"p{n - 1}", ledger.submit_feedback([label])))
            else:
                submitted.append((kind, f"x{n}", ledger.submit_feedback([poison(f"p{n - 1}")])))
        acknowledged = set()
        for kind, name, future in submitted:
            if kind == "poison":
                assert future.exception(timeout=30) is not None
            else:
                future.result(timeout=30)  # never an error for a good submission
                if kind == "prediction":
                    acknowledged.add(name)
    with SqliteBackend(folder / "l.db").reader() as reader:
        stored = {r.request_id for chunk in reader.chunks(LedgerQuery(), 1_000) for r in chunk}
    assert acknowledged <= stored and len(stored) == len(acknowledged)
