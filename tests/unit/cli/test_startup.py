"""`loopml --help` starts fast: the CLI imports a stage only when a command runs.

This is why the CLI's command modules alone may import inside functions (pyproject.toml,
PLC0415); if one of them imports a heavy stage at the top, this test names it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit
HEAVY = ("mlflow", "sklearn", "lightgbm", "xgboost", "skl2onnx", "onnxruntime", "fastapi",
         "pandas", "sqlalchemy", "matplotlib")  # fmt: skip


def test_importing_the_cli_loads_no_heavy_library() -> None:
    probe = (
        f"import sys, loopml.cli.main\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
