"""What one server process is made of, typed: the routes' only view of the server.

:func:`loopml.serve.server.build_parts` builds it; whoever starts the process adds its
background jobs (:meth:`ServerParts.add_job`) and then hands it to
:func:`loopml.serve.app.create_app`, which gives every route object the same instance
(as MLServer's endpoints get their data plane) instead of an untyped ``app.state``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.registry import Collector

from loopml.config import ServeConfig
from loopml.jobs import Job
from loopml.serve.access import Access
from loopml.serve.metrics import ServeMetrics
from loopml.serve.reload import Reloader
from loopml.serve.service import Prediction, PredictionService
from loopml.serve.work import Offload

__all__ = ["RolloutHooks", "ServerParts"]

Act = Callable[[str, str, Mapping[str, Any]], Mapping[str, Any]]
"""``(action, actor, params)`` -> the action's result as JSON (raises LoopmlError)."""


@dataclass(frozen=True)
class RolloutHooks:
    """What the rollout admin routes call (:mod:`loopml.serve.rollout_routes`): the
    controller's one door, and the model's rollout state as JSON (None: no rollout yet)."""

    act: Act
    status: Callable[[], Mapping[str, Any] | None]


@dataclass
class ServerParts:
    """The service, its instruments and settings, the admin token (and the other scopes'),
    the reloader and the background jobs; ``on_start`` / ``on_stop`` run when the server
    starts and stops."""

    service: PredictionService
    metrics: ServeMetrics
    settings: ServeConfig
    token: str
    reloader: Reloader | None = None
    jobs: dict[str, Job] = field(default_factory=dict)
    durable: bool = True
    on_start: list[Callable[[], None]] = field(default_factory=list)
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    offload: Offload = field(default_factory=Offload)
    """Runs large requests' decoding and scoring in worker threads."""
    rollout: RolloutHooks | None = None
    """The rollout admin API's hooks (None: this server reads no rollout state)."""
    access: Access | None = None
    """The token scopes of the prediction and feedback routes (None: only the admin token,
    for /feedback, as ``serve.feedback_auth: token`` with no feedback token)."""

    @property
    def tokens(self) -> Access:
        return self.access if self.access is not None else Access(self.token, self.token)

    def add_job(self, job: Job, *, gauges: Collector | None = None) -> None:
        """Run ``job`` while the server runs (stopped before the ledger closes), and
        expose its ``gauges`` on ``/metrics``."""
        if job.name in self.jobs:
            raise ValueError(f"a job named {job.name!r} is already added")
        self.jobs[job.name] = job
        self.on_start.append(job.start)
        self.on_stop.insert(0, job.stop)
        if gauges is not None:
            self.metrics.registry.register(gauges)

    def record(self, route: str, prediction: Prediction, started: float) -> None:
        """Count one answered prediction request: its latency, rows, and what it held that
        was served anyway (unseen categories, unexpected nulls, ignored fields)."""
        metrics = self.metrics
        version = prediction.deployment.version
        arm = prediction.arm
        metrics.observe(route, version, arm, 200, time.perf_counter() - started)
        metrics.rows.labels(version, arm).inc(prediction.n_rows)
        for feature, count in prediction.unseen.items():
            if count:
                metrics.unseen.labels(feature).inc(count)
        for feature, count in prediction.nulls.items():
            if count:
                metrics.nulls.labels(feature).inc(count)
        for name in prediction.ignored:
            metrics.ignored_field(name)
