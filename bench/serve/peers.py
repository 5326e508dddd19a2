"""The servers compared by bench/bench_serve.py: how to install, start and feed each one.

Every peer serves the same fitted pipeline (the champion of the bench project) and gets the
same rows, each in its own dialect. Peers other than ``mlflow models serve`` and loopml
(which need loopml importable and use the project's environment) are installed from PyPI
into their own virtual environments under ``bench/.venvs/``, from the pinned
``bench/serve/requirements-<name>.txt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVE_DIR = Path(__file__).resolve().parent
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}
Row = dict[str, Any]


@dataclass(frozen=True)
class Context:
    """What every peer needs to know about the bench project."""

    project: Path
    model_name: str
    pipeline: Path
    tracking_uri: str
    workdir: Path
    venvs: Path
    tools: Path  # bin folder of the project's environment (loopml, mlflow, uvicorn)


Build = Callable[[Context, int], tuple[list[str], dict[str, str]]]


@dataclass(frozen=True)
class Peer:
    """One server configuration: ``group`` is the product, ``key`` the configuration."""

    key: str
    label: str
    group: str
    path: str
    encode: Callable[[list[Row]], bytes]
    build: Build
    venv: str | None = None  # bench/.venvs/<venv>; None: the project's own environment


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def records_body(rows: list[Row]) -> bytes:
    return dumps({"records": rows})


def mlflow_body(rows: list[Row]) -> bytes:
    return dumps({"dataframe_records": rows})


def v2_body(rows: list[Row]) -> bytes:
    """Open Inference Protocol request, one input per column, decoded by the pandas codec."""
    inputs = []
    for name in rows[0]:
        values = [row[name] for row in rows]
        item: dict[str, Any] = {"name": name, "shape": [len(values)]}
        if all(isinstance(v, str) for v in values):
            item |= {"datatype": "BYTES", "parameters": {"content_type": "str"}}
        elif all(isinstance(v, bool) for v in values):
            item["datatype"] = "BOOL"
        elif all(isinstance(v, int) for v in values):
            item["datatype"] = "INT64"
        else:
            item["datatype"] = "FP64"
            values = [float(v) for v in values]
        inputs.append({**item, "data": values})
    return dumps({"parameters": {"content_type": "pd"}, "inputs": inputs})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_env(bin_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a peer: one thread per library pool, its own bin first on PATH."""
    env = {**os.environ, **THREAD_ENV, **(extra or {})}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    return env


def _mlflow(ctx: Context, port: int) -> tuple[list[str], dict[str, str]]:
    argv = [
        str(ctx.tools / "mlflow"), "models", "serve", "-m", f"models:/{ctx.model_name}@champion",
        "--env-manager", "local", "--workers", "1", "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    return argv, {"MLFLOW_TRACKING_URI": ctx.tracking_uri}


def _mlserver(batching: bool) -> Build:
    def build(ctx: Context, port: int) -> tuple[list[str], dict[str, str]]:
        folder = ctx.workdir / ("mlserver-batching" if batching else "mlserver")
        model_dir = folder / ctx.model_name
        model_dir.mkdir(parents=True, exist_ok=True)
        settings = {
            "debug": False,  # no access log
            "parallel_workers": 0,  # inference in the server process, no worker pool
            "host": "127.0.0.1",
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
        }
        model: dict[str, Any] = {
            "name": ctx.model_name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(ctx.pipeline), "extra": {"predict_fn": "predict_proba"}},
        }
        if batching:
            model |= {"max_batch_size": 32, "max_batch_time": 0.002}
        (folder / "settings.json").write_text(json.dumps(settings, indent=2))
        (model_dir / "model-settings.json").write_text(json.dumps(model, indent=2))
        return [str(ctx.venvs / "mlserver" / "bin" / "mlserver"), "start", str(folder)], {}

    return build


