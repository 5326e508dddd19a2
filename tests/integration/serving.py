"""Shared pieces of the serving tests: a trained project, a real server process, a client.

The project is trained once per test session (three versions of a small LightGBM feed
model: 1 is champion, 2 and 3 are later versions for reload tests). Each test starts its
own ``loopml serve`` subprocess on a free port with its own ledger and artifact cache, so
tests never see each other's predictions.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.conftest import FAST_ENV

MODEL = "feed"
TRAIN_ENV = FAST_ENV | {
    "LOOPML_TRAIN__CANDIDATES": "[lightgbm]",
    "LOOPML_TRAIN__BASELINES": "[dummy]",
    "LOOPML_GATE__MARGIN": "0.0",
}


def loopml(folder: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    proc = subprocess.run(
        [sys.executable, "-c", "from loopml.cli.main import run; run()", *args],
        cwd=folder,
        env=full | TRAIN_ENV | (env or {}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"loopml {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


@dataclass(frozen=True)
class Project:
    folder: Path
    table: Path

    def records(self, n: int, offset: int = 0) -> list[dict[str, Any]]:
        """Rows of the training table as JSON records (features, key and time column)."""
        import pandas as pd

        frame = pd.read_parquet(self.table).iloc[offset : offset + n]
        frame = frame.drop(columns=["engaged"])
        frame["ts"] = frame["ts"].astype(str)
        return json.loads(frame.to_json(orient="records"))


def build_project(folder: Path) -> Project:
    folder.mkdir(parents=True, exist_ok=True)
    loopml(folder, "data", "feed", "--rows", "6000", "--seed", "3", "--out", "feed.parquet")
    loopml(folder, "init", "--data", "feed.parquet", "--target", "engaged", "--name", MODEL)
    for seed in ("1", "2", "3"):
        loopml(folder, "train", env={"LOOPML_TRAIN__SEED": seed})
    return Project(folder, folder / "feed.parquet")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One ``loopml serve`` process on a free port."""

    project: Project
    name: str
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None

    @property
    def ledger_path(self) -> Path:
        return self.project.folder / ".loopml" / f"ledger-{self.name}.db"

    def start(self, timeout: float = 90.0) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
        env |= {
            "LOOPML_SERVE__LEDGER__URL": f"sqlite:///{self.ledger_path}",
            "LOOPML_SERVE__CACHE_DIR": f".loopml/cache-{self.name}",
            "LOOPML_SERVE__POLL_SECONDS": "0.2",
        } | self.env
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from loopml.cli.main import run; run()", "serve",
             "--port", str(self.port)],
            cwd=self.project.folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Background jobs of a non-interactive shell ignore SIGINT: give the default back.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError):
                if self.get("/health/ready")[0] == 200:
                    return self
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"server not ready in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        if self.proc is None or self.proc.stdout is None or self.proc.poll() is None:
            return ""
        return self.proc.stdout.read()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def get(self, path: str) -> tuple[int, bytes]:
        status, _, body = self.request("GET", path)
        return status, body

    def post_json(
        self, path: str, payload: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        status, _, body = self.request(
            "POST", path, json.dumps(payload).encode(),
            {"content-type": "application/json", **(headers or {})},
        )  # fmt: skip
        return status, json.loads(body) if body else {}

    def token(self, scope: str = "admin") -> str:
        """The bearer token of ``scope`` (admin, feedback, predict) the server reads."""
        return (self.project.folder / ".loopml" / f"{scope}.token").read_text().strip()

    def bearer(self, scope: str = "admin") -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(scope)}"}

    def post_feedback(self, payload: Any) -> tuple[int, dict[str, Any]]:
        """``POST /feedback`` with the feedback token, as a labelling client sends it."""
        return self.post_json("/feedback", payload, self.bearer("feedback"))

    def stop(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def ledger_ids(self) -> list[tuple[str, int]]:
        with contextlib.closing(sqlite3.connect(self.ledger_path)) as conn:
            return [
                (r[0], int(r[1])) for r in conn.execute("SELECT request_id, row FROM predictions")
            ]


@contextlib.contextmanager
def running(project: Project, name: str, **env: str) -> Iterator[Server]:
    server = Server(project, name, env=dict(env)).start()
    try:
        yield server
    finally:
        server.kill()


def promote(project: Project, version: str) -> None:
    loopml(project.folder, "promote", version, "--reason", "test", "--force")
