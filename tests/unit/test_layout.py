"""The shape of the source tree: one staircase of stages, and the size budgets.

``make lint`` runs the same checks; here they run in CI too, so a stage that imports a
stage above it (even from inside a function) fails the build.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_stages_import_only_downward() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is a dev dependency: pip install -e .[dev]"
    done = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_modules_and_functions_stay_within_their_budgets() -> None:
    spec = importlib.util.spec_from_file_location("check_sizes", ROOT / "scripts/check_sizes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.oversized() == []


def test_the_size_check_finds_an_oversized_function(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("check_sizes", ROOT / "scripts/check_sizes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    body = "\n".join(f"    x{i} = {i}" for i in range(70))
    (tmp_path / "big.py").write_text(f"def big():\n{body}\n", encoding="utf-8")
    assert [line.split(": ", 1)[1] for line in module.oversized(tmp_path)] == [
        "function big of 71 lines (> 60)"
    ]
