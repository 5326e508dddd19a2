"""Alert delivery: the log, a JSON-lines file, and a webhook on a real local HTTP server."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from loopml.config import AlertRule, MonitorConfig
from loopml.monitor.alerts import AlertEvent, WindowView, evaluate
from loopml.monitor.sinks import BACKOFF_SECONDS, Delivery, deliver, post_json

pytestmark = pytest.mark.unit


def make_events(evidence: dict[str, Any] | None = None) -> list[AlertEvent]:
    """A raised event of rule 'drift' and a cleared one of rule 'floor', for real."""
    rules = [
        AlertRule(name="drift", metric="drift_share", above=0.5, min_rows=1, raise_after=1),
        AlertRule(
            name="floor", metric="estimated.auc", below=0.7, min_rows=1, raise_after=1,
            clear_after=1, severity="critical",
        ),
    ]  # fmt: skip
    states: dict[Any, Any] = {}
    events: list[AlertEvent] = []
    for index, (share, auc) in enumerate([(0.1, 0.6), (0.9, 0.8)]):
        view = WindowView(
            "feed", "3", "champion", index, 60.0 * index, 60.0 * index + 60, 1000, 0,
            {"drift_share": share, "estimated.auc": auc},
        )  # fmt: skip
        states, new = evaluate(rules, view, states, evidence)
        events.extend(new)
    assert [(e.rule, e.state) for e in events] == [
        ("floor", "raised"),
        ("drift", "raised"),
        ("floor", "cleared"),
    ]
    return events


@dataclass
class Hook:
    """A local HTTP server answering POSTs with scripted statuses (then 200)."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((self.path, dict(self.headers.items()), body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/loopml"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def config(**changes: Any) -> MonitorConfig:
    values: dict[str, Any] = {"alert_log": "state/alerts.jsonl"}
    values.update(changes)
    return MonitorConfig(**values)


def only(deliveries: list[Delivery], sink: str) -> list[Delivery]:
    return [d for d in deliveries if d.sink == sink]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_webhook_posts_every_event_in_one_json_body(hook: Hook, tmp_path: Path) -> None:
    events = make_events()
    sleeps = Sleeps()
    deliveries = deliver(
        events, config(webhook_url=hook.url), tmp_path, rule_sinks={}, sleep=sleeps
    )
    assert len(hook.received) == 1
    path, headers, body = hook.received[0]
    assert path == "/hooks/loopml"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("loopml")
    payload = json.loads(body)
    assert payload["alerts"] == [e.to_dict() for e in events]
    assert payload["text"].splitlines() == [e.message for e in events]
    webhook = only(deliveries, "webhook")
    assert [(d.event, d.ok, d.attempts, d.error) for d in webhook] == [
        (e, True, 1, None) for e in events
    ]
    assert sleeps == []


def test_webhook_retries_a_5xx_then_succeeds(hook: Hook, tmp_path: Path) -> None:
    hook.statuses = [500, 503]
    sleeps = Sleeps()
    deliveries = deliver(make_events(), config(webhook_url=hook.url), tmp_path, sleep=sleeps)
    assert len(hook.received) == 3
    assert {(d.ok, d.attempts) for d in only(deliveries, "webhook")} == {(True, 3)}
    assert sleeps == list(BACKOFF_SECONDS) == [0.2, 0.5]


def test_webhook_gives_up_after_three_attempts(hook: Hook) -> None:
    hook.statuses = [500, 500, 500, 500]
    sleeps = Sleeps()
    ok, attempts, error = post_json(hook.url, {"alerts": []}, timeout=5.0, sleep=sleeps)
    assert (ok, attempts, len(hook.received)) == (False, 3, 3)
    assert error is not None and "HTTP 500" in error


def test_webhook_does_not_retry_a_4xx(hook: Hook, tmp_path: Path) -> None:
    hook.statuses = [400]
    sleeps = Sleeps()
    deliveries = deliver(make_events(), config(webhook_url=hook.url), tmp_path, sleep=sleeps)
    webhook = only(deliveries, "webhook")
    assert len(hook.received) == 1
    assert sleeps == []
    assert all((d.ok, d.attempts, d.failed) == (False, 1, True) for d in webhook)
    assert all(d.error is not None and "HTTP 400" in d.error for d in webhook)


