"""Shadow rows, run over both databases: SQLite and a real PostgreSQL.

In a shadow stage the champion answers a request and the challenger scores the same rows
off the response path; both are recorded under one ``(request_id, row)``. The shadow rows
live in ``shadow_predictions`` (schema 3): what was answered stays alone in
``predictions``, and a shadow row reads the label of the champion's answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loopml.ledger import (
    DuplicateRequest,
    Feedback,
    Ledger,
    LedgerQuery,
    LedgerRecord,
    export_ledger,
    open_backend,
)
from tests.integration.test_ledger_backends import make_ledger, row, stall
from tests.integration.test_ledger_label_history import run_sql

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db?busy_timeout_ms=60000"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    with make_ledger(url) as started:
        yield started


def read(ledger: Ledger, query: LedgerQuery) -> list[LedgerRecord]:
    with ledger.backend.reader() as reader:
        return [r for chunk in reader.chunks(query, 3) for r in chunk]


def shadow(request_id: str, index: int = 0) -> object:
    return row(request_id, index, arm="shadow", version="2", outputs='{"label": 0}')


@pytest.mark.parametrize("size", [1, 40], ids=["small", "large"])  # INSERT / COPY on PG
def test_shadow_rows_share_keys_with_the_answers_and_read_their_labels(
    ledger: Ledger, size: int
) -> None:
    answered = [row("r", k) for k in range(size)]
    shadowed = [shadow("r", k) for k in range(size)]
    ledger.submit(answered).result(timeout=30)
    ledger.submit(shadowed).result(timeout=30)  # the same keys: no duplicate
    ledger.submit([row("both", 0), shadow("both", 0)]).result(timeout=30)  # one submission
    labels = [Feedback("r", k, str(k % 2), 2e9, "feedback") for k in range(size)]
    assert ledger.submit_feedback(labels).result(timeout=30).recorded == size

    plain = read(ledger, LedgerQuery())
    champion = read(ledger, LedgerQuery(arm="champion"))
    scored = read(ledger, LedgerQuery(arm="shadow"))
    assert {r.arm for r in plain} == {"champion"}
    assert len(plain) == len(champion) == size + 1
    assert sorted((r.request_id, r.row, r.arm, r.version, r.label) for r in scored) == [
        ("both", 0, "shadow", "2", None),
        *(("r", k, "shadow", "2", str(k % 2)) for k in range(size)),
    ]
    assert {r.outputs for r in scored} == {'{"label": 0}'}
    with ledger.backend.reader() as reader:
        bare = [r for c in reader.chunks(LedgerQuery(arm="shadow"), 7, features=False) for r in c]
        summary = reader.summary()
        assert reader.count(LedgerQuery(arm="shadow", version="2")) == size + 1
        history = [v for c in reader.label_history(LedgerQuery(arm="shadow"), 10) for v in c]
    assert len(history) == size
    # Readers of outputs and labels only leave the features unread.
    assert bare == [r._replace(features="{}", entity_key=None) for r in scored]
    assert (summary.rows, summary.shadow_rows, summary.labelled) == (2 * size + 2, size + 1, size)
    assert summary.by_version_arm == [("1", "champion", size + 1), ("2", "shadow", size + 1)]


def test_a_duplicate_shadow_row_fails_only_its_own_submission(ledger: Ledger, url: str) -> None:
    ledger.submit([shadow("old")]).result(timeout=30)
    with stall(url):
        ok_1 = ledger.submit([shadow("a")])
        dup = ledger.submit([shadow("old"), shadow("old", 1)])
        answered = ledger.submit([row("old")])  # the champion's row of a shadowed key
        ok_2 = ledger.submit([shadow("b")])
    for future in (ok_1, answered, ok_2):
        assert future.result(timeout=30) is None
    with pytest.raises(DuplicateRequest) as caught:
        dup.result(timeout=30)
    assert caught.value.request_id == "old"
    assert [r.request_id for r in read(ledger, LedgerQuery(arm="shadow"))] == ["a", "b", "old"]
    assert [r.request_id for r in read(ledger, LedgerQuery())] == ["old"]
    assert ledger.stats().duplicate_rows == 2


def test_export_writes_shadow_rows_only_when_asked(ledger: Ledger, tmp_path: Path) -> None:
    ledger.submit([row("a"), shadow("a"), row("b")]).result(timeout=30)
    ledger.submit_feedback([Feedback("a", 0, "1", 2e9, "feedback")]).result(timeout=30)

    plain = export_ledger(ledger.backend, tmp_path / "plain.parquet")
    shadowed = export_ledger(ledger.backend, tmp_path / "shadow.parquet", arm="shadow")

    assert (plain.rows, plain.labelled) == (2, 1)
    assert set(pq.read_table(plain.path).column("arm").to_pylist()) == {"champion"}
    assert (shadowed.rows, shadowed.labelled) == (1, 1)
    data = pq.read_table(shadowed.path).to_pydict()
    assert (data["request_id"], data["arm"], data["label"]) == (["a"], ["shadow"], [1])


V2_SCHEMA = (
    "CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT INTO ledger_meta (key, value) VALUES ('schema_version', '2')",
    'CREATE TABLE predictions (request_id TEXT NOT NULL, "row" INTEGER NOT NULL, '
    "ts DOUBLE PRECISION NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, "
    "arm TEXT NOT NULL, entity_key TEXT, features TEXT NOT NULL, outputs TEXT NOT NULL, "
    'latency_ms DOUBLE PRECISION NOT NULL, PRIMARY KEY (request_id, "row"))',
    'CREATE TABLE labels (request_id TEXT NOT NULL, "row" INTEGER NOT NULL, '
    "label TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, history_id BIGINT, "
    'PRIMARY KEY (request_id, "row"))',
    "INSERT INTO predictions VALUES ('a', 0, 1.0, 'feed', '1', 'champion', NULL, '{}', '{}', 0.1)",
)


def test_a_schema_2_ledger_is_upgraded_in_place(url: str, caplog: pytest.LogCaptureFixture) -> None:
    history = (
        "CREATE TABLE label_history (id {id} PRIMARY KEY, request_id TEXT NOT NULL, "
        '"row" INTEGER NOT NULL, label TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, '
        "scope TEXT NOT NULL, client TEXT, source TEXT)"
    ).format(id="INTEGER" if url.startswith("sqlite") else "BIGSERIAL")
    direct = url.split("?", maxsplit=1)[0] if url.startswith("sqlite") else url  # no options
    run_sql(direct, [*V2_SCHEMA, history])
    with caplog.at_level("WARNING", logger="loopml.ledger"), make_ledger(url) as ledger:
        ledger.submit([shadow("a")]).result(timeout=30)
        assert [r.arm for r in read(ledger, LedgerQuery(arm="shadow"))] == ["shadow"]
        assert [r.request_id for r in read(ledger, LedgerQuery())] == ["a"]
    assert "upgraded from schema 2 to 3" in caplog.text
    assert "label history" not in caplog.text
    version = "SELECT value FROM ledger_meta WHERE key = 'schema_version'"
    assert run_sql(direct, [version]) == [("3",)]
    caplog.clear()
    with caplog.at_level("WARNING", logger="loopml.ledger"):
        open_backend(url, Path(".")).close()  # opened again: nothing more to do
    assert "upgraded" not in caplog.text
