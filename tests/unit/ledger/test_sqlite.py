from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from loopml.config import LedgerConfig
from loopml.ledger import Ledger, LedgerError, LedgerQuery, open_backend, open_ledger
from loopml.ledger.sqlite import SqliteBackend
from tests.unit.ledger.fakes import row

pytestmark = pytest.mark.unit


def test_relative_paths_are_under_the_project_and_folders_are_created(tmp_path: Path) -> None:
    backend = open_backend("sqlite:///.loopml/deep/ledger.db", tmp_path)
    assert isinstance(backend, SqliteBackend)
    assert backend.path == tmp_path / ".loopml" / "deep" / "ledger.db"
    assert backend.path.exists()
    assert backend.url == f"sqlite:///{tmp_path}/.loopml/deep/ledger.db"
    backend.close()


def test_absolute_paths_and_options_come_from_the_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/abs.db?synchronous=full&busy_timeout_ms=250"
    backend = SqliteBackend.from_url(url, Path("/elsewhere"))
    assert backend.path == tmp_path / "abs.db"
    with sqlite3.connect(backend.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn = backend._conn
    assert conn is not None
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 250
    backend.close()


def test_the_default_is_wal_with_synchronous_normal(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "l.db")
    assert backend._conn is not None
    assert backend._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    backend.close()


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("sqlite:///:memory:", "bad SQLite ledger URL"),
        ("sqlite://", "bad SQLite ledger URL"),
        ("sqlite://host/x.db", "bad SQLite ledger URL"),
        ("sqlite:///x.db?synchronous=sometimes", "unknown SQLite synchronous mode"),
        ("sqlite:///x.db?busy_timeout_ms=soon", "bad busy_timeout_ms"),
        ("mysql://db/ledger", "unsupported ledger URL"),
    ],
)
def test_bad_urls_say_what_a_good_one_looks_like(tmp_path: Path, url: str, match: str) -> None:
    with pytest.raises(LedgerError, match=match) as caught:
        open_backend(url, tmp_path)
    assert caught.value.fix


def test_a_ledger_from_a_newer_loopml_is_refused(tmp_path: Path) -> None:
    SqliteBackend(tmp_path / "l.db").close()
    with sqlite3.connect(tmp_path / "l.db") as conn:
        conn.execute("UPDATE ledger_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(LedgerError, match="schema version 99"):
        SqliteBackend(tmp_path / "l.db")


def test_a_file_that_is_not_a_database_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "l.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="prediction ledger") as caught:
        SqliteBackend(tmp_path / "l.db")
    assert "DatabaseError" in caught.value.detail


def test_two_writers_share_one_file(tmp_path: Path) -> None:
    """What several server worker processes do: each its own connection and writer."""
    ledgers = [
        Ledger(SqliteBackend(tmp_path / "l.db"), queue_size=100, batch_rows=10) for _ in range(2)
    ]

    def write(w: int) -> None:
        for i in range(150):
            ledgers[w].submit([row(f"w{w}-{i}")]).result(timeout=30)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    for ledger in ledgers:
        ledger.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for ledger in ledgers:
        ledger.close()
    with SqliteBackend(tmp_path / "l.db").reader() as reader:
        assert reader.count(LedgerQuery()) == 300


def test_open_ledger_follows_the_config(tmp_path: Path) -> None:
    config = LedgerConfig(
        url="sqlite:///l.db", mode="async", queue_size=7, batch_rows=3, retry_after_seconds=4
    )
    ledger = open_ledger(config, tmp_path)
    assert ledger.mode == "async"
    assert ledger.stats().queue_capacity == 7
    ledger.close()
    assert (tmp_path / "l.db").exists()
