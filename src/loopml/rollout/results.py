"""What the controller answers, as values with a JSON-safe form (the admin API, ``--json``).

:class:`ActionResult` is what one action or step did; :class:`RolloutPreview` is what
``loopml rollout status`` shows — the rollout, its evidence now and the decision a step
would make on it, without applying it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from loopml.errors import RolloutError
from loopml.registry.promotion import PromotionCheck
from loopml.rollout.decision import Decision
from loopml.rollout.evidence import RolloutStats
from loopml.rollout.plan import RolloutState, plan_of
from loopml.rollout.state import DecisionRecord

__all__ = ["ActionResult", "RolloutBusy", "RolloutPreview", "json_safe", "state_dict"]


class RolloutBusy(RolloutError):
    """Another controller holds the model's rollout lease (and kept it past the wait)."""

    retryable = True


@dataclass(frozen=True)
class ActionResult:
    """What one action or step did: the rollout after it, the decision, a message.

    ``changed``: whether anything was written (a hold, a paused or an absent rollout:
    False); ``champion`` / ``previous``: the champion after the action and, when it moved,
    before; ``gate``: the holdout gate's verdict of a ``promote``."""

    action: str
    state: RolloutState | None
    decision: Decision | None
    message: str
    changed: bool = True
    champion: str | None = None
    previous: str | None = None
    gate: PromotionCheck | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "message": self.message,
            "changed": self.changed,
            "champion": self.champion,
            "previous": self.previous,
            "state": state_dict(self.state),
            "decision": json_safe(self.decision.to_dict()) if self.decision else None,
            "gate": _gate_dict(self.gate),
        }

    def summary(self) -> dict[str, Any]:
        """The job's view of a step (``loopml.jobs.JobResult``)."""
        state = self.state
        return {
            "action": self.action,
            "changed": self.changed,
            "decision": self.decision.kind if self.decision else None,
            "rollout_id": state.rollout_id if state else None,
            "status": state.status if state else None,
            "stage": state.stage if state else None,
            "message": self.message,
        }


@dataclass(frozen=True)
class RolloutPreview:
    """The latest rollout (None: never one), and for an active one its evidence and the
    decision a step would make now (None with ``error`` when the evidence could not be
    read); the last recorded decisions, newest first."""

    state: RolloutState | None
    stats: RolloutStats | None = None
    decision: Decision | None = None
    records: tuple[DecisionRecord, ...] = ()
    error: str | None = None
    now: float | None = None

    @property
    def in_stage(self) -> float | None:
        """Seconds the current stage has run (None: not active)."""
        if self.state is None or not self.state.active or self.now is None:
            return None
        return max(0.0, self.now - self.state.stage_started_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": state_dict(self.state),
            "seconds_in_stage": self.in_stage,
            "stats": json_safe(self.stats.to_dict()) if self.stats else None,
            "would_decide": json_safe(self.decision.to_dict()) if self.decision else None,
            "error": self.error,
            "decisions": [json_safe(r.to_dict()) for r in self.records],
        }


def state_dict(state: RolloutState | None) -> dict[str, Any] | None:
    """A rollout as JSON: its fields, each stage with its label, and the traffic plan."""
    if state is None:
        return None
    plan = plan_of(state, state.champion)
    return {
        "rollout_id": state.rollout_id, "model": state.model, "champion": state.champion,
        "challenger": state.challenger, "strategy": state.strategy,
        "stages": [{"kind": s.kind, "share": s.share, "label": s.label} for s in state.stages],
        "stage": state.stage, "stage_label": state.current.label, "status": state.status,
        "active": state.active, "started_at": state.started_at,
        "stage_started_at": state.stage_started_at, "updated_at": state.updated_at,
        "reason": state.reason, "actor": state.actor, "paused_reason": state.paused_reason,
        "share": plan.share, "shadow": plan.shadow,
    }  # fmt: skip


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _gate_dict(check: PromotionCheck | None) -> dict[str, Any] | None:
    if check is None:
        return None
    comparison = check.comparison
    safe: dict[str, Any] = json_safe(
        {
            "version": check.version,
            "champion": check.current,
            "passed": check.decision.passed,
            "forced": check.decision.forced,
            "reason": check.decision.reason,
            "metric": comparison.metric if comparison else None,
            "new": comparison.new if comparison else None,
            "old": comparison.old if comparison else None,
            "delta": comparison.delta if comparison else None,
        }
    )
    return safe
