"""The server's response types: JSON written by orjson, and the Problem body of every 4xx/5xx."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response


class JSONBody(Response):
    """JSON written by orjson (FastAPI's ORJSONResponse is deprecated)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem(status: int, error: str, reason: str, **where: Any) -> JSONBody:
    """A Problem body, ``{error, field, row, reason}`` (:class:`~loopml.serve.schemas.Problem`)."""
    body = {"error": error, "field": where.get("field"), "row": where.get("row"), "reason": reason}
    return JSONBody(body, status_code=status, headers=where.get("headers"))