def test_an_unreachable_webhook_fails_without_raising(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    sleeps = Sleeps()
    deliveries = deliver(make_events(), config(webhook_url=url), tmp_path, sleep=sleeps)
    webhook = only(deliveries, "webhook")
    assert all((d.ok, d.attempts) == (False, 3) for d in webhook)
    assert all(d.error is not None and "cannot reach" in d.error for d in webhook)
    assert sleeps == [0.2, 0.5]
    # The other sinks still delivered.
    assert all(d.ok for d in deliveries if d.sink != "webhook")


def test_only_http_webhooks_are_called(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x")
    ok, attempts, error = post_json(secret.as_uri(), {}, timeout=1.0)
    assert (ok, attempts) == (False, 0)
    assert error is not None and "not http(s)" in error


def test_webhook_without_url_is_skipped(tmp_path: Path) -> None:
    deliveries = deliver(make_events(), config(), tmp_path)
    webhook = only(deliveries, "webhook")
    assert len(webhook) == 3
    assert all(d.skipped and not d.ok and not d.failed and d.attempts == 0 for d in webhook)
    assert all(d.error is not None and "webhook_url" in d.error for d in webhook)


def test_file_sink_appends_json_lines(tmp_path: Path) -> None:
    events = make_events(evidence={"drifted_features": [{"feature": "age", "p": 0.001}]})
    deliver(events, config(), tmp_path)
    deliver(events[:1], config(), tmp_path)
    lines = (tmp_path / "state" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [e.to_dict() for e in [*events, events[0]]]


def test_file_sink_takes_an_absolute_path(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "deep" / "log.jsonl"
    deliver(make_events(), config(alert_log=str(target)), tmp_path / "project")
    assert len(target.read_text().splitlines()) == 3


def test_file_sink_failure_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "state" / "alerts.jsonl").mkdir(parents=True)  # a folder where the file goes
    deliveries = deliver(make_events(), config(), tmp_path)
    files = only(deliveries, "file")
    assert len(files) == 3
    assert all(d.failed and d.error is not None and "alerts.jsonl" in d.error for d in files)
    assert all(d.ok for d in only(deliveries, "log"))


def test_concurrent_appenders_never_interleave_lines(tmp_path: Path) -> None:
    # Lines far bigger than a stdio buffer: buffered writes would split and interleave them.
    events = make_events(evidence={"blob": "x" * 50_000})

    def append() -> None:
        for _ in range(10):
            deliver(events, config(), tmp_path, rule_sinks={"drift": ["file"], "floor": ["file"]})

    threads = [threading.Thread(target=append) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = (tmp_path / "state" / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 4 * 10 * 3
    assert all(json.loads(line)["evidence"]["blob"] == "x" * 50_000 for line in lines)


def test_log_sink_warns_on_raise_and_informs_on_clear(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = make_events()
    with caplog.at_level(logging.INFO, logger="loopml.alerts"):
        deliveries = deliver(events, config(), tmp_path, rule_sinks={"drift": ["log"]})
    records = [r for r in caplog.records if r.name == "loopml.alerts"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, events[0].message),
        (logging.WARNING, events[1].message),
        (logging.INFO, events[2].message),
    ]
    assert records[1].alert == events[1].to_dict()  # type: ignore[attr-defined]
    # 'drift' goes to the log only; 'floor' is not in rule_sinks, so everywhere.
    assert [(d.event.rule, d.sink) for d in deliveries] == [
        ("floor", "log"),
        ("floor", "file"),
        ("floor", "webhook"),
        ("drift", "log"),
        ("floor", "log"),
        ("floor", "file"),
        ("floor", "webhook"),
    ]


def test_rule_sinks_come_from_the_config_by_default(tmp_path: Path, hook: Hook) -> None:
    rules = (
        AlertRule(name="drift", metric="drift_share", above=0.5, sinks=("webhook",)),
        AlertRule(name="floor", metric="estimated.auc", below=0.7, sinks=("file",)),
    )
    settings = config(alerts=rules, webhook_url=hook.url)
    deliveries = deliver(make_events(), settings, tmp_path)
    assert [(d.event.rule, d.sink, d.ok) for d in deliveries] == [
        ("floor", "file", True),
        ("drift", "webhook", True),
        ("floor", "file", True),
    ]
    assert len(json.loads(hook.received[0][2])["alerts"]) == 1
    assert deliveries[0].to_dict() == {
        "sink": "file", "ok": True, "attempts": 1, "error": None, "skipped": False,
    }  # fmt: skip


def test_no_events_no_delivery(tmp_path: Path) -> None:
    assert deliver([], config(webhook_url="http://127.0.0.1:9/x"), tmp_path) == []
    assert not (tmp_path / "state").exists()


def test_a_body_that_is_not_json_is_an_error_not_an_exception() -> None:
    ok, attempts, error = post_json("http://127.0.0.1:9/x", {"v": float("nan")}, timeout=1.0)
    assert (ok, attempts) == (False, 0)
    assert error is not None and "JSON" in error
