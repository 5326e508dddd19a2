"""The rollout job: a step on demand, a scheduled step that skips while another
controller holds the lease, and ``loopml serve`` composing it only when it has an
interval."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.rollout.decision import Advance
from loopml.rollout.job import RolloutJob
from tests.mlflow_uris import mlflow_uris_restored
from tests.unit.rollout.world import World, make_world

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with mlflow_uris_restored():
        yield tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def world(shared: Path, tmp_path: Path) -> World:
    return make_world(shared, tmp_path)


def test_run_now_steps_the_rollout_and_a_busy_lease_skips_a_scheduled_turn(
    world: World,
) -> None:
    controller = world.controller()
    controller.start()
    opened: list[object] = []
    job = RolloutJob(lambda: opened.append(1) or controller, interval=0)
    world.script.queue.append(Advance(summary="ok"))

    result = job.run_now()
    assert result.changed and result.state is not None and result.state.stage == 1
    assert result.summary()["decision"] == "advance" and job.status().runs == 1
    with controller.store.lease(f"rollout:{world.name}", ttl=60):
        assert job._scheduled() is None  # another holds it: this turn is skipped
    assert len(opened) == 1  # opened once, kept


def test_serve_composes_the_job_only_with_an_interval(world: World) -> None:
    from loopml.pipeline.serving import compose_jobs

    class Parts:
        def __init__(self) -> None:
            self.jobs: dict[str, object] = {}

        def add_job(self, job: RolloutJob, **_: object) -> None:
            self.jobs[job.name] = job

    for interval, expected in ((0.0, set()), (30.0, {"rollout"})):
        rollout = world.project.rollout.model_copy(update={"interval_seconds": interval})
        serve = world.project.serve.model_copy(
            update={"ledger": world.project.serve.ledger.model_copy(update={"enabled": False})}
        )
        project = world.project.model_copy(update={"rollout": rollout, "serve": serve})
        parts = Parts()
        compose_jobs(project, parts)  # type: ignore[arg-type]
        assert set(parts.jobs) == expected
