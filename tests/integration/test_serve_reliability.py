"""Tests that try to break the server: hot swaps under load, a corrupt version, kill -9,
SIGTERM with requests in flight, a full ledger queue, admin routes without the token."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.load import Load
from tests.integration.serving import Project, Server, loopml, promote, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def champion_back(served_project: Project) -> Iterator[None]:
    """Tests that move the champion put version 1 back, whatever happens."""
    yield
    promote(served_project, "1")


def wait_until(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def metric(server: Server, line: str) -> float:
    text = server.get("/metrics")[1].decode()
    for row in text.splitlines():
        if row.startswith(line):
            return float(row.rsplit(" ", 1)[1])
    return 0.0


def test_hot_reload_under_load_fails_no_request(
    served_project: Project, champion_back: None
) -> None:
    record = served_project.records(1)[0]
    with running(served_project, "reload") as server, Load(server.port, record) as load:
        load.wait_for(100)
        promote(served_project, "2")
        wait_until(lambda: load.result.versions["2"] >= 100)
        result = load.stop()
    assert result.failures() == {}
    assert result.versions["1"] >= 100 and result.versions["2"] >= 100
    assert set(result.acknowledged) <= {rid for rid, _ in server.ledger_ids()}


def artifact_file(project: Project, version: str) -> Path:
    models = json.loads(loopml(project.folder, "models", "--json"))
    run_id = next(m["run_id"] for m in models if m["version"] == version)
    found = list((project.folder / ".loopml").rglob(f"{run_id}/artifacts/serving/model.onnx"))
    assert len(found) == 1, found
    return found[0]


def test_corrupt_version_is_rejected_while_the_old_one_serves(
    served_project: Project, champion_back: None
) -> None:
    target = artifact_file(served_project, "3")
    original = target.read_bytes()
    record = served_project.records(1)[0]
    # promote refuses a version whose artifact does not match its digest (issue 12), so
    # the alias moves first and the file is corrupted behind it: the server (polling
    # rarely here) finds it corrupt when told to reload.
    try:
        with (
            running(served_project, "corrupt", LOOPML_SERVE__POLL_SECONDS="3600") as server,
            Load(server.port, record) as load,
        ):
            load.wait_for(50)
            promote(served_project, "3")
            target.write_bytes(original[: len(original) // 2] + b"garbage")
            status, body = server.post_json(
                "/admin/reload", {}, {"authorization": f"Bearer {server.token()}"}
            )
            assert status == 409, body
            assert body["outcome"] == "failed" and body["serving"] == "1"
            assert body["target"] == "3"
            load.wait_for(len(load.result.acknowledged) + 50)
            result = load.stop()
            assert metric(server, 'loopml_model_reloads_total{outcome="failed"}') >= 1
            ready = json.loads(server.get("/health/ready")[1])
        assert ready["version"] == "1"
        assert result.failures() == {}
        assert set(result.versions) == {"1"}
    finally:
        target.write_bytes(original)


def test_kill_9_loses_no_acknowledged_prediction(served_project: Project) -> None:
    record = served_project.records(1)[0]
    server = Server(served_project, "kill9").start()
    try:
        with Load(server.port, record, clients=8) as load:
            load.wait_for(300)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(10)
            result = load.stop()
        acknowledged = set(result.acknowledged)
        assert len(acknowledged) >= 300
        restarted = Server(served_project, "kill9").start()
        try:
            recorded = {rid for rid, _ in restarted.ledger_ids()}
        finally:
            restarted.kill()
        assert acknowledged <= recorded, f"lost {len(acknowledged - recorded)} acknowledged"
    finally:
        server.kill()


def test_sigterm_finishes_in_flight_requests_and_exits_0(served_project: Project) -> None:
    record = served_project.records(1)[0]
    server = Server(served_project, "sigterm", env={"LOOPML_SERVE__DRAIN_SECONDS": "1.5"})
    server.start()
    try:
        with Load(server.port, record, clients=8) as load:
            load.wait_for(200)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: server.get("/health/ready")[0] == 503)
            assert server.get("/health/ready")[0] == 503  # not ready, still answering
            served_while_draining = len(load.result.acknowledged)
            load.wait_for(served_while_draining + 20)
            assert server.proc.wait(30) == 0, server.output()
            result = load.stop()
        assert len(result.acknowledged) >= served_while_draining + 20
        assert not [s for s in result.statuses if isinstance(s, int) and s >= 500 and s != 503]
        recorded = {rid for rid, _ in server.ledger_ids()}
        assert set(result.acknowledged) <= recorded
    finally:
        server.kill()


def test_full_ledger_queue_answers_503_with_retry_after(served_project: Project) -> None:
    record = served_project.records(1)[0]
    env = {
        "LOOPML_SERVE__LEDGER__MODE": "async",
        "LOOPML_SERVE__LEDGER__QUEUE_SIZE": "3",
        "LOOPML_SERVE__MAX_ROWS": "3",
    }
    with running(served_project, "full", **env) as server:
        lock = sqlite3.connect(server.ledger_path, isolation_level=None, timeout=30)
        statuses: list[int] = []
        acknowledged: list[str] = []
        try:
            lock.execute("BEGIN EXCLUSIVE")
            for i in range(20):
                status, headers, _ = server.request(
                    "POST", "/predict",
                    json.dumps({"records": [record], "request_id": f"q-{i}"}).encode(),
                    {"content-type": "application/json"},
                )  # fmt: skip
                statuses.append(status)
                if status == 200:
                    acknowledged.append(f"q-{i}")
                else:
                    assert status == 503
                    assert headers.get("retry-after") == "1"
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert 200 in statuses and 503 in statuses
        assert statuses.index(503) <= 5  # refused as soon as the queue is full
        wait_until(lambda: set(acknowledged) <= {r for r, _ in server.ledger_ids()})
        assert metric(server, "loopml_ledger_full_total") == statuses.count(503)


def test_admin_routes_need_the_token(served_project: Project) -> None:
    with running(served_project, "admin") as server:
        status, body = server.post_json("/admin/reload", {})
        assert status == 401 and body["error"] == "unauthorized"
        status, body = server.post_json("/admin/reload", {}, {"authorization": "Bearer wrong"})
        assert status == 403
        status, body = server.post_json(
            "/admin/reload", {}, {"authorization": f"Bearer {server.token()}"}
        )
        assert status == 200 and body["outcome"] == "unchanged"
    token_file = served_project.folder / ".loopml" / "admin.token"
    assert token_file.stat().st_mode & 0o777 == 0o600


def test_default_bind_is_loopback(served_project: Project) -> None:
    import psutil

    with running(served_project, "bind") as server:
        assert server.proc is not None
        listening = [
            c.laddr
            for c in psutil.Process(server.proc.pid).net_connections()
            if c.status == "LISTEN"
        ]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening)
