"""Probes, metrics and the admin routes: how operators and orchestrators see the server.

``/health/live`` and ``/health/ready`` for probes, ``/metrics`` for Prometheus; the admin
routes change the server's state and need the admin token (``Authorization: Bearer``,
compared in constant time): ``POST /admin/reload`` checks the alias now,
``GET /admin/jobs`` lists the background jobs, ``POST /admin/jobs/{name}`` runs one now,
``POST /admin/monitor`` runs the monitor job (as ``loopml monitor run`` does); the rollout
routes (``/admin/rollout``) are in :mod:`loopml.serve.rollout_routes`.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loopml.errors import LoopmlError
from loopml.serve.metrics import CONTENT_TYPE
from loopml.serve.parts import ServerParts
from loopml.serve.responses import JSONBody, problem
from loopml.serve.schemas import Health, ReloadResponse, problem_responses
from loopml.tokens import bearer_matches

__all__ = ["OperationRoutes", "check_admin"]

MONITOR_JOB = "monitor"


class OperationRoutes:
    """Probes, ``/metrics`` and ``/admin/*`` of one server (its :class:`ServerParts`)."""

    def __init__(self, parts: ServerParts) -> None:
        self.parts = parts

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route(
            "/health/live", self.live, methods=["GET"], response_model=Health, tags=["operations"]
        )
        router.add_api_route(
            "/health/ready", self.ready, methods=["GET"], response_model=Health,
            responses=problem_responses(503), tags=["operations"],
        )  # fmt: skip
        router.add_api_route(
            "/metrics", self.metrics, methods=["GET"], response_class=Response, tags=["operations"]
        )
        refusals = problem_responses(401, 403, 409)
        for path, endpoint, method, answers in (
            ("/admin/reload", self.reload, "POST", ReloadResponse),
            ("/admin/jobs", self.jobs, "GET", None),
            ("/admin/jobs/{name}", self.run_job, "POST", None),
            ("/admin/monitor", self.monitor, "POST", None),
        ):
            router.add_api_route(
                path, endpoint, methods=[method], response_model=answers, responses=refusals,
                tags=["admin"],
            )  # fmt: skip
        return router

    async def live(self) -> Health:
        return Health(status="live")

    async def ready(self) -> Response:
        service = self.parts.service
        deployment = service.deployment
        if not service.ready:
            return problem(503, "not_ready", "the server is shutting down")
        body = Health(status="ready", model=deployment.model, version=deployment.version)
        return JSONBody(body.model_dump())

    async def metrics(self) -> Response:
        return Response(self.parts.metrics.exposition(), media_type=CONTENT_TYPE)

    async def reload(self, request: Request) -> Response:
        """Check the followed alias and the rollout state now, and swap the set (champion,
        challenger, plan) if they moved; answers the set it serves."""
        denied = check_admin(request, self.parts.token)
        if denied is not None:
            return denied
        reloader = self.parts.reloader
        if reloader is None:
            return problem(409, "reload_disabled", "this server does not follow an alias")
        outcome = await asyncio.wrap_future(reloader.reload_now())
        status = 200 if outcome.outcome != "failed" else 409
        return JSONBody(outcome.to_dict(), status_code=status)

    async def jobs(self, request: Request) -> Response:
        """The background jobs this server runs, and how each has fared."""
        denied = check_admin(request, self.parts.token)
        if denied is not None:
            return denied
        return JSONBody({"jobs": [job.status().to_dict() for job in self.parts.jobs.values()]})

    async def run_job(self, request: Request, name: str) -> Response:
        """Run one background job now and answer what it did."""
        denied = check_admin(request, self.parts.token)
        if denied is not None:
            return denied
        return await self._run(name)

    async def monitor(self, request: Request) -> Response:
        """Run the monitor now (as ``loopml monitor run`` does) and answer its summary."""
        denied = check_admin(request, self.parts.token)
        if denied is not None:
            return denied
        return await self._run(MONITOR_JOB)

    async def _run(self, name: str) -> Response:
        job = self.parts.jobs.get(name)
        if job is None:
            return problem(409, f"{name}_disabled", f"this server runs no {name}")
        try:
            result = await asyncio.to_thread(job.run_now)
        except LoopmlError as exc:
            return problem(409, f"{name}_failed", exc.headline)
        return JSONBody(result.summary())


def check_admin(request: Request, token: str) -> Response | None:
    """None if the request carries the admin token; else the 401 / 403 to send."""
    header = request.headers.get("authorization")
    if header is None:
        return problem(
            401,
            "unauthorized",
            "admin routes need 'Authorization: Bearer <token>' (the token is in the file "
            "named by serve.token_file, by default .loopml/admin.token)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not bearer_matches(header, token):
        return problem(403, "forbidden", "the bearer token does not match the admin token")
    return None
