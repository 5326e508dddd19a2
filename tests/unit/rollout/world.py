"""A real MLflow registry (SQLite, one per test module) and a real rollout state database
for the controller's tests, with bare versions (registered in milliseconds: no model is
trained; the controller never loads one) and crashes injected after any write.

Each world is one registered model of its own name in the module's MLflow store, with its
own audit log and loop-state database, so tests share the store's (slow) creation only.
:class:`Faults` raises :class:`Crash` — a ``BaseException``, as a kill is not an error any
code handles — right after the n-th write from now, whichever of the three stores it hits:
the audit log, MLflow (aliases and tags), the rollout state database.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.config import DataConfig, ProjectConfig, RegistryConfig, RolloutConfig, SourceConfig
from loopml.errors import GateFailed
from loopml.registry.audit import AuditEntry, AuditLog
from loopml.registry.promotion import PromotionCheck
from loopml.registry.store import CHAMPION, ModelRegistry
from loopml.rollout.controller import Controller
from loopml.rollout.decision import Decision, Hold
from loopml.rollout.evidence import ArmStats, RolloutStats
from loopml.rollout.plan import RolloutState
from loopml.rollout.state import RolloutStore
from loopml.train import tracking
from loopml.train.gate import GateDecision

_NAMES = itertools.count(1)


class Crash(BaseException):
    """A simulated kill: nothing after the write it follows runs."""


@dataclass
class Faults:
    """Counts writes; when armed with ``n``, raises :class:`Crash` after the n-th."""

    left: int | None = None
    writes: int = 0

    def arm(self, n: int) -> None:
        self.left = n

    def tick(self) -> None:
        self.writes += 1
        if self.left is None:
            return
        self.left -= 1
        if self.left <= 0:
            self.left = None
            raise Crash


class CrashingAudit(AuditLog):
    def __init__(self, path: Path, faults: Faults) -> None:
        super().__init__(path)
        self.faults = faults

    def append(self, entry: AuditEntry) -> None:
        super().append(entry)
        self.faults.tick()


class CrashingClient:
    """An MlflowClient whose alias and tag writes can be followed by a crash."""

    WRITES = frozenset(
        {"set_registered_model_alias", "delete_registered_model_alias", "set_model_version_tag"}
    )

    def __init__(self, client: Any, faults: Faults) -> None:
        self._client = client
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in self.WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            self._faults.tick()
            return result

        return write


class CrashingStore(RolloutStore):
    faults: Faults = Faults()

    def insert(self, state: RolloutState) -> None:
        super().insert(state)
        self.faults.tick()

    def update(self, state: RolloutState, *, expect: RolloutState) -> bool:
        done = super().update(state, expect=expect)
        self.faults.tick()
        return done

    def add_decision(self, *args: Any, **kwargs: Any) -> int:
        found = super().add_decision(*args, **kwargs)
        self.faults.tick()
        return found


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Script:
    """The injected ``decide``: returns the queued decisions in turn, then holds."""

    queue: deque[Decision] = field(default_factory=deque)
    seen: list[RolloutStats] = field(default_factory=list)

    def __call__(self, stats: RolloutStats, policy: RolloutConfig, state: RolloutState) -> Decision:
        self.seen.append(stats)
        return self.queue.popleft() if self.queue else Hold(summary="waiting for data")


@dataclass
class FakeGate:
    """The injected holdout gate: passes the versions in ``passing`` (or all, when None)."""

    passing: set[str] | None = None
    calls: list[tuple[str, bool]] = field(default_factory=list)
    approved: list[str] = field(default_factory=list)
    current: Callable[[], str | None] = lambda: None

    def __call__(self, version: str, force: bool) -> PromotionCheck:
        self.calls.append((version, force))
        passed = self.passing is None or version in self.passing
        if not passed and not force:
            raise GateFailed(f"version {version} does not beat the champion (fake gate)")
        reason = "beats the champion (fake gate)" if passed else "forced past the fake gate"
        self.approved.append(version)
        return PromotionCheck(
            version, self.current(), GateDecision(True, "", 0.0, reason, forced=not passed), None
        )


def collect(state: RolloutState, now: float) -> RolloutStats:
    """Evidence with numbers in it (the injected decide does not read them)."""
    return RolloutStats(
        rollout_id=state.rollout_id, stage=state.stage, since=state.stage_started_at, now=now,
        champion=ArmStats("champion", state.champion, predictions=2100, requests=2100),
        challenger=ArmStats("challenger", state.challenger, predictions=2050, requests=2050,
                            errors=3),
        agreement=0.97, agreement_rows=2050,
    )  # fmt: skip


@dataclass
class World:
    """One model in the module's MLflow store, with its own audit log and state database."""

    project: ProjectConfig
    client: Any
    faults: Faults
    clock: Clock = field(default_factory=Clock)
    script: Script = field(default_factory=Script)
    gate: FakeGate = field(default_factory=FakeGate)
    experiment: str = ""

    @property
    def name(self) -> str:
        return self.project.name

    def registry(self) -> ModelRegistry:
        audit = CrashingAudit(self.project.resolve(self.project.registry.audit_log), self.faults)
        return ModelRegistry(CrashingClient(self.client, self.faults), self.name, audit)

    def store(self) -> CrashingStore:
        store = CrashingStore.open(self.project.rollout.state, self.project.root)
        assert isinstance(store, CrashingStore)
        store.faults = self.faults
        return store

    def controller(self, **overrides: Any) -> Controller:
        """A controller as a (re)started process builds one: it reconciles first."""
        registry = self.registry()
        self.gate.current = lambda: registry.alias(CHAMPION)
        options: dict[str, Any] = {
            "collect": collect, "decide": self.script, "gate": self.gate, "clock": self.clock,
            "actor": "tester", "lease_wait": 0.0,
        }  # fmt: skip
        return Controller(self.project, registry, self.store(), **{**options, **overrides})

    def new_version(self) -> str:
        run = self.client.create_run(self.experiment)
        found = self.client.create_model_version(
            self.name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
            tags={"loopml.candidate": "dummy"},
        )  # fmt: skip
        return str(found.version)


def make_project(shared: Path, own: Path, name: str, **rollout: Any) -> ProjectConfig:
    """A project on the shared MLflow store, its audit log and state database in ``own``."""
    return ProjectConfig(
        name=name,
        data=DataConfig(source=SourceConfig(path="table.csv"), target="y", task="binary"),
        registry=RegistryConfig(audit_log=str(own / "audit.jsonl")),
        rollout=RolloutConfig(state=f"sqlite:///{own / 'loop.db'}", **rollout),
        root=shared,
    )


def make_world(shared: Path, own: Path, *, versions: int = 3, **rollout: Any) -> World:
    """A model with ``versions`` bare versions; version 1 champion, the last challenger
    (as training leaves them)."""
    project = make_project(shared, own, f"toy{next(_NAMES)}", **rollout)
    client = tracking.connect(tracking.resolve_store(project))
    client.create_registered_model(project.name)
    experiment = tracking.ensure_experiment(client, tracking.resolve_store(project))
    world = World(project, client, Faults(), experiment=experiment)
    made = [world.new_version() for _ in range(versions)]
    registry = world.registry()
    registry.move_alias(CHAMPION, made[0], action="register", reason="first version")
    if versions > 1:
        registry.move_alias("challenger", made[-1], action="register", reason="trained")
    return world
