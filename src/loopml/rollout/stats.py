"""The evidence of one stage, from the ledger and the servers' counters (being written)."""

from __future__ import annotations

from loopml.config import ProjectConfig
from loopml.rollout.evidence import RolloutStats
from loopml.rollout.plan import RolloutState
from loopml.rollout.state import RolloutStore

__all__ = ["collect_stats"]


def collect_stats(
    project: ProjectConfig, store: RolloutStore, state: RolloutState, now: float
) -> RolloutStats:
    """Both arms of the current stage of ``state``, from its start to ``now``."""
    raise NotImplementedError
