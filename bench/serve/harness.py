"""Run one server pinned to a core, watch its memory, and load it with wrk on the other core.

Method: docs/benchmark-method.md. A server is started under ``taskset`` in its own session so
it and every process it forks can be stopped together; its peak RSS is the highest sum of
RSS over its whole process tree, sampled every 100 ms; its cold start is the time from
``Popen`` to the first response that carries the expected prediction.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

SERVER_CORE = "1"
LOAD_CORE = "0"
LUA_SCRIPT = Path(__file__).with_name("post.lua")


class StartError(RuntimeError):
    """A server did not come up, or never answered with a good prediction."""


@dataclass(frozen=True)
class Launch:
    """How to start one server and how to tell it is serving correctly."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    url: str
    check: Callable[[bytes], bool]
    probe_body: bytes


class RssSampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_bytes = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_rss(self.pid))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=2)


def tree_rss(pid: int) -> int:
    """RSS of ``pid`` plus all its descendants, in bytes (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` plus all its descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


@dataclass
class Server:
    """One peer process, started pinned to :data:`SERVER_CORE`."""

    launch: Launch
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    sampler: RssSampler | None = None
    started: float = 0.0
    cold_start_s: float = float("nan")

    def start(self, timeout: float = 180.0) -> None:
        """Start the server and wait for its first good prediction (the cold start)."""
        log = self.log_path.open("wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *self.launch.argv],
            cwd=self.launch.cwd,
            env=self.launch.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop it and its workers together
        )
        log.close()
        self.sampler = RssSampler(self.proc.pid)
        self.sampler.start()
        self.cold_start_s = self._wait_good(timeout)

    def _wait_good(self, timeout: float) -> float:
        assert self.proc is not None
        last = "no answer"
        while time.perf_counter() - self.started < timeout:
            if self.proc.poll() is not None:
                raise StartError(f"exited with code {self.proc.returncode}: {self.log_tail()}")
            status, body = post(self.launch.url, self.launch.probe_body, timeout=10.0)
            if status == 200 and self.launch.check(body):
                return time.perf_counter() - self.started
            if status:
                last = f"HTTP {status}: {body[:300].decode(errors='replace')}"
            time.sleep(0.01)
        raise StartError(f"no good prediction within {timeout:.0f} s (last: {last})")

    def log_tail(self, lines: int = 6) -> str:
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(line.strip() for line in text[-lines:]) or "(no output)"

    def wait_idle(self, timeout: float = 60.0, interval: float = 0.1) -> None:
        """Wait until the server has drained the requests a finished wrk run left queued.

        A closed loop at c=64 leaves up to 64 requests in the server when wrk stops; they
        are still computed, and would otherwise eat into the next run (of any peer: they
        share the core).
        """
        if self.proc is None:
            return
        deadline = time.perf_counter() + timeout
        last = tree_cpu_seconds(self.proc.pid)
        while time.perf_counter() < deadline:
            time.sleep(interval)
            now = tree_cpu_seconds(self.proc.pid)
            if now - last < 0.05 * interval:  # under 5 % of a core: idle
                return
            last = now

    @property
    def peak_rss_mb(self) -> float:
        return (self.sampler.peak_bytes if self.sampler else 0) / 2**20

    def stop(self) -> None:
        """SIGTERM the server's own process group, SIGKILL it if it has not gone in 15 s."""
        if self.proc is not None and self.proc.poll() is None:
            pgid = self.proc.pid  # start_new_session: the group id is the server's pid
            os.killpg(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if self.sampler is not None:
            self.sampler.stop()


def post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    """POST JSON; (status, body), or (0, b"") when nothing answers yet."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


def contains_close(body: bytes, expected: float, tol: float = 1e-5) -> bool:
    """True if some number in the JSON body is within ``tol`` of ``expected``.

    Every peer answers in its own shape; the probe only needs to know the expected
    probability came back, wherever the peer puts it.
    """
    try:
        return _any_close(json.loads(body), expected, tol)
    except ValueError:
        return False


def _any_close(value: object, expected: float, tol: float) -> bool:
    if isinstance(value, float):
        return abs(value - expected) <= tol
    if isinstance(value, dict):
        return any(_any_close(v, expected, tol) for v in value.values())
    if isinstance(value, list):
        return any(_any_close(v, expected, tol) for v in value)
    return False


@dataclass(frozen=True)
class WrkRun:
    """One wrk run: counts and latency percentiles (milliseconds)."""

    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    cpu_s: float = math.nan  # CPU seconds the server's process tree used during the run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(
    url: str, body_path: Path, connections: int, seconds: float, script: Path = LUA_SCRIPT
) -> WrkRun:
    """One closed-loop wrk run with ``connections`` connections on one thread."""
    argv = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s",
        "--latency", "--timeout", "10s", "-s", str(script), url,
    ]  # fmt: skip
    env = {**os.environ, "WRK_BODY": str(body_path)}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out[-500:]}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(int(raw[k]) for k in ("connect", "read", "write", "timeout"))
    return WrkRun(
        requests=int(raw["requests"]),
        seconds=raw["duration_us"] / 1e6,
        non2xx=int(raw["non2xx"]),
        socket_errors=errors,
        p50_ms=raw["p50_us"] / 1e3,
        p99_ms=raw["p99_us"] / 1e3,
    )


@dataclass(frozen=True)
class Measure:
    """A scenario: the measured wrk runs (after a warm-up) and the rows per request."""

    runs: tuple[WrkRun, ...]
    rows: int = 1

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.runs)

    @property
    def rps_range(self) -> tuple[float, float]:
        return min(r.rps for r in self.runs), max(r.rps for r in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def failures(self) -> int:
        """Non-2xx responses plus socket errors over the measured runs."""
        return sum(r.non2xx + r.socket_errors for r in self.runs)

    @property
    def rows_per_s(self) -> float:
        return self.rps * self.rows

    @property
    def cpu_ms(self) -> float:
        """Server CPU time per request (median of runs): what the peer costs, whatever else
        ran on the shared machine at the time."""
        return statistics.median(r.cpu_s / r.requests * 1e3 if r.requests else math.nan
                                 for r in self.runs)  # fmt: skip


def timed_run(
    argv: list[str], cwd: Path, env: dict[str, str], log_path: Path
) -> tuple[float, float, int]:
    """Run a command pinned to the server core: (wall seconds, peak tree RSS MB, exit code)."""
    with log_path.open("ab") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *argv], cwd=cwd, env=env, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        sampler = RssSampler(proc.pid)
        sampler.start()
        code = proc.wait()
        seconds = time.perf_counter() - started
        sampler.stop()
    return seconds, sampler.peak_bytes / 2**20, code
