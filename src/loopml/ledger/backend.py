"""The one interface both ledger databases implement, and what they share.

The :class:`~loopml.ledger.writer.Ledger` writer thread is the only caller of
:meth:`LedgerBackend.commit`; it hands over every submission it took from the queue, in
queue order, and the backend writes them in as few transactions as it can (group commit).
Readers (export, stats, monitoring) open their own connection through
:meth:`LedgerBackend.reader`, so they never touch the writer's. Both databases read with
the same SQL: :class:`SqlReader` holds it, and each backend's reader adds only its
placeholder, its driver's error type and how it runs a statement.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from loopml.ledger.records import (
    SCHEMA_VERSION,
    SHADOW_ARM,
    DuplicateRequest,
    Feedback,
    FeedbackResult,
    LabelVersion,
    LedgerError,
    LedgerQuery,
    LedgerRecord,
    LedgerSummary,
    PredictionRow,
)

logger = logging.getLogger("loopml.ledger")

PREDICTIONS = "predictions"
SHADOW_PREDICTIONS = "shadow_predictions"
"""Where rows of arm ``shadow`` go: the champion answered the same request, and its row
holds the key ``(request_id, row)`` in ``predictions`` (schema 3)."""

# Column order of ``predictions`` (and ``shadow_predictions``); the backends insert and
# select in this order.
PREDICTION_COLUMNS = (
    "request_id",
    '"row"',
    "ts",
    "model",
    "version",
    "arm",
    "entity_key",
    "features",
    "outputs",
    "latency_ms",
)


@dataclass(frozen=True, slots=True)
class PredictionOp:
    """One submission of predictions: recorded all together, or not at all."""

    rows: Sequence[PredictionRow]


@dataclass(frozen=True, slots=True)
class FeedbackOp:
    """One submission of labels."""

    items: Sequence[Feedback]


Op = PredictionOp | FeedbackOp
# Per op: None (predictions recorded), DuplicateRequest (nothing of it recorded),
# or the FeedbackResult of a FeedbackOp.
OpResult = DuplicateRequest | FeedbackResult | None


class LedgerReader(Protocol):
    """Reads over one consistent snapshot of the ledger."""

    def count(self, query: LedgerQuery) -> int:
        """How many predictions match ``query``."""
        ...

    def chunks(
        self, query: LedgerQuery, chunk_rows: int, *, features: bool = True
    ) -> Iterator[list[LedgerRecord]]:
        """The matching predictions with their labels, oldest first, ``chunk_rows`` at a
        time; ``features=False`` leaves the features (``'{}'``) and entity key (None)
        unread, for readers of outputs and labels only."""
        ...

    def label_history(self, query: LedgerQuery, chunk_rows: int) -> Iterator[list[LabelVersion]]:
        """Every version of the labels of the matching predictions, in the order they
        arrived, ``chunk_rows`` at a time."""
        ...

    def summary(self) -> LedgerSummary:
        """Counts for ``loopml ledger stats``."""
        ...


class LedgerBackend(Protocol):
    """A database that records predictions and labels (SQLite or PostgreSQL)."""

    @property
    def url(self) -> str:
        """Where the ledger is, safe to show (no password)."""
        ...

    def commit(self, ops: Sequence[Op]) -> list[OpResult]:
        """Write ``ops`` in order as one group; one result per op.

        A duplicate ``(request_id, row)`` fails only its own :class:`PredictionOp`. A
        database failure raises :class:`~loopml.ledger.records.LedgerError` and
        nothing of the group is kept; the next call reconnects if it has to.
        """
        ...

    def reader(self) -> AbstractContextManager[LedgerReader]:
        """A reader on its own connection, over one snapshot; usable from any thread."""
        ...

    def close(self) -> None:
        """Close the writer's connection."""
        ...


