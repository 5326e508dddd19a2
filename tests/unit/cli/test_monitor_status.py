"""``loopml monitor run`` says the same status as the HTML report: from the alerts."""

from __future__ import annotations

import pytest

from loopml.cli.monitor_cmds import _show_run
from loopml.cli.output import console
from loopml.monitor.alerts import AlertState
from loopml.monitor.run import MonitorRun

pytestmark = pytest.mark.unit


def summary(active: list[AlertState]) -> str:
    run = MonitorRun(model="m", window="5000 rows", windows=[], events=[], deliveries=[],
                     active=active)  # fmt: skip
    with console.capture() as captured:
        _show_run(run, 0.1, {"dataset-drift": "critical", "missing-values": "warning"})
    return " ".join(captured.get().split())


def test_the_summary_counts_the_active_alerts_and_the_critical_ones() -> None:
    active = [
        AlertState("m", "champion", "dataset-drift", "dataset_drift", status="raised"),
        AlertState("m", "champion", "missing-values", "missing_increase.a", status="raised"),
        AlertState("m", "champion", "custom", "rows", status="raised", severity="warning"),
    ]
    assert "alerting: 3 active alerts (1 critical): dataset-drift (dataset_drift)" in (
        summary(active)
    )
    assert "warning: 1 active alert: missing-values" in summary(active[1:2])
    assert "ok: no alert raised" in summary([])
