"""The FastAPI app: middleware, the one error-to-HTTP mapping, health, metrics, admin.

Prediction routes live in :mod:`loopml.serve.routes` (``/predict``, ``/invocations``,
``/feedback``) and :mod:`loopml.serve.oip_routes` (the Open Inference Protocol v2). They
read the raw body and hand it to the codecs, which is several times faster than letting
FastAPI build pydantic objects per request; :mod:`loopml.serve.schemas` documents the same
shapes in the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from loopml.config import ServeConfig
from loopml.errors import InputError, LoopmlError
from loopml.ledger import DuplicateRequest, LedgerClosed, LedgerError, LedgerFull
from loopml.serve import oip_routes, routes
from loopml.serve.metrics import CONTENT_TYPE, ServeMetrics
from loopml.serve.reload import Reloader
from loopml.serve.responses import JSONBody, problem
from loopml.serve.schemas import Health, ReloadResponse, component_schemas, problem_responses
from loopml.serve.security import BodyLimit
from loopml.serve.service import PredictionService
from loopml.tokens import bearer_matches
from loopml.version import __version__

if TYPE_CHECKING:
    from loopml.monitor.loop import MonitorLoop

log = logging.getLogger("loopml.serve")


@dataclass
class ServerParts:
    """Everything the routes need, built once by :mod:`loopml.serve.server`."""

    service: PredictionService
    metrics: ServeMetrics
    settings: ServeConfig
    token: str
    reloader: Reloader | None = None
    monitor: MonitorLoop | None = None
    durable: bool = True
    on_start: list[Callable[[], None]] = field(default_factory=list)
    on_stop: list[Callable[[], None]] = field(default_factory=list)


def create_app(parts: ServerParts) -> FastAPI:
    """The app for one server process."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for start in parts.on_start:
            start()
        try:
            yield
        finally:
            parts.service.draining = True
            for stop in parts.on_stop:
                # Closing the ledger drains its queue: run it off the event loop.
                await asyncio.to_thread(stop)

    app = FastAPI(
        title="loopml prediction server",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.parts = parts
    _errors(app, parts)
    app.include_router(routes.router)
    app.include_router(oip_routes.router)
    _operations(app, parts)
    _admin(app, parts)
    _openapi(app)
    settings = parts.settings
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id"],
        )
    if "*" not in settings.allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def _errors(app: FastAPI, parts: ServerParts) -> None:
    """The one mapping from failures to HTTP answers; the body is always a Problem."""
    metrics = parts.metrics
    retry = str(parts.settings.ledger.retry_after_seconds)

    def route_of(request: Request) -> str:
        found = request.scope.get("route")
        return str(getattr(found, "path", request.url.path))

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> Response:
        metrics.refused(route_of(request), exc.error)
        return JSONBody(exc.to_body(), status_code=exc.status)

    @app.exception_handler(LedgerFull)
    async def ledger_full(request: Request, exc: LedgerFull) -> Response:
        metrics.refused(route_of(request), "ledger_full")
        metrics.ledger_full.inc()
        reason = "the prediction ledger is full; retry after the Retry-After delay"
        return problem(503, "ledger_full", reason, headers={"Retry-After": retry})

    @app.exception_handler(LedgerClosed)
    async def ledger_closed(request: Request, exc: LedgerClosed) -> Response:
        metrics.refused(route_of(request), "shutting_down")
        reason = "the server is shutting down; retry on another replica"
        return problem(503, "shutting_down", reason, headers={"Retry-After": retry})

    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, exc: LedgerError) -> Response:
        metrics.refused(route_of(request), "ledger_unavailable")
        log.error("ledger write failed: %s", exc)
        reason = "the prediction could not be recorded, so it is not served; retry later"
        return problem(503, "ledger_unavailable", reason, headers={"Retry-After": retry})

    @app.exception_handler(DuplicateRequest)
    async def duplicate(request: Request, exc: DuplicateRequest) -> Response:
        metrics.refused(route_of(request), "duplicate_request_id")
        reason = "this request id was used before; send a new id (or none to get one)"
        return problem(409, "duplicate_request_id", reason, field="request_id")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        metrics.refused(route_of(request), "invalid_request")
        reason = str(first.get("msg", "invalid request"))
        return problem(422, "invalid_request", reason, field=where)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, error, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        metrics.refused(route_of(request), "internal")
        return problem(500, "internal", "unexpected server error; see the server log")


def _operations(app: FastAPI, parts: ServerParts) -> None:
    """Probes, metrics and the admin routes."""
    service = parts.service

    @app.get("/health/live", response_model=Health, tags=["operations"])
    async def live() -> Health:
        return Health(status="live")

    @app.get(
        "/health/ready",
        response_model=Health,
        responses=problem_responses(503),
        tags=["operations"],
    )
    async def ready() -> Response:
        deployment = service.deployment
        if not service.ready:
            return problem(503, "not_ready", "the server is shutting down")
        body = Health(status="ready", model=deployment.model, version=deployment.version)
        return JSONBody(body.model_dump())

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        return Response(parts.metrics.exposition(), media_type=CONTENT_TYPE)


def _admin(app: FastAPI, parts: ServerParts) -> None:
    """Routes that change the server's state: they need the admin token."""

    @app.post(
        "/admin/reload",
        response_model=ReloadResponse,
        responses=problem_responses(401, 403, 409),
        tags=["admin"],
    )
    async def reload(request: Request) -> Response:
        denied = check_admin(request, parts.token)
        if denied is not None:
            return denied
        if parts.reloader is None:
            return problem(409, "reload_disabled", "this server does not follow an alias")
        outcome = await asyncio.wrap_future(parts.reloader.reload_now())
        status = 200 if outcome.outcome != "failed" else 409
        return JSONBody(outcome.to_dict(), status_code=status)

    @app.post("/admin/monitor", responses=problem_responses(401, 403, 409), tags=["admin"])
    async def monitor(request: Request) -> Response:
        """Run the monitor now (as ``loopml monitor run`` does) and answer its summary."""
        denied = check_admin(request, parts.token)
        if denied is not None:
            return denied
        if parts.monitor is None:
            return problem(409, "monitor_disabled", "this server runs no monitor")
        try:
            result = await asyncio.to_thread(parts.monitor.run_now)
        except LoopmlError as exc:
            return problem(409, "monitor_failed", exc.headline)
        return JSONBody(
            {
                "windows": len(result.complete_windows),
                "events": [e.to_dict() for e in result.events],
                "active": [a.to_dict() for a in result.active],
                "errors": result.errors,
            }
        )


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


def _openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                component_schemas()
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
