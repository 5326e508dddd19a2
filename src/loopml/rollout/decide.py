"""``decide(stats, policy, state) -> Decision``: pure (being written; see the issue)."""

from __future__ import annotations

from loopml.config import RolloutConfig
from loopml.rollout.decision import Decision
from loopml.rollout.evidence import RolloutStats
from loopml.rollout.plan import RolloutState

__all__ = ["decide"]


def decide(stats: RolloutStats, policy: RolloutConfig, state: RolloutState) -> Decision:
    """Advance, Hold, Promote or Rollback, each with its reasons."""
    raise NotImplementedError
