"""How long work reports itself: the protocol every stage accepts, and a silent default.

A stage that takes more than a second takes an optional :class:`Progress`; the CLI passes
one drawn with Rich (:mod:`loopml.cli.output`), library callers pass nothing.

>>> report = progress_or_silent(None)
>>> report.stage("reading", total=3); report.advance(2)
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress", "Silent", "progress_or_silent"]


class Progress(Protocol):
    """A stage of work with an optional total, advanced as it goes."""

    def stage(self, description: str, total: int | None = None) -> None: ...

    def advance(self, amount: int = 1) -> None: ...


class Silent:
    """The progress of a caller who does not watch."""

    def stage(self, description: str, total: int | None = None) -> None:
        return None

    def advance(self, amount: int = 1) -> None:
        return None


def progress_or_silent(progress: Progress | None) -> Progress:
    return Silent() if progress is None else progress