def prediction_runs(ops: Sequence[Op]) -> Iterator[tuple[bool, list[int]]]:
    """Consecutive ops of one kind: ``(is_prediction, indexes)``, in order.

    >>> ops = [FeedbackOp([]), PredictionOp([]), PredictionOp([]), FeedbackOp([])]
    >>> list(prediction_runs(ops))
    [(False, [0]), (True, [1, 2]), (False, [3])]
    """
    run: list[int] = []
    kind = False
    for index, op in enumerate(ops):
        is_prediction = isinstance(op, PredictionOp)
        if run and is_prediction != kind:
            yield kind, run
            run = []
        kind = is_prediction
        run.append(index)
    if run:
        yield kind, run


def prediction_rows(op: Op) -> Sequence[PredictionRow]:
    """The rows of an op the caller knows is a :class:`PredictionOp`."""
    assert isinstance(op, PredictionOp)
    return op.rows


def table_of(arm: str | None) -> str:
    """The table that holds the rows of ``arm`` (what a query of that arm reads).

    >>> table_of("shadow"), table_of("champion"), table_of(None)
    ('shadow_predictions', 'predictions', 'predictions')
    """
    return SHADOW_PREDICTIONS if arm == SHADOW_ARM else PREDICTIONS


def rows_by_table(rows: Sequence[PredictionRow]) -> list[tuple[str, list[PredictionRow]]]:
    """``rows`` split by the table each goes to, in a fixed order, empty parts left out."""
    answered = [r for r in rows if r.arm != SHADOW_ARM]
    if len(answered) == len(rows):
        return [(PREDICTIONS, list(rows))] if rows else []
    shadow = [r for r in rows if r.arm == SHADOW_ARM]
    return [
        (t, part) for t, part in ((PREDICTIONS, answered), (SHADOW_PREDICTIONS, shadow)) if part
    ]


def prediction_params(rows: Sequence[PredictionRow]) -> list[tuple[object, ...]]:
    """Insert parameters in :data:`PREDICTION_COLUMNS` order."""
    return [
        (
            r.request_id,
            r.row,
            r.ts,
            r.model,
            r.version,
            r.arm,
            r.entity_key,
            r.features,
            r.outputs,
            r.latency_ms,
        )
        for r in rows
    ]


def where_clause(query: LedgerQuery, placeholder: str) -> tuple[str, list[object]]:
    """``WHERE ...`` over ``p`` (predictions) for a query, and its parameters.

    >>> where_clause(LedgerQuery(since=1.0, version="3"), "?")
    (' WHERE p.ts >= ? AND p.version = ?', [1.0, '3'])
    """
    parts: list[str] = []
    params: list[object] = []
    for condition, value in (
        ("p.ts >= ", query.since),
        ("p.ts < ", query.until),
        ("p.version = ", query.version),
        ("p.arm = ", query.arm),
        ("p.model = ", query.model),
    ):
        if value is not None:
            parts.append(condition + placeholder)
            params.append(value)
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


def select_records(
    query: LedgerQuery, placeholder: str, *, features: bool = True
) -> tuple[str, list[object]]:
    """The SELECT behind :meth:`LedgerReader.chunks` (same SQL on both databases);
    without ``features`` the features and entity key are not read (``'{}'``, NULL)."""
    where, params = where_clause(query, placeholder)
    skipped = {} if features else {"entity_key": "NULL", "features": "'{}'"}
    columns = ", ".join(skipped.get(c, f"p.{c}") for c in PREDICTION_COLUMNS)
    sql = (
        f"SELECT {columns}, l.label, l.ts FROM {table_of(query.arm)} p "
        'LEFT JOIN labels l ON l.request_id = p.request_id AND l."row" = p."row"'
        # Rows of one request share their ts: the key breaks ties, so the order is stable.
        f'{where} ORDER BY p.ts, p.request_id, p."row"'
    )
    return sql, params


