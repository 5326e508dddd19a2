"""An in-memory ledger backend whose commits the test can hold, fail or inspect."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from loopml.ledger import FeedbackResult, LedgerQuery, LedgerRecord, LedgerSummary
from loopml.ledger.backend import Op, OpResult, PredictionOp
from loopml.ledger.records import DuplicateRequest, PredictionRow


def row(request_id: str, index: int = 0, ts: float = 1_700_000_000.0) -> PredictionRow:
    return PredictionRow(
        request_id, index, ts, "m", "1", "champion", None, '{"x": 1}', '{"label": 1}', 0.1
    )


def wait_taken(future: Future[Any]) -> None:
    """Until the writer holds this submission (or is done with it)."""
    deadline = time.monotonic() + 30
    while not (future.running() or future.done()) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert future.running() or future.done()


class FakeBackend:
    """Keeps rows in a dict; ``hold()`` makes commits wait, ``fail`` makes them raise."""

    url = "fake://"

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], PredictionRow] = {}
        self.labels: dict[tuple[str, int], str] = {}
        self.groups: list[list[int]] = []  # rows per op, per commit
        self.fail: Exception | None = None
        self.closed = False
        self._open = threading.Event()
        self._open.set()

    @contextmanager
    def hold(self) -> Iterator[None]:
        self._open.clear()
        try:
            yield
        finally:
            self._open.set()

    def commit(self, ops: Sequence[Op]) -> list[OpResult]:
        assert self._open.wait(timeout=30), "a test held the fake backend too long"
        if self.fail is not None:
            raise self.fail
        self.groups.append([_size(op) for op in ops])
        return [self._apply(op) for op in ops]

    def _apply(self, op: Op) -> OpResult:
        if isinstance(op, PredictionOp):
            keys = [r.key for r in op.rows]
            if len(set(keys)) < len(keys) or any(k in self.rows for k in keys):
                return DuplicateRequest(op.rows[0].request_id)
            self.rows.update({r.key: r for r in op.rows})
            return None
        unknown = [item.key for item in op.items if item.key not in self.rows]
        for item in op.items:
            if item.key in self.rows:
                self.labels[item.key] = item.label
        return FeedbackResult(len(op.items) - len(unknown), unknown)

    @contextmanager
    def reader(self) -> Iterator[FakeReader]:
        yield FakeReader(self)

    def close(self) -> None:
        self.closed = True


class FakeReader:
    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend

    def _records(self, query: LedgerQuery) -> list[LedgerRecord]:
        out: list[LedgerRecord] = []
        for r in sorted(self.backend.rows.values(), key=lambda r: r.ts):
            if query.since is not None and r.ts < query.since:
                continue
            if query.until is not None and r.ts >= query.until:
                continue
            if query.version is not None and r.version != query.version:
                continue
            label = self.backend.labels.get(r.key)
            fields = [getattr(r, f) for f in PredictionRow.__slots__]
            out.append(LedgerRecord(*fields, label, None if label is None else r.ts + 1))
        return out

    def count(self, query: LedgerQuery) -> int:
        return len(self._records(query))

    def chunks(
        self, query: LedgerQuery, chunk_rows: int, *, features: bool = True
    ) -> Iterator[list[LedgerRecord]]:
        records = self._records(query)
        for start in range(0, len(records), chunk_rows):
            yield records[start : start + chunk_rows]

    def summary(self) -> LedgerSummary:
        return LedgerSummary(self.backend.url, len(self.backend.rows), 0, None, None, [])


def _size(op: Op) -> int:
    return len(op.rows) if isinstance(op, PredictionOp) else len(op.items)
