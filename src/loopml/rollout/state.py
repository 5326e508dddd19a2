"""The loop-state database: rollouts, their decisions and the servers' per-arm counters.

Every replica of a project reads the same rows (``rollout.state``: SQLite by default,
PostgreSQL by URL), so they route alike and their counters add up; nothing about a
rollout lives only in a process. Rows, not an in-memory object, are the truth:

- ``rollouts``: one row per rollout (:class:`~loopml.rollout.plan.RolloutState`); at most
  one active (running or paused) per model, kept by a partial unique index;
  an update names the state it expects (compare and set), so two controllers cannot both
  advance the same stage;
- ``rollout_decisions``: every decision and operator action with its reasons and the
  evidence it read, append-only;
- ``arm_counts``: per rollout, stage, replica and arm, the requests routed and the model
  errors, written as absolute values by each replica (so a retry never double counts);
- ``leases``: one controller pass at a time (:mod:`loopml.monitor.lease`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from loopml.errors import RolloutError
from loopml.monitor.lease import Lease
from loopml.monitor.store_schema import MonitorError, create_engine, engine_url, leases_table
from loopml.rollout.plan import RolloutState, Stage

__all__ = ["ArmCount", "DecisionRecord", "RolloutStore", "running_rollout"]

_META = sa.MetaData()
rollouts_table = sa.Table(
    "rollouts",
    _META,
    sa.Column("rollout_id", sa.String, primary_key=True),
    sa.Column("model", sa.String, nullable=False),
    sa.Column("champion", sa.String, nullable=False),
    sa.Column("challenger", sa.String, nullable=False),
    sa.Column("strategy", sa.String, nullable=False),
    sa.Column("stages", sa.Text, nullable=False),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("stage_started_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("paused_reason", sa.Text, nullable=False),
    sa.Index("rollouts_model", "model", "started_at"),
)
_ACTIVE = rollouts_table.c.status.in_(("running", "paused"))
# The database itself keeps one active rollout per model, whoever inserts at once.
sa.Index(
    "rollouts_one_active",
    rollouts_table.c.model,
    unique=True,
    sqlite_where=_ACTIVE,
    postgresql_where=_ACTIVE,
)
decisions_table = sa.Table(
    "rollout_decisions",
    _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rollout_id", sa.String, nullable=False),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("rollout_decisions_rollout", "rollout_id", "id"),
)
counts_table = sa.Table(
    "arm_counts",
    _META,
    sa.Column("rollout_id", sa.String, primary_key=True),
    sa.Column("stage", sa.Integer, primary_key=True),
    sa.Column("replica", sa.String, primary_key=True),
    sa.Column("arm", sa.String, primary_key=True),
    sa.Column("version", sa.String, nullable=False),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("errors", sa.Integer, nullable=False),
    sa.Column("dropped", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
_SCHEMA_LOCK = 0x726F6C6C6F7574  # "rollout": serialises table creation on PostgreSQL
_FIX = "check rollout.state (sqlite:///path or postgresql://...), the database and its rights"


@dataclass(frozen=True)
class ArmCount:
    """One arm's counters in one stage, summed over every replica."""

    arm: str
    version: str
    requests: int = 0
    errors: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class DecisionRecord:
    """One row of ``rollout_decisions``: a decision or an operator action."""

    id: int
    rollout_id: str
    stage: int
    ts: float
    kind: str
    actor: str
    summary: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "rollout_id": self.rollout_id, "stage": self.stage, "ts": self.ts,
            "kind": self.kind, "actor": self.actor, "summary": self.summary,
            "detail": self.detail,
        }  # fmt: skip


