"""Connections that cannot be held open for free: uvicorn's HTTP protocol with a deadline
and a size limit on each request's head.

uvicorn closes a kept-alive connection that stays idle for ``timeout_keep_alive``
(``serve.keep_alive_seconds``), but a connection that never sends a request, or sends
its headers a byte at a time (slowloris), is held open forever, and httptools reads a head
of any size (uvicorn's ``h11_max_incomplete_event_size`` binds h11 only).
:class:`GuardedProtocol` gives every request head ``head_timeout`` seconds
(``serve.header_timeout_seconds``) from the moment the connection opens or the previous
response ends, then closes the connection; a head over ``max_head_bytes``
(``serve.max_header_bytes``) is answered with 431 and closed. The body's deadline is the
ASGI layer's (:class:`loopml.serve.security.BodyLimit`).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, cast

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

__all__ = ["GuardedProtocol", "protocol"]


class GuardedProtocol(HttpToolsProtocol):
    """httptools' protocol, with a deadline and a size limit on each request head."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        head_timeout: float = 10.0,
        max_head_bytes: int = 16 * 1024,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.head_timeout = head_timeout
        self.max_head_bytes = max_head_bytes
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            # httptools stops parsing and uvicorn answers with send_400_response (below)
            self._head_too_large = True
            raise _HeadTooLarge

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def _waiting(self) -> bool:
        """No request in flight: the connection is idle or sending a request's head."""
        cycle = self.cycle
        return cycle is None or bool(cycle.response_complete)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._waiting() and not self.transport.is_closing():
            self.transport.close()

    def _refuse_head(self) -> None:
        if self.transport.is_closing():
            return
        body = orjson.dumps(
            {
                "error": "header_too_large",
                "field": None,
                "row": None,
                "reason": f"the request head is larger than {self.max_head_bytes:,} bytes; "
                "send fewer or shorter headers (the limit is serve.max_header_bytes)",
            }
        )
        head = (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head + body)
        self.transport.close()


class _HeadTooLarge(Exception):
    pass


def protocol(head_timeout: float, max_head_bytes: int) -> type[asyncio.Protocol]:
    """The protocol to give ``uvicorn.Config(http=...)`` (a picklable partial, so the
    worker processes of ``--workers N`` get it too)."""
    made = functools.partial(
        GuardedProtocol, head_timeout=head_timeout, max_head_bytes=max_head_bytes
    )
    return cast(type[asyncio.Protocol], made)
