"""Open a ledger backend from its URL (``serve.ledger.url``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from loopml.ledger.backend import LedgerBackend
from loopml.ledger.postgres import PostgresBackend
from loopml.ledger.records import LedgerError
from loopml.ledger.sqlite import SqliteBackend

POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_backend(url: str, root: Path) -> LedgerBackend:
    """The backend for ``url``: ``sqlite:///path`` (relative to ``root``) or ``postgresql://``.

    Connects and creates the tables if they are missing.

    >>> open_backend("mysql://db/ledger", Path("."))  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    loopml.ledger.records.LedgerError: unsupported ledger URL 'mysql://db/ledger'
    """
    scheme = urlsplit(url).scheme.split("+", 1)[0].lower()
    if scheme == "sqlite":
        return SqliteBackend.from_url(url, root)
    if scheme in POSTGRES_SCHEMES:
        return PostgresBackend(url)
    raise LedgerError(
        f"unsupported ledger URL {url!r}",
        detail="the ledger runs on SQLite (sqlite:///path.db) or PostgreSQL (postgresql://...)",
        fix="set serve.ledger.url to sqlite:///.loopml/ledger.db or postgresql://user@host/db",
    )
