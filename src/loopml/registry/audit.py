"""The append-only audit log of alias moves.

MLflow keeps only the current target of an alias, not its history, so loopml records every
move itself: when, who, which alias, from which version to which, why, and whether the
move was forced past a gate. One JSON object per line, appended under an exclusive lock
and fsynced, so concurrent writers never interleave and an acknowledged entry survives a
crash. A torn last line (a crash mid-write) is skipped with a note, never fatal.

A move is written twice: an ``intent`` entry before the alias moves in MLflow and a
``done`` entry (same ``move_id``) after. A crash between the two leaves a dangling intent
that :func:`dangling_intents` finds and the registry reconciles at its next opening
(:meth:`loopml.registry.store.ModelRegistry.reconcile`): completed when the alias is where
the intent said, ``aborted`` when it never left, reported otherwise. Only ``done`` entries
are history (:meth:`AuditLog.entries`); a log written before intents existed reads as
``done`` throughout.

Entries with an ``event`` (action ``rollout``) record a rollout's state changes (started, advanced,
paused, resumed, aborted, promoted, rolled back) with its ``rollout_id``, the ``event`` and
the ``evidence`` the decision read; they are written by the rollout controller around the
alias moves they cause (which have entries of their own), are not alias moves themselves
and are reconciled by the controller, not here. Both fields default to None, so a log
written before rollouts existed still parses.

The champion's history is a stack: a promotion pushes a version, a rollback pops one.
:func:`champion_stack` replays the log to find what ``loopml rollback`` should restore.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Action = Literal["register", "promote", "rollback", "retire", "rollout"]
Phase = Literal["intent", "done", "aborted"]


def current_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class AuditEntry:
    model: str
    alias: str
    action: Action
    from_version: str | None
    to_version: str | None
    reason: str
    forced: bool = False
    actor: str = field(default_factory=current_actor)
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    phase: Phase = "done"
    move_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    rollout_id: str | None = None
    """The rollout this entry belongs to (a rollout's own entries, and its alias moves)."""
    event: str | None = None
    """``rollout`` entries: start, advance, pause, resume, abort, promote, rollback."""
    evidence: dict[str, Any] | None = None
    """What the change was decided on: the decision with its reasons, the stage's stats,
    and the rollout's status and stage before and after (``from`` / ``to``)."""

    @property
    def is_rollout(self) -> bool:
        """A rollout's state change, not an alias move (an alias move a rollout made has
        its ``rollout_id`` but no ``event``)."""
        return self.event is not None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


class AuditLog:
    """A JSON-lines file that only ever grows."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, entry: AuditEntry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (entry.to_json() + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self, model: str | None = None) -> list[AuditEntry]:
        """The moves that happened (``done`` entries), oldest first; a move closed twice
        (two processes reconciling the same intent at once) counts once."""
        seen: set[str] = set()
        out = []
        for entry in self.records(model):
            if entry.phase == "done" and entry.move_id not in seen:
                seen.add(entry.move_id)
                out.append(entry)
        return out

    def records(self, model: str | None = None) -> list[AuditEntry]:
        """Every entry, intents and aborted moves included, oldest first."""
        if not self.path.is_file():
            return []
        out: list[AuditEntry] = []
        for raw in self.path.read_text(encoding="utf-8").splitlines():
            entry = _parse(raw)
            if entry is not None and (model is None or entry.model == model):
                out.append(entry)
        return out


def _parse(raw: str) -> AuditEntry | None:
    if not raw.strip():
        return None
    try:
        return AuditEntry(**json.loads(raw))
    except (json.JSONDecodeError, TypeError):
        return None  # a torn line from a crash mid-append: the move it describes is unacked


def dangling_intents(records: list[AuditEntry]) -> list[AuditEntry]:
    """Intents with no ``done`` or ``aborted`` entry of the same move: a crash between."""
    closed = {r.move_id for r in records if r.phase != "intent"}
    return [r for r in records if r.phase == "intent" and r.move_id not in closed]


def champion_stack(entries: list[AuditEntry]) -> list[str]:
    """Replay champion moves: register/promote push, rollback pops. Last item is current."""
    stack: list[str] = []
    for entry in entries:
        if entry.alias != "champion" or entry.to_version is None or entry.phase != "done":
            continue
        if entry.action == "rollback":
            while stack and stack[-1] != entry.to_version:
                stack.pop()
            if not stack:
                stack.append(entry.to_version)
        else:
            stack.append(entry.to_version)
    return stack


def previous_champion(entries: list[AuditEntry], current: str | None) -> str | None:
    """The version ``loopml rollback`` restores: the one below the current on the stack."""
    stack = champion_stack(entries)
    if current is not None:
        while stack and stack[-1] != current:
            stack.pop()
    if len(stack) < 2:
        return None
    below = stack[-2]
    return below if below != current else None
