"""What :func:`loopml.rollout.decide.decide` returns: one of four decisions, with reasons.

Each :class:`Reason` is one guard's verdict — its value against its limit and the sample
it was judged on — so a decision explains itself in ``loopml rollout status``, in the
audit log and on the dashboard.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

__all__ = ["Advance", "Decision", "Hold", "Promote", "Reason", "Rollback", "Verdict"]

Verdict = Literal["pass", "breach", "wait", "skip"]
"""pass: within its limit; breach: beyond it; wait: not enough data (holds, never passes);
skip: does not apply to this stage or task (or the guard is disabled)."""


@dataclass(frozen=True)
class Reason:
    guard: str
    verdict: Verdict
    value: float | None
    limit: float | None
    sample: int
    """Rows (or labelled rows per arm, or requests) the value was computed on."""
    message: str
    """One line a person reads, e.g. 'error rate 5.1% > 1% over 2,000 requests'."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """Base of the four decisions; ``kind`` names which one."""

    kind: ClassVar[str] = ""
    reasons: tuple[Reason, ...] = ()
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "summary": self.summary,
            "reasons": [r.to_dict() for r in self.reasons],
        }


@dataclass(frozen=True)
class Advance(Decision):
    """Every guard passed: go to the next stage."""

    kind: ClassVar[str] = "advance"


@dataclass(frozen=True)
class Hold(Decision):
    """Stay: not enough data or time yet, a guard set to hold was breached, or paused."""

    kind: ClassVar[str] = "hold"


@dataclass(frozen=True)
class Promote(Decision):
    """The last stage passed (or the A/B test found the challenger better): promote."""

    kind: ClassVar[str] = "promote"


@dataclass(frozen=True)
class Rollback(Decision):
    """A guard set to roll back was breached: all traffic back to the champion."""

    kind: ClassVar[str] = "rollback"
