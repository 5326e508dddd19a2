"""What a server answers with: loaded versions, the set it routes over, and its counters.

A :class:`Deployment` is one loaded, warmed and parity-checked version. A
:class:`DeploymentSet` is what the service holds: the champion, the challenger of an
active rollout (if the plan needs one) and the :class:`~loopml.rollout.plan.TrafficPlan`
that routes between them. It is immutable and swapped whole with one reference
assignment, so a request sees the old set or the new one, never a mix (the champion of one
and the plan of another).

:class:`ArmCounters` counts, per rollout stage and arm, the requests routed, the model
errors and the shadow requests dropped: the replica's share of the counters every replica
writes to the rollout state database.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from loopml.registry.runtime import Runtime
from loopml.rollout.plan import TrafficPlan
from loopml.rollout.state import ArmCount
from loopml.serve.schema import InputSchema

__all__ = ["ArmCounters", "Deployment", "DeploymentSet", "StageKey"]


@dataclass(frozen=True)
class Deployment:
    """One loaded, warmed and parity-checked version, ready to answer."""

    model: str
    version: str
    runtime: Runtime
    schema: InputSchema
    loaded_at: float = field(default_factory=time.time)

    @classmethod
    def of(cls, model: str, version: str, runtime: Runtime) -> Deployment:
        return cls(model, version, runtime, InputSchema.from_contract(runtime.contract))

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.runtime.meta.classes)

    @property
    def task(self) -> str:
        return str(self.runtime.meta.task)


@dataclass(frozen=True)
class DeploymentSet:
    """The champion, the challenger (None unless the plan routes or shadows to one) and
    the plan routing between them."""

    champion: Deployment
    challenger: Deployment | None = None
    plan: TrafficPlan | None = None

    def __post_init__(self) -> None:
        if self.plan is None:
            object.__setattr__(self, "plan", TrafficPlan(self.champion.version))
        if self.challenger is None and self.traffic.challenger is not None:
            raise ValueError("a plan with a challenger needs the challenger loaded")

    @property
    def traffic(self) -> TrafficPlan:
        """The plan (never None once built)."""
        assert self.plan is not None
        return self.plan

    @property
    def versions(self) -> tuple[str, str | None]:
        return self.champion.version, None if self.challenger is None else self.challenger.version

    @property
    def shadowing(self) -> Deployment | None:
        """The challenger, when it scores the champion's traffic off the response path."""
        return self.challenger if self.traffic.shadow else None

    def to_dict(self) -> dict[str, Any]:
        plan = self.traffic
        return {
            "champion": self.champion.version,
            "challenger": None if self.challenger is None else self.challenger.version,
            "plan": {
                "champion": plan.champion, "challenger": plan.challenger, "share": plan.share,
                "shadow": plan.shadow, "rollout_id": plan.rollout_id or None,
                "strategy": plan.strategy, "stage": plan.stage,
            },
        }  # fmt: skip


StageKey = tuple[str, int]
"""(rollout id, stage index): the counters of one stage."""


@dataclass
class _Tally:
    version: str
    requests: int = 0
    errors: int = 0
    dropped: int = 0


class ArmCounters:
    """Per stage and arm: requests, model errors, dropped shadow requests (thread-safe).

    Values are absolute since the stage started in this process; the current stage and
    the one before it are kept, so the last counts of a stage that just ended are still
    written after the swap that ended it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages: dict[StageKey, dict[str, _Tally]] = {}

    def count(
        self, stage: StageKey, arm: str, version: str, *, requests: int = 0, errors: int = 0,
        dropped: int = 0,
    ) -> None:  # fmt: skip
        if not stage[0]:
            return  # no rollout: nothing for the rollout's judge to read
        with self._lock:
            arms = self._stages.get(stage)
            if arms is None:
                arms = self._stages[stage] = {}
                for old in list(self._stages)[:-2]:
                    del self._stages[old]
            tally = arms.get(arm)
            if tally is None or tally.version != version:
                tally = arms[arm] = _Tally(version)
            tally.requests += requests
            tally.errors += errors
            tally.dropped += dropped

    def snapshot(self) -> dict[StageKey, dict[str, ArmCount]]:
        """Every kept stage's counters, as the rollout state database stores them."""
        with self._lock:
            return {
                stage: {
                    arm: ArmCount(arm, t.version, t.requests, t.errors, t.dropped)
                    for arm, t in arms.items()
                }
                for stage, arms in self._stages.items()
            }