def _fastapi(ctx: Context, port: int) -> tuple[list[str], dict[str, str]]:
    argv = [
        str(ctx.venvs / "fastapi" / "bin" / "uvicorn"), "fastapi_app:app",
        "--app-dir", str(SERVE_DIR), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--no-access-log",
    ]  # fmt: skip
    return argv, {"MODEL_PATH": str(ctx.pipeline)}


def _loopml(*ledger: str) -> Build:
    def build(ctx: Context, port: int) -> tuple[list[str], dict[str, str]]:
        # Each configuration starts from an empty ledger, so runs do not slow each other.
        for old in (ctx.project / ".loopml").glob("ledger.db*"):
            old.unlink()
        argv = [str(ctx.tools / "loopml"), "serve", "--port", str(port), "--workers", "1"]
        return [*argv, *ledger], {}

    return build


PEERS: tuple[Peer, ...] = (
    Peer("mlflow", "`mlflow models serve`", "mlflow", "/invocations", mlflow_body, _mlflow),
    Peer(
        "mlserver", "MLServer, in-process", "mlserver", "/v2/models/{model}/infer", v2_body,
        _mlserver(batching=False), venv="mlserver",
    ),
    Peer(
        "mlserver-batching", "MLServer, adaptive batching 32 / 2 ms", "mlserver",
        "/v2/models/{model}/infer", v2_body, _mlserver(batching=True), venv="mlserver",
    ),
    Peer(
        "fastapi", "hand-written FastAPI + orjson", "fastapi", "/predict", records_body,
        _fastapi, venv="fastapi",
    ),
    Peer("loopml", "**loopml, ledger durable**", "loopml", "/predict", records_body,
         _loopml("--ledger-mode", "durable")),
    Peer("loopml-async", "loopml, ledger async", "loopml", "/predict", records_body,
         _loopml("--ledger-mode", "async")),
    Peer("loopml-off", "loopml, no ledger", "loopml", "/predict", records_body,
         _loopml("--no-ledger")),
)  # fmt: skip


def ensure_venv(venvs: Path, name: str, log: Path) -> Path:
    """Create bench/.venvs/<name> from requirements-<name>.txt unless it is up to date."""
    requirements = SERVE_DIR / f"requirements-{name}.txt"
    venv = venvs / name
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return venv
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    with log.open("ab") as out:
        for argv in (
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [*pip, "--upgrade", "pip"],
            [*pip, "-r", str(requirements)],
        ):
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"'{' '.join(argv[:4])} ...' failed; see {log}")
    stamp.write_text(digest)
    return venv


def loopml_missing(tools: Path, command: str) -> str | None:
    """Why ``loopml COMMAND`` cannot be benchmarked, or None when it exists."""
    done = subprocess.run(
        [str(tools / "loopml"), command, "--help"], capture_output=True, text=True, check=False
    )
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    reason = next((ln.strip(" │╭╮╰╯─") for ln in lines if "No such command" in ln), None)
    return f"`loopml {command}` is not available ({reason or f'exit {done.returncode}'})"


VERSION_PACKAGES = {
    "mlflow": ("mlflow", "uvicorn", "fastapi"),
    "mlserver": ("mlserver", "mlserver-sklearn", "uvicorn", "fastapi", "uvloop"),
    "fastapi": ("fastapi", "uvicorn", "orjson", "uvloop", "httptools"),
    "loopml": ("loopml", "onnxruntime", "uvicorn", "fastapi", "orjson"),
}
COMMON_PACKAGES = ("scikit-learn", "lightgbm", "pandas", "numpy")


def versions(python: Path, group: str) -> dict[str, str]:
    """Installed versions of a peer's packages in the environment of ``python``."""
    names = [*VERSION_PACKAGES[group], *COMMON_PACKAGES]
    code = (
        "import importlib.metadata as m, json, sys\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return '-'\n"
        "print(json.dumps({n: v(n) for n in sys.argv[1:]}))"
    )
    done = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=False
    )
    return dict(json.loads(done.stdout)) if done.returncode == 0 else {}
