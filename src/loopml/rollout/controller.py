"""The controller: applies decisions and operator actions; the only code that moves an
alias during a rollout (``loopml promote`` and ``loopml rollback`` go through it too).

Every action runs under the model's lease in the loop-state database (one controller at a
time, across processes and hosts), first reconciles what a crashed one left (see
:mod:`loopml.rollout.reconcile`), then writes its change in the one recoverable order of
:mod:`loopml.rollout.changes`: audit intent → aliases + rollout row → audit done.

>>> sorted(ACTIONS)
['abort', 'pause', 'promote', 'resume', 'rollback', 'start', 'step']
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, get_args

from loopml.config import ProjectConfig, RolloutConfig, Strategy
from loopml.errors import LoopmlError, RolloutError
from loopml.monitor.lease import LeaseBusy
from loopml.registry.audit import current_actor
from loopml.registry.promotion import PromotionCheck, apply_promotion, check_promotion
from loopml.registry.promotion import rollback as rollback_champion
from loopml.registry.store import CHALLENGER, CHAMPION, REJECTED_TAG, ModelRegistry, open_registry
from loopml.rollout.changes import Changes
from loopml.rollout.decide import decide as default_decide
from loopml.rollout.decision import Advance, Decision, Hold, Promote, Rollback
from loopml.rollout.evidence import RolloutStats
from loopml.rollout.plan import RolloutState, stages_of
from loopml.rollout.reconcile import Recovery
from loopml.rollout.results import ActionResult, RolloutBusy, RolloutPreview
from loopml.rollout.state import RolloutStore
from loopml.rollout.stats import collect_stats

__all__ = [
    "ACTIONS", "ActionResult", "Controller", "RolloutBusy", "RolloutPreview", "open_controller",
]  # fmt: skip

log = logging.getLogger("loopml.rollout")

Action = Literal["start", "step", "pause", "resume", "abort", "promote", "rollback"]
ACTIONS: tuple[str, ...] = ("start", "step", "pause", "resume", "abort", "promote", "rollback")
Collect = Callable[[RolloutState, float], RolloutStats]
Decide = Callable[[RolloutStats, RolloutConfig, RolloutState], Decision]
Gate = Callable[[str, bool], PromotionCheck]
"""The promotion gate: ``(version, force) -> PromotionCheck``, raising when it fails."""
LEASE_TTL = 60.0
LEASE_WAIT = LEASE_TTL + 5.0
"""An action waits this long for the lease: a holder that died lets go within its TTL."""
_PARAMS = {
    "start": ("version", "strategy", "reason"), "step": ("reason",), "pause": ("reason",),
    "resume": ("reason",), "abort": ("reason",), "promote": ("version", "reason", "force"),
    "rollback": ("reason",),
}  # fmt: skip
_NEEDS_REASON = frozenset({"pause", "resume", "abort", "rollback"})


class Controller:
    """start / step / pause / resume / abort / promote / rollback of one project.

    ``collect`` (the stage's evidence), ``decide`` (the decision on it), ``gate`` (the
    holdout promotion gate) and ``clock`` default to the real ones; tests and the benchmark
    pass their own. Constructing one reconciles what a crashed controller left."""

    def __init__(
        self,
        project: ProjectConfig,
        registry: ModelRegistry,
        store: RolloutStore,
        *,
        collect: Collect | None = None,
        clock: Callable[[], float] | None = None,
        actor: str | None = None,
        decide: Decide | None = None,
        gate: Gate | None = None,
        lease_wait: float = LEASE_WAIT,
    ) -> None:
        self.project = project
        self.registry = registry
        self.store = store
        self.model = project.name
        self.actor = actor or current_actor()
        self._collect = collect or _default_collect(project, store)
        self._decide = decide or default_decide
        self._gate = gate or (
            lambda version, force: check_promotion(project, registry, version, force=force)
        )
        self._clock = clock or time.time
        self._wait = lease_wait
        self._changes = Changes(registry, store, self.actor)
        try:
            with self._locked(wait=0.0):
                pass  # reconciled on taking the lease
        except RolloutBusy:  # another controller is at work; it reconciles, and so will we
            log.info("rollout of %s: another controller holds the lease", self.model)

    # -- the one door ---------------------------------------------------------------------

    def act(self, action: str, **params: Any) -> ActionResult:
        """Run one action by name (the admin API's and the CLI's one door)."""
        if action not in _PARAMS:
            raise RolloutError(
                f"unknown rollout action {action!r}",
                detail=f"actions: {', '.join(ACTIONS)}",
                fix="use one of the actions above",
            )
        given = {k: v for k, v in params.items() if v is not None and v is not False}
        unknown = sorted(k for k in given if k not in _PARAMS[action] and given[k] != "")
        if unknown:
            raise RolloutError(
                f"rollout {action} takes no {', '.join(unknown)}",
                detail=f"it takes: {', '.join(_PARAMS[action]) or 'nothing'}",
                fix="drop the parameters it does not take",
            )
        if action in _NEEDS_REASON and not str(given.get("reason", "")).strip():
            raise RolloutError(
                f"rollout {action} needs a reason (it goes into the audit log)",
                fix="pass one: --reason '...' (or \"reason\" in the request body)",
            )
        method: Callable[..., ActionResult] = getattr(self, action)
        return method(**{k: v for k, v in given.items() if k in _PARAMS[action]})

    # -- actions ------------------------------------------------------------------------

    def start(
        self, version: str | None = None, strategy: str | None = None, reason: str = ""
    ) -> ActionResult:
        """Start rolling out ``version`` (default: the challenger) against the champion."""
        chosen = _strategy(strategy)
        with self._locked():
            running = self.store.active(self.model)
            if running is not None:
                raise _already_running(running)
            champion, target = self._rollout_pair(version)
            now = self._clock()
            state = RolloutState(
                rollout_id=uuid.uuid4().hex,
                model=self.model,
                champion=champion,
                challenger=target,
                strategy=chosen or self.project.rollout.strategy,
                stages=stages_of(self.project.rollout, chosen),
                started_at=now,
                stage_started_at=now,
                updated_at=now,
                reason=reason,
                actor=self.actor,
            )
            why = reason or f"roll out version {target}"
            self._changes.change("start", None, state, why, moves=self._challenger_to(state))
            return ActionResult(
                "start",
                state,
                None,
                f"rollout {state.rollout_id} started: "
                f"version {target} against champion {champion}, "
                f"stage 1 of {len(state.stages)} ({state.current.label})",
            )

    def step(
        self, now: float | None = None, *, wait: float | None = None, reason: str = ""
    ) -> ActionResult:
        """One decide-and-apply pass over the active rollout (``reason`` is accepted for
        the one door's sake and unused: a step's reasons are its decision's)."""
        with self._locked(wait=wait):
            state = self.store.active(self.model)
            if state is None:
                return ActionResult(
                    "step",
                    self.store.latest(self.model),
                    None,
                    "no rollout is running; nothing to decide",
                    changed=False,
                )
            if state.status == "paused":
                return ActionResult(
                    "step",
                    state,
                    None,
                    f"rollout {state.rollout_id} is paused"
                    f" ({state.paused_reason}); nothing applied",
                    changed=False,
                )
            at = self._clock() if now is None else now
            stats = self._collect(state, at)
            decision = self._decide(stats, self.project.rollout, state)
            return self._apply(state, decision, stats, at)

    def preview(self, now: float | None = None) -> RolloutPreview:
        """What ``rollout status`` shows: the latest rollout, its evidence now and the
        decision a step would make on it, not applied; the last recorded decisions."""
        state = self.store.active(self.model) or self.store.latest(self.model)
        if state is None:
            return RolloutPreview(None)
        records = tuple(self.store.decisions(state.rollout_id, limit=10))
        if not state.active:
            return RolloutPreview(state, records=records)
        at = self._clock() if now is None else now
        try:
            stats = self._collect(state, at)
            decision = self._decide(stats, self.project.rollout, state)
        except LoopmlError as exc:  # the evidence is unreadable: say so, show the rest
            return RolloutPreview(state, records=records, error=exc.headline, now=at)
        return RolloutPreview(state, stats, decision, records, now=at)

    def pause(self, reason: str) -> ActionResult:
        """Stop deciding (traffic keeps its shares) until :meth:`resume`."""
        with self._locked():
            state = self._active("pause")
            if state.status == "paused":
                raise RolloutError(
                    f"rollout {state.rollout_id} is already paused",
                    detail=f"paused: {state.paused_reason}",
                    fix="resume it with 'loopml rollout resume --reason ...'",
                )
            after = state.at(status="paused", paused_reason=reason, updated_at=self._clock())
            self._changes.change("pause", state, after, reason)
            return ActionResult("pause", after, None, f"rollout {state.rollout_id} paused")

    def resume(self, reason: str) -> ActionResult:
        """Decide again on a paused rollout (its stage keeps the time it baked)."""
        with self._locked():
            state = self._active("resume")
            if state.status != "paused":
                raise RolloutError(
                    f"rollout {state.rollout_id} is not paused",
                    fix="see 'loopml rollout status'; nothing to resume",
                )
            after = state.at(status="running", paused_reason="", updated_at=self._clock())
            self._changes.change("resume", state, after, reason)
            return ActionResult("resume", after, None, f"rollout {state.rollout_id} resumed")

    def abort(self, reason: str) -> ActionResult:
        """End the rollout: all traffic to the champion; the challenger is not rejected."""
        with self._locked():
            state = self._active("abort")
            after = self._changes.end(state, "aborted", reason, self._clock())
            return ActionResult(
                "abort",
                after,
                None,
                f"rollout {state.rollout_id} aborted; all traffic to champion {state.champion}",
                champion=state.champion,
            )

    def promote(
        self, version: str | None = None, reason: str = "", force: bool = False
    ) -> ActionResult:
        """Make ``version`` champion if it passes the holdout gate (or ``force``); a
        running rollout of it ends as promoted, one of another version refuses."""
        with self._locked():
            state = self.store.active(self.model)
            target = version or (state.challenger if state else self.registry.alias(CHALLENGER))
            if target is None:
                raise RolloutError(
                    "there is no challenger to promote",
                    fix="pass the version: 'loopml promote VERSION --reason ...'",
                )
            if state is not None and state.challenger != str(target):
                raise RolloutError(
                    f"a rollout of version {state.challenger} is running; version {target} "
                    "cannot be promoted past it",
                    fix="promote the rollout's version, or end the rollout first with "
                    "'loopml rollout abort --reason ...'",
                )
            check = self._gate(str(target), force)
            return self._promote_checked(state, check, reason)

    def rollback(self, reason: str) -> ActionResult:
        """A running rollout: roll it back (challenger rejected). Otherwise: restore the
        previous champion from the audit log."""
        with self._locked():
            state = self.store.active(self.model)
            if state is not None:
                after = self._changes.end(state, "rolled_back", reason, self._clock())
                return ActionResult(
                    "rollback",
                    after,
                    None,
                    f"rollout {state.rollout_id} "
                    f"rolled back: version {state.challenger} rejected; champion "
                    f"stays {state.champion}",
                    champion=state.champion,
                )
            entry = rollback_champion(self.registry, reason=reason, actor=self.actor)
            return ActionResult(
                "rollback",
                None,
                None,
                f"champion rolled back from version {entry.from_version} to {entry.to_version}",
                champion=entry.to_version,
                previous=entry.from_version,
            )

    # -- reconciliation -------------------------------------------------------------------

    def reconcile(self) -> list[Recovery]:
        """Close the alias moves and rollout changes a crashed controller left (call it
        holding the lease; every action does)."""
        self.registry.reconcile()
        found = self._changes.reconcile(self.model, self._clock)
        for recovery in found:
            log.warning("rollout of %s: %s", self.model, recovery.message)
        return found

    # -- helpers --------------------------------------------------------------------------

    @contextmanager
    def _locked(self, wait: float | None = None) -> Iterator[None]:
        try:
            lease = self.store.lease(
                f"rollout:{self.model}", ttl=LEASE_TTL, wait=self._wait if wait is None else wait
            )
            with lease:
                self.reconcile()
                yield
        except LeaseBusy as exc:
            raise RolloutBusy(exc.headline, detail=exc.detail, fix=exc.fix) from None

    def _apply(
        self, state: RolloutState, decision: Decision, stats: RolloutStats, now: float
    ) -> ActionResult:
        why = _why(decision)
        if isinstance(decision, Advance) and not state.last_stage:
            after = state.at(stage=state.stage + 1, stage_started_at=now, updated_at=now)
            self._changes.change("advance", state, after, why, decision=decision, stats=stats)
            return ActionResult(
                "step",
                after,
                decision,
                f"advanced to stage {after.stage + 1} "
                f"of {len(after.stages)} ({after.current.label}): {why}",
            )
        if isinstance(decision, Promote | Advance):  # past the last stage is promotion
            after = self._changes.end(state, "promoted", why, now, decision=decision, stats=stats)
            return ActionResult(
                "step",
                after,
                decision,
                f"version {state.challenger} promoted to champion: {why}",
                champion=state.challenger,
                previous=state.champion,
            )
        if isinstance(decision, Rollback):
            after = self._changes.end(
                state, "rolled_back", why, now, decision=decision, stats=stats
            )
            return ActionResult(
                "step", after, decision, f"rolled back: {why}", champion=state.champion
            )
        last = self.store.decisions(state.rollout_id, limit=1)
        if not last or (last[0].kind, last[0].summary) != (Hold.kind, decision.summary):
            self._changes.record(
                state.at(updated_at=now),
                Hold.kind,
                decision.summary,
                {"decision": decision.to_dict(), "stats": stats.to_dict()},
            )
        return ActionResult("step", state, decision, f"holding: {why}", changed=False)

    def _promote_checked(
        self, state: RolloutState | None, check: PromotionCheck, reason: str
    ) -> ActionResult:
        def moves() -> None:
            apply_promotion(
                self.registry,
                check,
                reason=reason,
                actor=self.actor,
                rollout_id=state.rollout_id if state else None,
            )

        if state is None:
            moves()
            message = f"champion is now version {check.version} (was {check.current or 'none'})"
            return ActionResult(
                "promote",
                None,
                None,
                message,
                champion=check.version,
                previous=check.current,
                gate=check,
            )
        after = self._changes.end(
            state, "promoted", reason or "promoted by an operator", self._clock(), moves=moves
        )
        return ActionResult(
            "promote",
            after,
            None,
            f"rollout {state.rollout_id} ended: "
            f"champion is now version {check.version} (was {check.current})",
            champion=check.version,
            previous=check.current,
            gate=check,
        )

    def _rollout_pair(self, version: str | None) -> tuple[str, str]:
        champion = self.registry.alias(CHAMPION)
        if champion is None:
            raise RolloutError(
                f"model {self.model!r} has no champion to roll out against",
                fix="run 'loopml train' (the first version becomes champion) or "
                "'loopml promote VERSION --reason ...'",
            )
        target = version or self.registry.alias(CHALLENGER)
        if target is None:
            raise RolloutError(
                f"model {self.model!r} has no challenger to roll out",
                fix="train a new version or pass --version",
            )
        info = self.registry.version(str(target))
        if info.version == champion:
            raise RolloutError(
                f"version {info.version} is the champion already",
                fix="roll out another version: --version V, or train a new one",
            )
        if REJECTED_TAG in info.tags:
            raise RolloutError(
                f"version {info.version} was rejected by a rollout",
                detail=f"reason: {info.tags[REJECTED_TAG]}",
                fix="train a new version or pass --version with another one",
            )
        return champion, info.version

    def _challenger_to(self, state: RolloutState) -> Callable[[], None]:
        def moves() -> None:
            if self.registry.alias(CHALLENGER) != state.challenger:
                self.registry.move_alias(
                    CHALLENGER,
                    state.challenger,
                    action="rollout",
                    actor=self.actor,
                    reason=f"rollout {state.rollout_id} of version {state.challenger}",
                    rollout_id=state.rollout_id,
                )

        return moves

    def _active(self, action: str) -> RolloutState:
        state = self.store.active(self.model)
        if state is None:
            raise RolloutError(
                f"no rollout of {self.model!r} is running: nothing to {action}",
                fix="see 'loopml rollout status'; start one with 'loopml rollout start'",
            )
        return state


def _why(decision: Decision) -> str:
    breached = [r.message for r in decision.reasons if r.verdict == "breach" and r.message]
    told = [m for m in breached if m not in decision.summary]  # the summary may say them
    return "; ".join([decision.summary, *told] if decision.summary else breached) or (
        f"{decision.kind} (no reason given)"
    )


def _strategy(strategy: str | None) -> Strategy | None:
    choices: tuple[str, ...] = get_args(Strategy)
    if strategy is not None and strategy not in choices:
        raise RolloutError(
            f"unknown rollout strategy {strategy!r}", fix=f"use one of: {', '.join(choices)}"
        )
    return strategy  # type: ignore[return-value]


def _already_running(running: RolloutState) -> RolloutError:
    return RolloutError(
        f"a rollout of {running.model!r} is already running (rollout {running.rollout_id}, "
        f"challenger {running.challenger}, {running.status})",
        fix="see 'loopml rollout status'; end it with 'loopml rollout abort --reason ...' "
        "before starting another",
    )


def _default_collect(project: ProjectConfig, store: RolloutStore) -> Collect:
    return lambda state, now: collect_stats(project, store, state, now)


def open_controller(project: ProjectConfig, *, actor: str | None = None) -> Controller:
    """A controller over the project's registry and rollout state database."""
    registry = open_registry(project)
    store = RolloutStore.open(project.rollout.state, project.root)
    return Controller(project, registry, store, actor=actor)
