from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from loopml.errors import TrackingError
from loopml.train.store_check import TABLES, EmbeddedStore, check_embedded_store

pytestmark = pytest.mark.unit


def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "mlflow.db", tmp_path / "mlruns", tmp_path / "audit.jsonl")


def whole(db: Path, versions: int = 1) -> None:
    with sqlite3.connect(db) as conn:
        for table in TABLES:
            conn.execute(f"CREATE TABLE {table} (x)")
        conn.executemany("INSERT INTO model_versions VALUES (?)", [(i,) for i in range(versions)])
        conn.execute("INSERT INTO runs VALUES (1)")


def test_a_new_project_may_create_its_store(tmp_path: Path) -> None:
    assert check_embedded_store(store(tmp_path)) is False


def test_a_missing_store_of_a_used_project_is_refused(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.audit_log.write_text("{}\n")
    with pytest.raises(TrackingError, match="is missing, but this project has used one"):
        check_embedded_store(s)


def test_zero_bytes_is_refused(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.db.write_bytes(b"")
    with pytest.raises(TrackingError, match=r"empty \(0 bytes\)"):
        check_embedded_store(s)


def test_garbage_is_damaged(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.db.write_bytes(b"not a database at all" * 200)
    with pytest.raises(TrackingError, match="damaged: file is not a database") as info:
        check_embedded_store(s)
    assert "restore" in (info.value.fix or "")


def test_a_missing_table_is_damaged(tmp_path: Path) -> None:
    s = store(tmp_path)
    whole(s.db)
    with sqlite3.connect(s.db) as conn:
        conn.execute("DROP TABLE registered_model_aliases")
    with pytest.raises(TrackingError, match="missing table"):
        check_embedded_store(s)


def test_a_whole_store_passes_and_an_emptied_one_does_not(tmp_path: Path) -> None:
    s = store(tmp_path)
    whole(s.db)
    s.audit_log.write_text("{}\n")
    assert check_embedded_store(s) is True
    s.db.unlink()
    whole(s.db, versions=0)
    with pytest.raises(TrackingError, match="holds no registered version"):
        check_embedded_store(s)
