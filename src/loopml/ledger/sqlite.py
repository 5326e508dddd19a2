"""The embedded ledger: one SQLite file in WAL mode (the default, under ``.loopml/``).

Durability: ``synchronous=NORMAL`` (the default here) keeps every committed transaction
through a crash or ``kill -9`` of the process, because WAL frames are in the operating
system's cache before ``COMMIT`` returns; only a power loss or kernel crash can take back
the last commits. ``sqlite:///path?synchronous=full`` syncs the WAL at every commit and
survives power loss too, at the cost of one fsync per group commit.

Several server worker processes may share one file: writers queue on SQLite's lock for up
to ``busy_timeout_ms`` (``?busy_timeout_ms=5000`` by default) before a commit fails.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from loopml.ledger.backend import (
    HISTORY_COLUMNS,
    INSERT_HISTORY,
    PREDICTION_COLUMNS,
    UPSERT_LABEL,
    FeedbackOp,
    Op,
    OpResult,
    SqlReader,
    check_schema_version,
    history_params,
    log_migration,
    migrations,
    prediction_params,
    prediction_rows,
    prediction_runs,
    rows_by_table,
)
from loopml.ledger.records import (
    SCHEMA_VERSION,
    DuplicateRequest,
    FeedbackResult,
    LedgerError,
    PredictionRow,
)

SYNCHRONOUS = ("off", "normal", "full", "extra")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO ledger_meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
CREATE TABLE IF NOT EXISTS predictions (
    request_id TEXT NOT NULL, "row" INTEGER NOT NULL, ts REAL NOT NULL,
    model TEXT NOT NULL, version TEXT NOT NULL, arm TEXT NOT NULL, entity_key TEXT,
    features TEXT NOT NULL, outputs TEXT NOT NULL, latency_ms REAL NOT NULL,
    PRIMARY KEY (request_id, "row")
);
CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts);
CREATE TABLE IF NOT EXISTS shadow_predictions (
    request_id TEXT NOT NULL, "row" INTEGER NOT NULL, ts REAL NOT NULL,
    model TEXT NOT NULL, version TEXT NOT NULL, arm TEXT NOT NULL, entity_key TEXT,
    features TEXT NOT NULL, outputs TEXT NOT NULL, latency_ms REAL NOT NULL,
    PRIMARY KEY (request_id, "row")
);
CREATE INDEX IF NOT EXISTS shadow_predictions_ts ON shadow_predictions (ts);
CREATE TABLE IF NOT EXISTS labels (
    request_id TEXT NOT NULL, "row" INTEGER NOT NULL, label TEXT NOT NULL, ts REAL NOT NULL,
    history_id INTEGER, PRIMARY KEY (request_id, "row")
);
CREATE TABLE IF NOT EXISTS label_history (
    id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, "row" INTEGER NOT NULL,
    label TEXT NOT NULL, ts REAL NOT NULL, scope TEXT NOT NULL, client TEXT, source TEXT
);
CREATE INDEX IF NOT EXISTS label_history_key ON label_history (request_id, "row");
"""
_INSERT = (
    "INSERT INTO {table} "
    f"({', '.join(PREDICTION_COLUMNS)}) VALUES ({', '.join('?' * len(PREDICTION_COLUMNS))})"
)
# Records the label only when its prediction exists; rowcount says which happened.
_INSERT_HISTORY = (
    INSERT_HISTORY + f"SELECT {', '.join('?' * len(HISTORY_COLUMNS))} "
    'WHERE EXISTS (SELECT 1 FROM predictions WHERE request_id = ? AND "row" = ?)'
)
_UPSERT_LABEL = UPSERT_LABEL.format(values="VALUES (?, ?, ?, ?, ?)")


