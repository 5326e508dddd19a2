"""How the CLI talks: errors as headline + detail + fix, progress bars, tables, JSON.

This is the one place a :class:`~loopml.errors.LoopmlError` becomes terminal output and
an exit code, so every command fails the same way: one red headline, the detail, the fix.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from loopml.errors import LoopmlError

# Piped or captured output keeps whole table rows: Rich would otherwise fold them at 80.
_PIPED_WIDTH = None if sys.stdout.isatty() else 140
console = Console(highlight=False, width=_PIPED_WIDTH)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 140)


def print_error(error: LoopmlError) -> None:
    # soft_wrap: the headline and the fix stay one line each however long (a terminal
    # still folds them on screen), so a script or a test reads them whole.
    err_console.print(f"[bold red]error:[/] {escape(error.headline)}", soft_wrap=True)
    if error.detail:
        for line in error.detail.splitlines():
            err_console.print(f"  {escape(line)}")
    if error.fix:
        err_console.print(f"[yellow]fix:[/] {escape(error.fix)}", soft_wrap=True)


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def fmt(value: float | None, digits: int = 4) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.{digits}f}"


class RichProgress:
    """The :class:`loopml.progress.Progress` protocol on a Rich progress display."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    def stage(self, description: str, total: int | None = None) -> None:
        if self._task is not None:
            task = self._progress.tasks[self._task]
            self._progress.update(self._task, completed=task.total or 1, total=task.total or 1)
        self._task = self._progress.add_task(escape(description), total=total)

    def advance(self, amount: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)


@contextmanager
def progress_display(enabled: bool = True) -> Iterator[RichProgress]:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=not enabled,
    )
    with progress:
        reporter = RichProgress(progress)
        try:
            yield reporter
        except BaseException:
            # On failure the error's headline should be the first thing the user reads.
            progress.live.transient = True
            raise
        reporter.stage("done", total=1)
        reporter.advance()
