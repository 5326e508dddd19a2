"""The ``rollout`` section of ``loopml.yaml``: how a challenger earns its traffic.

A rollout walks a challenger through *stages*: an optional shadow stage (it scores the
champion's traffic off the response path, and answers nobody), then the strategy's
traffic stages (canary: ``steps``; ab: one stage at ``split``; blue_green: one stage at
1.0; shadow: the shadow stage alone). Each stage is judged by the guards once both arms
have ``min_predictions`` and the stage has baked ``bake_seconds``; a guard without enough
data holds, never passes. A breach rolls back, or holds, as the guard says.
"""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import Field, field_validator, model_validator

from loopml.config.base import STATE_DIR, Section

__all__ = ["Breach", "GuardLimit", "RolloutConfig", "RolloutGuards", "Strategy"]

Strategy = Literal["shadow", "canary", "ab", "blue_green"]
Breach = Literal["rollback", "hold"]


class GuardLimit(Section):
    """One guard: a limit (``max`` or ``min``), what a breach does, and for the guards
    on labels the labelled rows per arm it needs before it is judged."""

    max: float | None = Field(None, description="breached when the value is above this")
    min: float | None = Field(None, description="breached when the value is below this")
    on_breach: Breach = Field("rollback", description="rollback: end the rollout; hold: wait")
    min_labels: int | None = Field(
        None, ge=1, description="labelled rows per arm before the guard is judged (labels only)"
    )
    enabled: bool = Field(True, description="false: this guard is not judged")

    @model_validator(mode="after")
    def _one_bound(self) -> GuardLimit:
        if (self.max is None) == (self.min is None):
            raise ValueError("a guard needs exactly one of 'max' or 'min'")
        return self


class RolloutGuards(Section):
    """The guards a stage must pass (defaults shown in ``loopml init``'s file)."""

    error_rate: GuardLimit = GuardLimit(max=0.01)
    latency_p99_ratio: GuardLimit = GuardLimit(max=1.5)
    prediction_divergence: GuardLimit = GuardLimit(max=0.1)
    agreement: GuardLimit = GuardLimit(min=0.9)
    estimated_drop: GuardLimit = GuardLimit(max=0.01)
    realized_drop: GuardLimit = GuardLimit(max=0.01, min_labels=500)


class RolloutConfig(Section):
    """``loopml rollout``: the strategy, its stages, the guards, where the state lives."""

    strategy: Strategy = Field("canary", description="shadow | canary | ab | blue_green")
    shadow_first: bool = Field(True, description="a shadow stage before the first traffic stage")
    steps: tuple[float, ...] = Field(
        (0.05, 0.25, 0.5, 1.0), description="canary: the challenger's share at each step"
    )
    split: float = Field(0.5, gt=0, lt=1, description="ab: the challenger's fixed share")
    min_predictions: int = Field(
        2000, ge=1, description="per arm and stage before a stage can be judged"
    )
    bake_seconds: float = Field(300.0, ge=0, description="per stage, before it can be judged")
    alpha: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="error rate of the sequential test on labels, over every look",
    )
    sticky_key: str | None = Field(
        None,
        description="the request column that keeps a client on one arm (default: the "
        "project's entity key; without either, the request id)",
    )
    shadow_queue: int = Field(
        1000, ge=1, description="shadow requests waiting to be scored; full -> dropped, counted"
    )
    interval_seconds: float = Field(
        30.0, ge=0, description="loopml serve: judge the rollout this often (0: only on demand)"
    )
    state: str = Field(
        f"sqlite:///{STATE_DIR}/loop.db",
        description="where rollout state lives (sqlite:///path or postgresql://...), shared "
        "by every replica",
    )
    guards: RolloutGuards = RolloutGuards()

    @field_validator("steps")
    @classmethod
    def _steps_grow_to_one(cls, steps: tuple[float, ...]) -> tuple[float, ...]:
        if not steps:
            raise ValueError("steps needs at least one share, e.g. [0.05, 0.25, 0.5, 1.0]")
        if any(not 0 < s <= 1 for s in steps):
            raise ValueError("each step is a share of traffic in (0, 1]")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError("steps must grow, e.g. [0.05, 0.25, 0.5, 1.0]")
        if steps[-1] != 1.0:
            raise ValueError("the last step must be 1.0 (the challenger takes all traffic)")
        return steps
