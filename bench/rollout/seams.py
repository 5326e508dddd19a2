"""Where the bench meets the rollout pieces: the deployment set, the service, the counters.

Kept in one module so that the rest of the bench reads as the server's own loop: build the
deployment set from the controller's state (as the server's follower does after each
poll), serve one request, send its label through the service's feedback path, flush the
per-arm counters to the rollout store, step the controller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loopml.ledger import Ledger
from loopml.rollout.plan import RolloutState, TrafficPlan, plan_of
from loopml.rollout.router import route
from loopml.rollout.state import ArmCount, RolloutStore
from loopml.serve.service import Deployment, PredictionService


def plan_for(state: RolloutState | None, champion: str) -> TrafficPlan:
    return plan_of(state, champion)


def make_service(
    champion: Deployment,
    challenger: Deployment | None,
    plan: TrafficPlan,
    ledger: Ledger,
    clock: Callable[[], float],
) -> PredictionService:
    """A PredictionService over the set {champion, challenger, plan}."""
    from loopml.serve import service as svc

    deployment_set = svc.DeploymentSet(champion, challenger, plan)  # type: ignore[attr-defined]
    return svc.PredictionService(deployment_set, ledger, clock=clock)  # type: ignore[arg-type,call-arg]


def swap(service: PredictionService, champion: Deployment, challenger: Deployment | None,
         plan: TrafficPlan) -> None:  # fmt: skip
    """Serve the new set from the next request on (the follower's one assignment)."""
    from loopml.serve import service as svc

    service.swap(svc.DeploymentSet(champion, challenger, plan))  # type: ignore[attr-defined,arg-type]


def answered_arm(prediction: Any, plan: TrafficPlan, key: str) -> str:
    """Which arm answered: the service's own word if it says, else the pure router."""
    arm = getattr(prediction, "arm", None)
    return str(arm) if arm else route(plan, key)


def flush_counts(service: PredictionService, store: RolloutStore, plan: TrafficPlan,
                 fallback: dict[str, ArmCount]) -> None:  # fmt: skip
    """The per-arm counters to the rollout store, as the server flushes them."""
    flush = getattr(service, "flush_counts", None)
    if callable(flush):
        flush(store)
        return
    store.put_counts(plan.rollout_id, plan.stage, "bench", fallback)
