"""The ledger contract, run over both databases: SQLite (WAL) and a real PostgreSQL.

Every test gets an empty ledger (a fresh SQLite file, or a fresh PostgreSQL schema).
Waiting is never a timing assertion: to hold the writer the tests take the database's
write lock from a second connection (:func:`stall`), so what happens meanwhile is
decided, not raced.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.ledger import (
    DuplicateRequest,
    Feedback,
    FeedbackResult,
    Ledger,
    LedgerClosed,
    LedgerError,
    LedgerFull,
    LedgerQuery,
    PredictionRow,
    export_ledger,
    open_backend,
)

pytestmark = pytest.mark.integration

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        # A long busy timeout: a stalled writer waits for the lock instead of failing.
        return f"sqlite:///{tmp_path}/ledger.db?busy_timeout_ms=60000"
    return str(request.getfixturevalue("postgres_schema_url"))


def make_ledger(url: str, *, queue_size: int = 10_000, batch_rows: int = 2_000) -> Ledger:
    return Ledger(
        open_backend(url, Path(".")), queue_size=queue_size, batch_rows=batch_rows, retry_after=3
    )


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    with make_ledger(url) as started:
        yield started


def row(request_id: str, index: int = 0, **changes: Any) -> PredictionRow:
    values: dict[str, Any] = {
        "request_id": request_id,
        "row": index,
        "ts": 1_715_000_000.25 + index,
        "model": "feed",
        "version": "1",
        "arm": "champion",
        "entity_key": f"user-{index}",
        "features": '{"age": 31.5, "country": "FR", "clicks": 3, "premium": true}',
        "outputs": '{"label": 1, "proba_0": 0.25, "proba_1": 0.75}',
        "latency_ms": 0.42,
    }
    return PredictionRow(**{**values, **changes})


# --- a second connection, straight through the driver -------------------------------


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///").split("?")[0]


def read_keys(url: str) -> list[tuple[str, int]]:
    """Every recorded key (with repeats, if there ever were any), from a new connection."""
    sql = 'SELECT request_id, "row" FROM predictions'
    if url.startswith("sqlite"):
        with sqlite3.connect(_sqlite_path(url)) as conn:
            return [(r, n) for r, n in conn.execute(sql)]
    import psycopg

    with psycopg.connect(url) as conn:
        return [(r, n) for r, n in conn.execute(sql)]


@contextmanager
def stall(url: str) -> Iterator[None]:
    """Hold the predictions table's write lock, so the writer waits on its next commit."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(_sqlite_path(url), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import psycopg

    with psycopg.connect(url) as pg:
        pg.execute("LOCK TABLE predictions IN EXCLUSIVE MODE")
        yield
        pg.rollback()


