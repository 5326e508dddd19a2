"""Reading and writing tables: CSV, Parquet and SQL queries, with errors a user can act on.

This is one of the few adapter modules that touch the disk and the database. Every failure
(missing file, empty file, bad encoding, malformed row, bad query) becomes a
:class:`~loopml.errors.DataError` naming the file, where it went wrong and what to do.

CSV files are read strictly as UTF-8; pandas infers numbers and booleans but parses no
dates (datetime strings are recognised later by :mod:`loopml.data.infer`).

>>> import pandas as pd, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
>>> write_table(pd.DataFrame({"a": [1, 2]}), path)
>>> read_table(path)["a"].tolist()
[1, 2]
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from loopml.errors import DataError

SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet", ".pq")
_SUPPORTED_TEXT = ", ".join(SUPPORTED_SUFFIXES)
_CHUNK = 1 << 20
_PANDAS_LINE = re.compile(r"line (\d+)")
_PANDAS_ROW = re.compile(r"row (\d+)")


def table_format(path: Path) -> str:
    """``"csv"`` or ``"parquet"`` from a file name; DataError for anything else."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    suffix = "".join(path.suffixes) or "(none)"
    raise DataError(
        f"cannot read {path}: unsupported file type {suffix}",
        detail=f"supported: {_SUPPORTED_TEXT}",
        fix="export the table as CSV (UTF-8) or Parquet and point data.source.path at it",
    )


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file.

    Raises :class:`DataError` when the file is missing, a folder, of an unknown type,
    empty or without rows, not UTF-8, malformed or otherwise unreadable.
    """
    file = Path(path)
    if not file.exists():
        raise DataError(
            f"no file at {file}",
            fix="check the path (relative paths are resolved against the project folder)",
        )
    if file.is_dir():
        raise DataError(
            f"{file} is a folder, not a table file", fix=f"point at one file ({_SUPPORTED_TEXT})"
        )
    kind = table_format(file)
    if file.stat().st_size == 0:
        raise DataError(f"{file} is empty (0 bytes)", fix="export the table again")
    frame = _read_csv(file) if kind == "csv" else _read_parquet(file)
    if len(frame) == 0:
        raise DataError(
            f"{file} has no rows",
            detail=f"columns: {', '.join(map(str, frame.columns)) or '(none)'}",
            fix="export the table again with its data rows",
        )
    return frame


def _read_csv(file: Path) -> pd.DataFrame:
    try:
        # low_memory=False: infer each column's type from all its values, not per chunk.
        return pd.read_csv(file, encoding="utf-8", encoding_errors="strict", low_memory=False)
    except UnicodeDecodeError as exc:
        raise _encoding_error(file, exc) from None
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{file} is empty (no header, no rows)", fix="export the table again with a header row"
        ) from None
    except pd.errors.ParserError as exc:
        raise DataError(
            f"cannot parse {file}: malformed CSV at {_parser_location(str(exc))}",
            detail=str(exc).strip(),
            fix="check that line: every row needs as many fields as the header, and quotes "
            "must be closed",
        ) from None
    except (ValueError, OSError) as exc:
        raise DataError(
            f"cannot read {file}",
            detail=str(exc),
            fix="check that the file is a comma-separated table",
        ) from None


def _parser_location(message: str) -> str:
    """Turn pandas' tokenizer message into a 1-based file line, when it names one."""
    if match := _PANDAS_LINE.search(message):
        return f"line {match.group(1)}"
    if match := _PANDAS_ROW.search(message):
        # pandas counts "rows" from 0 including the header, i.e. file line = row + 1
        return f"line {int(match.group(1)) + 1}"
    return "an unknown line"


def _encoding_error(file: Path, exc: UnicodeDecodeError) -> DataError:
    found = find_invalid_utf8(file)
    if found is None:  # pragma: no cover - pandas failed but a strict decode did not
        detail = str(exc)
    else:
        offset, line, byte = found
        detail = f"byte 0x{byte:02x} at offset {offset} (line {line})"
        if file.name.lower().endswith(".gz"):
            detail += " of the decompressed data"
    return DataError(
        f"cannot read {file}: not UTF-8",
        detail=detail,
        fix="re-save the file as UTF-8 (e.g. 'iconv -f latin1 -t utf-8 in.csv > out.csv', "
        "or 'CSV UTF-8' in a spreadsheet program)",
    )


def find_invalid_utf8(file: Path) -> tuple[int, int, int] | None:
    """(byte offset, 1-based line, byte value) of the first byte that is not UTF-8, or None.

    Reads in chunks, so a large file is never held in memory at once.
    """
    opener: Callable[[Path], BinaryIO] = (
        gzip.open if file.name.lower().endswith(".gz") else _open_binary  # type: ignore[assignment]
    )
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    consumed = 0
    lines = 1
    with opener(file) as handle:
        while chunk := handle.read(_CHUNK):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # exc.object is the decoder's buffer: the pending bytes, then this chunk
                before = exc.object[: exc.start]
                return (
                    consumed - pending + exc.start,
                    lines + before.count(b"\n"),
                    exc.object[exc.start],
                )
            consumed += len(chunk)
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:  # a multi-byte sequence cut off at the end
            return consumed - len(exc.object) + exc.start, lines, exc.object[exc.start]
    return None


def _open_binary(file: Path) -> BinaryIO:
    return file.open("rb")


