"""The monitor store's tables and how to reach its database.

The SQLAlchemy table definitions (alert states and events, windows, and the leases that
keep one monitor run at a time across processes and hosts), the schema version, and
opening an engine from a ``monitor.store`` URL (SQLite in WAL mode, relative to the project
folder, or PostgreSQL through psycopg 3), creating the tables when they are missing.
:class:`~loopml.monitor.store.MonitorStore` reads and writes through them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateIndex, CreateTable

from loopml.errors import LoopmlError
from loopml.monitor.alerts import AlertKey

__all__ = [
    "SCHEMA_VERSION",
    "MonitorError",
    "create_engine",
    "create_schema",
    "engine_url",
    "events_table",
    "leases_table",
    "mask_url",
    "meta_table",
    "states_table",
    "windows_table",
]

SCHEMA_VERSION = 1
_SCHEMA_LOCK = 0x6D6F6E69746F72  # "monitor": serialises table creation on PostgreSQL
_FIX_URL = "set monitor.store to e.g. sqlite:///.loopml/monitor.db or postgresql://user@host/db"
_META = sa.MetaData()
meta_table = sa.Table(
    "monitor_meta",
    _META,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
)
states_table = sa.Table(
    "alert_states",
    _META,
    *(sa.Column(name, sa.String, primary_key=True) for name in AlertKey._fields),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
events_table = sa.Table(
    "alert_events",
    _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *(sa.Column(name, sa.String, nullable=False) for name in AlertKey._fields),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("severity", sa.String, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("threshold", sa.Float),
    sa.Column("version", sa.String, nullable=False),
    sa.Column("window_index", sa.Integer, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("deliveries", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("alert_events_model_ts", "model", "ts"),
)
windows_table = sa.Table(
    "windows",
    _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *(sa.Column(name, sa.String, nullable=False) for name in ("model", "version", "arm", "spec")),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("start_ts", sa.Float, nullable=False),
    sa.Column("end_ts", sa.Float, nullable=False),
    sa.Column("end_request_id", sa.String, nullable=False),
    sa.Column("end_row", sa.Integer, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("complete", sa.Boolean, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
    sa.Column("computed_at", sa.Float, nullable=False),
    sa.UniqueConstraint("model", "version", "arm", "spec", "idx", name="windows_key"),
)

leases_table = sa.Table(
    "leases",
    _META,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("holder", sa.String, nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)


class MonitorError(LoopmlError):
    """The monitor store cannot be opened, read or written."""


def create_engine(url: str, root: Path) -> tuple[sa.Engine, str]:
    """An engine for ``url`` (``sqlite:///path`` relative to ``root``, or ``postgresql://``)
    and the URL to show (no password). Connects lazily: nothing is opened yet."""
    parsed, shown = engine_url(url, root)
    sqlite_db = parsed.get_backend_name() == "sqlite"
    if "connect_timeout" in parsed.query or "timeout" in parsed.query:
        connect_args: dict[str, Any] = {}
    else:
        connect_args = {"timeout": 30} if sqlite_db else {"connect_timeout": 5}
    engine = sa.create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
    if sqlite_db:
        sa.event.listen(engine, "connect", _sqlite_wal)
    return engine, shown


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def engine_url(url: str, root: Path) -> tuple[sa.URL, str]:
    """The SQLAlchemy URL to connect with, and the URL to show (no password)."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise MonitorError(
            f"bad monitor store URL {mask_url(url)!r}", detail=str(exc), fix=_FIX_URL
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg"), shown
    if backend != "sqlite":
        raise MonitorError(
            f"unsupported monitor store URL {shown}",
            detail="the monitor store runs on SQLite (sqlite:///path.db) or PostgreSQL",
            fix=_FIX_URL,
        )
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise MonitorError(
            f"bad SQLite monitor store URL {shown}",
            detail="the store needs a file: sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db",
            fix=_FIX_URL,
        )
    path = Path(database) if Path(database).is_absolute() else root / database
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MonitorError(
            f"cannot create the monitor store folder {path.parent}",
            detail=str(exc),
            fix="check monitor.store and the folder's permissions",
        ) from None
    return parsed.set(drivername="sqlite+pysqlite", database=str(path)), shown


def _sqlite_wal(dbapi_conn: Any, _record: Any) -> None:
    # WAL: a report or `loopml monitor status` can read while `loopml serve` writes.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def create_schema(engine: sa.Engine, shown: str) -> None:
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:  # several processes may start at once; IF NOT EXISTS can still race
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        for table in _META.sorted_tables:
            conn.execute(CreateTable(table, if_not_exists=True))
            for index in table.indexes:
                conn.execute(CreateIndex(index, if_not_exists=True))
        values = {"key": "schema_version", "value": str(SCHEMA_VERSION)}
        if postgres:
            conn.execute(postgresql.insert(meta_table).values(values).on_conflict_do_nothing())
        else:
            conn.execute(sqlite.insert(meta_table).values(values).on_conflict_do_nothing())
        found = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
        ).scalar_one()
    if int(found) > SCHEMA_VERSION:
        raise MonitorError(
            f"the monitor store {shown} was written by a newer loopml",
            detail=f"its schema version is {found}; this loopml reads {SCHEMA_VERSION}",
            fix="upgrade loopml, or point monitor.store at another database",
        )
