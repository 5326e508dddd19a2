from __future__ import annotations

import asyncio
from typing import Any

import pytest

from loopml.serve.security import BodyLimit

pytestmark = pytest.mark.unit


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def call(app: Any, chunks: list[bytes], length: int | None) -> list[dict[str, Any]]:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    scope = {"type": "http", "headers": headers}
    queue = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_body_limit_passes_small_bodies() -> None:
    sent = call(BodyLimit(echo, 10), [b"12345"], 5)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"12345"


def test_body_limit_refuses_declared_large_bodies_before_reading() -> None:
    sent = call(BodyLimit(echo, 10), [b"x" * 20], 20)
    assert sent[0]["status"] == 413
    assert b"body_too_large" in sent[1]["body"]


def test_body_limit_cuts_off_streamed_bodies() -> None:
    sent = call(BodyLimit(echo, 10), [b"x" * 6, b"x" * 6], None)
    assert sent[0]["status"] == 413