class RolloutStore:
    """Reads and writes the loop-state database (see the module doc).

    >>> import tempfile
    >>> store = RolloutStore.open("sqlite:///loop.db", Path(tempfile.mkdtemp()))
    >>> store.active("feed") is None
    True
    >>> store.close()
    """

    def __init__(self, engine: sa.Engine, shown: str) -> None:
        """Use :meth:`open`."""
        self._engine = engine
        self.url = shown

    @classmethod
    def open(cls, url: str, root: Path) -> RolloutStore:
        try:
            engine, shown = create_engine(url, root)
        except MonitorError as exc:
            raise RolloutError(
                exc.headline.replace("monitor store", "rollout state database"),
                detail=exc.detail,
                fix="set rollout.state to e.g. sqlite:///.loopml/loop.db or "
                "postgresql://user@host/db",
            ) from None
        store = cls(engine, shown)
        try:
            with store._errors("cannot open"):
                _create_schema(engine)
        except RolloutError:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> RolloutStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def lease(self, name: str, *, ttl: float = 60.0, wait: float = 0.0) -> Lease:
        """Hold ``name`` across processes while a block runs (one controller pass at a time)."""
        return Lease(self._engine, name, url=self.url, ttl=ttl, wait=wait)

    # -- rollouts -----------------------------------------------------------------------

    def active(self, model: str) -> RolloutState | None:
        """The model's running or paused rollout, if any."""
        c = rollouts_table.c
        query = sa.select(rollouts_table).where(
            c.model == model, c.status.in_(("running", "paused"))
        )
        rows = self._rows(query.order_by(c.started_at.desc()).limit(1))
        return _state(rows[0]) if rows else None

    def latest(self, model: str) -> RolloutState | None:
        """The model's most recent rollout, active or ended."""
        found = self.history(model, limit=1)
        return found[0] if found else None

    def history(self, model: str, limit: int = 20) -> list[RolloutState]:
        """The model's rollouts, newest first."""
        c = rollouts_table.c
        query = sa.select(rollouts_table).where(c.model == model)
        return [_state(r) for r in self._rows(query.order_by(c.started_at.desc()).limit(limit))]

    def get(self, rollout_id: str) -> RolloutState | None:
        rows = self._rows(
            sa.select(rollouts_table).where(rollouts_table.c.rollout_id == rollout_id)
        )
        return _state(rows[0]) if rows else None

    def insert(self, state: RolloutState) -> None:
        """Store a new rollout; refused while the model has an active one."""
        try:
            with self._errors("cannot write to"), self._engine.begin() as conn:
                conn.execute(sa.insert(rollouts_table).values(_row(state)))
        except RolloutError as exc:
            if not isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise
            running = self.active(state.model)
            raise RolloutError(
                f"a rollout of {state.model!r} is already running"
                + (
                    f" (rollout {running.rollout_id}, challenger {running.challenger})"
                    if running
                    else ""
                ),
                fix="see 'loopml rollout status'; end it with 'loopml rollout abort "
                "--reason ...' before starting another",
            ) from None

    def update(self, state: RolloutState, *, expect: RolloutState) -> bool:
        """Store ``state`` if the stored row is still ``expect`` (its stage and status);
        False when another controller changed it first (nothing is written then)."""
        c = rollouts_table.c
        statement = (
            sa.update(rollouts_table)
            .where(
                c.rollout_id == expect.rollout_id,
                c.stage == expect.stage,
                c.status == expect.status,
            )
            .values(_row(state))
        )
        with self._errors("cannot write to"), self._engine.begin() as conn:
            return bool(conn.execute(statement).rowcount)

    # -- decisions ----------------------------------------------------------------------

    def add_decision(
        self,
        state: RolloutState,
        kind: str,
        summary: str,
        detail: Mapping[str, Any],
        *,
        actor: str,
        ts: float | None = None,
    ) -> int:
        """Append one decision or action; returns its id."""
        values = {
            "rollout_id": state.rollout_id, "stage": state.stage,
            "ts": time.time() if ts is None else ts, "kind": kind, "actor": actor,
            "summary": summary, "detail": json.dumps(detail, sort_keys=True, default=str),
        }  # fmt: skip
        with self._errors("cannot write to"), self._engine.begin() as conn:
            result = conn.execute(sa.insert(decisions_table).values(values))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def decisions(self, rollout_id: str, limit: int = 20) -> list[DecisionRecord]:
        """The rollout's decisions and actions, newest first."""
        c = decisions_table.c
        query = (
            sa.select(decisions_table)
            .where(c.rollout_id == rollout_id)
            .order_by(c.id.desc())
            .limit(limit)
        )
        return [_decision(r) for r in self._rows(query)]

    # -- counters -----------------------------------------------------------------------

    def put_counts(
        self, rollout_id: str, stage: int, replica: str, counts: Mapping[str, ArmCount]
    ) -> None:
        """Store one replica's counters of one stage (absolute values, replacing its last)."""
        if not counts:
            return
        now = time.time()
        rows = [
            {"rollout_id": rollout_id, "stage": stage, "replica": replica, "arm": arm,
             "version": n.version, "requests": n.requests, "errors": n.errors,
             "dropped": n.dropped, "updated_at": now}
            for arm, n in counts.items()
        ]  # fmt: skip
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(counts_table)
        upsert = insert.on_conflict_do_update(
            index_elements=["rollout_id", "stage", "replica", "arm"],
            set_={k: insert.excluded[k] for k in ("version", "requests", "errors", "dropped",
                                                  "updated_at")},
        )  # fmt: skip
        with self._errors("cannot write to"), self._engine.begin() as conn:
            conn.execute(upsert, rows)

    def counts(self, rollout_id: str, stage: int) -> dict[str, ArmCount]:
        """Every replica's counters of one stage, summed per arm."""
        c = counts_table.c
        query = (
            sa.select(
                c.arm, sa.func.max(c.version), sa.func.sum(c.requests), sa.func.sum(c.errors),
                sa.func.sum(c.dropped),
            )
            .where(c.rollout_id == rollout_id, c.stage == stage)
            .group_by(c.arm)
        )  # fmt: skip
        return {
            r[0]: ArmCount(r[0], r[1], int(r[2] or 0), int(r[3] or 0), int(r[4] or 0))
            for r in self._rows(query)
        }

    # -- plumbing -----------------------------------------------------------------------

    def _rows(self, query: sa.Select[Any]) -> list[Any]:
        with self._errors("cannot read"), self._engine.connect() as conn:
            return list(conn.execute(query).all())

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise RolloutError(
                f"{what} the rollout state database {self.url}",
                detail=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                fix=_FIX,
            ) from exc


