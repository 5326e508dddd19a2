from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.config import SourceConfig
from loopml.data import sources
from loopml.data.sources import (
    find_invalid_utf8,
    fingerprint,
    mask_url,
    read_source,
    read_sql,
    read_table,
    write_table,
)
from loopml.errors import DataError

pytestmark = pytest.mark.unit


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "x": [1.5, None, 3.0],
            "n": [1, 2, 3],
            "when": ["2024-01-01", "2024-01-02", "2024-01-03"],
        }
    )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_reads_csv_with_inferred_numbers_and_no_dates(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", b"id,x,n,when\na,1.5,1,2024-01-01\nb,,2,2024-01-02\n")
    df = read_table(path)
    assert df.shape == (2, 4)
    assert df["x"].dtype == np.float64
    assert df["n"].dtype == np.int64
    assert not pd.api.types.is_datetime64_any_dtype(df["when"])
    assert df["when"].tolist() == ["2024-01-01", "2024-01-02"]


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet", "t.pq"])
def test_write_then_read_round_trips(tmp_path: Path, name: str) -> None:
    path = tmp_path / "deep" / "folder" / name
    write_table(_frame(), path)
    back = read_table(path)
    assert back["id"].tolist() == ["a", "b", "c"]
    assert back["n"].tolist() == [1, 2, 3]
    assert np.isnan(back["x"].iloc[1])
    assert [p.name for p in path.parent.iterdir()] == [name]  # no temp file left behind


def test_csv_gz_is_really_compressed(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    write_table(_frame(), path)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        assert handle.readline().strip() == "id,x,n,when"


def test_write_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_table(_frame(), path)
    write_table(_frame().head(1), path)
    assert len(read_table(path)) == 1


def test_write_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unsupported file type \.json"):
        write_table(_frame(), tmp_path / "t.json")
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no file at") as info:
        read_table(tmp_path / "nope.csv")
    assert info.value.fix


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a folder"):
        read_table(tmp_path)


def test_unknown_extension_lists_supported(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.xlsx", b"whatever")
    with pytest.raises(DataError, match=r"unsupported file type \.xlsx") as info:
        read_table(path)
    assert info.value.detail == "supported: .csv, .csv.gz, .parquet, .pq"


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"is empty \(0 bytes\)"):
        read_table(_write(tmp_path / "t.csv", b""))


def test_blank_lines_only(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is empty"):
        read_table(_write(tmp_path / "t.csv", b"\n\n"))


def test_header_only_csv(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has no rows") as info:
        read_table(_write(tmp_path / "t.csv", b"a,b\n"))
    assert info.value.detail == "columns: a, b"


def test_parquet_without_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    _frame().head(0).to_parquet(path)
    with pytest.raises(DataError, match="has no rows"):
        read_table(path)


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.parquet", b"this is not parquet at all")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_table(path)


def test_non_utf8_reports_offset_and_line(tmp_path: Path) -> None:
    data = b"a,b\n1,x\n2,caf\xe9\n"
    with pytest.raises(DataError, match="not UTF-8") as info:
        read_table(_write(tmp_path / "t.csv", data))
    assert info.value.detail == "byte 0xe9 at offset 13 (line 3)"
    assert data.index(b"\xe9") == 13
    assert "UTF-8" in info.value.fix


def test_non_utf8_in_gzip_names_decompressed_offset(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"a\n\xff\n"))
    with pytest.raises(DataError, match="not UTF-8") as info:
        read_table(path)
    assert info.value.detail == "byte 0xff at offset 2 (line 2) of the decompressed data"


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
def test_utf8_scan_is_exact_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(sources, "_CHUNK", chunk)
    # a valid two-byte 'é' straddles chunk borders before the bad byte
    data = b"a,b\n1,\xc3\xa9\n\xc3\xa9\xc3\xa9,\xff\n"
    path = _write(tmp_path / "t.csv", data)
    assert find_invalid_utf8(path) == (data.index(b"\xff"), 3, 0xFF)


def test_utf8_scan_truncated_sequence_at_end(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", b"a\nb\xc3")
    assert find_invalid_utf8(path) == (3, 2, 0xC3)
    assert find_invalid_utf8(_write(tmp_path / "ok.csv", b"a\n\xc3\xa9\n")) is None


def test_malformed_csv_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", b"a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match="malformed CSV at line 3"):
        read_table(path)


def test_unclosed_quote_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", b'a,b\n1,"2\n3,4\n')
    with pytest.raises(DataError, match="malformed CSV at line 2"):
        read_table(path)


def _sqlite(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id TEXT, x REAL, y INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [("a", 1.5, 0), ("b", None, 1)])
    return path


def test_read_sql_from_sqlite(tmp_path: Path) -> None:
    db = _sqlite(tmp_path / "d.db")
    df = read_sql(f"sqlite:///{db}", "SELECT * FROM t ORDER BY id")
    assert df["id"].tolist() == ["a", "b"]
    assert df["y"].tolist() == [0, 1]
    assert np.isnan(df["x"].iloc[1])


def test_read_sql_bad_query(tmp_path: Path) -> None:
    db = _sqlite(tmp_path / "d.db")
    with pytest.raises(DataError, match="no such table: nope") as info:
        read_sql(f"sqlite:///{db}", "SELECT * FROM nope")
    assert str(db) in info.value.headline


def test_read_sql_syntax_error(tmp_path: Path) -> None:
    db = _sqlite(tmp_path / "d.db")
    with pytest.raises(DataError, match="syntax error"):
        read_sql(f"sqlite:///{db}", "SELEKT 1")


def test_read_sql_no_rows(tmp_path: Path) -> None:
    db = _sqlite(tmp_path / "d.db")
    with pytest.raises(DataError, match="returned no rows"):
        read_sql(f"sqlite:///{db}", "SELECT * FROM t WHERE 1 = 0")


def test_read_sql_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no SQLite database"):
        read_sql(f"sqlite:///{tmp_path / 'missing.db'}", "SELECT 1")
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.parametrize("url", ["not a url", "nosuchdialect://host/db"])
def test_read_sql_bad_url(url: str) -> None:
    with pytest.raises(DataError, match="database URL"):
        read_sql(url, "SELECT 1")


def test_read_sql_unreachable_database() -> None:
    url = "sqlite:///file:/nonexistent/folder/x.db?mode=ro&uri=true"
    with pytest.raises(DataError, match=r"cannot connect to .*unable to open") as info:
        read_sql(url, "SELECT 1")
    assert "reachable" in info.value.fix


def test_read_sql_not_a_database(tmp_path: Path) -> None:
    db = _write(tmp_path / "d.db", b"garbage " * 64)
    with pytest.raises(DataError, match="file is not a database"):
        read_sql(f"sqlite:///{db}", "SELECT * FROM t")


def test_read_sql_errors_mask_the_password() -> None:
    # Whether the driver is missing or the server is down, the password never shows.
    url = "postgresql://me:s3cret@127.0.0.1:1/db"
    with pytest.raises(DataError) as info:
        read_sql(url, "SELECT 1")
    assert "s3cret" not in str(info.value)
    assert "me:***@127.0.0.1:1/db" in info.value.headline


def test_mask_url() -> None:
    assert mask_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"
    assert mask_url("sqlite:///:memory:") == "sqlite:///:memory:"
    assert mask_url("not a url://u:pw@h") == "not a url://u:***@h"


def test_read_source_path_relative_to_root(tmp_path: Path) -> None:
    write_table(_frame(), tmp_path / "data" / "t.csv")
    df = read_source(SourceConfig(path="data/t.csv"), tmp_path)
    assert len(df) == 3


def test_read_source_sql_with_relative_sqlite_path(tmp_path: Path) -> None:
    _sqlite(tmp_path / "d.db")
    df = read_source(SourceConfig(sql="SELECT id FROM t", url="sqlite:///d.db"), tmp_path)
    assert sorted(df["id"]) == ["a", "b"]


def test_fingerprint_is_stable_and_content_sensitive() -> None:
    base = fingerprint(_frame())
    assert base == fingerprint(_frame())
    assert len(base) == 64
    assert base == fingerprint(_frame().set_axis([10, 11, 12]))  # index ignored
    changed = _frame()
    changed.loc[0, "n"] = 9
    assert fingerprint(changed) != base
    assert fingerprint(_frame().rename(columns={"n": "m"})) != base
    assert fingerprint(_frame().astype({"n": float})) != base
    assert fingerprint(_frame().iloc[::-1]) != base


def test_fingerprint_survives_a_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    write_table(_frame(), path)
    assert fingerprint(read_table(path)) == fingerprint(read_table(path))
    assert fingerprint(pd.DataFrame()) == fingerprint(pd.DataFrame())
