"""The controller: applies decisions and operator actions; the only code that moves an
alias (being written; see the issue)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from loopml.config import ProjectConfig
from loopml.registry.store import ModelRegistry
from loopml.rollout.decision import Decision
from loopml.rollout.evidence import RolloutStats
from loopml.rollout.plan import RolloutState
from loopml.rollout.state import RolloutStore

__all__ = ["ACTIONS", "ActionResult", "Controller", "open_controller"]

Action = Literal["start", "step", "pause", "resume", "abort", "promote", "rollback"]
ACTIONS: tuple[str, ...] = ("start", "step", "pause", "resume", "abort", "promote", "rollback")
Collect = Callable[[RolloutState, float], RolloutStats]


@dataclass(frozen=True)
class ActionResult:
    """What one action or step did: the rollout after it, the decision, a message."""

    action: str
    state: RolloutState | None
    decision: Decision | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


class Controller:
    """start / step / pause / resume / abort / promote / rollback of one project."""

    def __init__(
        self,
        project: ProjectConfig,
        registry: ModelRegistry,
        store: RolloutStore,
        *,
        collect: Collect | None = None,
        clock: Callable[[], float] | None = None,
        actor: str | None = None,
    ) -> None:
        raise NotImplementedError

    def act(self, action: str, **params: Any) -> ActionResult:
        """Run one action by name (the admin API's and the CLI's one door)."""
        raise NotImplementedError


def open_controller(project: ProjectConfig, *, actor: str | None = None) -> Controller:
    """A controller over the project's registry and rollout state database."""
    raise NotImplementedError
