"""The server's door: what every request passes before a route, and the one failure of a
request that is nobody's fault but the client's connection.

:func:`guard` adds the ASGI guards of :mod:`loopml.serve.security` (the Host check, the
body's size, encoding and deadline) and answers a client that hangs up before its body
has arrived: that is counted as ``loopml_request_errors_total{error="client_disconnected"}``
and logged as one line — not as an internal error with a traceback, which would page
someone for a client's network.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from loopml.serve.parts import ServerParts
from loopml.serve.security import BodyLimit, HostCheck

__all__ = ["guard"]

log = logging.getLogger("loopml.serve")
DISCONNECTED = "client_disconnected"


def guard(app: FastAPI, parts: ServerParts) -> None:
    """Add the door's middleware (outermost) and the client-disconnect answer to ``app``."""
    settings = parts.settings
    metrics = parts.metrics

    async def disconnected(request: Request, exc: Exception) -> Response:
        found = request.scope.get("route")
        route = str(getattr(found, "path", request.url.path))
        metrics.refused(route, DISCONNECTED)
        client = request.client
        peer = f"{client.host}:{client.port}" if client else "a client"
        log.info("%s hung up before its request to %s was read", peer, route)
        return Response(status_code=400)  # never delivered: nobody is listening

    app.add_exception_handler(ClientDisconnect, disconnected)
    if "*" not in settings.allowed_hosts:
        app.add_middleware(HostCheck, allowed_hosts=list(settings.allowed_hosts))
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout_seconds
    )
