"""The monitoring loop as a user runs it: serve -> traffic -> monitor -> alerts.

Stationary traffic raises nothing; drifted traffic raises a dataset-drift alert with its
evidence, delivered to a real local webhook, the alert file and ``loopml alerts``; normal
traffic clears it again. The server's gauges and ``loopml monitor run``'s reports show it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.serving import Project, Server, loopml, running

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.e2e]

WINDOW = 300
ALERTS = (
    "[{name: drift, metric: dataset_drift, above: 0.5, min_rows: 100, raise_after: 2, "
    "clear_after: 2, severity: critical}]"
)


@dataclass
class Hook:
    """A real HTTP server that keeps every JSON body POSTed to it."""

    bodies: list[Any] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def hook() -> Iterator[Hook]:
    received = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            received.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    received.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


def drifted(record: dict[str, Any]) -> dict[str, Any]:
    """The world moved: most inputs far from anything the model trained on."""
    out = dict(record)
    for name, factor in (("user_age", 3.0), ("user_tenure_days", 20.0), ("text_length", 15.0),
                         ("author_followers", 500.0), ("post_age_hours", 40.0),
                         ("hashtag_count", 9.0), ("feed_position", 30.0),
                         ("user_activity", 25.0)):  # fmt: skip
        if out.get(name) is not None:
            out[name] = out[name] * factor + factor
    out["user_country"] = "NG"
    out["user_device"] = "android"
    return out


def send(server: Server, records: list[dict[str, Any]], batch: int = 50) -> None:
    for start in range(0, len(records), batch):
        status, body = server.post_json("/predict", {"records": records[start : start + batch]})
        assert status == 200, body


def monitor_now(server: Server) -> dict[str, Any]:
    status, body = server.post_json(
        "/admin/monitor", {}, {"authorization": f"Bearer {server.token()}"}
    )
    assert status == 200, body
    return body


def gauge(server: Server, name: str) -> list[str]:
    text = server.get("/metrics")[1].decode()
    return [line for line in text.splitlines() if line.startswith(name)]


def test_stationary_then_drift_then_recovery(
    served_project: Project, hook: Hook, tmp_path: Path
) -> None:
    folder = served_project.folder
    env = {
        "LOOPML_MONITOR__WINDOW": str(WINDOW),
        "LOOPML_MONITOR__MIN_ROWS": "100",
        "LOOPML_MONITOR__INTERVAL_SECONDS": "0",
        "LOOPML_MONITOR__ALERTS": ALERTS,
        "LOOPML_MONITOR__STORE": "sqlite:///.loopml/monitor-e2e.db",
        "LOOPML_MONITOR__ALERT_LOG": str(tmp_path / "alerts.jsonl"),
        "LOOPML_MONITOR__REPORTS_DIR": str(tmp_path / "reports"),
        "LOOPML_MONITOR__WEBHOOK_URL": f"http://127.0.0.1:{hook.port}/alerts",
    }
    records = served_project.records(2 * WINDOW * 3)
    with running(served_project, "monitor-e2e", **env) as server:
        send(server, records[: 2 * WINDOW])
        quiet = monitor_now(server)
        assert quiet["windows"] == 2 and quiet["events"] == [] and quiet["active"] == []

        send(server, [drifted(r) for r in records[2 * WINDOW : 4 * WINDOW]])
        raised = monitor_now(server)
        assert [e["state"] for e in raised["events"]] == ["raised"]
        event = raised["events"][0]
        assert event["rule"] == "drift" and event["metric"] == "dataset_drift"
        evidence = event["evidence"]
        assert evidence["drift_share"] >= 0.5
        drifted_names = {d["feature"] for d in evidence["drifted_features"]}
        assert {"user_age", "text_length", "author_followers"} <= drifted_names
        # Labels print in their declared order (rule, metric, arm, severity): look inside.
        alerts_raised = gauge(server, "loopml_alerts_raised{")
        assert any('arm="champion"' in line for line in alerts_raised), alerts_raised
        shares = gauge(server, "loopml_drift_share{")
        assert shares and float(shares[0].rsplit(" ", 1)[1]) >= 0.5

        send(server, records[4 * WINDOW : 6 * WINDOW])
        cleared = monitor_now(server)
        assert [e["state"] for e in cleared["events"]] == ["cleared"]
        assert cleared["active"] == []

    states = [event["state"] for body in hook.bodies for event in _events(body)]
    assert states == ["raised", "cleared"]
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line)["state"] for line in lines] == ["raised", "cleared"]

    history = json.loads(loopml(folder, "alerts", "--all", "--json", env=env))
    assert history["active"] == []
    assert [e["state"] for e in history["events"]] == ["cleared", "raised"]

    report = json.loads(loopml(folder, "monitor", "run", "--json", env=env))
    assert report["events"] == [] and report["active"] == []
    html = Path(report["report_html"]).read_text()
    # Values render inside tags, so a "nan" would never stand alone as a word: any
    # occurrence counts.
    assert "user_age" in html and "<svg" in html and "nan" not in html.lower()


def _events(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and "alerts" in body:
        return list(body["alerts"])
    return [body]


def test_monitor_commands_on_thin_or_odd_input(served_project: Project, tmp_path: Path) -> None:
    folder = served_project.folder
    env = {
        "LOOPML_MONITOR__STORE": f"sqlite:///{tmp_path / 'monitor.db'}",
        "LOOPML_MONITOR__REPORTS_DIR": str(tmp_path / "reports"),
        "LOOPML_SERVE__LEDGER__URL": f"sqlite:///{tmp_path / 'empty-ledger.db'}",
    }
    empty = json.loads(loopml(folder, "monitor", "run", "--json", env=env))
    assert empty["windows"] == [] and empty["active"] == [] and empty["errors"] == []
    html = Path(empty["report_html"]).read_text()
    assert "No windows yet" in html

    assert "no alert raised" in loopml(folder, "alerts", env=env)

    bad = _loopml_failing(folder, "monitor", "run", "--window", "2 weeks", env=env)
    assert bad.returncode == 2
    assert "bad monitoring window" in bad.stdout + bad.stderr and "fix" in bad.stdout + bad.stderr


def test_a_version_without_profile_is_reported_then_backfilled(
    served_project: Project, tmp_path: Path
) -> None:
    """Versions trained before monitoring existed: the run says so and how to fix it; then
    ``loopml monitor profile`` builds the same profile training would have stored."""
    import mlflow

    folder = served_project.folder
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / '.loopml' / 'mlflow.db'}")
    tags = client.get_model_version("feed", "1").tags
    sha = tags["loopml.profile_sha256"]
    client.delete_model_version_tag("feed", "1", "loopml.profile_sha256")
    env = {
        "LOOPML_MONITOR__STORE": f"sqlite:///{tmp_path / 'monitor.db'}",
        "LOOPML_MONITOR__REPORTS_DIR": str(tmp_path / "reports"),
        "LOOPML_MONITOR__WINDOW": "100",
        "LOOPML_MONITOR__MIN_ROWS": "50",
    }
    try:
        with running(served_project, "no-profile", **{k: v for k, v in env.items()}) as server:
            send(server, served_project.records(120))
            ledger = f"sqlite:///{server.ledger_path}"
        run = json.loads(
            loopml(folder, "monitor", "run", "--json", env=env | {
                "LOOPML_SERVE__LEDGER__URL": ledger})
        )  # fmt: skip
        assert run["windows"] == []
        assert "version 1" in run["errors"][0] and "loopml monitor profile 1" in run["errors"][0]
        rebuilt = json.loads(loopml(folder, "monitor", "profile", "1", "--json"))
        assert rebuilt["version"] == "1" and rebuilt["features"] > 5
        again = json.loads(
            loopml(folder, "monitor", "run", "--json", env=env | {
                "LOOPML_SERVE__LEDGER__URL": ledger})
        )  # fmt: skip
        assert [w["rows"] for w in again["windows"]] == [100, 20]
        assert again["errors"] == []
    finally:
        if not client.get_model_version("feed", "1").tags.get("loopml.profile_sha256"):
            client.set_model_version_tag("feed", "1", "loopml.profile_sha256", sha)


def _loopml_failing(folder: Path, *args: str, env: dict[str, str]) -> Any:
    import os
    import subprocess
    import sys

    from tests.integration.serving import TRAIN_ENV

    full = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    return subprocess.run(
        [sys.executable, "-c", "from loopml.cli.main import run; run()", *args],
        cwd=folder, env=full | TRAIN_ENV | env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
