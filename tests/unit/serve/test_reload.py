"""The reloader against a fake registry and a fake rollout state: swaps, failures kept out,
no retry storms, loaded versions reused (a way back loads nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from loopml.rollout.plan import RolloutState, Stage
from loopml.serve.deployments import DeploymentSet
from loopml.serve.reload import Reloader

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class FakeDeployment:
    version: str


@dataclass
class FakeService:
    deployments: DeploymentSet
    swaps: list[str] = field(default_factory=list)

    @property
    def deployment(self) -> Any:
        return self.deployments.champion

    def swap_set(self, new: DeploymentSet) -> DeploymentSet:
        old, self.deployments = self.deployments, new
        self.swaps.append(new.champion.version)
        return old


@dataclass
class Registry:
    alias: str | None = "1"
    broken: set[str] = field(default_factory=set)
    loads: list[str] = field(default_factory=list)
    down: bool = False

    def read(self) -> str | None:
        if self.down:
            raise ConnectionError("registry unreachable")
        return self.alias

    def load(self, version: str) -> FakeDeployment:
        self.loads.append(version)
        if version in self.broken:
            raise ValueError(f"version {version} is corrupt")
        return FakeDeployment(version)


@dataclass
class State:
    """The rollout state database, as the reloader reads it."""

    rollout: RolloutState | None = None
    down: bool = False

    def read(self) -> RolloutState | None:
        if self.down:
            raise ConnectionError("state database unreachable")
        return self.rollout


def make(
    registry: Registry, state: State | None = None, polls: list[int] | None = None
) -> tuple[Reloader, FakeService, list[str]]:
    service = FakeService(DeploymentSet(FakeDeployment("1")))  # type: ignore[arg-type]
    seen: list[str] = []
    reloader = Reloader(
        service,  # type: ignore[arg-type]
        registry.load,  # type: ignore[arg-type]
        registry.read,
        poll_seconds=60,
        on_outcome=lambda kind, _: seen.append(kind),
        read_state=None if state is None else state.read,
        on_poll=None if polls is None else (lambda: polls.append(1)),
    )
    return reloader, service, seen


def rollout(stage: int = 0, status: str = "running", champion: str = "1") -> RolloutState:
    stages = (Stage("shadow", 0.0), Stage("traffic", 0.25), Stage("traffic", 1.0))
    return RolloutState("r1", "toy", champion, "2", "canary", stages, stage=stage,
                        status=status)  # type: ignore[arg-type]  # fmt: skip


def test_unchanged_alias_loads_nothing() -> None:
    registry = Registry()
    reloader, service, _ = make(registry)
    assert reloader.check().outcome == "unchanged"
    assert registry.loads == [] and service.swaps == []


def test_moved_alias_is_loaded_and_swapped() -> None:
    registry = Registry(alias="2")
    reloader, service, seen = make(registry)
    outcome = reloader.check()
    assert (outcome.outcome, outcome.serving) == ("swapped", "2")
    assert service.deployment.version == "2" and seen == ["swapped"]


def test_a_broken_version_keeps_the_old_one_and_is_not_retried_until_forced() -> None:
    registry = Registry(alias="3", broken={"3"})
    reloader, service, seen = make(registry)
    failed = reloader.check()
    assert failed.outcome == "failed" and "corrupt" in (failed.error or "")
    assert service.deployment.version == "1"
    assert reloader.check().outcome == "unchanged"  # no retry storm
    assert registry.loads == ["3"]
    assert reloader.check(force=True).outcome == "failed"
    assert registry.loads == ["3", "3"]
    registry.broken.clear()
    assert reloader.check(force=True).outcome == "swapped"
    assert seen == ["failed", "failed", "swapped"]


def test_registry_down_keeps_serving() -> None:
    registry = Registry(alias="2", down=True)
    reloader, service, _ = make(registry)
    outcome = reloader.check()
    assert outcome.outcome == "failed" and "unreachable" in (outcome.error or "")
    assert service.deployment.version == "1"


def test_reload_now_runs_on_the_thread() -> None:
    registry = Registry(alias="2")
    reloader, service, _ = make(registry)
    reloader.start()
    try:
        outcome = reloader.reload_now().result(timeout=10)
    finally:
        reloader.stop()
    assert outcome.outcome == "swapped" and service.deployment.version == "2"


def test_a_rollout_loads_the_challenger_and_routes_by_its_stages() -> None:
    registry, state = Registry(), State(rollout())
    reloader, service, _ = make(registry, state)
    outcome = reloader.check()
    assert outcome.outcome == "swapped" and outcome.challenger == "2"
    assert outcome.plan is not None and outcome.plan["shadow"] is True
    current = service.deployments
    assert current.versions == ("1", "2") and current.shadowing is current.challenger
    assert registry.loads == ["2"]
    state.rollout = rollout(stage=1)
    assert reloader.check().outcome == "rerouted"
    assert service.deployments.traffic.share == 0.25 and registry.loads == ["2"]
    assert reloader.check().outcome == "unchanged"


def test_the_way_back_loads_nothing_and_the_old_champion_stands_by() -> None:
    registry, state = Registry(), State(rollout(stage=2))
    reloader, service, _ = make(registry, state)
    assert reloader.check().loaded == ("2",)
    state.rollout = rollout(stage=2, status="aborted")
    back = reloader.check()
    assert (back.outcome, back.loaded, back.to_dict()["loaded"]) == ("swapped", (), [])
    assert service.deployments.versions == ("1", None) and registry.loads == ["2"]
    # promoted: the alias moves to 2; 1 stays loaded, so a rollback is instant
    state.rollout = rollout(stage=2)
    reloader.check()
    registry.alias, state.rollout = "2", rollout(stage=2, status="promoted")
    assert reloader.check().outcome == "swapped" and set(reloader.loaded) == {"1", "2"}
    registry.alias = "1"
    rolled_back = reloader.check()
    assert (rolled_back.outcome, rolled_back.loaded) == ("swapped", ())
    assert service.deployments.versions == ("1", None) and registry.loads == ["2", "2"]


def test_a_broken_challenger_keeps_the_old_set_until_forced() -> None:
    registry, state = Registry(broken={"2"}), State(rollout(stage=1))
    reloader, service, seen = make(registry, state)
    assert reloader.check().outcome == "failed"
    assert service.deployments.versions == ("1", None)
    assert reloader.check().outcome == "unchanged" and registry.loads == ["2"]
    registry.broken.clear()
    assert reloader.check(force=True).outcome == "swapped"
    assert service.deployments.versions == ("1", "2") and seen == ["failed", "swapped"]


def test_an_unreadable_state_keeps_the_plan_and_a_rollout_of_another_champion_is_ignored() -> None:
    registry, state = Registry(), State(rollout(stage=1))
    reloader, service, _ = make(registry, state)
    reloader.check()
    state.down = True
    assert reloader.check().outcome == "unchanged"
    assert service.deployments.traffic.share == 0.25
    state.down, state.rollout = False, rollout(stage=1, champion="7")
    assert reloader.check().outcome == "swapped"
    assert service.deployments.versions == ("1", None)


def test_the_counters_are_written_every_poll_and_at_stop() -> None:
    polls: list[int] = []
    registry = Registry(alias="2")
    reloader, _, _ = make(registry, State(), polls)
    reloader.start()
    try:
        reloader.reload_now().result(timeout=10)
    finally:
        reloader.stop()
    assert len(polls) == 2  # the forced poll, and the last flush at stop
