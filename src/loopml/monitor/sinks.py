"""Deliver alert events: to the log, to a JSON-lines file, to a webhook.

The thin I/O shell around :mod:`loopml.monitor.alerts`. :func:`deliver` never raises on a
delivery failure (a dead webhook must not stop monitoring): every attempt is reported as
a :class:`Delivery`, one per event and sink.

- ``log``: logger ``loopml.alerts``, WARNING for raised and INFO for cleared, the event's
  one-line message (the event's dict rides along as ``record.alert``).
- ``file``: one JSON object per line appended to ``monitor.alert_log``. Each line is one
  ``os.write`` on an ``O_APPEND`` descriptor, so processes appending at once never
  interleave partial lines; the file is fsynced before :func:`deliver` returns.
- ``webhook``: ONE ``POST`` per :func:`deliver` call carrying every event routed to it, as
  ``{"text": "<one message per line>", "alerts": [event, ...]}`` (``text`` makes the body
  readable by Slack- or Mattermost-style incoming webhooks as is). Up to 3 attempts, after
  0.2 s and 0.5 s, on a connection error, a timeout or a 5xx answer; a 4xx answer is not
  retried. A rule that lists ``webhook`` while ``monitor.webhook_url`` is unset is skipped
  for that sink (``Delivery.skipped``). The standard proxy variables apply (urllib).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from loopml.config import MonitorConfig
from loopml.monitor.alerts import AlertEvent
from loopml.version import __version__

__all__ = ["BACKOFF_SECONDS", "SINKS", "Delivery", "deliver", "post_json"]

SinkName = Literal["log", "file", "webhook"]
SINKS: tuple[SinkName, ...] = ("log", "file", "webhook")
BACKOFF_SECONDS = (0.2, 0.5)  # waits before the 2nd and 3rd webhook attempts
LOGGER = logging.getLogger("loopml.alerts")
USER_AGENT = f"loopml/{__version__}"


@dataclass(frozen=True)
class Delivery:
    """One event's delivery to one sink.

    ``ok`` means delivered; ``skipped`` means not attempted because the sink is not
    configured (not a failure, see :attr:`failed`). Webhook deliveries of one call share
    one POST, so they share ``ok``, ``attempts`` and ``error``. :meth:`to_dict` (what the
    store records per event) leaves the event out.
    """

    sink: SinkName
    event: AlertEvent
    ok: bool
    attempts: int = 1
    error: str | None = None
    skipped: bool = False

    @property
    def failed(self) -> bool:
        return not self.ok and not self.skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "sink": self.sink,
            "ok": self.ok,
            "attempts": self.attempts,
            "error": self.error,
            "skipped": self.skipped,
        }


def deliver(
    events: Sequence[AlertEvent],
    config: MonitorConfig,
    root: Path,
    *,
    rule_sinks: Mapping[str, Sequence[str]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Delivery]:
    """Send each event to the sinks of its rule; never raises on a delivery failure.

    ``rule_sinks`` maps a rule name to its sinks; by default
    ``{rule.name: rule.sinks for rule in config.rules}``. An event whose rule is in
    neither goes to every sink. A relative ``config.alert_log`` is resolved against
    ``root``. Returns one :class:`Delivery` per event and sink, in event then sink order
    (select an event's with ``d.event is event``).
    """
    if rule_sinks is None:
        rule_sinks = {rule.name: rule.sinks for rule in config.rules}
    routes = {
        sink: [i for i, event in enumerate(events) if sink in rule_sinks.get(event.rule, SINKS)]
        for sink in SINKS
    }
    path = Path(config.alert_log)
    found = [
        *_to_log(events, routes["log"]),
        *_to_file(events, routes["file"], path if path.is_absolute() else root / path),
        *_to_webhook(events, routes["webhook"], config, sleep),
    ]
    found.sort(key=lambda pair: (pair[0], SINKS.index(pair[1].sink)))
    return [delivery for _, delivery in found]


_Routed = list[tuple[int, Delivery]]  # (the event's index, its delivery)


def _to_log(events: Sequence[AlertEvent], indexes: Sequence[int]) -> _Routed:
    for i in indexes:
        level = logging.WARNING if events[i].state == "raised" else logging.INFO
        LOGGER.log(level, events[i].message, extra={"alert": events[i].to_dict()})
    return [(i, Delivery("log", events[i], ok=True)) for i in indexes]


def _to_file(events: Sequence[AlertEvent], indexes: Sequence[int], path: Path) -> _Routed:
    if not indexes:
        return []
    lines = [_line(events[i]) for i in indexes]
    written, error = _append_lines(path, lines)
    return [
        (i, Delivery("file", events[i], ok=n < written, error=None if n < written else error))
        for n, i in enumerate(indexes)
    ]


def _line(event: AlertEvent) -> bytes:
    text = json.dumps(event.to_dict(), allow_nan=False, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def _append_lines(path: Path, lines: Sequence[bytes]) -> tuple[int, str | None]:
    """Append ``lines`` durably; how many were written (and synced), and the error."""
    written = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            for line in lines:
                _write_all(fd, line)
                written += 1
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        # Written but not synced (fsync or close failed): nothing is known to be kept.
        kept = 0 if written == len(lines) else written
        return kept, f"cannot append to {path}: {exc}"
    return written, None


def _write_all(fd: int, data: bytes) -> None:
    # One write() per line keeps appenders from interleaving; a short write (disk full,
    # signal) is finished rather than lost.
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _to_webhook(
    events: Sequence[AlertEvent],
    indexes: Sequence[int],
    config: MonitorConfig,
    sleep: Callable[[float], None],
) -> _Routed:
    if not indexes:
        return []
    if not config.webhook_url:
        why = "skipped: monitor.webhook_url is not set"
        return [
            (i, Delivery("webhook", events[i], ok=False, attempts=0, error=why, skipped=True))
            for i in indexes
        ]
    body = {
        "text": "\n".join(events[i].message for i in indexes),
        "alerts": [events[i].to_dict() for i in indexes],
    }
    ok, attempts, error = post_json(
        config.webhook_url, body, timeout=config.webhook_timeout_seconds, sleep=sleep
    )
    return [
        (i, Delivery("webhook", events[i], ok=ok, attempts=attempts, error=error)) for i in indexes
    ]


def post_json(
    url: str,
    body: Mapping[str, Any],
    *,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bool, int, str | None]:
    """POST ``body`` as JSON with retries; ``(ok, attempts, error)``, never raises.

    >>> post_json("file:///etc/passwd", {}, timeout=1.0)
    (False, 0, "webhook URL 'file:///etc/passwd' is not http(s)")
    """
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return False, 0, f"webhook URL {url!r} is not http(s)"
    try:
        data = json.dumps(body, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        return False, 0, f"cannot encode the webhook body as JSON: {exc}"
    attempt = 0
    while True:
        attempt += 1
        retry, error = _post_once(url, data, timeout)
        if error is None:
            return True, attempt, None
        if not retry or attempt > len(BACKOFF_SECONDS):
            return False, attempt, error
        sleep(BACKOFF_SECONDS[attempt - 1])


def _post_once(url: str, data: bytes, timeout: float) -> tuple[bool, str | None]:
    """One POST: ``(worth retrying, error)``; error None means delivered."""
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code >= 500, f"webhook answered HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return True, f"cannot reach the webhook: {exc.reason}"
    except (OSError, http.client.HTTPException) as exc:
        return True, f"webhook request failed: {type(exc).__name__}: {exc}"
    return False, None
