"""Leases: one holder of a named piece of work at a time, across processes and hosts.

A lease is a row in the monitor store (``leases``): a name, its holder and when it
expires. Taking it is one statement — insert the row, or take it over if it expired or is
already ours — so two processes never both hold it, whichever database (SQLite or
PostgreSQL) and however many hosts. The holder renews it while it works (a heartbeat
thread, every third of its time to live); a holder that dies (``kill -9``) loses it when
it expires, and the next one goes on.

:class:`Lease` is the context manager :meth:`MonitorStore.lease
<loopml.monitor.store.MonitorStore.lease>` returns.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from loopml.monitor.store_schema import MonitorError, leases_table

__all__ = ["Lease", "LeaseBusy", "LeaseHolder", "holder_id"]

POLL_SECONDS = 0.2


class LeaseBusy(MonitorError):
    """Another process holds the lease (and did not let go within the wait)."""


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease now, and until when (unix seconds)."""

    holder: str
    expires_at: float


def holder_id() -> str:
    """This process, as a lease names it: host, process id and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def try_acquire(engine: sa.Engine, name: str, holder: str, ttl: float) -> LeaseHolder:
    """Take ``name`` for ``holder`` if it is free, expired or already ours; who holds it
    afterwards (``holder`` itself when taken)."""
    now = time.time()
    row = {"name": name, "holder": holder, "acquired_at": now, "expires_at": now + ttl}
    insert = (postgresql if engine.dialect.name == "postgresql" else sqlite).insert(leases_table)
    c = leases_table.c
    take = insert.values(row).on_conflict_do_update(
        index_elements=[c.name],
        set_={"holder": holder, "acquired_at": now, "expires_at": now + ttl},
        where=(c.expires_at < now) | (c.holder == holder),
    )
    with engine.begin() as conn:
        conn.execute(take)
        found = conn.execute(sa.select(c.holder, c.expires_at).where(c.name == name)).one()
    return LeaseHolder(str(found[0]), float(found[1]))


def renew(engine: sa.Engine, name: str, holder: str, ttl: float) -> bool:
    """Extend our lease; False if it is no longer ours (it expired and was taken)."""
    c = leases_table.c
    update = (
        sa.update(leases_table)
        .where(c.name == name, c.holder == holder)
        .values(expires_at=time.time() + ttl)
    )
    with engine.begin() as conn:
        return bool(conn.execute(update).rowcount)


def release(engine: sa.Engine, name: str, holder: str) -> None:
    c = leases_table.c
    with engine.begin() as conn:
        conn.execute(sa.delete(leases_table).where(c.name == name, c.holder == holder))


class Lease:
    """Hold ``name`` while the block runs: wait up to ``wait`` seconds for it (0: try
    once), renew it in the background, release it at the end.

    Raises :class:`LeaseBusy` when another holder keeps it past the wait.
    """

    def __init__(
        self, engine: sa.Engine, name: str, *, url: str, ttl: float = 60.0, wait: float = 0.0
    ) -> None:
        self._engine = engine
        self._url = url
        self.name = name
        self.holder = holder_id()
        self._ttl = ttl
        self._wait = wait
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.lost = False
        """Set when a renewal found the lease taken by another (this holder was too slow)."""

    def __enter__(self) -> Lease:
        deadline = time.monotonic() + self._wait
        while True:
            current = self._acquire()
            if current.holder == self.holder:
                break
            if time.monotonic() >= deadline:
                raise LeaseBusy(
                    f"another process is running {self.name!r}",
                    detail=f"held by {current.holder} until "
                    f"{time.strftime('%H:%M:%S', time.localtime(current.expires_at))}",
                    fix="wait for it to finish and run again; a holder that died lets go "
                    f"within {self._ttl:.0f} s",
                )
            time.sleep(POLL_SECONDS)
        self._heartbeat = threading.Thread(
            target=self._renew, name=f"loopml-lease-{self.name}", daemon=True
        )
        self._heartbeat.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        try:
            release(self._engine, self.name, self.holder)
        except sa.exc.SQLAlchemyError:  # it expires by itself within its time to live
            return

    def _acquire(self) -> LeaseHolder:
        try:
            return try_acquire(self._engine, self.name, self.holder, self._ttl)
        except sa.exc.SQLAlchemyError as exc:
            raise MonitorError(
                f"cannot take the lease {self.name!r} in the monitor store {self._url}",
                detail=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                fix="check the database (disk space, permissions, connection) and monitor.store",
            ) from exc

    def _renew(self) -> None:
        while not self._stop.wait(self._ttl / 3):
            try:
                if not renew(self._engine, self.name, self.holder, self._ttl):
                    self.lost = True
                    return
            except sa.exc.SQLAlchemyError:  # the database is away: the next beat retries
                continue

    def __repr__(self) -> str:
        return f"Lease({self.name!r}, holder={self.holder!r})"
