"""What to do about alias moves the audit log started but never finished.

A move is an ``intent`` entry, the alias move in MLflow, then a ``done`` entry. A process
killed between the steps leaves an intent with neither ``done`` nor ``aborted`` after it.
Where the alias is *now* says which step it died at; :func:`resolve` turns each dangling
intent and the alias's current version into a :class:`Resolution` (pure; the registry
applies it, see :meth:`loopml.registry.store.ModelRegistry.reconcile`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from loopml.registry.audit import AuditEntry

Outcome = Literal["complete", "abort", "report"]


@dataclass(frozen=True)
class Resolution:
    intent: AuditEntry
    outcome: Outcome
    current: str | None
    message: str


def resolve(intent: AuditEntry, current: str | None, *, superseded: bool = False) -> Resolution:
    """``complete`` when the alias is where the intent said (the move happened, its
    ``done`` entry did not); ``abort`` when it is still where it was (the move never
    happened); ``report`` when it is somewhere else (someone moved it outside loopml, or
    a later move was lost too): no entry is guessed then. An intent followed by a
    finished move of the same alias (``superseded``: someone already decided where the
    alias goes) is closed as ``abort``."""
    move = (
        f"{intent.action} of {intent.model}@{intent.alias} "
        f"{intent.from_version or 'unset'} -> {intent.to_version or 'unset'} "
        f"(started {intent.time} by {intent.actor})"
    )
    if superseded:
        return Resolution(
            intent, "abort", current, f"the interrupted {move} was superseded by a later move"
        )
    if current == intent.to_version:
        return Resolution(intent, "complete", current, f"completed the interrupted {move}")
    if current == intent.from_version:
        return Resolution(intent, "abort", current, f"the interrupted {move} never moved the alias")
    return Resolution(
        intent,
        "report",
        current,
        f"the interrupted {move} left {intent.alias!r} at "
        f"{current or 'unset'}, which the audit log does not explain; "
        f"check 'loopml models' and 'loopml audit', then record where "
        f"{intent.alias!r} should be with 'loopml promote VERSION --force --reason ...' "
        "(or 'loopml rollback')",
    )
