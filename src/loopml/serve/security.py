"""The server's ASGI guards (DESIGN.md decision 10): the body's size, encoding and deadline,
and the Host header.

:class:`BodyLimit` refuses a declared ``Content-Length`` over the limit before a byte is
read and cuts a streamed body off as soon as it passes it. A ``Content-Encoding: gzip``
body is inflated as it arrives, and its *inflated* size counts against the same limit (a
gzip bomb stops at ``max_bytes + 1`` bytes of output); another encoding is 415. The body
must arrive within ``timeout`` seconds of the request's start, or the answer is 408 and
the connection is closed (a slow-body client holds no worker for long). These refusals
are raised from ``receive``, so the route's error handler answers and counts them:

================== ==== ===============================================================
error              HTTP when
================== ==== ===============================================================
body_too_large     413  declared, streamed or inflated over ``max_bytes``
unsupported_media  415  a ``Content-Encoding`` other than gzip / identity
_type
invalid_encoding   400  a body that is not the gzip stream it says it is
body_timeout       408  the body did not arrive in time
================== ==== ===============================================================

:class:`HostCheck` answers a ``Host`` outside ``serve.allowed_hosts`` (the DNS-rebinding
defence) with 400 and the same ``{error, field, row, reason}`` body as every refusal.
The admin token lives in :mod:`loopml.tokens`.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import orjson

from loopml.errors import InputError
from loopml.serve.table import truncate

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
GZIP = ("gzip", "x-gzip")


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (declared, streamed or inflated), inflate
    gzip, and give the body ``timeout`` seconds to arrive (see the module docs)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        body = _Body(self, receive, _encoding(scope))
        if body.inflater is not None:  # downstream sees the inflated body
            dropped = (b"content-encoding", b"content-length")
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k not in dropped]
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if body.close:  # the rest of the body is never read: do not keep this one
                    message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, body.receive, tracking_send)
        except InputError as exc:  # an app without the server's error handlers
            if started or exc is not body.raised:
                raise
            await _answer(send, exc.status, exc.error, exc.reason, exc.field)


class _Body:
    """The ``receive`` of one request under a :class:`BodyLimit`."""

    def __init__(self, limit: BodyLimit, receive: Receive, encoding: str | None) -> None:
        self.limit = limit
        self.upstream = receive
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + limit.timeout
        self.seen = 0
        self.inflated = 0
        self.done = False
        self.close = False
        self.refusal: InputError | None = None
        self.raised: InputError | None = None
        self.inflater: Any = None
        if encoding in GZIP:
            self.inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif encoding not in (None, "identity"):
            self.refusal = InputError(
                f"Content-Encoding {truncate(encoding)} is not accepted; send the body "
                "uncompressed or as gzip",
                error="unsupported_media_type",
                field="Content-Encoding",
                status=415,
            )

    async def receive(self) -> Message:
        if self.done:  # after the body, a wait for the disconnect has no deadline
            return await self.upstream()
        if self.refusal is not None:
            raise self._refuse(self.refusal)
        try:
            # asyncio's own deadline: a third of anyio.fail_after's cost per call (uvicorn
            # runs on asyncio)
            async with asyncio.timeout_at(self.deadline):
                message = await self.upstream()
        except TimeoutError:
            raise self._refuse(
                InputError(
                    f"the request body did not arrive within {self.limit.timeout:g} s; send it "
                    "at once (the server's limit is serve.body_timeout_seconds)",
                    error="body_timeout",
                    status=408,
                )
            ) from None
        if message["type"] != "http.request":
            return message
        chunk = message.get("body", b"")
        self.seen += len(chunk)
        if self.seen > self.limit.max_bytes:
            raise self._refuse(_over(f"is larger than {self.limit.max_bytes:,} bytes"))
        self.done = not message.get("more_body", False)
        if self.inflater is not None:
            message = {**message, "body": self._inflate(chunk)}
        return message

    def _inflate(self, chunk: bytes) -> bytes:
        room = self.limit.max_bytes - self.inflated
        try:
            out: bytes = self.inflater.decompress(chunk, room + 1)
        except zlib.error as exc:
            raise self._refuse(_not_gzip(f"it is not a valid gzip stream ({exc})")) from None
        self.inflated += len(out)
        if self.inflated > self.limit.max_bytes:
            raise self._refuse(_over(f"inflates to more than {self.limit.max_bytes:,} bytes"))
        if self.done and not self.inflater.eof:
            raise self._refuse(_not_gzip("its gzip stream ends before its end marker"))
        if self.inflater.unused_data:
            raise self._refuse(_not_gzip("it holds bytes after the end of its gzip stream"))
        return out

    def _refuse(self, error: InputError) -> InputError:
        self.close = not self.done
        self.done = True
        self.raised = error
        return error


def _not_gzip(why: str) -> InputError:
    return InputError(
        f"the body says Content-Encoding: gzip but {why}; send gzip, or no Content-Encoding",
        error="invalid_encoding",
        field="Content-Encoding",
        status=400,
    )


def _over(what: str) -> InputError:
    return InputError(
        f"the request body {what}; send fewer rows per request (or raise serve.max_body_bytes)",
        error="body_too_large",
        status=413,
    )


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return bytes(value)
    return None


def _encoding(scope: Scope) -> str | None:
    raw = _header(scope, b"content-encoding")
    return None if raw is None else raw.decode("latin-1").strip().lower()


def _content_length(scope: Scope) -> int | None:
    raw = _header(scope, b"content-length")
    try:
        return None if raw is None else int(raw)
    except ValueError:
        return None


async def _too_large(send: Send, max_bytes: int) -> None:
    reason = _over(f"is larger than {max_bytes:,} bytes").reason
    await _answer(send, 413, "body_too_large", reason)


async def _answer(
    send: Send, status: int, error: str, reason: str, field: str | None = None
) -> None:
    body = orjson.dumps({"error": error, "field": field, "row": None, "reason": reason})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HostCheck:
    """Answer only the ``Host`` names in ``allowed_hosts`` (``*.example.com`` matches its
    subdomains); anything else gets 400 with a Problem body (Starlette's TrustedHost
    middleware answers plain text)."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.exact = frozenset(h.lower() for h in allowed_hosts if not h.startswith("*."))
        self.suffixes = tuple(h[1:].lower() for h in allowed_hosts if h.startswith("*."))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allows(scope):
            await self.app(scope, receive, send)
            return
        raw = (_header(scope, b"host") or b"").decode("latin-1")
        shown = truncate(raw, 80) if raw else "(none)"
        await _answer(
            send,
            400,
            "invalid_host",
            f"the Host header {shown} is not a name this server answers to; add it to "
            "serve.allowed_hosts if it should be",
            field="Host",
        )

    def allows(self, scope: Scope) -> bool:
        host = host_name((_header(scope, b"host") or b"").decode("latin-1"))
        return host in self.exact or (bool(host) and host.endswith(self.suffixes))


def host_name(header: str) -> str:
    """The name of a ``Host`` header, without its port (IPv6 in brackets understood).

    >>> host_name("LocalHost:8080"), host_name("[::1]:8080"), host_name("::1")
    ('localhost', '::1', '::1')
    """
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else ""
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header
