from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from loopml.errors import ConfigError
from loopml.serve.security import BodyLimit, bearer_matches, ensure_token, read_token

pytestmark = pytest.mark.unit


def test_token_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "admin.token"
    token, created = ensure_token(path)
    assert created and len(token) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert ensure_token(path) == (token, False)


def test_a_token_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    ensure_token(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_token(path)


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret-token-value", True),
        ("bearer s3cret-token-value", True),
        ("Bearer s3cret-token-valuX", False),
        ("Basic s3cret-token-value", False),
        ("s3cret-token-value", False),
        (None, False),
        ("", False),
    ],
)
def test_bearer_matches(header: str | None, ok: bool) -> None:
    assert bearer_matches(header, "s3cret-token-value") is ok


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
