"""The rollout admin API: ``POST /admin/rollout/{action}`` and ``GET /admin/rollout``.

An action (start, step, pause, resume, abort, promote, rollback; an optional JSON body with
``version``, ``strategy``, ``reason``, ``force``) runs the project's rollout controller in a
worker thread, as ``loopml rollout ACTION`` does, audited as ``admin-api@<client>``; then
this replica reloads at once, so it routes by the new state without waiting for its next
poll (the other replicas follow within ``serve.poll_seconds``). ``GET`` answers the
rollout state and the plan this replica routes by. Both need the admin token.

The server knows no controller: :func:`loopml.serve.server.build_parts` hands it the
project's as :class:`RolloutHooks` (plain callables), which keeps this module testable with
fakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from loopml.errors import GateFailed, InputError, LoopmlError, RegistryError
from loopml.rollout.controller import ACTIONS
from loopml.serve.operations import check_admin
from loopml.serve.parts import RolloutHooks, ServerParts
from loopml.serve.responses import JSONBody, problem
from loopml.serve.schemas import RolloutAction, problem_responses

__all__ = ["RolloutHooks", "RolloutRoutes", "parse_action"]


class RolloutRoutes:
    """The rollout admin routes of one server (its :class:`ServerParts`)."""

    def __init__(self, parts: ServerParts) -> None:
        self.parts = parts

    def router(self) -> APIRouter:
        router = APIRouter(tags=["admin"])
        router.add_api_route(
            "/admin/rollout/{action}", self.act, methods=["POST"],
            responses=problem_responses(401, 403, 404, 409, 422),
            openapi_extra={
                "requestBody": {"required": False, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/RolloutAction"}}}},
            },
        )  # fmt: skip
        router.add_api_route(
            "/admin/rollout", self.status, methods=["GET"],
            responses=problem_responses(401, 403, 409),
        )  # fmt: skip
        return router

    async def act(self, request: Request, action: str) -> Response:
        """Run one rollout action, then reload this replica; answers what it did."""
        denied = check_admin(request, self.parts.token)
        if denied is not None:
            return denied
        if action not in ACTIONS:
            raise InputError(
                f"no rollout action {action[:40]!r}; one of {', '.join(ACTIONS)}",
                error="unknown_action", field="action", status=404,
            )  # fmt: skip
        params = parse_action(await request.body())
        hooks = self.parts.rollout
        if hooks is None:
            return problem(
                409, "rollout_disabled",
                "this server cannot open the rollout state database (rollout.state); see "
                "its log",
            )  # fmt: skip
        client = request.client.host if request.client is not None else "unknown"
        try:
            result = await asyncio.to_thread(hooks.act, action, f"admin-api@{client}", params)
        except (RegistryError, GateFailed) as exc:
            return _refused(exc, 409)
        except LoopmlError as exc:
            return _refused(exc, exc.status)
        reloaded = await self._reload()
        return JSONBody(dict(result) | {"serving": reloaded})

    async def status(self, request: Request) -> Response:
        """The model's rollout (the active one, else the latest) and this replica's plan."""
        denied = check_admin(request, self.parts.token)
        if denied is not None:
            return denied
        hooks = self.parts.rollout
        state: Mapping[str, Any] | None = None
        if hooks is not None:
            try:
                state = await asyncio.to_thread(hooks.status)
            except LoopmlError as exc:
                return _refused(exc, 409)
        return JSONBody({"rollout": state, "serving": self.parts.service.deployments.to_dict()})

    async def _reload(self) -> dict[str, Any]:
        reloader = self.parts.reloader
        if reloader is None:
            return self.parts.service.deployments.to_dict()
        outcome = await asyncio.wrap_future(reloader.reload_now())
        return outcome.to_dict()


def parse_action(body: bytes) -> dict[str, Any]:
    """The action's parameters from an optional JSON object body (unset fields left out)."""
    if not body.strip():
        return {}
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InputError("the body must be a JSON object", error="malformed_request",
                         status=400) from None  # fmt: skip
    if not isinstance(raw, dict):
        raise InputError("the body must be a JSON object", error="wrong_type")
    try:
        parsed = RolloutAction.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise InputError(f"{first['msg']}", error="invalid_input", field=where) from None
    return parsed.model_dump(exclude_unset=True)


def _refused(exc: LoopmlError, status: int) -> Response:
    """The Problem of a refused action: the error's headline and its fix (an operator
    with the admin token reads it, not a client)."""
    reason = exc.headline + (f"; fix: {exc.fix}" if exc.fix else "")
    error = exc.error if exc.status < 500 else _snake(type(exc).__name__)
    return problem(status, error, reason)


def _snake(name: str) -> str:
    """``GateFailed`` -> ``gate_failed``; ``RegistryError`` -> ``registry``."""
    name = name.removesuffix("Error")
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
