"""``loopml rollout ...`` as a user runs it, on a real MLflow registry with bare versions;
``rollout status`` of an active rollout is rendered from a controller whose evidence and
decision are injected (the real ones need a served model)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.cli.main import run
from loopml.cli.rollout_cmds import show_preview
from loopml.errors import EXIT_UNUSABLE
from loopml.rollout.decision import Hold, Reason
from tests.mlflow_uris import mlflow_uris_restored
from tests.unit.rollout.world import World, make_world

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One MLflow store for the module (its creation is the slow part)."""
    with mlflow_uris_restored():
        yield tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def world(shared: Path, tmp_path: Path) -> World:
    return make_world(shared, tmp_path)


def loopml(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    project = world.project
    file = project.root / f"{project.name}.yaml"  # the project's folder: the shared store
    file.write_text(
        f"name: {project.name}\n"
        "data: {source: {path: table.csv}, target: y, task: binary}\n"
        f"registry: {{audit_log: {project.registry.audit_log}}}\n"
        f"rollout: {{state: '{project.rollout.state}'}}\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(sys, "argv", ["loopml", "-p", str(file), *args])
    with pytest.raises(SystemExit) as done:
        run()
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


def test_start_pause_abort_and_the_status_of_an_ended_rollout(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = loopml(world, monkeypatch, capsys, "rollout", "start", "--reason", "retrain")
    assert code == 0 and "start: rollout" in out and "version 3 against champion 1" in out
    assert "stage 1 of 5" in out
    code, out, _ = loopml(world, monkeypatch, capsys, "rollout", "pause", "-r", "incident")
    assert code == 0 and "paused" in out
    code, out, _ = loopml(
        world, monkeypatch, capsys, "rollout", "abort", "-r", "not today", "--json"
    )
    payload = json.loads(out)
    assert code == 0 and payload["state"]["status"] == "aborted"
    code, out, _ = loopml(world, monkeypatch, capsys, "rollout", "status")
    assert code == 0 and "aborted" in out and "ended: not today" in out
    assert "abort" in out and "pause" in out  # the last decisions
    code, out, _ = loopml(world, monkeypatch, capsys, "audit")
    assert "rollout start" in out and "rollout abort" in out and "(now aborted, stage 1)" in out


def test_refusals_are_one_headline_and_a_fix(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = loopml(world, monkeypatch, capsys, "rollout", "start", "--version", "1")
    assert code == EXIT_UNUSABLE
    assert err.splitlines()[0] == "error: version 1 is the champion already"
    assert err.splitlines()[-1].startswith("fix: roll out another version")
    code, _, err = loopml(world, monkeypatch, capsys, "rollout", "abort", "-r", "x")
    assert code == EXIT_UNUSABLE and "nothing to abort" in err and "Traceback" not in err
    code, _, err = loopml(world, monkeypatch, capsys, "rollout", "pause")
    assert code == EXIT_UNUSABLE and "--reason" in err  # required


def test_step_and_status_without_a_rollout(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = loopml(world, monkeypatch, capsys, "rollout", "step")
    assert code == 0 and "no rollout is running" in out
    code, out, _ = loopml(world, monkeypatch, capsys, "rollout", "status", "--json")
    assert code == 0 and json.loads(out)["state"] is None


def test_promote_and_rollback_go_through_the_controller(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    loopml(world, monkeypatch, capsys, "rollout", "start")
    code, _, err = loopml(world, monkeypatch, capsys, "promote", "2", "-r", "skip", "--force")
    assert code == EXIT_UNUSABLE and "a rollout of version 3 is running" in err
    code, out, _ = loopml(world, monkeypatch, capsys, "rollback", "-r", "bad")
    assert code == 0 and "version 3 rejected; champion stays 1" in out


def test_status_reads_stage_bake_guards_and_the_decision_it_would_make(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    controller = world.controller()
    controller.start()
    world.clock.now += 75
    reasons = (
        Reason("error_rate", "pass", 0.0015, 0.01, 2050, "error rate 0.15% <= 1%"),
        Reason("agreement", "wait", None, 0.9, 120, "120 of 2,000 rows"),
    )
    world.script.queue.append(Hold(reasons=reasons, summary="waiting for 2,000 rows"))
    show_preview(controller.preview(), world.project.rollout, world.name)
    out = capsys.readouterr().out

    assert "stage 1 of 5" in out and "[shadow]" in out
    assert "in stage for 1m 15s of a 5m 00s bake" in out
    assert "error_rate" in out and "0.0015" in out and "2,050" in out
    assert "a step now would HOLD: waiting for 2,000 rows" in out
    assert (
        world.store().decisions(controller.store.active(world.name).rollout_id)[0].kind == "start"
    )  # type: ignore[union-attr]
