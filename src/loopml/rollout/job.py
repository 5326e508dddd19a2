"""The rollout as a background job: one decide-and-apply pass (``loopml rollout step``)
every ``rollout.interval_seconds`` (0: only when asked, e.g. ``POST /admin/rollout/step``).

Whoever starts a process composes it (``loopml serve`` gives it to the server when the
interval is above 0; the agent will run the same object). The controller is opened on the
first run, off the server's start-up path, and kept. One pass at a time per model across
every process and host (the controller's lease): a scheduled pass that finds another
holding it skips its turn; a pass asked for now waits for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from loopml.config import ProjectConfig
from loopml.jobs import JobStatus, PeriodicJob
from loopml.registry.audit import current_actor
from loopml.rollout.controller import LEASE_WAIT, Controller, open_controller
from loopml.rollout.results import ActionResult, RolloutBusy

__all__ = ["JOB_NAME", "RolloutJob", "rollout_job"]

log = logging.getLogger("loopml.rollout")
JOB_NAME = "rollout"


class RolloutJob:
    """Calls the controller's :meth:`~loopml.rollout.controller.Controller.step` every
    ``interval`` seconds (first after one interval)."""

    def __init__(self, open_: Callable[[], Controller], interval: float) -> None:
        self._open = open_
        self._controller: Controller | None = None
        self._job: PeriodicJob[ActionResult] = PeriodicJob(
            JOB_NAME,
            lambda: self._step(LEASE_WAIT),
            interval,
            scheduled=self._scheduled,
            on_result=_log_change,
        )

    @property
    def name(self) -> str:
        return JOB_NAME

    def start(self) -> None:
        self._job.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._job.stop(timeout)
        if self._controller is not None:
            self._controller.store.close()

    def status(self) -> JobStatus:
        return self._job.status()

    def run_now(self) -> ActionResult:
        """One pass, now, on the calling thread (waits for one in progress)."""
        return self._job.run_now()

    def _scheduled(self) -> ActionResult | None:
        try:
            return self._step(0.0)
        except RolloutBusy as exc:  # another process decides now: this turn is its
            log.info("rollout step skipped: %s", exc.headline)
            return None

    def _step(self, wait: float) -> ActionResult:
        if self._controller is None:
            self._controller = self._open()
        return self._controller.step(wait=wait)


def _log_change(result: ActionResult) -> None:
    if result.changed:
        log.warning("rollout: %s", result.message)


def rollout_job(project: ProjectConfig) -> RolloutJob:
    """The project's rollout controller as a job (opened on its first run)."""
    actor = f"loopml serve ({current_actor()})"
    return RolloutJob(
        lambda: open_controller(project, actor=actor), project.rollout.interval_seconds
    )
