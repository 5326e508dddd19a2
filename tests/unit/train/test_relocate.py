from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from loopml.train.relocate import follow_move

pytestmark = pytest.mark.unit


def make_store(db: Path, root: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE experiments (name, artifact_location)")
        conn.execute("CREATE TABLE runs (artifact_uri)")
        conn.execute("INSERT INTO experiments VALUES ('loopml-m', ?)", (root,))
        conn.execute("INSERT INTO experiments VALUES ('other', 'file:///elsewhere/x')")
        conn.executemany(
            "INSERT INTO runs VALUES (?)",
            [(f"{root}/abc/artifacts",), (f"{root}-sibling/abc",), ("s3://bucket/x",)],
        )


def test_a_moved_folder_is_followed(tmp_path: Path) -> None:
    new = tmp_path / "new" / "mlruns"
    new.mkdir(parents=True)
    old = (tmp_path / "old" / "mlruns").as_uri()
    make_store(tmp_path / "m.db", old)
    assert follow_move(tmp_path / "m.db", "loopml-m", new.as_uri()) == 2
    with sqlite3.connect(tmp_path / "m.db") as conn:
        runs = [r[0] for r in conn.execute("SELECT artifact_uri FROM runs")]
        other = conn.execute("SELECT artifact_location FROM experiments WHERE name='other'")
        assert other.fetchone()[0] == "file:///elsewhere/x"
    assert runs == [f"{new.as_uri()}/abc/artifacts", f"{old}-sibling/abc", "s3://bucket/x"]


def test_an_unmoved_folder_is_left_alone(tmp_path: Path) -> None:
    here = tmp_path / "mlruns"
    here.mkdir()
    make_store(tmp_path / "m.db", here.as_uri())
    assert follow_move(tmp_path / "m.db", "loopml-m", here.as_uri()) == 0
    old = (tmp_path / "old").as_uri()  # the old folder still exists: a copy, not a move
    (tmp_path / "old").mkdir()
    make_store(tmp_path / "n.db", old)
    assert follow_move(tmp_path / "n.db", "loopml-m", here.as_uri()) == 0
