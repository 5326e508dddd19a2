"""The label history, run over both databases: SQLite and a real PostgreSQL.

A label is training data, so a correction is a new version, never an overwrite: every
submission is a row of ``label_history`` (time, token scope, client, source) and the
current label — what the export and the monitor read — is the latest one. A ledger
written before the history existed (schema 1) is upgraded in place when it is opened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from loopml.ledger import Feedback, FeedbackResult, Ledger, LedgerQuery, export_ledger, open_backend
from loopml.ledger.records import LabelVersion
from tests.integration.test_ledger_backends import make_ledger, row

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    with make_ledger(url) as started:
        yield started


def history(ledger: Ledger, query: LedgerQuery | None = None) -> list[LabelVersion]:
    with ledger.backend.reader() as reader:
        return [v for chunk in reader.label_history(query or LedgerQuery(), 2) for v in chunk]


def current(ledger: Ledger) -> dict[tuple[str, int], str | None]:
    with ledger.backend.reader() as reader:
        records = [r for chunk in reader.chunks(LedgerQuery(), 2) for r in chunk]
    keys = [(r.request_id, r.row) for r in records]
    assert len(keys) == len(set(keys)), "a prediction read twice (once per label version)"
    return {(r.request_id, r.row): r.label for r in records}


def test_a_correction_is_a_new_version_and_the_latest_is_current(ledger: Ledger) -> None:
    ledger.submit([row("order-1001", 0), row("order-1001", 1), row("b", 0)])
    first = Feedback("order-1001", 0, '"1"', 10.0, "feedback", "10.0.0.7", "crm")
    assert ledger.submit_feedback([first]).result(timeout=30) == FeedbackResult(1, [])
    later = [
        Feedback("order-1001", 0, '"0"', 20.0, "admin", "10.0.0.9", "review"),
        Feedback("b", 0, '"1"', 21.0, "feedback"),
        Feedback("b", 0, '"0"', 22.0, "feedback"),  # twice in one submission: two versions
        Feedback("nobody", 0, '"1"', 23.0, "feedback"),
    ]
    result = ledger.submit_feedback(later).result(timeout=30)

    assert result == FeedbackResult(recorded=3, unknown=[("nobody", 0)])
    assert current(ledger) == {("order-1001", 0): '"0"', ("order-1001", 1): None, ("b", 0): '"0"'}
    assert history(ledger) == [
        LabelVersion("order-1001", 0, 1, False, '"1"', 10.0, "feedback", "10.0.0.7", "crm"),
        LabelVersion("order-1001", 0, 2, True, '"0"', 20.0, "admin", "10.0.0.9", "review"),
        LabelVersion("b", 0, 1, False, '"1"', 21.0, "feedback", None, None),
        LabelVersion("b", 0, 2, True, '"0"', 22.0, "feedback", None, None),
    ]
    with ledger.backend.reader() as reader:
        summary = reader.summary()
    assert (summary.labelled, summary.label_versions) == (2, 4)


def test_history_is_filtered_by_its_predictions_but_numbered_over_all(ledger: Ledger) -> None:
    ledger.submit([row("old", 0, ts=100.0, version="1"), row("new", 0, ts=200.0, version="2")])
    for n, ts in enumerate((10.0, 20.0, 30.0)):
        items = [Feedback("old", 0, f'"{n}"', ts), Feedback("new", 0, f'"{n}"', ts)]
        ledger.submit_feedback(items).result(timeout=30)

    picked = history(ledger, LedgerQuery(version="2"))
    assert [(v.request_id, v.version, v.current) for v in picked] == [
        ("new", 1, False), ("new", 2, False), ("new", 3, True)
    ]  # fmt: skip
    assert [v.request_id for v in history(ledger, LedgerQuery(since=150.0))] == ["new"] * 3


def test_export_gives_the_current_label_or_the_whole_history(
    ledger: Ledger, tmp_path: Path
) -> None:
    ledger.submit([row("order-1001", 0)])
    for label, ts, scope in (('"1"', 10.0, "feedback"), ('"0"', 20.0, "anonymous")):
        ledger.submit_feedback([Feedback("order-1001", 0, label, ts, scope)]).result(timeout=30)

    plain = export_ledger(ledger.backend, tmp_path / "current.parquet")
    full = export_ledger(ledger.backend, tmp_path / "history.parquet", label_history=True)

    assert (plain.rows, plain.labelled) == (1, 1)
    assert pq.read_table(plain.path).column("label").to_pylist() == ["0"]
    assert (full.rows, full.labelled) == (2, 1)
    table = pq.read_table(full.path).to_pydict()
    assert table["label"] == ["1", "0"]
    assert table["label_version"] == [1, 2]
    assert table["current"] == [False, True]
    assert table["scope"] == ["feedback", "anonymous"]
    assert [t.timestamp() for t in table["labelled_at"]] == [10.0, 20.0]


# --- a ledger written before the history existed (schema 1) --------------------------

V1_SCHEMA = (
    "CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT INTO ledger_meta (key, value) VALUES ('schema_version', '1')",
    'CREATE TABLE predictions (request_id TEXT NOT NULL, "row" INTEGER NOT NULL, '
    "ts DOUBLE PRECISION NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, "
    "arm TEXT NOT NULL, entity_key TEXT, features TEXT NOT NULL, outputs TEXT NOT NULL, "
    'latency_ms DOUBLE PRECISION NOT NULL, PRIMARY KEY (request_id, "row"))',
    'CREATE TABLE labels (request_id TEXT NOT NULL, "row" INTEGER NOT NULL, '
    'label TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, PRIMARY KEY (request_id, "row"))',
    "INSERT INTO predictions VALUES ('a', 0, 1.0, 'feed', '1', 'champion', NULL, '{}', "
    "'{}', 0.1), ('b', 0, 2.0, 'feed', '1', 'champion', NULL, '{}', '{}', 0.1)",
    "INSERT INTO labels VALUES ('a', 0, '\"1\"', 5.0)",
)


def run_sql(url: str, statements: tuple[str, ...] | list[str]) -> list[tuple[Any, ...]]:
    """Run statements on a connection of its own; the rows of the last one."""
    rows: list[tuple[Any, ...]] = []
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            for sql in statements:
                rows = conn.execute(sql).fetchall()
            conn.commit()
        finally:
            conn.close()
        return rows
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        for sql in statements:
            cursor = pg.execute(sql)
            rows = cursor.fetchall() if cursor.description else []
    return rows


def test_a_schema_1_ledger_is_upgraded_in_place_keeping_its_labels(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    run_sql(url, V1_SCHEMA)
    with caplog.at_level("WARNING", logger="loopml.ledger"), make_ledger(url) as ledger:
        assert current(ledger) == {("a", 0): '"1"', ("b", 0): None}
        assert history(ledger) == [
            LabelVersion("a", 0, 1, True, '"1"', 5.0, "before-history", None, None)
        ]
        ledger.submit_feedback([Feedback("a", 0, '"0"', 9.0, "feedback")]).result(timeout=30)
        assert [v.label for v in history(ledger)] == ['"1"', '"0"']
        assert current(ledger)[("a", 0)] == '"0"'
    assert "upgraded from schema 1 to 3" in caplog.text
    version = "SELECT value FROM ledger_meta WHERE key = 'schema_version'"
    assert run_sql(url, [version]) == [("3",)]
    caplog.clear()
    with caplog.at_level("WARNING", logger="loopml.ledger"):
        open_backend(url, Path(".")).close()  # opened again: nothing more to do
    assert "upgraded" not in caplog.text
    assert run_sql(url, ["SELECT COUNT(*) FROM label_history"]) == [(2,)]


def test_a_label_that_lost_a_race_never_replaces_a_later_version(ledger: Ledger, url: str) -> None:
    """Two replicas on one PostgreSQL may commit two versions of a key in the other order
    than their history ids; the current label stays the one of the higher id."""
    from loopml.ledger.backend import UPSERT_LABEL

    ledger.submit([row("a", 0)])
    ledger.submit_feedback([Feedback("a", 0, '"1"', 10.0)]).result(timeout=30)
    placeholder = "?" if url.startswith("sqlite") else "%s"
    late = UPSERT_LABEL.format(values=f"VALUES ({', '.join([placeholder] * 5)})")
    stale = late.replace(placeholder, "{}").format("'a'", 0, "'\"0\"'", 5.0, 0)
    newer = late.replace(placeholder, "{}").format("'a'", 0, "'\"0\"'", 30.0, 10**9)
    run_sql(url, [stale])
    assert current(ledger) == {("a", 0): '"1"'}
    run_sql(url, [newer])
    assert current(ledger) == {("a", 0): '"0"'}