@contextmanager
def table_missing(url: str, table: str = "predictions") -> Iterator[None]:
    """Move a table away (the database 'fails'), and back."""

    def run(sql: str) -> None:
        if url.startswith("sqlite"):
            with sqlite3.connect(_sqlite_path(url), isolation_level=None) as conn:
                conn.execute(sql)
            return
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)

    run(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        yield
    finally:
        run(f"ALTER TABLE {table}_away RENAME TO {table}")


def wait_taken(future: Future[Any]) -> None:
    """Wait until the writer has taken this submission (its future is then 'running')."""
    deadline = time.monotonic() + 30
    while not (future.running() or future.done()) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert future.running() or future.done()


# --- the contract ---------------------------------------------------------------------


def test_rows_are_committed_and_read_back_unchanged(ledger: Ledger) -> None:
    rows = [row("a", 0), row("a", 1, entity_key=None), row("b", 0, arm="shadow", version="2")]
    ledger.submit(rows[:2]).result(timeout=30)
    ledger.submit(rows[2:]).result(timeout=30)

    with ledger.backend.reader() as reader:
        records = [r for chunk in reader.chunks(LedgerQuery(), 2) for r in chunk]
        shadow = [r for chunk in reader.chunks(LedgerQuery(arm="shadow"), 2) for r in chunk]
        summary = reader.summary()
    assert sorted(records + shadow) == sorted(
        (*(getattr(r, f) for f in PredictionRow.__slots__), None, None) for r in rows
    )
    assert [r.request_id for r in shadow] == ["b"]
    assert summary.rows == 3
    assert summary.shadow_rows == 1
    assert summary.labelled == 0
    assert summary.first_ts == rows[0].ts
    assert summary.last_ts == rows[1].ts
    assert summary.by_version_arm == [("1", "champion", 2), ("2", "shadow", 1)]
    stats = ledger.stats()
    assert stats.committed_rows == 3
    assert stats.queue_rows == 0


def test_a_read_the_database_fails_is_a_ledger_error(url: str, ledger: Ledger) -> None:
    ledger.submit([row("a")]).result(timeout=30)
    with table_missing(url, "labels"):
        with ledger.backend.reader() as reader:
            assert reader.count(LedgerQuery()) == 1  # predictions alone still read
            with pytest.raises(LedgerError, match="cannot read the prediction ledger") as summary:
                reader.summary()
        with ledger.backend.reader() as reader, pytest.raises(LedgerError) as chunks:
            next(reader.chunks(LedgerQuery(), 10))
    for caught in (summary, chunks):
        assert caught.value.headline.startswith("cannot read the prediction ledger")
        assert "labels" in caught.value.detail


def test_durable_future_resolves_only_once_the_row_is_readable_elsewhere(
    ledger: Ledger, url: str
) -> None:
    seen_at_resolution: list[list[tuple[str, int]]] = []
    looked = threading.Event()

    def look(_: Future[None]) -> None:  # runs in the writer thread as the future resolves
        seen_at_resolution.append(read_keys(url))
        looked.set()

    with stall(url):
        future = ledger.submit([row("r1")])
        future.add_done_callback(look)
        wait_taken(future)
        # The writer holds it but cannot commit while the lock is held.
        assert not future.done()
        assert read_keys(url) == []
    future.result(timeout=30)
    assert looked.wait(timeout=30)
    assert seen_at_resolution == [[("r1", 0)]]


def test_everything_queued_is_written_in_one_group(url: str) -> None:
    with make_ledger(url) as ledger:
        with stall(url):
            first = ledger.submit([row("first")])
            wait_taken(first)  # the writer now waits on the lock with 'first' alone
            futures = [ledger.submit([row(f"r{i}", 0), row(f"r{i}", 1)]) for i in range(40)]
        for future in [first, *futures]:
            future.result(timeout=30)
        stats = ledger.stats()
    assert stats.commits == 2  # 'first', then the 40 queued behind it together
    assert stats.committed_rows == 81
    assert len(read_keys(url)) == 81


def test_64_submitter_threads_record_every_row_exactly_once(ledger: Ledger, url: str) -> None:
    def submit_many(thread: int) -> None:
        for i in range(15):
            rows = [row(f"t{thread}-{i}", k) for k in range(1 + i % 3)]
            ledger.submit(rows).result(timeout=60)

    threads = [threading.Thread(target=submit_many, args=(t,)) for t in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    keys = read_keys(url)
    expected = {(f"t{t}-{i}", k) for t in range(64) for i in range(15) for k in range(1 + i % 3)}
    assert len(keys) == len(expected) == 1920
    assert set(keys) == expected
    stats = ledger.stats()
    assert stats.committed_rows == 1920
    assert stats.failed_rows == stats.duplicate_rows == 0


def test_64_coroutines_awaiting_submit_async_record_every_row_once(
    ledger: Ledger, url: str
) -> None:
    async def client(c: int) -> None:
        for i in range(20):
            await ledger.submit_async([row(f"c{c}-{i}", k) for k in range(1 + i % 2)])

    async def main() -> None:
        await asyncio.gather(*(client(c) for c in range(64)))

    asyncio.run(main())
    expected = {(f"c{c}-{i}", k) for c in range(64) for i in range(20) for k in range(1 + i % 2)}
    keys = read_keys(url)
    assert len(keys) == len(expected) == 1920
    assert set(keys) == expected


@pytest.mark.parametrize("size", [1, 40], ids=["small", "large"])  # INSERT / COPY on PG
def test_a_duplicate_fails_only_its_own_submission(ledger: Ledger, url: str, size: int) -> None:
    def rows(request_id: str, *extra: PredictionRow) -> list[PredictionRow]:
        return [row(request_id, k) for k in range(size)] + list(extra)

    ledger.submit(rows("old")).result(timeout=30)
    with stall(url):
        ok_1 = ledger.submit(rows("a"))
        dup_earlier = ledger.submit(rows("old"))
        dup_in_group = ledger.submit(rows("new", row("a", 0)))
        dup_inside = ledger.submit(rows("twice", row("twice", 0)))
        ok_2 = ledger.submit(rows("b"))
    ok_1.result(timeout=30)
    ok_2.result(timeout=30)
    for future, request_id in ((dup_earlier, "old"), (dup_in_group, "new"), (dup_inside, "twice")):
        with pytest.raises(DuplicateRequest) as caught:
            future.result(timeout=30)
        assert caught.value.request_id == request_id
        assert caught.value.status == 409
    keys = read_keys(url)
    assert sorted(keys) == sorted((r, k) for r in ("a", "b", "old") for k in range(size))
    stats = ledger.stats()
    assert stats.duplicate_rows == 3 * size + 2
    assert stats.committed_rows == 3 * size


def test_feedback_joins_known_predictions_and_reports_unknown_ones(
    ledger: Ledger, tmp_path: Path
) -> None:
    ledger.submit([row("a", 0), row("a", 1), row("b", 0)])  # not awaited: ordering does it
    first = ledger.submit_feedback(
        [Feedback("a", 0, "0", 10.0), Feedback("zzz", 0, "1", 10.0), Feedback("a", 7, "1", 10.0)]
    ).result(timeout=30)
    later = ledger.submit_feedback([Feedback("a", 0, "1", 20.0), Feedback("b", 0, "0", 21.0)])

    assert first == FeedbackResult(recorded=1, unknown=[("zzz", 0), ("a", 7)])
    assert later.result(timeout=30) == FeedbackResult(recorded=2, unknown=[])
    with ledger.backend.reader() as reader:
        records = [r for chunk in reader.chunks(LedgerQuery(), 10) for r in chunk]
        assert reader.summary().labelled == 2
    labels = {(r.request_id, r.row): (r.label, r.labelled_at) for r in records}
    assert labels == {("a", 0): ("1", 20.0), ("a", 1): (None, None), ("b", 0): ("0", 21.0)}


def test_a_full_queue_refuses_at_once_and_recovers(url: str) -> None:
    with make_ledger(url, queue_size=3) as ledger:
        with stall(url):
            futures = [ledger.submit([row(f"r{i}")]) for i in range(3)]
            assert ledger.stats().queue_rows == 3
            with pytest.raises(LedgerFull) as caught:
                ledger.submit([row("one-too-many")])
            assert caught.value.retry_after == 3
            with pytest.raises(LedgerFull):
                ledger.submit_feedback([Feedback("r0", 0, "1", 1.0)])
        for future in futures:
            future.result(timeout=30)
        ledger.submit([row("after")]).result(timeout=30)
    assert sorted(read_keys(url)) == [("after", 0), ("r0", 0), ("r1", 0), ("r2", 0)]


def test_close_drains_the_queue_then_refuses(url: str) -> None:
    ledger = make_ledger(url)
    ledger.start()
    futures = [ledger.submit([row(f"r{i}")]) for i in range(200)]
    ledger.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(read_keys(url)) == 200
    with pytest.raises(LedgerClosed):
        ledger.submit([row("late")])
    ledger.close()  # twice is harmless


def test_close_gives_up_on_a_hung_database_without_hanging(url: str) -> None:
    ledger = make_ledger(url)
    ledger.start()
    with stall(url):
        stuck = ledger.submit([row("stuck")])
        wait_taken(stuck)
        queued = ledger.submit([row("queued")])
        with pytest.raises(LedgerError, match="did not finish"):
            ledger.close(timeout=0.2)
        with pytest.raises(LedgerError):
            queued.result(timeout=30)
    stuck.result(timeout=30)  # the group already being written still lands
    assert read_keys(url) == [("stuck", 0)]


def test_a_database_failure_fails_its_group_and_later_commits_succeed(
    ledger: Ledger, url: str
) -> None:
    with table_missing(url):
        failed = ledger.submit([row("lost", 0), row("lost", 1)])
        with pytest.raises(LedgerError, match="cannot write"):
            failed.result(timeout=30)
    ledger.submit([row("back")]).result(timeout=30)
    assert read_keys(url) == [("back", 0)]
    stats = ledger.stats()
    assert stats.failed_rows == 2
    assert stats.committed_rows == 1


def test_a_failed_submission_fails_alone_and_keeps_nothing_of_itself(
    ledger: Ledger, url: str
) -> None:
    with table_missing(url, "labels"):
        with stall(url):
            first = ledger.submit([row("first")])
            wait_taken(first)  # the next two are queued behind it: one group
            prediction = ledger.submit([row("p", 0), row("p", 1)])
            feedback = ledger.submit_feedback([Feedback("first", 0, "1", 1.0)])
        first.result(timeout=30)
        # The group fails on the labels; split, the predictions commit whole and the
        # feedback fails alone.
        assert prediction.result(timeout=30) is None
        with pytest.raises(LedgerError):
            feedback.result(timeout=30)
    assert read_keys(url) == [("first", 0), ("p", 0), ("p", 1)]
    assert ledger.stats().failed_rows == 0


def test_export_writes_labels_and_honours_since_until_and_version(
    ledger: Ledger, tmp_path: Path
) -> None:
    day = 86_400.0
    base = datetime(2024, 5, 1, tzinfo=UTC).timestamp()
    rows = [
        row("a", 0, ts=base, version="1"),
        row("b", 0, ts=base + day, version="1", features='{"age": 40, "country": null}'),
        row("c", 0, ts=base + 2 * day, version="2", outputs='{"value": 2.5}'),
        row("d", 0, ts=base + 3 * day, version="2", features='{"age": 22.5, "extra": "x"}'),
    ]
    ledger.submit(rows).result(timeout=30)
    ledger.submit_feedback([Feedback("b", 0, "1", base + 5 * day)]).result(timeout=30)

    out = tmp_path / "all.parquet"
    result = export_ledger(ledger.backend, out)
    table = pq.read_table(out)
    assert (result.rows, result.labelled, result.path) == (4, 1, out)
    assert table.column_names == [
        "request_id", "row", "ts", "model", "version", "arm", "entity_key", "latency_ms",
        "age", "country", "clicks", "premium", "extra",
        "prediction", "proba_0", "proba_1", "value", "label", "labelled_at",
    ]  # fmt: skip
    data = table.to_pydict()
    assert data["request_id"] == ["a", "b", "c", "d"]
    assert data["ts"][1] == datetime(2024, 5, 2, tzinfo=UTC)
    assert data["age"] == [31.5, 40.0, 31.5, 22.5]
    assert data["country"] == ["FR", None, "FR", None]
    assert data["clicks"] == [3, None, 3, None]
    assert data["premium"] == [True, None, True, None]
    assert data["prediction"] == [1, 1, None, 1]
    assert data["value"] == [None, None, 2.5, None]
    assert data["label"] == [None, 1, None, None]
    assert data["labelled_at"][1] == datetime(2024, 5, 6, tzinfo=UTC)
    assert not list(tmp_path.glob(".*.tmp"))

    since = datetime(2024, 5, 2, tzinfo=UTC)
    until = datetime(2024, 5, 4, tzinfo=UTC)
    window = export_ledger(ledger.backend, tmp_path / "w.parquet", since=since, until=until)
    assert pq.read_table(window.path).column("request_id").to_pylist() == ["b", "c"]
    v2 = export_ledger(ledger.backend, tmp_path / "v2.parquet", version="2")
    assert pq.read_table(v2.path).column("request_id").to_pylist() == ["c", "d"]


def test_writer_reconnects_after_its_postgres_session_is_killed(postgres_schema_url: str) -> None:
    import psycopg

    with make_ledger(postgres_schema_url) as ledger:
        ledger.submit([row("before")]).result(timeout=30)
        with psycopg.connect(postgres_schema_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'loopml-ledger' AND datname = current_database()"
            ).fetchall()
        assert killed == [(True,)]
        ledger.submit([row("after")]).result(timeout=30)  # retried on a new session
        assert ledger.stats().failed_rows == 0
    assert sorted(read_keys(postgres_schema_url)) == [("after", 0), ("before", 0)]


# --- properties -------------------------------------------------------------------------

KEYS = st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 2))
OPS = st.lists(
    st.tuples(
        st.sampled_from(["predict", "feedback"]),
        st.lists(KEYS, min_size=1, max_size=4),
        st.booleans(),  # wait for this one before sending the next (a group boundary)
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
def test_outcomes_match_a_sequential_model_whatever_the_grouping(
    ledger: Ledger, url: str, ops: list[tuple[str, list[tuple[str, int]], bool]]
) -> None:
    prefix = uuid.uuid4().hex[:8] + "-"  # one ledger for all examples: keys kept apart
    recorded: set[tuple[str, int]] = set()
    expected: list[object] = []
    futures: list[Future[Any]] = []
    for kind, keys, wait in ops:
        items = [(prefix + r, n) for r, n in keys]
        if kind == "predict":
            future: Future[Any] = ledger.submit([row(r, n) for r, n in items])
            ok = len(set(items)) == len(items) and not recorded & set(items)
            recorded |= set(items) if ok else set()
            expected.append("ok" if ok else "duplicate")
        else:
            future = ledger.submit_feedback([Feedback(r, n, "1", 1.0) for r, n in items])
            unknown = [k for k in items if k not in recorded]
            expected.append(FeedbackResult(len(items) - len(unknown), unknown))
        futures.append(future)
        if wait:
            future.exception(timeout=30)

    outcomes = [_outcome(f) for f in futures]
    assert outcomes == expected
    assert {k for k in read_keys(url) if k[0].startswith(prefix)} == recorded


def _outcome(future: Future[Any]) -> object:
    error = future.exception(timeout=30)
    if isinstance(error, DuplicateRequest):
        return "duplicate"
    assert error is None, error
    result = future.result()
    return "ok" if result is None else result


# --- kill -9 in durable mode --------------------------------------------------------------

_CHILD = """
import sys, threading, time
from pathlib import Path
from loopml.ledger import Ledger, PredictionRow, open_backend

ledger = Ledger(open_backend(sys.argv[1], Path(".")), queue_size=1000, batch_rows=100)
ledger.start()
lock = threading.Lock()

def work(t):
    for i in range(1_000_000):
        rid = f"t{t}-{i}"
        rows = [PredictionRow(rid, k, time.time(), "m", "1", "champion", None, "{}", "{}", 0.1)
                for k in range(1 + i % 3)]
        ledger.submit(rows).result()
        with lock:
            print(rid, len(rows), flush=True)

for t in range(8):
    threading.Thread(target=work, args=(t,), daemon=True).start()
time.sleep(600)
"""


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_every_acknowledged_row_survives_kill_9(url: str) -> None:
    open_backend(url, Path(".")).close()  # the tables exist before the child races to them
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # The brief for signalled children; the parent's other threads take no locks here.
        preexec_fn=_default_signals,  # noqa: PLW1509
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    guard = threading.Timer(120, child.kill)  # never hang the test run
    guard.start()
    acknowledged: set[tuple[str, int]] = set()
    try:
        assert child.stdout is not None
        for line in child.stdout:
            request_id, count = line.split()
            acknowledged |= {(request_id, k) for k in range(int(count))}
            if len(acknowledged) >= 600:
                child.send_signal(signal.SIGKILL)
                break
        rest, errors = child.communicate(timeout=60)
    finally:
        guard.cancel()
    for line in rest.splitlines():  # printed before the kill landed
        request_id, count = line.split()
        acknowledged |= {(request_id, k) for k in range(int(count))}
    assert child.returncode == -signal.SIGKILL, errors
    assert len(acknowledged) >= 600
    assert acknowledged <= set(read_keys(url))
