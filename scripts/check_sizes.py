"""Size budgets of the source tree: no module over 500 lines, no function over 60.

A module past the budget is doing two jobs and a function past it is doing several; split
them by job (CONVENTIONS.md). Run by `make lint` and by the test suite; prints each
offender with its size and exits 1 if there is one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
SOURCE = Path(__file__).resolve().parents[1] / "src" / "loopml"


def oversized(root: Path = SOURCE) -> list[str]:
    """``path:line what (size > budget)`` for every module and function over budget."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{path}: module of {lines} lines (> {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    found.append(
                        f"{path}:{node.lineno}: function {node.name} of {size} lines "
                        f"(> {MAX_FUNCTION_LINES})"
                    )
    return found


def main() -> int:
    found = oversized()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
