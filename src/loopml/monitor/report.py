"""What the monitoring report shows, as one typed value: :class:`MonitorReport`.

``loopml monitor run`` builds it from the monitor store (the stored windows, as
:class:`~loopml.monitor.results.WindowReport`, the newest alert events, the active
alerts) and this run's windows; :func:`~loopml.monitor.report_html.write_report` writes
it as JSON (:meth:`MonitorReport.to_dict`) and renders it as HTML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loopml.monitor.alerts import AlertState
from loopml.monitor.results import WindowReport
from loopml.monitor.store import StoredEvent

__all__ = ["MonitorReport"]


@dataclass(frozen=True)
class MonitorReport:
    """One model's monitoring report.

    ``windows`` may hold a window twice (stored history plus this run's fresh copy): the
    report shows the later one. ``alerts`` are the newest alert events (any version and
    arm), ``active_alerts`` the alerts raised now. ``min_rows`` is quoted when there are
    no windows yet; ``drift_share_threshold`` is drawn on the drift summary and chart.
    """

    project: str
    model: str
    window: str  # the window spec, e.g. "5000 rows" or "1h"
    created_at: str  # ISO 8601
    windows: Sequence[WindowReport] = ()
    alerts: Sequence[StoredEvent] = ()
    active_alerts: Sequence[AlertState] = ()
    errors: Sequence[str] = ()
    min_rows: int | None = None
    drift_share_threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (``monitor.json``)."""
        return {
            "project": self.project,
            "model": self.model,
            "created_at": self.created_at,
            "window": self.window,
            "min_rows": self.min_rows,
            "drift_share_threshold": self.drift_share_threshold,
            "windows": [w.to_dict() for w in self.windows],
            "alerts": [e.to_dict() for e in self.alerts],
            "active_alerts": [a.to_dict() for a in self.active_alerts],
            "errors": list(self.errors),
        }
