"""The FastAPI app: middleware, the one error-to-HTTP mapping, and the route objects.

Prediction routes live in :mod:`loopml.serve.routes` (``/predict``, ``/invocations``,
``/feedback``) and :mod:`loopml.serve.oip_routes` (the Open Inference Protocol v2), probes,
metrics and admin routes in :mod:`loopml.serve.operations`, the rollout admin routes in
:mod:`loopml.serve.rollout_routes`. Each is an object built over
the server's :class:`~loopml.serve.parts.ServerParts`. They read the raw body and hand it
to the codecs, which is several times faster than letting FastAPI build pydantic objects
per request; :mod:`loopml.serve.schemas` documents the same shapes in the OpenAPI document.

Every failure loopml raises carries its HTTP status, code and retry hint
(:class:`~loopml.errors.LoopmlError`), so one handler answers them all; a second answers
the framework's own 404 / 405, and a last one turns anything unexpected into a 500 whose
traceback goes to the log, not to the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from loopml.config import ServeConfig
from loopml.errors import LoopmlError
from loopml.serve.door import guard
from loopml.serve.oip_routes import OipRoutes
from loopml.serve.openapi import ServedDocument, mount_docs
from loopml.serve.operations import OperationRoutes
from loopml.serve.parts import ServerParts
from loopml.serve.responses import JSONBody, problem
from loopml.serve.rollout_routes import RolloutRoutes
from loopml.serve.routes import PredictionRoutes
from loopml.version import __version__

__all__ = ["create_app"]

log = logging.getLogger("loopml.serve")
_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed"}


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
        docs_url=None,
        redoc_url=None,
    )
    _errors(app, parts)
    routes: PredictionRoutes | OipRoutes | OperationRoutes | RolloutRoutes
    for routes in (
        PredictionRoutes(parts),
        OipRoutes(parts),
        OperationRoutes(parts),
        RolloutRoutes(parts),
    ):
        app.include_router(routes.router())
    settings = parts.settings
    app.openapi = ServedDocument(  # type: ignore[method-assign]
        app,
        parts.service,
        settings.max_rows,
        max_chars=settings.max_string_chars,
        token_paths=_token_paths(settings),
    )
    mount_docs(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id"],
        )
    guard(app, parts)
    return app


def _token_paths(settings: ServeConfig) -> tuple[str, ...]:
    """The routes that need a bearer token, as the server's settings say."""
    paths = ["/admin/"]
    if settings.feedback_auth == "token":
        paths.append("/feedback")
    if settings.predict_auth == "token":
        paths += ["/predict", "/invocations", "/v2/models/{name}/infer"]
        paths.append("/v2/models/{name}/versions/{version}/infer")
    return tuple(paths)


def _errors(app: FastAPI, parts: ServerParts) -> None:
    """The mapping from failures to HTTP answers; the body is always a Problem."""
    metrics = parts.metrics
    retry = {"Retry-After": str(parts.settings.ledger.retry_after_seconds)}

    def route_of(request: Request) -> str:
        found = request.scope.get("route")
        return str(getattr(found, "path", request.url.path))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path, exc_info=exc)
        metrics.refused(route_of(request), "internal")
        return problem(500, "internal", "unexpected server error; see the server log")

    async def refused(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, LoopmlError) or (exc.status >= 500 and not exc.retryable):
            return await unexpected(request, exc)
        metrics.refused(route_of(request), exc.error)
        if exc.logged:
            log.error("%s: %s", exc.error, exc)
        headers = retry if exc.retryable else exc.headers
        return JSONBody(exc.to_body(), status_code=exc.status, headers=headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):
            return await unexpected(request, exc)
        error = _HTTP_ERRORS.get(exc.status_code, "http_error")
        return problem(exc.status_code, error, str(exc.detail), headers=exc.headers)

    app.add_exception_handler(LoopmlError, refused)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
