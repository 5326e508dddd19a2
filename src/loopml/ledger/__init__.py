"""The prediction ledger: every prediction recorded, labels joined later (decision 4).

Two databases behind one interface — SQLite in WAL mode (the default) and PostgreSQL —
written by one thread with group commit and a bounded queue::

    ledger = open_ledger(project.serve.ledger, project.root)
    ledger.start()
    future = ledger.submit(rows)      # raises LedgerFull at once when the queue is full
    if ledger.mode == "durable":
        future.result()               # committed: now the response may be sent
    ...
    ledger.close()                    # drains what is queued

In an asyncio server, ``await ledger.submit_async(rows)`` in durable mode (one event-loop
wake-up per group commit instead of one per request) and plain ``submit`` in async mode.

:func:`export_ledger` writes predictions with their labels to Parquet.
"""

from __future__ import annotations

from pathlib import Path

from loopml.config import LedgerConfig
from loopml.ledger.backend import LedgerBackend, LedgerReader
from loopml.ledger.connect import open_backend
from loopml.ledger.export import ExportResult, export_ledger, parse_time
from loopml.ledger.records import (
    DuplicateRequest,
    Feedback,
    FeedbackResult,
    LedgerClosed,
    LedgerError,
    LedgerFull,
    LedgerQuery,
    LedgerRecord,
    LedgerStats,
    LedgerSummary,
    PredictionRow,
)
from loopml.ledger.writer import Ledger

__all__ = [
    "DuplicateRequest",
    "ExportResult",
    "Feedback",
    "FeedbackResult",
    "Ledger",
    "LedgerBackend",
    "LedgerClosed",
    "LedgerError",
    "LedgerFull",
    "LedgerQuery",
    "LedgerReader",
    "LedgerRecord",
    "LedgerStats",
    "LedgerSummary",
    "PredictionRow",
    "export_ledger",
    "open_backend",
    "open_ledger",
    "parse_time",
]


def open_ledger(config: LedgerConfig, root: Path) -> Ledger:
    """A :class:`Ledger` on ``config.url`` (SQLite paths relative to ``root``), not started.

    >>> import tempfile
    >>> ledger = open_ledger(LedgerConfig(), Path(tempfile.mkdtemp()))
    >>> ledger.mode, ledger.stats().queue_capacity
    ('durable', 10000)
    >>> ledger.close()
    """
    return Ledger(
        open_backend(config.url, root),
        queue_size=config.queue_size,
        batch_rows=config.batch_rows,
        retry_after=config.retry_after_seconds,
        mode=config.mode,
    )
