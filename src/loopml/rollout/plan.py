"""What a rollout is, as values: its stages, its persisted state and the traffic plan.

A rollout walks a challenger through :class:`Stage` s fixed when it starts (so a policy
edited mid-rollout never shifts a running one). Its :class:`RolloutState` is one row of
the loop-state database (:mod:`loopml.rollout.state`), which every replica reads; the
:class:`TrafficPlan` a server routes by is derived from it (:func:`plan_of`), pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from loopml.config import RolloutConfig, Strategy

__all__ = [
    "ACTIVE",
    "Arm",
    "RolloutState",
    "Stage",
    "Status",
    "TrafficPlan",
    "plan_of",
    "stages_of",
]

Arm = Literal["champion", "challenger", "shadow"]
"""Who answered (or, for ``shadow``, scored off the response path) a request."""
Status = Literal["running", "paused", "promoted", "rolled_back", "aborted"]
ACTIVE: frozenset[str] = frozenset({"running", "paused"})
"""A rollout in one of these states routes traffic to its challenger."""


@dataclass(frozen=True)
class Stage:
    """One step of a rollout: ``shadow`` (the challenger scores the champion's traffic
    and answers nobody) or ``traffic`` (it answers ``share`` of the keys)."""

    kind: Literal["shadow", "traffic"]
    share: float

    @property
    def label(self) -> str:
        return "shadow" if self.kind == "shadow" else f"{self.share:.0%}"


def stages_of(policy: RolloutConfig, strategy: Strategy | None = None) -> tuple[Stage, ...]:
    """The stages a rollout with ``policy`` (and ``strategy``, default the policy's) walks.

    >>> from loopml.config import RolloutConfig
    >>> [s.label for s in stages_of(RolloutConfig())]
    ['shadow', '5%', '25%', '50%', '100%']
    >>> [s.label for s in stages_of(RolloutConfig(shadow_first=False), "ab")]
    ['50%']
    """
    chosen = strategy or policy.strategy
    shadow = (Stage("shadow", 0.0),)
    if chosen == "shadow":
        return shadow
    traffic: tuple[float, ...] = {
        "canary": policy.steps,
        "ab": (policy.split,),
        "blue_green": (1.0,),
    }[chosen]
    lead = shadow if policy.shadow_first else ()
    return lead + tuple(Stage("traffic", share) for share in traffic)


@dataclass(frozen=True)
class RolloutState:
    """One rollout as stored: who is judged against whom, where it is, and how it ended."""

    rollout_id: str
    model: str
    champion: str
    challenger: str
    strategy: Strategy
    stages: tuple[Stage, ...]
    stage: int = 0
    status: Status = "running"
    started_at: float = 0.0
    stage_started_at: float = 0.0
    updated_at: float = 0.0
    reason: str = ""
    """Why it started, or why it ended (a rollback's guard and value)."""
    actor: str = ""
    paused_reason: str = field(default="", compare=False)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def current(self) -> Stage:
        return self.stages[self.stage]

    @property
    def last_stage(self) -> bool:
        return self.stage == len(self.stages) - 1

    def at(self, **changes: object) -> RolloutState:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TrafficPlan:
    """How a server routes right now: the champion, the challenger (if any), the
    challenger's share of answered keys, and whether it shadows the rest.

    ``rollout_id`` seeds the router's hash, so every replica sends a key to the same arm,
    and a new rollout reshuffles who sees the challenger.
    """

    champion: str
    challenger: str | None = None
    share: float = 0.0
    shadow: bool = False
    rollout_id: str = ""
    strategy: Strategy | None = None
    stage: int = 0

    @property
    def routes_challenger(self) -> bool:
        return self.challenger is not None and self.share > 0.0


def plan_of(state: RolloutState | None, champion: str) -> TrafficPlan:
    """The plan of an active rollout of ``champion``'s model; champion only otherwise.
    A paused rollout keeps its shares (pausing stops decisions, not traffic).

    >>> plan = plan_of(None, "3")
    >>> plan.champion, plan.challenger, plan.routes_challenger
    ('3', None, False)
    """
    if state is None or not state.active or state.champion != champion:
        return TrafficPlan(champion)
    stage = state.current
    return TrafficPlan(
        champion,
        state.challenger,
        share=stage.share if stage.kind == "traffic" else 0.0,
        shadow=stage.kind == "shadow",
        rollout_id=state.rollout_id,
        strategy=state.strategy,
        stage=state.stage,
    )