HISTORY_COLUMNS = ("request_id", '"row"', "label", "ts", "scope", "client", "source")
# A label submission: one new row of the history, if its prediction is recorded ...
INSERT_HISTORY = f"INSERT INTO label_history ({', '.join(HISTORY_COLUMNS)}) "
# ... and the current label of its key becomes it: ``labels`` holds the latest version,
# the one of the highest history id, even when two writers (replicas on one PostgreSQL)
# race on one key and commit in the other order.
UPSERT_LABEL = (
    'INSERT INTO labels (request_id, "row", label, ts, history_id) {values} '
    'ON CONFLICT (request_id, "row") DO UPDATE SET label = excluded.label, ts = excluded.ts, '
    "history_id = excluded.history_id "
    "WHERE labels.history_id IS NULL OR labels.history_id < excluded.history_id"
)
# Schema 1 -> 2: the labels stored before the history existed become its first versions.
MIGRATE_1_TO_2 = (
    "ALTER TABLE labels ADD COLUMN history_id BIGINT",
    f"INSERT INTO label_history ({', '.join(HISTORY_COLUMNS)}) "
    "SELECT request_id, \"row\", label, ts, 'before-history', NULL, NULL FROM labels "
    'ORDER BY ts, request_id, "row"',
    "UPDATE labels SET history_id = (SELECT MAX(h.id) FROM label_history h "
    'WHERE h.request_id = labels.request_id AND h."row" = labels."row")',
    "UPDATE ledger_meta SET value = '2' WHERE key = 'schema_version'",
)


def history_params(item: Feedback) -> tuple[object, ...]:
    """Insert parameters in :data:`HISTORY_COLUMNS` order."""
    return (item.request_id, item.row, item.label, item.ts, item.scope, item.client, item.source)


def select_history(query: LedgerQuery, placeholder: str) -> tuple[str, list[object]]:
    """The SELECT behind :meth:`LedgerReader.label_history`: the versions of the labels of
    the predictions ``query`` matches (numbered over the whole history, then filtered)."""
    where, params = where_clause(query, placeholder)
    key = 'PARTITION BY request_id, "row"'
    sql = (
        'SELECT h.request_id, h."row", h.label_version, h.is_current, h.label, h.ts, h.scope, '
        "h.client, h.source FROM (SELECT *, "
        f"ROW_NUMBER() OVER ({key} ORDER BY id) AS label_version, "
        f"CASE WHEN id = MAX(id) OVER ({key}) THEN 1 ELSE 0 END AS is_current "
        "FROM label_history) h "
        f"JOIN {table_of(query.arm)} p "
        'ON p.request_id = h.request_id AND p."row" = h."row"'
        f"{where} ORDER BY h.id"
    )
    return sql, params


# Every recorded row, answered or shadowed (one GROUP BY per table, then summed).
SUMMARY_TOTALS = (
    "SELECT SUM(n), MIN(first), MAX(last), SUM(shadow) FROM ("
    "SELECT COUNT(*) AS n, MIN(ts) AS first, MAX(ts) AS last, 0 AS shadow FROM predictions "
    "UNION ALL SELECT COUNT(*), MIN(ts), MAX(ts), COUNT(*) FROM shadow_predictions) t"
)
SUMMARY_LABELLED = "SELECT COUNT(*) FROM labels"
SUMMARY_VERSIONS = "SELECT COUNT(*) FROM label_history"
SUMMARY_GROUPS = (
    "SELECT version, arm, COUNT(*) FROM (SELECT version, arm FROM predictions "
    "UNION ALL SELECT version, arm FROM shadow_predictions) p GROUP BY version, arm "
    "ORDER BY COUNT(*) DESC, version, arm"
)
# Schema 2 -> 3: the shadow table itself is made by the schema's CREATE TABLE IF NOT EXISTS.
MIGRATE_2_TO_3 = ("UPDATE ledger_meta SET value = '3' WHERE key = 'schema_version'",)


