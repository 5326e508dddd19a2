"""The controller as a state machine: random decisions, operator actions, new trainings
and crashes after any write (then a restart, which reconciles), against a real MLflow
registry and a real rollout state database.

After every rule (and so after every restart) these hold:

- exactly one champion: the ``champion`` alias is set, and it is the top of the champion
  stack the audit log's done entries replay (the log explains it);
- the ``challenger`` alias is where the audit log's last done move of it left it;
- no intent is left dangling (alias moves and rollout changes alike);
- at most one active rollout, and an active one agrees with the aliases (its champion
  is the champion, its challenger the challenger);
- every version that became champion by ``promote`` passed a gate: the (injected)
  holdout gate passed it or was forced past it by an operator (``forced`` recorded in the
  entry), or the rollout it belongs to was decided ``Promote`` (or ``Advance`` at its last
  stage) by the injected decide. Every version exists by registration, so all passed the
  registration gate;
- a rolled-back rollout's challenger carries the rejected tag, an aborted one's does not
  unless another rollout rejected it.

And for the actions themselves, when they complete without a crash: a rollback outside a
rollout restores the champion below the current one on the stack; a rollback or abort
of a rollout leaves the champion unchanged.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from loopml.errors import LoopmlError
from loopml.registry.audit import champion_stack, dangling_intents, previous_champion
from loopml.registry.store import CHALLENGER, CHAMPION, REJECTED_TAG
from loopml.rollout.controller import Controller
from loopml.rollout.decision import Advance, Decision, Hold, Promote, Rollback
from tests.unit.rollout.world import Crash, World, make_world

pytestmark = [pytest.mark.unit, pytest.mark.slow]  # ~45 s: MLflow and fsync-bound

DECISIONS: dict[str, type[Decision]] = {
    "advance": Advance, "hold": Hold, "promote": Promote, "rollback": Rollback,
}  # fmt: skip
# The audit log and SQLite fsync every write: on a RAM disk, where there is one, the
# machine runs about 3x faster (it is removed at exit).
_RAM = Path("/dev/shm")
SHARED = Path(
    tempfile.mkdtemp(prefix="loopml-machine-", dir=_RAM if os.access(_RAM, os.W_OK) else None)
)
atexit.register(shutil.rmtree, SHARED, ignore_errors=True)


class ControllerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world: World = make_world(SHARED, Path(tempfile.mkdtemp(dir=SHARED)), versions=4)
        self.world.gate.passing = set()
        self.controller: Controller = self.world.controller()
        self.decided_promote: set[str] = set()  # rollout ids decide said Promote for
        self.trained = 0

    # -- how a rule runs ----------------------------------------------------------------

    def run(self, action: str, crash_after: int | None = None, **params: object) -> bool:
        """Run one action; True when it completed (no refusal, no crash)."""
        if crash_after is not None:
            self.world.faults.arm(crash_after)
        try:
            self.controller.act(action, **params)
        except LoopmlError as exc:
            event(f"{action}: refused ({type(exc).__name__})")
            return False
        except Crash:
            event(f"{action}: crashed, restarted")
            self.controller = self.world.controller()  # the restart reconciles
            return False
        finally:
            self.world.faults.left = None
        event(f"{action}: done")
        return True

    def aliases(self) -> tuple[str | None, str | None]:
        registry = self.controller.registry
        return registry.alias(CHAMPION), registry.alias(CHALLENGER)

    # -- rules --------------------------------------------------------------------------

    @initialize(running=st.booleans())
    def begin(self, running: bool) -> None:
        """Half the runs begin with a rollout going (pause, resume and steps then apply)."""
        if running:
            self.run("start", reason="machine")

    crash = st.none() | st.integers(1, 10)

    @rule(version=st.sampled_from([None, "2", "3", "4"]), strategy=st.sampled_from(
        [None, "canary", "ab", "blue_green", "shadow"]), crash=crash)  # fmt: skip
    def start(self, version: str | None, strategy: str | None, crash: int | None) -> None:
        self.run("start", crash, version=version, strategy=strategy, reason="machine")

    @rule(kind=st.sampled_from(sorted(DECISIONS)), crash=crash)
    def step(self, kind: str, crash: int | None) -> None:
        state = self.controller.store.active(self.world.name)
        decision = DECISIONS[kind](summary=f"decided {kind}")
        promotes = kind == "promote" or (kind == "advance" and state and state.last_stage)
        if state is not None and state.status == "running" and promotes:
            self.decided_promote.add(state.rollout_id)
        self.world.script.queue.clear()
        self.world.script.queue.append(decision)
        self.world.clock.now += 60
        champion = self.aliases()[0]
        if self.run("step", crash) and kind in ("rollback", "hold") and state is not None:
            assert self.aliases()[0] == champion

    @rule(action=st.sampled_from(["pause", "resume", "abort"]), crash=crash)
    def operate(self, action: str, crash: int | None) -> None:
        champion = self.aliases()[0]
        if self.run(action, crash, reason=f"operator {action}") and action == "abort":
            assert self.aliases()[0] == champion

    @rule(version=st.sampled_from([None, "2", "3", "4"]), passes=st.booleans(),
          force=st.booleans(), crash=crash)  # fmt: skip
    def promote(self, version: str | None, passes: bool, force: bool, crash: int | None) -> None:
        target = version or self.aliases()[1]
        if passes and target is not None:
            self.world.gate.passing = {target}
        else:
            self.world.gate.passing = set()
        self.run("promote", crash, version=version, reason="operator promote", force=force)

    @rule(crash=crash)
    def rollback(self, crash: int | None) -> None:
        active = self.controller.store.active(self.world.name)
        champion = self.aliases()[0]
        entries = self.controller.registry.audit.entries(self.world.name)
        below = previous_champion(entries, champion)
        if self.run("rollback", crash, reason="operator rollback"):
            assert self.aliases()[0] == (champion if active is not None else below)

    @precondition(lambda self: self.trained < 3)
    @rule()
    def train(self) -> None:
        """A new training registers a version and makes it the challenger."""
        self.trained += 1
        version = self.world.new_version()
        self.controller.registry.move_alias(CHALLENGER, version, action="register", reason="new")
        self.controller = self.world.controller()  # the next process reconciles

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def one_champion_the_log_explains(self) -> None:
        champion, challenger = self.aliases()
        audit = self.controller.registry.audit
        moves = [e for e in audit.entries(self.world.name) if not e.is_rollout]
        assert champion is not None
        assert champion_stack(moves)[-1] == champion
        last = [e.to_version for e in moves if e.alias == CHALLENGER]
        assert (last[-1] if last else None) == challenger
        assert not dangling_intents(audit.records(self.world.name))

    @invariant()
    def at_most_one_active_rollout_agreeing_with_the_aliases(self) -> None:
        rollouts = self.controller.store.history(self.world.name, limit=1000)
        active = [r for r in rollouts if r.active]
        assert len(active) <= 1
        if active:
            assert (active[0].champion, active[0].challenger) == self.aliases()

    @invariant()
    def every_promotion_passed_a_gate(self) -> None:
        passed = set(self.world.gate.approved)
        for entry in self.controller.registry.audit.entries(self.world.name):
            if entry.alias != CHAMPION or entry.action != "promote" or entry.is_rollout:
                continue
            by_decision = entry.rollout_id in self.decided_promote and "operator" not in (
                entry.reason
            )
            by_gate = entry.to_version in passed and "operator promote" in entry.reason
            assert by_decision or by_gate, entry
            if by_gate and not by_decision:
                assert "fake gate" in entry.reason  # the gate's verdict is in the entry

    @invariant()
    def ended_rollouts_did_what_their_status_says(self) -> None:
        registry = self.controller.registry
        moves = [e for e in registry.audit.entries(self.world.name) if not e.is_rollout]
        for state in self.controller.store.history(self.world.name, limit=1000):
            if state.status == "rolled_back":
                assert REJECTED_TAG in registry.version(state.challenger).tags
            if state.status == "promoted":
                assert any(
                    (m.alias, m.to_version, m.rollout_id)
                    == (CHAMPION, state.challenger, state.rollout_id)
                    for m in moves
                )

    def teardown(self) -> None:
        self.controller.store.close()


ControllerMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


test_controller_machine = ControllerMachine.TestCase
