"""Issue 12, problems 8, 9 and 11: broken stores, interrupted alias moves, moved projects.

One small feed project is trained once (version 1 champion, 2 challenger); every test works
on its own copy, through real ``loopml`` subprocesses over the real embedded MLflow store.
Crashes are real: ``LOOPML_TEST_CRASH_AT`` makes the process SIGKILL itself between the
steps of an alias move (or raise Ctrl-C there, so cleanup handlers run).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.serving import TRAIN_ENV, Project, Server, free_port, loopml

pytestmark = pytest.mark.integration

CLI = "from loopml.cli.main import run; run()"
DB = Path(".loopml/mlflow.db")
AUDIT = Path(".loopml/audit.jsonl")


def run(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    return subprocess.run(
        [sys.executable, "-c", "from loopml.cli.main import run; run()", *args],
        cwd=folder, env=full | TRAIN_ENV | (env or {}), capture_output=True, text=True,
        timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("store") / "base"
    folder.mkdir()
    loopml(folder, "data", "feed", "--rows", "3000", "--seed", "3", "--out", "feed.parquet")
    loopml(folder, "init", "--data", "feed.parquet", "--target", "engaged", "--name", "feed")
    for seed in ("1", "2"):
        loopml(folder, "train", env={"LOOPML_TRAIN__SEED": seed})
    return folder


@pytest.fixture
def project(base: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(base, copy)
    return copy


def aliases(folder: Path) -> dict[str, str]:
    with sqlite3.connect(folder / DB) as conn:
        rows = conn.execute("SELECT alias, version FROM registered_model_aliases").fetchall()
    return {str(a): str(v) for a, v in rows}


def audit(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / AUDIT).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_user_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "bug in loopml" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


# -- problem 8: a corrupt or emptied store is explained, never re-created ------------------
def _garbage(db: Path) -> None:
    db.write_bytes(os.urandom(4096))


def _truncated(db: Path) -> None:
    with db.open("r+b") as handle:
        handle.truncate(db.stat().st_size // 5)


def _dropped_table(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("DROP TABLE model_versions")


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (_garbage, "file is not a database"),
        (_truncated, "malformed"),
        (_dropped_table, "missing table(s) model_versions"),
    ],
)
def test_a_corrupt_store_is_a_clear_user_error(project: Path, damage: Any, said: str) -> None:
    damage(project / DB)
    before = digest(project / DB)
    for command in (
        ("models",),
        ("promote", "2", "--reason", "x"),
        ("score", "feed.parquet", "o.csv"),
    ):
        proc = run(project, *command)
        assert_user_error(proc, "is damaged", said, "restore", str(project / DB))
    assert digest(project / DB) == before  # nothing written into it
    assert not (project / "o.csv").exists()


def test_a_zero_byte_store_is_refused_not_rebuilt(project: Path) -> None:
    (project / DB).write_bytes(b"")
    for command in (("models",), ("train",)):
        proc = run(project, *command)
        assert_user_error(proc, "is empty (0 bytes)", "restore")
        assert "no versions" not in proc.stdout
    assert (project / DB).stat().st_size == 0


def test_a_missing_store_of_a_used_project_is_refused(project: Path) -> None:
    (project / DB).unlink()
    proc = run(project, "models")
    assert_user_error(proc, "is missing, but this project has used one", "audit log")
    assert not (project / DB).exists()


def test_an_emptied_store_is_refused(project: Path) -> None:
    """A whole, valid but empty MLflow database swapped in (what MLflow would have built
    over the 0-byte file): the audit log and the run folders give it away."""
    (project / DB).unlink()
    fresh = project.parent / "fresh"
    fresh.mkdir()
    subprocess.run(
        [sys.executable, "-c", f"from mlflow import MlflowClient; MlflowClient('sqlite:///{fresh}/m.db').search_experiments()"],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.copy(fresh / "m.db", project / DB)
    proc = run(project, "models")
    assert_user_error(proc, "holds no registered version", "was emptied or replaced")


def test_serve_with_a_broken_store_never_says_serving(project: Path) -> None:
    _garbage(project / DB)
    proc = run(project, "serve", "--port", str(free_port()))
    assert_user_error(proc, "is damaged")
    assert "serving" not in proc.stdout + proc.stderr.replace("serving artifact", "")


def test_serve_on_a_taken_port_never_says_serving(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = run(project, "serve", "--port", str(taken.getsockname()[1]))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "address already in use" in output.lower(), output
    assert "serving feed" not in output, output


def test_serve_says_serving_only_once_the_port_answers(project: Path) -> None:
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "serve", "--port", str(port)],
        cwd=project, env=full | {"LOOPML_SERVE__LEDGER__ENABLED": "false"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "serving feed@champion" in line:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break  # the port answers the moment "serving" is printed
        else:
            pytest.fail("".join(seen))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


# -- problem 9: intent, move, done; reconciled at the next start ---------------------------
def test_a_crash_before_the_move_is_closed_as_aborted(project: Path) -> None:
    proc = run(project, "promote", "2", "--force", "--reason", "r",
               env={"LOOPML_TEST_CRASH_AT": "after-intent"})  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert aliases(project)["champion"] == "1"
    assert audit(project)[-1]["phase"] == "intent"
    proc = run(project, "models")
    assert proc.returncode == 0, proc.stderr
    assert "never moved the alias" in proc.stderr
    last = audit(project)[-1]
    assert (last["phase"], last["to_version"]) == ("aborted", "2")
    proc = run(project, "rollback", "--reason", "r")
    assert_user_error(proc, "no previous champion")  # the aborted move is not history


def test_a_crash_after_the_move_is_completed_at_serve_start(project: Path) -> None:
    proc = run(project, "promote", "2", "--force", "--reason", "r",
               env={"LOOPML_TEST_CRASH_AT": "after-move"})  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert aliases(project)["champion"] == "2"
    assert audit(project)[-1]["phase"] == "intent"  # the log never saw the move finish
    server = Server(Project(project, project / "feed.parquet"), "crash").start()
    try:
        last = audit(project)[-1]
        assert (last["phase"], last["action"], last["to_version"]) == ("done", "promote", "2")
    finally:
        server.stop()
    assert "completed the interrupted promote" in server.output()
    proc = run(project, "rollback", "--reason", "r")  # replays the completed move
    assert proc.returncode == 0, proc.stderr
    assert aliases(project)["champion"] == "1"


def test_an_interrupted_registration_gives_the_aliases_back(project: Path) -> None:
    """Ctrl-C right after ``challenger`` moved to the new version 3: version 3 is deleted,
    and ``challenger`` is back on version 2, as the audit log says."""
    proc = run(project, "train", env={"LOOPML_TRAIN__SEED": "3",
                                      "LOOPML_TEST_CRASH_AT": "after-move:interrupt"})  # fmt: skip
    assert proc.returncode == 130, proc.stderr
    with sqlite3.connect(project / DB) as conn:
        rows = conn.execute(
            "SELECT version FROM model_versions WHERE current_stage != 'Deleted_Internal'"
        )  # MLflow marks a deleted version, then hides it
        versions = [str(r[0]) for r in rows]
    assert sorted(versions) == ["1", "2"]
    assert aliases(project) == {"champion": "1", "challenger": "2"}
    entries = audit(project)
    done = [e for e in entries if e["phase"] == "done" and e["alias"] == "challenger"]
    assert done[-1]["to_version"] == "2"
    open_moves = {e["move_id"] for e in entries if e["phase"] == "intent"} - {
        e["move_id"] for e in entries if e["phase"] != "intent"
    }
    assert not open_moves


# -- problem 11: a moved project folder, contract update without a terminal ----------------
def test_a_moved_project_folder_scores_and_promotes(base: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(base, old)
    away = base.with_name("base.away")
    base.rename(away)  # the store's absolute paths now point nowhere
    try:
        new = tmp_path / "elsewhere" / "new"
        new.parent.mkdir()
        old.rename(new)
        proc = run(new, "score", "feed.parquet", "scored.csv")
        assert proc.returncode == 0, proc.stderr
        assert "the project folder moved" in proc.stderr
        proc = run(new, "promote", "2", "--force", "--reason", "moved")
        assert proc.returncode == 0, proc.stderr
        assert aliases(new)["champion"] == "2"
        with sqlite3.connect(new / DB) as conn:
            uri = conn.execute("SELECT artifact_uri FROM runs LIMIT 1").fetchone()[0]
        assert str(uri).startswith((new / ".loopml").as_uri())
    finally:
        away.rename(base)


def test_contract_update_without_a_terminal_asks_for_yes(project: Path) -> None:
    contract = project / "loopml.contract.yaml"
    before = digest(contract)
    proc = run(project, "contract", "update")
    assert_user_error(proc, "no terminal", "--yes")
    assert "interrupted" not in proc.stderr
    assert digest(contract) == before
    assert run(project, "contract", "update", "--yes").returncode == 0
