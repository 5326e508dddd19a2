"""The status of a model (or of one version and arm) is the status of its active alerts.

Any active critical alert: ``critical``, said as "alerting"; any active warning:
``warning``; none: ``ok``. The HTML report's badges and summary, ``loopml monitor run``
and ``loopml alerts`` all say it with :class:`AlertStatus`, so they cannot disagree.

>>> AlertStatus.of(["warning", "critical", "warning"]).line
'alerting: 3 active alerts (1 critical)'
>>> AlertStatus.of([]).line
'ok: no alert raised'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from loopml.monitor.alerts import AlertState, Severity

__all__ = ["AlertStatus", "severity_of"]

Level = Literal["ok", "warning", "critical"]
WORDS: dict[Level, str] = {"ok": "ok", "warning": "warning", "critical": "alerting"}


@dataclass(frozen=True)
class AlertStatus:
    """How many alerts are active, how many of them critical, and what that makes."""

    active: int
    critical: int

    @classmethod
    def of(cls, severities: Iterable[str]) -> AlertStatus:
        """From the severity of each active alert."""
        listed = list(severities)
        return cls(active=len(listed), critical=sum(1 for s in listed if s == "critical"))

    @classmethod
    def of_states(
        cls, states: Sequence[AlertState], rules: Mapping[str, Severity] | None = None
    ) -> AlertStatus:
        """From alert states (raised ones count), ``rules`` giving older states' severity."""
        raised = [s for s in states if s.status == "raised"]
        return cls.of(severity_of(s, rules) for s in raised)

    @property
    def level(self) -> Level:
        if self.critical:
            return "critical"
        return "warning" if self.active else "ok"

    @property
    def word(self) -> str:
        """``alerting``, ``warning`` or ``ok``."""
        return WORDS[self.level]

    @property
    def text(self) -> str:
        """``3 active alerts (1 critical)``, ``1 active alert``, ``no alert raised``."""
        if not self.active:
            return "no alert raised"
        plural = "s" if self.active > 1 else ""
        critical = ""
        if self.critical:
            critical = " (critical)" if self.active == 1 else f" ({self.critical} critical)"
        return f"{self.active} active alert{plural}{critical}"

    @property
    def line(self) -> str:
        return f"{self.word}: {self.text}"


def severity_of(state: AlertState, rules: Mapping[str, Severity] | None = None) -> Severity:
    """The severity the state recorded, else its rule's in ``rules``, else warning."""
    if state.severity is not None:
        return state.severity
    return (rules or {}).get(state.rule, "warning")
