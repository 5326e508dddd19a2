"""The I/O shell of ``loopml serve``: registry → deployment, ledger, reloader, uvicorn.

Everything that can fail for a reason the operator can fix (no champion, no serving
artifact, a corrupt artifact, an unreachable ledger) fails here, before the port opens,
as a :class:`~loopml.errors.LoopmlError`. SIGTERM is graceful: readiness flips to
not-ready first, the listener closes after ``serve.drain_seconds``, requests in flight
finish and are written to the ledger, the ledger queue is drained, and the process exits 0.

With a rollout running (:mod:`loopml.rollout`), the server holds the champion and the
challenger and routes by the rollout's plan; its follower (:mod:`loopml.serve.reload`)
polls the champion alias and the rollout state database, and writes this replica's per-arm
counters there on every poll and at shutdown. If that database cannot be opened, the
server logs it and serves the champion alone.

The server runs no background job of its own: whoever starts it passes a ``compose``
function that adds them to the parts (:mod:`loopml.pipeline.serving` adds the monitor),
in this process and, with ``--workers N``, in every worker.
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from loopml.config import ProjectConfig, ServeConfig, load_project
from loopml.errors import LoopmlError
from loopml.ledger import Ledger, open_ledger
from loopml.registry.store import ModelRegistry, open_registry
from loopml.registry.verified_runtime import open_runtime
from loopml.rollout.controller import open_controller
from loopml.rollout.results import state_dict
from loopml.rollout.state import RolloutStore
from loopml.serve.access import Access
from loopml.serve.app import create_app
from loopml.serve.connections import protocol
from loopml.serve.metrics import LedgerGauges, ServeMetrics
from loopml.serve.parts import RolloutHooks, ServerParts
from loopml.serve.reload import Reloader, ReloadOutcome
from loopml.serve.service import Deployment, PredictionService
from loopml.tokens import ensure_token

log = logging.getLogger("loopml.serve")
PROJECT_ENV = "LOOPML_SERVE_PROJECT_FILE"


def load_deployment(
    registry: ModelRegistry, version: str, cache_root: Path, *, trust_pickle: bool
) -> Deployment:
    """Fetch, verify, load, warm and parity-check one version."""
    runtime = open_runtime(registry, version, cache_root, trust_pickle=trust_pickle)
    runtime.warm()
    runtime.check_parity()
    if runtime.format != "onnx":
        log.warning(
            "version %s is served through %s, not ONNX: the slow path (about 10x the CPU per "
            "request). Why: %s. Rebuild it with 'loopml models build-artifact %s --force' "
            "after upgrading, or retrain.",
            version, runtime.format, runtime.manifest.fallback_reason or "unknown", version,
        )  # fmt: skip
    return Deployment.of(registry.name, version, runtime)


def build_parts(project: ProjectConfig) -> ServerParts:
    """Load the served version (and the challenger of an active rollout) and open
    everything the server needs (not started yet)."""
    settings = project.serve
    registry = open_registry(project)
    cache = project.resolve(settings.cache_dir)
    trust = settings.trust_pickle
    version = registry.served_version(settings.alias)
    deployment = load_deployment(registry, version, cache, trust_pickle=trust)
    token, _ = ensure_token(project.resolve(settings.token_file))
    access = server_access(project, token)
    for warning in access_warnings(settings):
        log.warning(warning)
    ledger = open_ledger(settings.ledger, project.root) if settings.ledger.enabled else None
    metrics = ServeMetrics(_gauges(ledger))
    service = PredictionService(
        deployment, ledger, max_rows=settings.max_rows, max_chars=settings.max_string_chars,
        sticky_key=project.rollout.sticky_key, shadow_queue=project.rollout.shadow_queue,
        on_arm_event=metrics.arm_event,
    )  # fmt: skip
    metrics.served(deployment.model, deployment.version)
    parts = ServerParts(
        service, metrics, settings, token, durable=settings.ledger.mode == "durable",
        access=access,
    )  # fmt: skip
    if ledger is not None:
        parts.on_start.append(ledger.start)
        parts.on_stop.append(ledger.close)
    _follow(parts, project, registry, open_rollout_store(project))
    # Everything loaded so far (MLflow, pandas, the model) lives as long as the process:
    # moved out of the collector's sight, a full collection triggered by a large request
    # takes milliseconds instead of ~200 ms with the GIL held (the probes' worst stall).
    gc.collect()
    gc.freeze()
    return parts


def _follow(
    parts: ServerParts, project: ProjectConfig, registry: ModelRegistry, store: RolloutStore | None
) -> None:
    """The follower of the alias and the rollout state, the shadow queue, the counters'
    flush and the rollout admin hooks. With a rollout store, the first check runs now:
    a restarted replica routes by the running rollout from its first request."""
    service, settings = parts.service, project.serve
    parts.rollout = rollout_hooks(project, store, service.deployment.model)
    if not settings.follow_alias and store is None:
        return
    parts.reloader = _reloader(registry, parts, project, store)
    if store is not None:
        parts.reloader.check()
        parts.on_start.append(service.shadow_jobs.start)
    parts.on_start.append(parts.reloader.start)
    # Stopped in this order: the shadow queue runs what it holds, the reloader writes the
    # last counters; then the ledger (appended earlier, so last) drains.
    parts.on_stop.insert(0, parts.reloader.stop)
    parts.on_stop.insert(0, service.shadow_jobs.stop)


def open_rollout_store(project: ProjectConfig) -> RolloutStore | None:
    """The rollout state database, or None (logged) when it cannot be opened: then the
    server serves its champion alone."""
    try:
        return RolloutStore.open(project.rollout.state, project.root)
    except LoopmlError as exc:
        log.error("cannot open the rollout state database, serving the champion only: %s",
                  exc)  # fmt: skip
        return None


def rollout_hooks(
    project: ProjectConfig, store: RolloutStore | None, model: str
) -> RolloutHooks | None:
    """The rollout admin API's door to the controller (run in a worker thread); None
    without a rollout state database (the controller could not open it either)."""
    if store is None:
        return None

    def act(action: str, actor: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        return open_controller(project, actor=actor).act(action, **params).to_dict()

    def status() -> Mapping[str, Any] | None:
        state = store.active(model) or store.latest(model)
        return state_dict(state)  # as 'loopml rollout status --json' shows it

    return RolloutHooks(act, status)


def replica_id() -> str:
    """This server process among the replicas: host, pid and a random part (a pid is
    reused after a restart; the random part keeps the restarted process's counters apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def flush_counts(store: RolloutStore, service: PredictionService, replica: str) -> None:
    """Write this replica's per-arm counters of the current (and the last) rollout stage."""
    for (rollout_id, stage), counts in service.counters.snapshot().items():
        store.put_counts(rollout_id, stage, replica, counts)


def server_access(project: ProjectConfig, admin: str) -> Access:
    """The token scopes ``serve.feedback_auth`` and ``serve.predict_auth`` ask for; a token
    file that is missing is created (mode 0600)."""
    settings = project.serve
    access = Access(admin, feedback_file=settings.feedback_token_file,
                    predict_file=settings.predict_token_file)  # fmt: skip
    if settings.feedback_auth == "token":
        feedback, _ = ensure_token(project.resolve(settings.feedback_token_file), "feedback")
        access = replace(access, feedback=feedback)
    if settings.predict_auth == "token":
        predict, _ = ensure_token(project.resolve(settings.predict_token_file), "predict")
        access = replace(access, predict=predict)
    return access


def access_warnings(settings: ServeConfig) -> list[str]:
    """What ``loopml serve`` warns about at start: routes open to anyone on the port."""
    if settings.feedback_auth == "none":
        return [
            "serve.feedback_auth is 'none': anyone who reaches this port can send labels, "
            "which become training data for the next model; use it only on a closed "
            "network (the default, 'token', asks for .loopml/feedback.token)"
        ]
    return []


def _reloader(
    registry: ModelRegistry, parts: ServerParts, project: ProjectConfig,
    store: RolloutStore | None,
) -> Reloader:  # fmt: skip
    settings = project.serve
    cache = project.resolve(settings.cache_dir)
    service, metrics = parts.service, parts.metrics
    model, fixed = service.deployment.model, service.deployment.version

    def on_outcome(kind: str, outcome: ReloadOutcome) -> None:
        metrics.reloads.labels(kind).inc()
        if kind == "swapped":
            metrics.served(model, outcome.serving)

    replica = replica_id()
    return Reloader(
        service,
        lambda v: load_deployment(registry, v, cache, trust_pickle=settings.trust_pickle),
        (lambda: registry.alias(settings.alias)) if settings.follow_alias else (lambda: fixed),
        poll_seconds=settings.poll_seconds,
        on_outcome=on_outcome,
        read_state=None if store is None else (lambda: store.active(model)),
        on_poll=None if store is None else (lambda: flush_counts(store, service, replica)),
    )


def _gauges(ledger: Ledger | None) -> Any:
    if ledger is None:
        return None

    def read() -> LedgerGauges:
        s = ledger.stats()
        return LedgerGauges(
            s.queue_rows, s.queue_capacity, s.oldest_wait_seconds, s.committed_rows, s.failed_rows
        )

    return read


class GracefulServer(uvicorn.Server):
    """uvicorn, with readiness flipped before the listener closes on SIGTERM / SIGINT."""

    def __init__(
        self,
        config: uvicorn.Config,
        parts: ServerParts,
        drain_seconds: float,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.parts = parts
        self.drain_seconds = drain_seconds
        self.on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_ready is not None:
            self.on_ready()  # the socket is bound and listening: now it serves

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self.parts.service.draining
        self.parts.service.draining = True
        if first and self.drain_seconds > 0:
            log.info("draining: not ready; closing in %.1f s", self.drain_seconds)
            timer = threading.Timer(self.drain_seconds, self._close, (sig, frame))
            timer.daemon = True
            timer.start()
            return
        self._close(sig, frame)

    def _close(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after shutting down; a drained, clean stop is a
        # success (exit 0), which is what process supervisors expect.
        self._captured_signals.clear()


Compose = Callable[[ProjectConfig, ServerParts], None]
"""Adds the process's background jobs to freshly built parts (see the module doc)."""


def run_server(
    project: ProjectConfig,
    *,
    project_file: Path,
    compose: Compose,
    factory: str,
    access_log: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGTERM / SIGINT. With several workers each loads its own copy.

    Worker processes rebuild everything from the project file and the ``LOOPML_``
    environment, so command-line flags must have been turned into environment overrides;
    ``factory`` is the import string of the app factory they call (it must compose the
    same jobs). ``on_ready`` runs once the port is bound and the server listens (with
    several workers: once the shared socket is bound), never before a failed start.
    """
    settings = project.serve
    host, port, workers = settings.host, settings.port, settings.workers
    if workers > 1:
        os.environ[PROJECT_ENV] = str(project_file.resolve())
        multi = uvicorn.Config(
            factory, factory=True, host=host, port=port, workers=workers,
            access_log=access_log, log_level="info", **connection_options(settings),
        )  # fmt: skip
        sock = multi.bind_socket()  # exits with uvicorn's message if the port is taken
        if on_ready is not None:
            on_ready()
        Multiprocess(multi, sockets=[sock]).run()
        return
    parts = build_parts(project)
    compose(project, parts)
    config = uvicorn.Config(
        create_app(parts),
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        timeout_graceful_shutdown=30,
        **connection_options(settings),
    )
    GracefulServer(config, parts, project.serve.drain_seconds, on_ready).run()


def connection_options(settings: ServeConfig) -> dict[str, Any]:
    """uvicorn's connection limits from ``serve:`` (see :mod:`loopml.serve.connections`)."""
    return {
        "http": protocol(settings.header_timeout_seconds, settings.max_header_bytes),
        "timeout_keep_alive": settings.keep_alive_seconds,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }


def worker_app(compose: Compose) -> FastAPI:
    """The app of one worker process (``--workers N``), from the project file the parent
    named in the environment."""
    project = load_project(os.environ[PROJECT_ENV], os.environ)
    parts = build_parts(project)
    compose(project, parts)
    return create_app(parts)
