"""The reloader against a fake registry: swaps, failures kept out, no retry storms."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from loopml.serve.reload import Reloader

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class FakeDeployment:
    version: str


@dataclass
class FakeService:
    deployment: Any
    swaps: list[str] = field(default_factory=list)

    def swap(self, new: Any) -> Any:
        old, self.deployment = self.deployment, new
        self.swaps.append(new.version)
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


def make(registry: Registry) -> tuple[Reloader, FakeService, list[str]]:
    service = FakeService(FakeDeployment("1"))
    seen: list[str] = []
    reloader = Reloader(
        service,  # type: ignore[arg-type]
        registry.load,  # type: ignore[arg-type]
        registry.read,
        poll_seconds=60,
        on_outcome=lambda kind, _: seen.append(kind),
    )
    return reloader, service, seen


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
