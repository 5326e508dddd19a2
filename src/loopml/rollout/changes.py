"""How a rollout changes, write by write: the one order that makes a crash recoverable.

Every change is an ``intent`` entry in the audit log (who, why, the evidence, the row's
position before and after), then the alias moves it needs (through the registry, each
with its own intent and done entries), then the rollout's row (insert, or compare and set
against the row it read), a ``rollout_decisions`` row, and the ``done`` entry. A process
killed between any two of these leaves a dangling intent that
:func:`loopml.rollout.reconcile.recover` reads back. Used only by the controller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loopml.errors import RolloutError
from loopml.registry.audit import AuditEntry, dangling_intents
from loopml.registry.store import (
    CHALLENGER,
    CHAMPION,
    REJECTED_TAG,
    ModelRegistry,
    _fault_point,
)
from loopml.rollout.decision import Decision
from loopml.rollout.evidence import RolloutStats
from loopml.rollout.plan import RolloutState
from loopml.rollout.reconcile import Aliases, Ending, Recovery, recover, where
from loopml.rollout.state import RolloutStore

__all__ = ["EVENT_OF_ENDING", "Changes"]

EVENT_OF_ENDING: dict[Ending, str] = {
    "promoted": "promote",
    "rolled_back": "rollback",
    "aborted": "abort",
}
Moves = Callable[[], None]


@dataclass(frozen=True)
class Changes:
    """Writes one model's rollout changes as ``actor``."""

    registry: ModelRegistry
    store: RolloutStore
    actor: str

    def change(
        self,
        event: str,
        before: RolloutState | None,
        after: RolloutState,
        reason: str,
        *,
        decision: Decision | None = None,
        stats: RolloutStats | None = None,
        moves: Moves | None = None,
    ) -> RolloutState:
        """intent → ``moves`` → the row (inserted when ``before`` is None) → decision row
        → done. Refused (intent closed as aborted) when another controller changed the
        row first and nothing had moved yet."""
        evidence = {
            "from": where(before), "to": where(after),
            "decision": decision.to_dict() if decision else None,
            "stats": stats.to_dict() if stats else None,
        }  # fmt: skip
        intent = AuditEntry(
            model=after.model, alias=CHALLENGER, action="rollout", from_version=after.champion,
            to_version=after.challenger, reason=reason, actor=self.actor, phase="intent",
            rollout_id=after.rollout_id, event=event, evidence=evidence,
        )  # fmt: skip
        self.registry.audit.append(intent)
        _fault_point("rollout-after-intent")
        if moves is not None:
            moves()
            _fault_point("rollout-after-aliases")
        if before is None:
            self.store.insert(after)
        elif not self.store.update(after, expect=before):
            if moves is None:  # nothing happened: say so; otherwise reconciling decides
                self.close(intent, "aborted")
            raise RolloutError(
                f"rollout {after.rollout_id} was changed by another controller meanwhile",
                fix="see 'loopml rollout status' and run the action again if still needed",
            )
        _fault_point("rollout-after-state")
        self.record(after, event, decision.summary if decision else reason, evidence)
        self.close(intent, "done")
        return after

    def record(self, state: RolloutState, kind: str, summary: str, detail: dict[str, Any]) -> None:
        self.store.add_decision(
            state, kind, summary, detail, actor=self.actor, ts=state.updated_at or None
        )

    def close(self, intent: AuditEntry, phase: str) -> None:
        self.registry.audit.append(dataclasses.replace(intent, phase=phase))  # type: ignore[arg-type]

    def ending_moves(self, state: RolloutState, ending: Ending, reason: str) -> Moves:
        """The alias moves that end ``state`` as ``ending`` (idempotent: a retry after a
        crash does only what is left)."""

        def moves() -> None:
            rollout = state.rollout_id
            if ending == "promoted" and self.registry.alias(CHAMPION) != state.challenger:
                self.registry.move_alias(
                    CHAMPION, state.challenger, action="promote", reason=reason,
                    actor=self.actor, rollout_id=rollout,
                )  # fmt: skip
            if self.registry.alias(CHALLENGER) == state.challenger:
                self.registry.drop_alias(
                    CHALLENGER, reason=f"rollout {rollout} {ending.replace('_', ' ')}: {reason}",
                    actor=self.actor, rollout_id=rollout,
                )  # fmt: skip
            if ending == "rolled_back":
                self.registry.tag_version(state.challenger, REJECTED_TAG, reason)

        return moves

    def end(
        self,
        state: RolloutState,
        ending: Ending,
        reason: str,
        now: float,
        *,
        decision: Decision | None = None,
        stats: RolloutStats | None = None,
        moves: Moves | None = None,
    ) -> RolloutState:
        """End an active rollout as ``ending`` (its aliases, then its row)."""
        after = state.at(status=ending, reason=reason, updated_at=now)
        return self.change(
            EVENT_OF_ENDING[ending], state, after, reason, decision=decision, stats=stats,
            moves=moves or self.ending_moves(state, ending, reason),
        )  # fmt: skip

    # -- reconciliation (see loopml.rollout.reconcile) -----------------------------------

    def reconcile(self, model: str, clock: Callable[[], float]) -> list[Recovery]:
        """Apply :func:`~loopml.rollout.reconcile.recover` until nothing is left to do."""
        done: list[Recovery] = []
        for _ in range(4):  # an intent closed can leave an active rollout to check
            found = self._next_recovery(model)
            if not found.needed:
                break
            self._apply_recovery(model, found, clock())
            done.append(found)
        return done

    def _next_recovery(self, model: str) -> Recovery:
        records = [r for r in self.registry.audit.records(model) if r.is_rollout]
        dangling = dangling_intents(records)
        aliases = Aliases(self.registry.alias(CHAMPION), self.registry.alias(CHALLENGER))
        if dangling:
            rollout = dangling[-1].rollout_id or ""
            mine = [d for d in dangling if d.rollout_id == rollout]
            return recover(self.store.get(rollout), aliases, mine)
        return recover(self.store.active(model), aliases, [])

    def _apply_recovery(self, model: str, found: Recovery, now: float) -> None:
        for stale in found.stale:
            self.close(stale, "aborted")
        intent = found.intent
        state = self.store.get(intent.rollout_id or "") if intent else self.store.active(model)
        if found.finish is not None and state is not None and state.active:
            if intent is None:  # a change of its own, audited like any
                self.end(state, found.finish, found.message, now)
            else:  # finish the interrupted change under its own intent
                self.ending_moves(state, found.finish, intent.reason)()
                after = state.at(status=found.finish, reason=intent.reason, updated_at=now)
                self.store.update(after, expect=state)
                self.record(after, "reconcile", found.message, {"intent": intent.move_id})
        if intent is not None and found.close is not None:
            self.close(intent, found.close)
