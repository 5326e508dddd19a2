"""The controller against a real MLflow registry (SQLite) and a real rollout state
database; the evidence, the decision and the holdout gate are injected (see world.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.errors import GateFailed, RegistryError, RolloutError
from loopml.registry.audit import champion_stack, dangling_intents
from loopml.registry.store import CHALLENGER, CHAMPION, REJECTED_TAG
from loopml.rollout.decision import Advance, Hold, Promote, Reason, Rollback
from loopml.rollout.plan import plan_of
from tests.mlflow_uris import mlflow_uris_restored
from tests.unit.rollout.world import Crash, World, make_world

pytestmark = pytest.mark.unit

BREACH = Reason("error_rate", "breach", 0.051, 0.01, 2050, "error rate 5.1% > 1% over 2,050")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with mlflow_uris_restored():
        yield tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def world(shared: Path, tmp_path: Path) -> World:
    return make_world(shared, tmp_path)


def aliases(world: World) -> tuple[str | None, str | None]:
    registry = world.registry()
    return registry.alias(CHAMPION), registry.alias(CHALLENGER)


def rollout_entries(world: World) -> list[tuple[str | None, str]]:
    return [(e.event, e.phase) for e in world.registry().audit.records() if e.is_rollout]


def test_start_rolls_out_the_challenger_against_the_champion(world: World) -> None:
    result = world.controller().start(reason="weekly retrain")

    state = result.state
    assert state is not None and state.status == "running" and state.stage == 0
    assert (state.champion, state.challenger, state.strategy) == ("1", "3", "canary")
    assert [s.label for s in state.stages] == ["shadow", "5%", "25%", "50%", "100%"]
    assert state.started_at == world.clock.now == state.stage_started_at
    assert plan_of(state, "1").shadow and aliases(world) == ("1", "3")
    assert rollout_entries(world) == [("start", "intent"), ("start", "done")]
    done = world.registry().audit.entries()[-1]
    assert (done.actor, done.reason, done.rollout_id) == (
        "tester",
        "weekly retrain",
        state.rollout_id,
    )
    assert done.evidence is not None and done.evidence["to"] == {"status": "running", "stage": 0}
    records = world.store().decisions(state.rollout_id)
    assert [(r.kind, r.actor) for r in records] == [("start", "tester")]
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["state"]["stage_label"] == (
        "shadow"
    )


def test_start_moves_the_challenger_alias_to_the_version_asked_for(world: World) -> None:
    state = world.controller().start(version="2", strategy="ab").state

    assert state is not None and state.challenger == "2"
    assert [s.label for s in state.stages] == ["shadow", "50%"]
    assert aliases(world) == ("1", "2")
    moves = world.registry().audit.entries()
    move = [e for e in moves if e.alias == CHALLENGER and not e.is_rollout][-1]
    assert (move.from_version, move.to_version, move.rollout_id) == ("3", "2", state.rollout_id)


def test_start_refuses_what_cannot_be_rolled_out(world: World) -> None:
    controller = world.controller()
    with pytest.raises(RolloutError, match="is the champion already"):
        controller.start(version="1")
    with pytest.raises(RegistryError, match="has no version 9"):
        controller.start(version="9")
    with pytest.raises(RolloutError, match="unknown rollout strategy 'fast'") as bad:
        controller.start(strategy="fast")
    assert "canary" in bad.value.fix
    controller.start()
    with pytest.raises(RolloutError, match="already running") as running:
        controller.start(version="2")
    assert "rollout abort" in running.value.fix
    assert aliases(world) == ("1", "3")


def test_start_without_a_challenger_says_how_to_get_one(world: World) -> None:
    world.registry().drop_alias(CHALLENGER, reason="test")
    with pytest.raises(RolloutError, match="no challenger") as caught:
        world.controller().start()
    assert caught.value.fix == "train a new version or pass --version"


def test_step_without_a_rollout_is_not_an_error(world: World) -> None:
    result = world.controller().step()
    assert result.state is None and not result.changed and "no rollout" in result.message


def test_advance_moves_one_stage_and_restarts_its_clock(world: World) -> None:
    controller = world.controller()
    controller.start()
    world.clock.now += 400
    world.script.queue.append(Advance(summary="every guard passed"))
    result = controller.step()

    assert result.state is not None and result.state.stage == 1 and result.changed
    assert result.state.stage_started_at == world.clock.now
    assert plan_of(result.state, "1").share == 0.05
    assert world.script.seen[-1].now == world.clock.now
    records = world.store().decisions(result.state.rollout_id)
    assert records[0].kind == "advance" and records[0].detail["stats"]["agreement"] == 0.97
    assert rollout_entries(world)[-2:] == [("advance", "intent"), ("advance", "done")]


def test_a_hold_is_recorded_once_until_its_summary_changes(world: World) -> None:
    controller = world.controller()
    rollout = controller.start().state
    assert rollout is not None
    for summary in ("1,200 of 2,000 rows", "1,200 of 2,000 rows", "1,900 of 2,000 rows"):
        world.script.queue.append(Hold(summary=summary))
        result = controller.step()
        assert not result.changed and result.state == rollout
    kinds = [(r.kind, r.summary) for r in world.store().decisions(rollout.rollout_id)]
    assert kinds == [
        ("hold", "1,900 of 2,000 rows"), ("hold", "1,200 of 2,000 rows"),
        ("start", "roll out version 3"),
    ]  # fmt: skip
    assert rollout_entries(world) == [("start", "intent"), ("start", "done")]


def test_promote_makes_the_challenger_champion_and_rollback_restores_the_old(
    world: World,
) -> None:
    controller = world.controller()
    controller.start()
    world.script.queue.append(Promote(summary="the last stage passed"))
    result = controller.step()

    assert result.state is not None and result.state.status == "promoted"
    assert (result.champion, result.previous) == ("3", "1")
    assert aliases(world) == ("3", None)
    assert champion_stack(world.registry().audit.entries()) == ["1", "3"]
    back = controller.rollback(reason="bad outputs")
    assert (back.champion, back.previous) == ("1", "3") and aliases(world) == ("1", None)


def test_advance_past_the_last_stage_is_a_promotion(world: World) -> None:
    controller = world.controller()
    controller.start(strategy="blue_green")
    world.script.queue.extend([Advance(summary="shadow ok"), Advance(summary="all traffic ok")])
    controller.step()
    result = controller.step()
    assert result.state is not None and result.state.status == "promoted"
    assert aliases(world) == ("3", None)


def test_rollback_rejects_the_challenger_with_the_guard_that_breached(world: World) -> None:
    controller = world.controller()
    controller.start()
    world.script.queue.append(Rollback(reasons=(BREACH,), summary="a guard breached"))
    result = controller.step()

    assert result.state is not None and result.state.status == "rolled_back"
    assert result.state.reason == f"a guard breached; {BREACH.message}"
    assert aliases(world) == ("1", None)
    assert world.registry().version("3").tags[REJECTED_TAG] == result.state.reason
    with pytest.raises(RolloutError, match="rejected by a rollout") as again:
        controller.start(version="3")
    assert BREACH.message in again.value.detail


def test_pause_stops_decisions_resume_goes_on_abort_rejects_nothing(world: World) -> None:
    controller = world.controller()
    controller.start()
    paused = controller.pause(reason="incident 7").state
    assert paused is not None and (paused.status, paused.paused_reason) == ("paused", "incident 7")
    world.script.queue.append(Rollback(summary="would roll back"))
    held = controller.step()
    assert not held.changed and "paused" in held.message and world.script.queue
    with pytest.raises(RolloutError, match="already paused"):
        controller.pause(reason="again")
    assert controller.resume(reason="fixed").state.status == "running"  # type: ignore[union-attr]
    with pytest.raises(RolloutError, match="is not paused"):
        controller.resume(reason="again")
    ended = controller.abort(reason="not today").state
    assert ended is not None and ended.status == "aborted"
    assert aliases(world) == ("1", None)
    assert REJECTED_TAG not in world.registry().version("3").tags
    with pytest.raises(RolloutError, match="nothing to abort"):
        controller.abort(reason="again")


def test_promote_ends_a_rollout_of_that_version_through_the_gate(world: World) -> None:
    controller = world.controller()
    controller.start()
    with pytest.raises(RolloutError, match="cannot be promoted past it"):
        controller.promote(version="2", reason="skip ahead")
    world.gate.passing = set()
    with pytest.raises(GateFailed):
        controller.promote(reason="try")
    assert aliases(world) == ("1", "3")
    assert not dangling_intents(world.registry().audit.records())
    result = controller.promote(reason="ship it", force=True)

    assert world.gate.calls == [("3", False), ("3", True)]
    assert result.state is not None and result.state.status == "promoted"
    assert result.gate is not None and result.gate.decision.forced
    assert aliases(world) == ("3", None)
    champion = [e for e in world.registry().audit.entries() if e.alias == CHAMPION][-1]
    assert champion.forced and champion.reason.startswith("ship it (forced")


def test_promote_and_rollback_without_a_rollout_work_as_before(world: World) -> None:
    controller = world.controller()
    result = controller.promote(version="2", reason="better")
    assert (result.champion, result.previous) == ("2", "1") and aliases(world) == ("2", "3")
    assert controller.rollback(reason="worse").champion == "1"
    with pytest.raises(RegistryError, match="no previous champion"):
        controller.rollback(reason="again")


def test_act_dispatches_by_name_and_checks_what_it_is_given(world: World) -> None:
    controller = world.controller()
    with pytest.raises(RolloutError, match="unknown rollout action 'launch'") as unknown:
        controller.act("launch")
    assert "start, step, pause" in unknown.value.detail
    with pytest.raises(RolloutError, match="needs a reason"):
        controller.act("abort", reason="  ")
    with pytest.raises(RolloutError, match="takes no version"):
        controller.act("pause", version="3", reason="x")
    started = controller.act("start", version=None, strategy="shadow", reason="", force=False)
    assert started.state is not None and started.state.strategy == "shadow"
    world.script.queue.append(Rollback(reasons=(BREACH,), summary="breach"))
    payload = controller.act("step", version=None, reason=None).to_dict()
    assert json.loads(json.dumps(payload, allow_nan=False))["decision"]["kind"] == "rollback"
    assert payload["state"]["status"] == "rolled_back"


def test_preview_shows_the_decision_a_step_would_make_without_applying_it(world: World) -> None:
    controller = world.controller()
    state = controller.start().state
    world.clock.now += 90
    world.script.queue.append(Advance(summary="would advance"))
    preview = controller.preview()
    assert preview.decision is not None and preview.decision.kind == "advance"
    assert preview.in_stage == 90 and preview.state == state
    assert world.store().active(world.name) == state
    assert json.dumps(preview.to_dict(), allow_nan=False)


@pytest.mark.parametrize("writes", range(1, 9))  # a rollback step writes 8 times
def test_a_crash_after_any_write_of_a_rollback_is_finished_on_restart(
    world: World, writes: int
) -> None:
    world.controller().start()
    world.script.queue.append(Rollback(reasons=(BREACH,), summary="breach"))
    world.faults.arm(writes)
    with pytest.raises(Crash):
        world.controller().step()
    restarted = world.controller()  # reconciles

    state = restarted.store.latest(world.name)
    assert state is not None and state.status == "rolled_back"
    assert aliases(world) == ("1", None)
    assert REJECTED_TAG in world.registry().version("3").tags
    assert not dangling_intents(world.registry().audit.records())


@pytest.mark.parametrize("writes", range(1, 11))  # a promotion step writes 10 times
def test_a_crash_during_a_promotion_leaves_one_consistent_outcome(
    world: World, writes: int
) -> None:
    world.controller().start()
    world.script.queue.append(Promote(summary="passed"))
    world.faults.arm(writes)
    with pytest.raises(Crash):
        world.controller().step()
    state = world.controller().store.latest(world.name)

    assert state is not None
    expected = {"promoted": ("3", None), "running": ("1", "3")}[state.status]
    assert aliases(world) == expected
    assert not dangling_intents(world.registry().audit.records())
    assert champion_stack(world.registry().audit.entries())[-1] == expected[0]
