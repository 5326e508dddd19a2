"""``loopml serve``: the prediction server composed with its background jobs.

The server itself (:mod:`loopml.serve`) runs no job of its own; this module decides which
ones a served project gets — the monitor, when predictions are recorded (there is nothing
to monitor without the ledger), and the rollout controller's step when
``rollout.interval_seconds`` is above 0 — in the process and in every worker. Each job
keeps its runs apart across workers and replicas with a lease (the monitor store's, the
loop-state database's).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from loopml.config import ProjectConfig
from loopml.monitor.gauges import MonitorCollector
from loopml.monitor.job import monitor_job
from loopml.rollout.job import rollout_job
from loopml.serve.parts import ServerParts
from loopml.serve.server import run_server
from loopml.serve.server import worker_app as serve_worker_app

__all__ = ["compose_jobs", "serve_project", "worker_app"]

FACTORY = "loopml.pipeline.serving:worker_app"


def compose_jobs(project: ProjectConfig, parts: ServerParts) -> None:
    """Add the project's background jobs to a server's parts."""
    if project.serve.ledger.enabled:
        monitor = monitor_job(project)
        parts.add_job(monitor, gauges=MonitorCollector(monitor.snapshot))
    if project.rollout.interval_seconds > 0:
        parts.add_job(rollout_job(project))


def serve_project(
    project: ProjectConfig,
    *,
    project_file: Path,
    access_log: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve the project's champion with its jobs until SIGTERM / SIGINT."""
    run_server(
        project,
        project_file=project_file,
        compose=compose_jobs,
        factory=FACTORY,
        access_log=access_log,
        on_ready=on_ready,
    )


def worker_app() -> FastAPI:
    """The app factory uvicorn calls in each worker process (``--workers N``)."""
    return serve_worker_app(compose_jobs)