class SqliteBackend:
    """The ledger in one SQLite file (see the module doc for durability).

    >>> import tempfile, pathlib
    >>> backend = SqliteBackend(pathlib.Path(tempfile.mkdtemp()) / "ledger.db")
    >>> with backend.reader() as reader:
    ...     reader.summary().rows
    0
    >>> backend.close()
    """

    def __init__(
        self, path: Path, *, synchronous: str = "normal", busy_timeout_ms: int = 5000
    ) -> None:
        if synchronous.lower() not in SYNCHRONOUS:
            raise LedgerError(
                f"unknown SQLite synchronous mode {synchronous!r}",
                fix=f"use one of {', '.join(SYNCHRONOUS)} in ?synchronous= of the ledger URL",
            )
        self.path = path
        self._synchronous = synchronous.upper()
        self._timeout = busy_timeout_ms / 1000
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(
                f"cannot create the ledger folder {path.parent}",
                detail=str(exc),
                fix="check the path in serve.ledger.url and its permissions",
            ) from exc
        self._conn: sqlite3.Connection | None = self._connect()
        self._create_schema(self._conn)

    @classmethod
    def from_url(cls, url: str, root: Path) -> SqliteBackend:
        """``sqlite:///relative/to/root.db`` or ``sqlite:////absolute.db``, with options."""
        parts = urlsplit(url)
        relative = parts.path[1:] if parts.path.startswith("/") else parts.path
        if parts.netloc or not relative or relative == ":memory:":
            raise LedgerError(
                f"bad SQLite ledger URL {url!r}",
                detail="the ledger needs a file: sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db",
                fix="set serve.ledger.url to e.g. sqlite:///.loopml/ledger.db",
            )
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = Path(relative)
        try:
            timeout = int(options.get("busy_timeout_ms", "5000"))
        except ValueError:
            raise LedgerError(
                f"bad busy_timeout_ms in ledger URL {url!r}", fix="use milliseconds, e.g. 5000"
            ) from None
        return cls(
            path if path.is_absolute() else root / path,
            synchronous=options.get("synchronous", "normal"),
            busy_timeout_ms=timeout,
        )

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def _connect(self) -> sqlite3.Connection:
        try:
            # Autocommit mode: transactions are opened explicitly (BEGIN IMMEDIATE) so the
            # write lock is taken up front, never upgraded half-way (which can deadlock).
            conn = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            journal = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
        except sqlite3.Error as exc:
            raise self._error("cannot open", exc) from exc
        if str(journal).lower() != "wal":
            conn.close()
            raise LedgerError(
                f"cannot put the ledger {self.path} in WAL mode (got {journal})",
                fix="put the ledger on a local disk (WAL needs shared memory)",
            )
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        migrated = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            found = int(
                conn.execute(
                    "SELECT value FROM ledger_meta WHERE key = 'schema_version'"
                ).fetchone()[0]
            )
            check_schema_version(found, self.url)
            if found == 1:
                migrated = conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
            for statement in migrations(found):
                conn.execute(statement)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            raise self._error("cannot create the tables of", exc) from exc
        except LedgerError:
            _rollback(conn)
            raise
        log_migration(self.url, found, migrated)

    def _error(self, what: str, exc: Exception) -> LedgerError:
        return LedgerError(
            f"{what} the prediction ledger {self.path}",
            detail=f"{type(exc).__name__}: {exc}",
            fix="check the disk (space, permissions) and that no other program holds a long "
            "lock on the file",
        )

    def commit(self, ops: Sequence[Op]) -> list[OpResult]:
        """Write the group in one transaction (see :class:`LedgerBackend`)."""
        conn = self._conn if self._conn is not None else self._connect()
        self._conn = conn
        results: list[OpResult] = [None] * len(ops)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for is_prediction, indexes in prediction_runs(ops):
                if is_prediction:
                    self._insert_run(conn, ops, indexes, results)
                else:
                    for i in indexes:
                        results[i] = _record_feedback(conn, ops[i])
            conn.execute("COMMIT")
        except Exception as exc:  # any failure, or the write lock stays held
            _rollback(conn)
            conn.close()  # cheap to reopen, and whatever broke stays behind with it
            self._conn = None
            if isinstance(exc, sqlite3.Error):
                raise self._error("cannot write to", exc) from exc
            raise
        return results

    @staticmethod
    def _insert_run(
        conn: sqlite3.Connection, ops: Sequence[Op], indexes: list[int], results: list[OpResult]
    ) -> None:
        rows = [r for i in indexes for r in prediction_rows(ops[i])]
        conn.execute("SAVEPOINT run")
        try:
            _insert_rows(conn, rows)
            conn.execute("RELEASE run")
            return
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO run")
            conn.execute("RELEASE run")
        # Some key is taken: write the submissions one by one so only the guilty fail.
        for i in indexes:
            op_rows = prediction_rows(ops[i])
            conn.execute("SAVEPOINT op")
            try:
                _insert_rows(conn, op_rows)
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO op")
                results[i] = DuplicateRequest(op_rows[0].request_id)
            conn.execute("RELEASE op")

    @contextmanager
    def reader(self) -> Iterator[SqliteReader]:
        try:
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error("cannot open", exc) from exc
        try:
            conn.execute("BEGIN")  # one snapshot for every read below
            yield SqliteReader(conn, self)
        finally:
            conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class SqliteReader(SqlReader):
    """Reads over one WAL snapshot (see :class:`~loopml.ledger.backend.LedgerReader`)."""

    placeholder = "?"
    database_error = sqlite3.Error

    def __init__(self, conn: sqlite3.Connection, backend: SqliteBackend) -> None:
        super().__init__(backend.url, backend._error)
        self._conn = conn

    def _fetch_all(self, sql: str, params: list[object]) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def _batches(
        self, sql: str, params: list[object], chunk_rows: int
    ) -> Iterator[Sequence[tuple[Any, ...]]]:
        cursor = self._conn.execute(sql, params)
        while batch := cursor.fetchmany(chunk_rows):
            yield batch


def _insert_rows(conn: sqlite3.Connection, rows: Sequence[PredictionRow]) -> None:
    """Answered rows to ``predictions``, shadow rows to ``shadow_predictions``."""
    for table, part in rows_by_table(rows):
        conn.executemany(_INSERT.format(table=table), prediction_params(part))


def _record_feedback(conn: sqlite3.Connection, op: Op) -> FeedbackResult:
    assert isinstance(op, FeedbackOp)
    unknown: list[tuple[str, int]] = []
    for item in op.items:
        params = (*history_params(item), item.request_id, item.row)
        cursor = conn.execute(_INSERT_HISTORY, params)
        if cursor.rowcount == 0:
            unknown.append(item.key)
        else:
            label = (item.request_id, item.row, item.label, item.ts, cursor.lastrowid)
            conn.execute(_UPSERT_LABEL, label)
    return FeedbackResult(recorded=len(op.items) - len(unknown), unknown=unknown)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # The caller drops the connection anyway, which rolls back what this could not.
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
