"""Where the bench meets the rollout pieces, as the server composes them.

The service is built as ``loopml serve`` builds it (``build_parts``: the sticky key and
the shadow queue from the policy, a clock); after each controller step the deployment set
is rebuilt from the rollout state as the server's follower does (``plan_of`` the active
rollout, the challenger loaded only when the plan needs it); the per-arm counters are
flushed with the server's own ``flush_counts``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loopml.ledger import Ledger
from loopml.rollout.plan import RolloutState, TrafficPlan, plan_of
from loopml.rollout.state import RolloutStore
from loopml.serve.deployments import Deployment, DeploymentSet
from loopml.serve.server import flush_counts
from loopml.serve.service import PredictionService

REPLICA = "bench"


def deployment_set(
    state: RolloutState | None, champion: Deployment, challenger: Deployment
) -> DeploymentSet:
    """The set a follower builds for ``state`` (champion only once the rollout ended)."""
    plan: TrafficPlan = plan_of(state, champion.version)
    return DeploymentSet(champion, challenger if plan.challenger else None, plan)


def make_service(
    project: Any, deployments: DeploymentSet, ledger: Ledger, clock: Callable[[], float]
) -> PredictionService:
    settings = project.serve
    service = PredictionService(
        deployments,
        ledger,
        max_rows=settings.max_rows,
        max_chars=settings.max_string_chars,
        sticky_key=project.rollout.sticky_key,
        shadow_queue=project.rollout.shadow_queue,
        clock=clock,
    )
    service.shadow_jobs.start()
    return service


def flush(service: PredictionService, store: RolloutStore) -> None:
    """Shadow work done, then the counters to the rollout store (as the server's flush)."""
    service.shadow_jobs.drain()
    flush_counts(store, service, REPLICA)
