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


# -- gzip, the body's deadline, the Host check -------------------------------------------


def call_with(app: Any, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> list[Any]:
    scope = {"type": "http", "headers": headers}
    queue = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not queue:
            await asyncio.sleep(3600)  # a client that sends nothing more
        return queue.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


GZ = [(b"content-encoding", b"gzip")]


def problem(sent: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    import orjson

    return sent[0]["status"], orjson.loads(sent[1]["body"])


def test_a_gzip_body_is_inflated_as_it_arrives() -> None:
    import gzip

    packed = gzip.compress(b'{"records": [{"a": 1}]}' * 3)
    chunks = [packed[:10], packed[10:20], packed[20:]]
    sent = call_with(BodyLimit(echo, 1024), chunks, [*GZ, (b"content-length", b"99")])
    assert sent[0]["status"] == 200 and sent[1]["body"] == b'{"records": [{"a": 1}]}' * 3


def test_a_gzip_bomb_stops_at_the_limit() -> None:
    import gzip

    bomb = gzip.compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000
    sent = call_with(BodyLimit(echo, 1_000_000), [bomb], GZ)
    status, body = problem(sent)
    assert (status, body["error"]) == (413, "body_too_large")
    assert "inflates to more than 1,000,000 bytes" in body["reason"]


@pytest.mark.parametrize(
    ("chunks", "encoding", "status", "words"),
    [
        ([b"not gzip at all"], b"gzip", 400, "not a valid gzip stream"),
        ([__import__("gzip").compress(b"abc")[:-9]], b"gzip", 400, "ends before"),
        ([__import__("gzip").compress(b"a") * 2], b"gzip", 400, "after the end"),
        ([b"x"], b"br", 415, "Content-Encoding 'br' is not accepted"),
    ],
)
def test_bodies_that_are_not_the_encoding_they_claim_are_refused(
    chunks: list[bytes], encoding: bytes, status: int, words: str
) -> None:
    got, body = problem(call_with(BodyLimit(echo, 1024), chunks, [(b"content-encoding", encoding)]))
    assert got == status and words in body["reason"]


def test_a_stalled_body_gets_408() -> None:
    async def reader(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    scope = {"type": "http", "headers": []}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not sent and not getattr(receive, "once", False):
            receive.once = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": b"part", "more_body": True}
        await asyncio.sleep(3600)
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(BodyLimit(reader, 1024, timeout=0.2)(scope, receive, send))
    status, body = problem(sent)
    assert (status, body["error"]) == (408, "body_timeout")
    assert (b"connection", b"close") in sent[0]["headers"]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        (b"127.0.0.1:8080", True),
        (b"LOCALHOST", True),
        (b"[::1]:8080", True),
        (b"api.example.com", True),
        (b"example.com.evil.net", False),
        (b"evil.net", False),
        (b"", False),
    ],
)
def test_the_host_check_answers_with_a_problem_body(host: bytes, allowed: bool) -> None:
    from loopml.serve.security import HostCheck

    app = HostCheck(echo, ["127.0.0.1", "localhost", "::1", "*.example.com"])
    headers = [(b"host", host)] if host else []
    sent = call_with(app, [b"ok"], headers)
    if allowed:
        assert sent[0]["status"] == 200
    else:
        status, body = problem(sent)
        assert (status, body["error"], body["field"], body["row"]) == (
            400,
            "invalid_host",
            "Host",
            None,
        )
        assert "serve.allowed_hosts" in body["reason"]
