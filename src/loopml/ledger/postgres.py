"""The ledger on PostgreSQL (psycopg 3), for several servers or a lot of traffic.

A group of prediction submissions is written by ONE statement (a multi-row ``INSERT`` for
a few rows, binary ``COPY`` for more) on an autocommit connection: one WAL flush per group,
atomic without a BEGIN / COMMIT pair. Groups that hold labels too, or a duplicate key, are
written in one transaction with a savepoint per submission. Durability is the server's
(``synchronous_commit``).

The writer's connection is replaced after a failure; when it turns out to have died while
idle (server restart, killed session) the group is retried once on a fresh connection.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors

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

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ledger_meta (key text PRIMARY KEY, value text NOT NULL)",
    f"INSERT INTO ledger_meta VALUES ('schema_version', '{SCHEMA_VERSION}') ON CONFLICT DO NOTHING",
    """CREATE TABLE IF NOT EXISTS predictions (
        request_id text NOT NULL, "row" integer NOT NULL, ts double precision NOT NULL,
        model text NOT NULL, version text NOT NULL, arm text NOT NULL, entity_key text,
        features text NOT NULL, outputs text NOT NULL, latency_ms double precision NOT NULL,
        PRIMARY KEY (request_id, "row"))""",
    "CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts)",
    """CREATE TABLE IF NOT EXISTS shadow_predictions (
        request_id text NOT NULL, "row" integer NOT NULL, ts double precision NOT NULL,
        model text NOT NULL, version text NOT NULL, arm text NOT NULL, entity_key text,
        features text NOT NULL, outputs text NOT NULL, latency_ms double precision NOT NULL,
        PRIMARY KEY (request_id, "row"))""",
    "CREATE INDEX IF NOT EXISTS shadow_predictions_ts ON shadow_predictions (ts)",
    """CREATE TABLE IF NOT EXISTS labels (
        request_id text NOT NULL, "row" integer NOT NULL, label text NOT NULL,
        ts double precision NOT NULL, history_id bigint, PRIMARY KEY (request_id, "row"))""",
    """CREATE TABLE IF NOT EXISTS label_history (
        id bigserial PRIMARY KEY, request_id text NOT NULL, "row" integer NOT NULL,
        label text NOT NULL, ts double precision NOT NULL, scope text NOT NULL, client text,
        source text)""",
    'CREATE INDEX IF NOT EXISTS label_history_key ON label_history (request_id, "row")',
)
_COPY_TYPES = ("text", "int4", "float8", "text", "text", "text", "text", "text", "text", "float8")
# COPY is one statement (atomic on an autocommit connection) and far cheaper per row than
# INSERT ... unnest(arrays) or executemany; binary saves the text escaping. It costs two
# round trips, so a small group goes as one multi-row INSERT instead (one round trip).
_COPY = f"COPY {{table}} ({', '.join(PREDICTION_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_INSERT_MAX_ROWS = 16
_INSERT = f"INSERT INTO {{table}} ({', '.join(PREDICTION_COLUMNS)}) VALUES "
_VALUES = "(" + ", ".join(["%s"] * len(PREDICTION_COLUMNS)) + ")"
_KNOWN_KEYS = (
    'SELECT p.request_id, p."row" FROM predictions p '
    'JOIN unnest(%s::text[], %s::int4[]) AS k(request_id, "row") '
    'ON p.request_id = k.request_id AND p."row" = k."row"'
)
# One statement: the versions in the order given (their ids in that order), then the
# current label of each key from the latest of them.
_RECORD_LABELS = (
    "WITH h AS (" + INSERT_HISTORY + f"SELECT {', '.join(HISTORY_COLUMNS)} FROM unnest("
    "%s::text[], %s::int4[], %s::text[], %s::float8[], %s::text[], %s::text[], %s::text[]) "
    f"WITH ORDINALITY AS u({', '.join(HISTORY_COLUMNS)}, n) ORDER BY n "
    'RETURNING id, request_id, "row", label, ts) '
    + UPSERT_LABEL.format(
        values='SELECT DISTINCT ON (request_id, "row") request_id, "row", label, ts, id '
        'FROM h ORDER BY request_id, "row", id DESC'
    )
)
APPLICATION_NAME = "loopml-ledger"  # how the writer's session shows in pg_stat_activity
# Serialises schema creation when several server processes start at once.
_SCHEMA_LOCK = 0x6C6F6F706D6C  # "loopml"


def postgres_conninfo(url: str) -> str:
    """A libpq URL from a ledger URL (drops a SQLAlchemy ``+driver`` suffix).

    >>> postgres_conninfo("postgresql+psycopg://u@db/ledger")
    'postgresql://u@db/ledger'
    """
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))


def safe_url(url: str) -> str:
    """The URL without its password, for messages.

    >>> safe_url("postgresql://me:secret@db:5432/ledger")
    'postgresql://me:***@db:5432/ledger'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresBackend:
    """The ledger in a PostgreSQL database (tables in the connection's first schema)."""

    def __init__(self, url: str, *, connect_timeout: int = 5) -> None:
        self._conninfo = postgres_conninfo(url)
        self._url = safe_url(self._conninfo)
        self._connect_timeout = connect_timeout
        self._statements = 0  # statements of the current group that succeeded
        self._conn: psycopg.Connection[Any] | None = self._connect()
        self._create_schema(self._conn)

    @property
    def url(self) -> str:
        return self._url

    def _connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        options: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": self._connect_timeout,
            "application_name": APPLICATION_NAME,
            **kwargs,
        }
        try:
            return psycopg.connect(self._conninfo, **options)
        except psycopg.Error as exc:
            raise self._error("cannot connect to", exc) from exc

    def _error(self, what: str, exc: Exception) -> LedgerError:
        return LedgerError(
            f"{what} the prediction ledger {self._url}",
            detail=f"{type(exc).__name__}: {str(exc).strip()}",
            fix="check serve.ledger.url, that PostgreSQL is running and reachable, and the "
            "user's rights on the database",
        )

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        migrated = None
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    conn.execute(statement)
                found = conn.execute(
                    "SELECT value FROM ledger_meta WHERE key = 'schema_version'"
                ).fetchone()
                version = int(found[0]) if found else SCHEMA_VERSION
                check_schema_version(version, self._url)
                if version == 1:
                    migrated = conn.execute("SELECT COUNT(*) FROM labels").fetchone()
                for statement in migrations(version):
                    conn.execute(statement)
        except psycopg.Error as exc:
            raise self._error("cannot create the tables of", exc) from exc
        log_migration(self._url, version, int(migrated[0]) if migrated else 0)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop()
            self._conn = self._connect()
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def commit(self, ops: Sequence[Op]) -> list[OpResult]:
        """Write the group (see :class:`~loopml.ledger.backend.LedgerBackend`)."""
        conn = self._connection()
        self._statements = 0
        try:
            return self._write(conn, ops)
        except psycopg.OperationalError as exc:
            # Died while idle (nothing of this group reached the server): retry once.
            if not conn.broken or self._statements > 0:
                self._drop()
                raise self._error("cannot write to", exc) from exc
            self._drop()
        except psycopg.Error as exc:
            raise self._error("cannot write to", exc) from exc
        except Exception:  # not the database's: leave no transaction open behind it
            self._drop()
            raise
        try:
            return self._write(self._connection(), ops)
        except psycopg.Error as exc:
            self._drop()
            raise self._error("cannot write to", exc) from exc

    def _execute(
        self, conn: psycopg.Connection[Any], sql: str, params: Sequence[Any]
    ) -> psycopg.Cursor[Any]:
        cursor = conn.execute(sql, params)
        self._statements += 1
        return cursor

    def _write(self, conn: psycopg.Connection[Any], ops: Sequence[Op]) -> list[OpResult]:
        results: list[OpResult] = [None] * len(ops)
        runs = list(prediction_runs(ops))
        together = True  # worth trying a run's submissions in one statement
        alone = len(runs) == 1 and runs[0][0]
        rows = [r for op in ops for r in prediction_rows(op)] if alone else []
        if alone and len(rows_by_table(rows)) == 1:
            # The usual group, predictions of one table only: one autocommit statement,
            # no BEGIN/COMMIT (answered and shadow rows together take the transaction).
            try:
                self._insert_rows(conn, rows)
                return results
            except pg_errors.UniqueViolation:
                together = False
        with conn.transaction():  # the whole group, or nothing of it
            for is_prediction, indexes in runs:
                if is_prediction:
                    self._insert_run(conn, ops, indexes, results, together=together)
                else:
                    for i in indexes:
                        results[i] = self._record_feedback(conn, ops[i])
        return results

    def _insert_run(
        self,
        conn: psycopg.Connection[Any],
        ops: Sequence[Op],
        indexes: list[int],
        results: list[OpResult],
        *,
        together: bool,
    ) -> None:
        """Inside the group's transaction; each attempt in a savepoint of its own."""
        rows = [r for i in indexes for r in prediction_rows(ops[i])]
        if together and len(indexes) > 1:
            try:
                with conn.transaction():
                    self._insert_rows(conn, rows)
                return
            except pg_errors.UniqueViolation:
                pass
        # Some key is taken: one statement per submission, so only the guilty fail.
        for i in indexes:
            op_rows = prediction_rows(ops[i])
            try:
                with conn.transaction():
                    self._insert_rows(conn, op_rows)
            except pg_errors.UniqueViolation:
                results[i] = DuplicateRequest(op_rows[0].request_id)

    def _insert_rows(self, conn: psycopg.Connection[Any], rows: Sequence[PredictionRow]) -> None:
        """Insert ``rows``, one statement per table (all or nothing only inside a
        transaction when they go to both tables)."""
        for table, part in rows_by_table(rows):
            if len(part) <= _INSERT_MAX_ROWS:
                sql = _INSERT.format(table=table) + ", ".join([_VALUES] * len(part))
                conn.execute(sql, [value for params in prediction_params(part) for value in params])
            else:
                with conn.cursor() as cursor, cursor.copy(_COPY.format(table=table)) as copy:
                    copy.set_types(_COPY_TYPES)
                    for params in prediction_params(part):
                        copy.write_row(params)
            self._statements += 1

    def _record_feedback(self, conn: psycopg.Connection[Any], op: Op) -> FeedbackResult:
        assert isinstance(op, FeedbackOp)
        ids = [item.request_id for item in op.items]
        rows = [item.row for item in op.items]
        found = self._execute(conn, _KNOWN_KEYS, (ids, rows)).fetchall()
        known = {(str(r), int(n)) for r, n in found}
        recorded = [item for item in op.items if item.key in known]
        if recorded:
            columns = [list(values) for values in zip(*map(history_params, recorded), strict=True)]
            self._execute(conn, _RECORD_LABELS, columns)
        unknown = [item.key for item in op.items if item.key not in known]
        return FeedbackResult(recorded=len(op.items) - len(unknown), unknown=unknown)

    @contextmanager
    def reader(self) -> Iterator[PostgresReader]:
        conn = self._connect(autocommit=False, application_name=f"{APPLICATION_NAME}-reader")
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                yield PostgresReader(conn, self)
        finally:
            conn.close()

    def close(self) -> None:
        self._drop()


class PostgresReader(SqlReader):
    """Reads over one REPEATABLE READ snapshot, streaming through a server-side cursor."""

    placeholder = "%s"
    database_error = psycopg.Error

    def __init__(self, conn: psycopg.Connection[Any], backend: PostgresBackend) -> None:
        super().__init__(backend.url, backend._error)
        self._conn = conn

    def _fetch_all(self, sql: str, params: list[object]) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def _batches(
        self, sql: str, params: list[object], chunk_rows: int
    ) -> Iterator[Sequence[tuple[Any, ...]]]:
        with self._conn.cursor(name="ledger_read") as cursor:
            cursor.itersize = chunk_rows
            cursor.execute(sql, params)
            while batch := cursor.fetchmany(chunk_rows):
                yield batch