class SqlReader(ABC):
    """:class:`LedgerReader` over one snapshot, in the SQL both databases understand.

    A backend's reader says how to run a statement (:meth:`_fetch_all`, :meth:`_batches`),
    which placeholder its driver takes and which error type it raises; a driver error
    becomes the backend's :class:`~loopml.ledger.records.LedgerError`.
    """

    placeholder: ClassVar[str]
    database_error: ClassVar[type[Exception]]

    def __init__(self, url: str, error: Callable[[str, Exception], LedgerError]) -> None:
        self._url = url
        self._error = error

    def count(self, query: LedgerQuery) -> int:
        where, params = where_clause(query, self.placeholder)
        sql = f"SELECT COUNT(*) FROM {table_of(query.arm)} p{where}"
        return int(self._fetch(sql, params)[0][0])

    def chunks(
        self, query: LedgerQuery, chunk_rows: int, *, features: bool = True
    ) -> Iterator[list[LedgerRecord]]:
        sql, params = select_records(query, self.placeholder, features=features)
        try:
            for batch in self._batches(sql, params, chunk_rows):
                yield [LedgerRecord._make(row) for row in batch]
        except self.database_error as exc:
            raise self._error("cannot read", exc) from exc

    def label_history(self, query: LedgerQuery, chunk_rows: int) -> Iterator[list[LabelVersion]]:
        sql, params = select_history(query, self.placeholder)
        try:
            for batch in self._batches(sql, params, chunk_rows):
                yield [_version(row) for row in batch]
        except self.database_error as exc:
            raise self._error("cannot read", exc) from exc

    def summary(self) -> LedgerSummary:
        rows, first, last, shadow = self._fetch(SUMMARY_TOTALS, [])[0]
        labelled = self._fetch(SUMMARY_LABELLED, [])[0][0]
        versions = self._fetch(SUMMARY_VERSIONS, [])[0][0]
        groups = [(str(v), str(a), int(n)) for v, a, n in self._fetch(SUMMARY_GROUPS, [])]
        return LedgerSummary(
            self._url, int(rows or 0), int(labelled), first, last, groups, int(versions),
            shadow_rows=int(shadow or 0),
        )  # fmt: skip

    def _fetch(self, sql: str, params: list[object]) -> list[tuple[Any, ...]]:
        try:
            return self._fetch_all(sql, params)
        except self.database_error as exc:
            raise self._error("cannot read", exc) from exc

    @abstractmethod
    def _fetch_all(self, sql: str, params: list[object]) -> list[tuple[Any, ...]]:
        """Every row of one statement."""

    @abstractmethod
    def _batches(
        self, sql: str, params: list[object], chunk_rows: int
    ) -> Iterator[Sequence[tuple[Any, ...]]]:
        """The rows of one statement, ``chunk_rows`` at a time, without holding them all."""


def migrations(found: int) -> tuple[str, ...]:
    """The statements that bring a ledger of schema ``found`` to this one, in order."""
    steps: tuple[str, ...] = ()
    if found <= 1:
        steps += MIGRATE_1_TO_2
    if found <= 2:
        steps += MIGRATE_2_TO_3
    return steps


def log_migration(url: str, found: int, labels: int) -> None:
    """Say once that an older ledger was brought to this schema (the caller committed it)."""
    if found >= SCHEMA_VERSION:
        return
    notes = []
    if found <= 1:
        notes.append(
            f"its {labels:d} labels are now the first versions of the label history (scope "
            "'before-history'); corrections are kept from now on"
        )
    notes.append("rows scored in shadow are kept in the table shadow_predictions")
    logger.warning(
        "ledger %s upgraded from schema %d to %s: %s; older loopml releases will refuse "
        "this ledger",
        url, found, SCHEMA_VERSION, "; ".join(notes),
    )  # fmt: skip


def check_schema_version(found: int, url: str) -> None:
    """Refuse a ledger written by a newer loopml (its tables may mean something else)."""
    if found > SCHEMA_VERSION:
        raise LedgerError(
            f"the ledger {url} has schema version {found}; this loopml knows {SCHEMA_VERSION}",
            fix="upgrade loopml, or point serve.ledger.url at another database",
        )


def _version(row: Sequence[Any]) -> LabelVersion:
    request_id, n, version, current, label, ts, scope, client, source = row
    return LabelVersion(
        request_id, int(n), int(version), bool(current), label, float(ts), scope, client, source
    )
