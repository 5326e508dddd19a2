from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Tiny budgets: these tests prove the loop works, not that the models are good.
FAST_ENV = {
    "LOOPML_TRAIN__TUNING__TRIALS": "2",
    "LOOPML_TRAIN__TUNING__TIMEOUT_SECONDS": "20",
    "LOOPML_TRAIN__BOOTSTRAP": "20",
    "LOOPML_GATE__MIN_SLICE_ROWS": "50",
}


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


Cli = Callable[..., Result]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """Run ``loopml ARGS`` in a subprocess inside ``tmp_path``, as a user would."""

    def run(*args: str, env: dict[str, str] | None = None, check: int | None = 0) -> Result:
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")
        } | FAST_ENV | (env or {})  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-c", "from loopml.cli.main import run; run()", *args],
            cwd=tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check is not None:
            assert result.code == check, (
                f"loopml {' '.join(args)} exited {result.code}, expected {check}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    return run


def run_count(folder: Path) -> int:
    """Runs (not deleted) in the project's embedded MLflow store; 0 if it was never created."""
    db = folder / ".loopml" / "mlflow.db"
    if not db.exists():
        return 0
    import sqlite3

    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT COUNT(*) FROM runs WHERE lifecycle_stage = 'active'").fetchone()
    return int(row[0])


def version_count(folder: Path) -> int:
    db = folder / ".loopml" / "mlflow.db"
    if not db.exists():
        return 0
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM model_versions").fetchone()[0])


@pytest.fixture(scope="session")
def served_project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A feed project with three registered versions (1 is champion), trained once."""
    from tests.integration.serving import build_project

    return build_project(tmp_path_factory.mktemp("served"))