def _create_schema(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        for table in (*_META.sorted_tables, leases_table):
            conn.execute(CreateTable(table, if_not_exists=True))
            for index in table.indexes:
                conn.execute(CreateIndex(index, if_not_exists=True))


def _row(state: RolloutState) -> dict[str, Any]:
    return {
        "rollout_id": state.rollout_id, "model": state.model, "champion": state.champion,
        "challenger": state.challenger, "strategy": state.strategy,
        "stages": json.dumps([[s.kind, s.share] for s in state.stages]),
        "stage": state.stage, "status": state.status, "started_at": state.started_at,
        "stage_started_at": state.stage_started_at, "updated_at": state.updated_at,
        "reason": state.reason, "actor": state.actor, "paused_reason": state.paused_reason,
    }  # fmt: skip


def _state(row: Any) -> RolloutState:
    return RolloutState(
        rollout_id=row.rollout_id, model=row.model, champion=row.champion,
        challenger=row.challenger, strategy=row.strategy,
        stages=tuple(Stage(kind, float(share)) for kind, share in json.loads(row.stages)),
        stage=int(row.stage), status=row.status, started_at=float(row.started_at),
        stage_started_at=float(row.stage_started_at), updated_at=float(row.updated_at),
        reason=row.reason, actor=row.actor, paused_reason=row.paused_reason,
    )  # fmt: skip


def _decision(row: Any) -> DecisionRecord:
    return DecisionRecord(
        int(row.id), row.rollout_id, int(row.stage), float(row.ts), row.kind, row.actor,
        row.summary, json.loads(row.detail),
    )  # fmt: skip


def running_rollout(url: str, root: Path, model: str) -> RolloutState | None:
    """The model's active rollout, or None — also when the loop-state database was never
    created (an embedded SQLite file that does not exist is not created by asking)."""
    try:
        parsed, _ = engine_url(url, root)
    except MonitorError:
        return None
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return None
    with RolloutStore.open(url, root) as store:
        return store.active(model)
