"""What to do about a rollout a crash left half-changed: pure, over values.

Every rollout change is written in one order — an ``intent`` entry in the audit log, the
alias moves (each with its own intent and done entries, closed by the registry), the
rollout's row, then the ``done`` entry — so a process killed between two writes leaves a
dangling rollout intent, and where the row and the aliases are *now* says how far it got.
:func:`recover` turns that into a :class:`Recovery` the controller applies
(:meth:`loopml.rollout.controller.Controller.reconcile`):

- the row already at the intent's target: the change happened, close the intent ``done``;
- the row still where the intent found it:

  - ``rollback`` / ``abort``: finish it (all traffic back to the champion is always safe,
    and a guard or an operator asked for it);
  - ``promote``: finish it when ``champion`` already moved to the challenger (the servers
    already answer with it), otherwise close the intent ``aborted`` — the rollout goes on
    and the next step decides again;
  - ``start`` (no row yet), ``advance``, ``pause``, ``resume``: close it ``aborted``;

- the row somewhere else (a later change was made): close it ``aborted`` (superseded).

Without a dangling intent an active rollout must still agree with the aliases: a
``champion`` already at the challenger finishes it as promoted; a champion moved elsewhere,
or a ``challenger`` alias that no longer names the rollout's challenger (moved or dropped
outside the rollout, e.g. by a new training), ends it as aborted.

>>> from loopml.rollout.plan import RolloutState, Stage
>>> s = RolloutState("r1", "feed", "1", "2", "canary", (Stage("traffic", 1.0),))
>>> recover(s, Aliases("1", "2"), []).needed
False
>>> recover(s, Aliases("2", None), []).finish
'promoted'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from loopml.registry.audit import AuditEntry
from loopml.rollout.plan import RolloutState

__all__ = ["Aliases", "Ending", "Recovery", "recover", "where"]

Ending = Literal["promoted", "rolled_back", "aborted"]
_FINISHED_ALWAYS: dict[str, Ending] = {"rollback": "rolled_back", "abort": "aborted"}


@dataclass(frozen=True)
class Aliases:
    """Where ``champion`` and ``challenger`` point now (None: unset)."""

    champion: str | None
    challenger: str | None


@dataclass(frozen=True)
class Recovery:
    """What reconciling one rollout does: close ``intent`` as ``close`` (``done`` or
    ``aborted``), close older dangling intents of it as aborted (``stale``), and, if
    ``finish``, end the rollout that way (its aliases first, then its row)."""

    intent: AuditEntry | None = None
    close: Literal["done", "aborted"] | None = None
    finish: Ending | None = None
    stale: tuple[AuditEntry, ...] = ()
    message: str = ""

    @property
    def needed(self) -> bool:
        return self.intent is not None or self.finish is not None or bool(self.stale)


def where(state: RolloutState | None) -> dict[str, Any] | None:
    """A row's position, as an intent records it (``from`` / ``to``)."""
    return None if state is None else {"status": state.status, "stage": state.stage}


def recover(
    state: RolloutState | None, aliases: Aliases, intents: Sequence[AuditEntry]
) -> Recovery:
    """The recovery of one rollout: ``state`` is its row (None: never inserted),
    ``intents`` its dangling rollout intents, oldest first (see the module doc)."""
    if intents:
        *older, intent = intents
        found = _recover_intent(state, aliases, intent)
        return Recovery(found.intent, found.close, found.finish, tuple(older), found.message)
    if state is None or not state.active:
        return Recovery()
    return _check_aliases(state, aliases)


def _recover_intent(state: RolloutState | None, aliases: Aliases, intent: AuditEntry) -> Recovery:
    evidence = intent.evidence or {}
    event = intent.event or "?"
    what = f"the interrupted rollout {event} of {intent.rollout_id} (started {intent.time})"
    now = where(state)
    if state is None:
        return Recovery(intent, "aborted", message=f"{what} never stored its rollout")
    if now == evidence.get("to"):
        return Recovery(intent, "done", message=f"completed {what}")
    if now != evidence.get("from"):
        return Recovery(intent, "aborted", message=f"{what} was superseded by a later change")
    if event in _FINISHED_ALWAYS:
        return Recovery(
            intent, "done", _FINISHED_ALWAYS[event], message=f"finished {what}: traffic back "
            f"to champion {state.champion}",
        )  # fmt: skip
    if event == "promote" and aliases.champion == state.challenger:
        return Recovery(
            intent, "done", "promoted", message=f"finished {what}: champion had moved to "
            f"version {state.challenger}",
        )  # fmt: skip
    return Recovery(intent, "aborted", message=f"{what} never took effect; the rollout goes on")


def _check_aliases(state: RolloutState, aliases: Aliases) -> Recovery:
    rollout = f"rollout {state.rollout_id} of version {state.challenger}"
    if aliases.champion == state.challenger:
        return Recovery(
            finish="promoted", message=f"{rollout}: champion is already version "
            f"{state.challenger}; the rollout is recorded as promoted",
        )  # fmt: skip
    if aliases.champion != state.champion:
        return Recovery(
            finish="aborted", message=f"{rollout}: champion moved from {state.champion} to "
            f"{aliases.champion or 'unset'} outside the rollout; the rollout is aborted",
        )  # fmt: skip
    if aliases.challenger != state.challenger:
        return Recovery(
            finish="aborted", message=f"{rollout}: the challenger alias is "
            f"{aliases.challenger or 'unset'} now (moved outside the rollout); the rollout "
            "is aborted",
        )  # fmt: skip
    return Recovery()