def _read_parquet(file: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(file)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(
            f"cannot read {file}: not a readable Parquet file",
            detail=str(exc),
            fix="export the table again, or save it as CSV",
        ) from None


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``, safe to show and log."""
    try:
        parsed = make_url(url)
        return url if parsed.password is None else parsed.render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def read_sql(url: str, query: str) -> pd.DataFrame:
    """Run a query through SQLAlchemy and return its rows as a frame.

    >>> read_sql("nosuchdb://x", "SELECT 1")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    loopml.errors.DataError: cannot use database URL nosuchdb://x
    """
    shown = mask_url(url)
    engine = _engine(url, shown)
    try:
        with _connect(engine, shown) as conn:
            frame = pd.read_sql_query(sa.text(query), conn)
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
        raise _sql_error(shown, exc) from None
    finally:
        engine.dispose()
    if len(frame) == 0:
        raise DataError(
            f"the query on {shown} returned no rows",
            detail=f"query: {query.strip()}",
            fix="check the query's WHERE clause",
        )
    return frame


def _engine(url: str, shown: str) -> sa.Engine:
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise DataError(
            f"bad database URL {shown}",
            detail=str(exc),
            fix="use a SQLAlchemy URL such as postgresql://user:pw@host/db or sqlite:///path/to.db",
        ) from None
    database = parsed.database or ""
    if (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
        and not Path(database).is_file()
    ):
        # SQLite would silently create an empty database; a missing file is a mistake.
        raise DataError(
            f"no SQLite database at {database}",
            detail=f"URL: {shown}",
            fix="check the path in data.source.url",
        )
    try:
        return sa.create_engine(parsed)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise DataError(
            f"cannot use database URL {shown}",
            detail=str(exc),
            fix="check the URL's dialect, and install its driver (e.g. psycopg for postgresql)",
        ) from None


def _connect(engine: sa.Engine, shown: str) -> sa.Connection:
    try:
        return engine.connect()
    except sa.exc.SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        raise DataError(
            f"cannot connect to {shown}: {orig if orig is not None else exc}",
            detail=str(exc).splitlines()[0],
            fix="check the URL (host, port, database, user) and that the database is "
            "running and reachable from here",
        ) from None


def _sql_error(shown: str, exc: Exception) -> DataError:
    # pandas wraps the driver's error in its own DatabaseError; unwrap it.
    cause = exc.__cause__ if isinstance(exc.__cause__, sa.exc.SQLAlchemyError) else exc
    orig = getattr(cause, "orig", None)
    message = str(orig) if orig is not None else str(cause).splitlines()[0]
    return DataError(
        f"query on {shown} failed: {message}",
        detail=str(cause).splitlines()[0],
        fix="fix the query in data.source.sql (table and column names, syntax)",
    )


def resolve_sqlite_url(url: str, root: Path) -> str:
    """Make a relative SQLite path absolute against the project folder; others unchanged."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return url
    database = parsed.database
    if (
        parsed.get_backend_name() != "sqlite"
        or not database
        or database == ":memory:"
        or database.startswith("file:")
        or Path(database).is_absolute()
    ):
        return url
    absolute = parsed.set(database=str((root / database).resolve()))
    return absolute.render_as_string(hide_password=False)


class TableSource(Protocol):
    """Where a table comes from: a file, or a query and a database URL (as the project
    file's ``data.source`` says)."""

    @property
    def path(self) -> str | None: ...

    @property
    def sql(self) -> str | None: ...

    @property
    def url(self) -> str | None: ...


def read_source(source: TableSource, root: Path) -> pd.DataFrame:
    """Read the project's table: a file (relative to ``root``) or a SQL query."""
    if source.path is not None:
        path = Path(source.path)
        return read_table(path if path.is_absolute() else root / path)
    if source.sql is None or source.url is None:  # pragma: no cover - the config forbids it
        raise DataError("data.source needs 'path', or 'sql' with 'url'")
    return read_sql(resolve_sqlite_url(source.url, root), source.sql)


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    """Write a CSV or Parquet file atomically, creating its folder.

    The frame goes to a temporary file in the same folder, which is then renamed over
    ``path``: readers never see half a file.
    """
    file = Path(path)
    kind = table_format(file)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
        os.close(fd)
    except OSError as exc:
        raise DataError(
            f"cannot write {file}", detail=str(exc), fix="check the folder exists and is writable"
        ) from None
    tmp = Path(tmp_name)
    try:
        if kind == "csv":
            gz = file.name.lower().endswith(".gz")
            df.to_csv(tmp, index=False, encoding="utf-8", compression="gzip" if gz else None)
        else:
            df.to_parquet(tmp, index=False)
        tmp.replace(file)
    except (OSError, ValueError, pa.ArrowException) as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"cannot write {file}",
            detail=str(exc),
            fix="check free disk space and that the columns have simple types",
        ) from None


def fingerprint(df: pd.DataFrame) -> str:
    """A stable sha256 of a frame's content: values (in row order), column names and dtypes.

    The index is ignored, so a re-read of the same file gives the same fingerprint.

    >>> fingerprint(pd.DataFrame({"a": [1]})) == fingerprint(pd.DataFrame({"a": [1]}))
    True
    """
    digest = hashlib.sha256()
    for name, dtype in df.dtypes.items():
        digest.update(f"{name!s}\x1f{dtype!s}\x1e".encode())
    digest.update(f"rows={len(df)}\x1e".encode())
    if df.shape[1] and len(df):
        try:
            hashed = pd.util.hash_pandas_object(df, index=False)
        except TypeError:  # unhashable cells (lists, dicts): hash their text instead
            hashed = pd.util.hash_pandas_object(df.astype(str), index=False)
        digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()
