"""Where monitoring keeps what it computed: alert states, alert events and windows.

SQLAlchemy Core over SQLite (``sqlite:///path``, relative to the project folder, in WAL
mode) or PostgreSQL (``postgresql://...``, through psycopg 3). :meth:`MonitorStore.commit`
writes one monitoring run in ONE transaction: the model's alert states, the new events
and the new windows, all or nothing, so states never disagree with the events and
windows they came from.

Windows are keyed by ``(model, version, arm, spec, idx)``. A stored window that is not
``complete`` (the newest one, still filling) is replaced when a window with its key is
committed again; committing a complete window twice is an error and the whole commit is
rolled back. Suggested order for a run: :meth:`commit`, then deliver the events, then
:meth:`record_deliveries` (a crash in between loses a notification, never a record).
:meth:`lease` keeps runs of one model apart, whichever process or host they run in.

The tables and opening the database live in :mod:`~loopml.monitor.store_schema`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from loopml.monitor.alerts import AlertEvent, AlertKey, AlertState
from loopml.monitor.lease import Lease
from loopml.monitor.results import WindowReport
from loopml.monitor.sinks import Delivery
from loopml.monitor.store_schema import (
    MonitorError,
    create_engine,
    create_schema,
    events_table,
    states_table,
    windows_table,
)

__all__ = ["MonitorError", "MonitorStore", "StoredEvent", "StoredWindow", "WindowCursor"]


@dataclass(frozen=True)
class WindowCursor:
    """Where the last complete window of a series ended: resume after it."""

    index: int
    end_ts: float
    end_request_id: str
    end_row: int


@dataclass(frozen=True)
class StoredWindow:
    """One computed window as stored (``report`` is kept as :meth:`WindowReport.to_dict`
    and read back as the same :class:`WindowReport`)."""

    model: str
    version: str
    arm: str
    spec: str
    index: int
    start_ts: float
    end_ts: float
    rows: int
    complete: bool
    report: WindowReport
    end_request_id: str  # the ledger key of the window's last row
    end_row: int
    computed_at: float | None = None  # None: the time of the commit


@dataclass(frozen=True)
class StoredEvent:
    """An alert event with its store id and where it was delivered."""

    id: int
    created_at: float
    event: AlertEvent
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            **self.event.to_dict(),
            "deliveries": self.deliveries,
        }


class MonitorStore:
    """The monitor's tables in one database (see the module doc).

    >>> import tempfile
    >>> store = MonitorStore.open("sqlite:///monitor.db", Path(tempfile.mkdtemp()))
    >>> store.active_alerts(), store.events()
    ([], [])
    >>> store.close()
    """

    def __init__(self, engine: sa.Engine, shown: str) -> None:
        """Use :meth:`open`."""
        self._engine = engine
        self.url = shown  # without the password

    @classmethod
    def open(cls, url: str, root: Path) -> MonitorStore:
        """Connect to ``url`` (``sqlite:///path`` relative to ``root``, or ``postgresql://``)
        and create the tables if they are missing."""
        engine, shown = create_engine(url, root)
        store = cls(engine, shown)
        try:
            with store._errors("cannot connect to", _FIX_CONNECT):
                create_schema(engine, shown)
        except MonitorError:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> MonitorStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def lease(self, name: str, *, ttl: float = 60.0, wait: float = 0.0) -> Lease:
        """Hold ``name`` across processes and hosts while a block runs (see
        :mod:`~loopml.monitor.lease`): ``with store.lease("monitor-run:feed", wait=60):``."""
        return Lease(self._engine, name, url=self.url, ttl=ttl, wait=wait)

    def load_states(self, model: str) -> dict[AlertKey, AlertState]:
        """Every alert state of ``model``, by key."""
        query = sa.select(states_table.c.state).where(states_table.c.model == model)
        states = [
            AlertState.from_dict(json.loads(text)) for text in self._read(query, scalars=True)
        ]
        return {state.key: state for state in states}

    def active_alerts(self, model: str | None = None) -> list[AlertState]:
        """The raised alerts (of ``model``, or of every model), ordered by key."""
        query = sa.select(states_table.c.state).where(states_table.c.status == "raised")
        if model is not None:
            query = query.where(states_table.c.model == model)
        query = query.order_by(*(states_table.c[name] for name in AlertKey._fields))
        return [AlertState.from_dict(json.loads(text)) for text in self._read(query, scalars=True)]

    def last_window(self, model: str, version: str, arm: str, spec: str) -> WindowCursor | None:
        """The last complete window of one series, or None when there is none yet."""
        c = windows_table.c
        query = (
            sa.select(c.idx, c.end_ts, c.end_request_id, c.end_row)
            .where(c.model == model, c.version == version, c.arm == arm, c.spec == spec)
            .where(c.complete.is_(True))
            .order_by(c.idx.desc())
            .limit(1)
        )
        rows = self._read(query)
        return WindowCursor(*rows[0]) if rows else None

    def commit(
        self,
        model: str,
        states: Mapping[AlertKey, AlertState],
        events: Sequence[AlertEvent],
        windows: Sequence[StoredWindow],
    ) -> list[int]:
        """Write one run in one transaction; the new events' ids, in order.

        ``states`` is the model's complete state map (as :func:`~loopml.monitor.alerts.
        evaluate` returns it): states of ``model`` missing from it are deleted.
        """
        now = time.time()
        state_rows = [_state_row(model, state, now) for state in states.values()]
        event_rows = [_event_row(model, event, now) for event in events]
        window_rows = [_window_row(model, window, now) for window in windows]
        with self._errors("cannot write to"), self._engine.begin() as conn:
            conn.execute(sa.delete(states_table).where(states_table.c.model == model))
            if state_rows:
                conn.execute(sa.insert(states_table), state_rows)
            for row in window_rows:
                conn.execute(_delete_incomplete(row))
            if window_rows:
                conn.execute(sa.insert(windows_table), window_rows)
            insert = sa.insert(events_table).returning(events_table.c.id)
            return [int(conn.execute(insert.values(row)).scalar_one()) for row in event_rows]

    def record_deliveries(self, event_id: int, deliveries: Sequence[Delivery]) -> None:
        """Remember where event ``event_id`` was delivered (replaces what was recorded)."""
        text = json.dumps([d.to_dict() for d in deliveries])
        update = (
            sa.update(events_table).where(events_table.c.id == event_id).values(deliveries=text)
        )
        with self._errors("cannot write to"), self._engine.begin() as conn:
            found = conn.execute(update).rowcount
        if not found:
            raise MonitorError(
                f"no alert event #{event_id} in the monitor store {self.url}",
                fix="pass an id returned by MonitorStore.commit",
            )

    def events(
        self,
        model: str | None = None,
        since: float | None = None,
        state: str | None = None,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """Alert events, newest (by window end) first; ``since`` is a window end time."""
        c = events_table.c
        query = sa.select(c.id, c.created_at, c.event, c.deliveries)
        if model is not None:
            query = query.where(c.model == model)
        if since is not None:
            query = query.where(c.ts >= since)
        if state is not None:
            query = query.where(c.state == state)
        query = query.order_by(c.ts.desc(), c.id.desc()).limit(limit)
        return [
            StoredEvent(
                id=int(row[0]),
                created_at=float(row[1]),
                event=AlertEvent.from_dict(json.loads(row[2])),
                deliveries=json.loads(row[3]),
            )
            for row in self._read(query)
        ]

    def latest_windows(self, model: str, spec: str | None = None) -> list[WindowReport]:
        """The report of the latest complete window of each (version, arm), newest first."""
        c = windows_table.c
        query = sa.select(c.id, c.version, c.arm, c.end_ts, c.idx).where(
            c.model == model, c.complete.is_(True)
        )
        if spec is not None:
            query = query.where(c.spec == spec)
        latest: dict[tuple[str, str], tuple[float, int, int]] = {}
        for row_id, version, arm, end_ts, idx in self._read(query):
            best = latest.get((version, arm))
            if best is None or (end_ts, idx) > best[:2]:
                latest[(version, arm)] = (end_ts, idx, row_id)
        if not latest:
            return []
        ids = [row_id for _, _, row_id in latest.values()]
        reports = sa.select(c.report).where(c.id.in_(ids)).order_by(c.end_ts.desc(), c.id)
        return [_report(text) for text in self._read(reports, scalars=True)]

    def windows(
        self,
        model: str,
        version: str | None = None,
        arm: str | None = None,
        spec: str | None = None,
        limit: int | None = None,
    ) -> list[WindowReport]:
        """Stored window reports in time order (index order within a series); with
        ``limit``, the last ``limit`` of them."""
        c = windows_table.c
        query = sa.select(c.report).where(c.model == model)
        for column, value in (("version", version), ("arm", arm), ("spec", spec)):
            if value is not None:
                query = query.where(c[column] == value)
        order = (c.end_ts, c.version, c.arm, c.spec, c.idx)
        if limit is None:
            return [_report(text) for text in self._read(query.order_by(*order), scalars=True)]
        newest = query.order_by(*(col.desc() for col in order)).limit(limit)
        return [_report(text) for text in self._read(newest, scalars=True)][::-1]

    def _read(self, query: sa.Select[Any], *, scalars: bool = False) -> list[Any]:
        with self._errors("cannot read"), self._engine.connect() as conn:
            result = conn.execute(query)
            return list(result.scalars().all() if scalars else result.all())

    @contextmanager
    def _errors(self, what: str, fix: str = "") -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise MonitorError(
                f"{what} the monitor store {self.url}",
                detail=_cause(exc),
                fix=fix or _FIX_WRITE,
            ) from exc


_FIX_CONNECT = (
    "check monitor.store (host, port, database, user), that the database is running and "
    "reachable from here, and the user's rights on it"
)
_FIX_WRITE = "check the database (disk space, permissions, connection) and monitor.store"


def _cause(exc: sa.exc.SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return f"{type(orig or exc).__name__}: {text.splitlines()[0] if text else ''}"


def _json(data: Any) -> str:
    return json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def _check_model(model: str, found: str, what: str) -> None:
    if found != model:
        raise ValueError(f"{what} of model {found!r} committed for model {model!r}")


def _state_row(model: str, state: AlertState, now: float) -> dict[str, Any]:
    _check_model(model, state.model, "an alert state")
    return {
        **state.key._asdict(),
        "status": state.status,
        "state": _json(state.to_dict()),
        "updated_at": now,
    }


def _event_row(model: str, event: AlertEvent, now: float) -> dict[str, Any]:
    _check_model(model, event.model, "an alert event")
    return {
        **event.key._asdict(),
        "state": event.state,
        "severity": event.severity,
        "value": event.value,
        "threshold": event.threshold,
        "version": event.version,
        "window_index": event.window,
        "ts": event.ts,
        "event": _json(event.to_dict()),
        "deliveries": "[]",
        "created_at": now,
    }


def _window_row(model: str, window: StoredWindow, now: float) -> dict[str, Any]:
    _check_model(model, window.model, "a window")
    return {
        "model": window.model,
        "version": window.version,
        "arm": window.arm,
        "spec": window.spec,
        "idx": window.index,
        "start_ts": window.start_ts,
        "end_ts": window.end_ts,
        "end_request_id": window.end_request_id,
        "end_row": window.end_row,
        "rows": window.rows,
        "complete": window.complete,
        "report": _json(window.report.to_dict()),
        "computed_at": now if window.computed_at is None else window.computed_at,
    }


def _report(text: str) -> WindowReport:
    return WindowReport.from_dict(json.loads(text))


def _delete_incomplete(row: Mapping[str, Any]) -> sa.Delete:
    key = (
        windows_table.c[name] == row[name] for name in ("model", "version", "arm", "spec", "idx")
    )
    return sa.delete(windows_table).where(*key, windows_table.c.complete.is_(False))
