"""The latest monitoring results as Prometheus gauges, read when Prometheus scrapes.

The server's background monitor (:mod:`loopml.monitor.job`) keeps the newest complete
window per version and arm (:class:`~loopml.monitor.results.WindowReport`) and the raised
alerts (:class:`~loopml.monitor.alerts.AlertState`); this collector turns them into gauges.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from loopml.monitor.alerts import AlertState
from loopml.monitor.results import WindowReport

__all__ = ["MonitorCollector", "MonitorSnapshot"]


@dataclass(frozen=True)
class MonitorSnapshot:
    """The newest complete window per (version, arm), and the alerts raised now."""

    windows: Sequence[WindowReport] = ()
    active_alerts: Sequence[AlertState] = ()
    last_run_ts: float | None = None
    runs_failed: int = 0
    errors: Sequence[str] = field(default_factory=tuple)


class MonitorCollector(Collector):
    """Gauges ``loopml_drift_*``, ``loopml_performance`` and ``loopml_alerts_raised``."""

    def __init__(self, read: Callable[[], MonitorSnapshot | None]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self._read()
        if snapshot is None:
            return
        share = GaugeMetricFamily(
            "loopml_drift_share", "Share of features drifted in the newest window",
            labels=["version", "arm"],
        )  # fmt: skip
        dataset = GaugeMetricFamily(
            "loopml_dataset_drift", "1 when the newest window's drift share reaches the "
            "configured share", labels=["version", "arm"],
        )  # fmt: skip
        score = GaugeMetricFamily(
            "loopml_feature_drift_score", "Drift statistic per feature (p-value or distance)",
            labels=["version", "arm", "feature", "test"],
        )  # fmt: skip
        drifted = GaugeMetricFamily(
            "loopml_feature_drifted", "1 when the feature drifted in the newest window",
            labels=["version", "arm", "feature"],
        )  # fmt: skip
        performance = GaugeMetricFamily(
            "loopml_performance", "Model quality in the newest window: realized (labelled "
            "rows), estimated (no labels needed) or reference (holdout)",
            labels=["version", "arm", "metric", "kind"],
        )  # fmt: skip
        window_end = GaugeMetricFamily(
            "loopml_monitor_window_end_seconds", "End of the newest monitored window (unix)",
            labels=["version", "arm"],
        )  # fmt: skip
        for window in snapshot.windows:
            labels = [window.version, window.arm]
            _window(window, labels, share, dataset, score, drifted, performance, window_end)
        yield from (share, dataset, score, drifted, performance, window_end)
        yield _alerts(snapshot.active_alerts)
        if snapshot.last_run_ts is not None:
            yield GaugeMetricFamily(
                "loopml_monitor_last_run_seconds", "When the monitor last ran (unix)",
                snapshot.last_run_ts,
            )  # fmt: skip
        yield GaugeMetricFamily(
            "loopml_monitor_runs_failed", "Monitor runs that failed since start",
            snapshot.runs_failed,
        )  # fmt: skip


def _window(
    window: WindowReport,
    labels: list[str],
    share: GaugeMetricFamily,
    dataset: GaugeMetricFamily,
    score: GaugeMetricFamily,
    drifted: GaugeMetricFamily,
    performance: GaugeMetricFamily,
    window_end: GaugeMetricFamily,
) -> None:
    window_end.add_metric(labels, window.end_ts)
    if window.drift_share is not None and math.isfinite(window.drift_share):
        share.add_metric(labels, window.drift_share)
        dataset.add_metric(labels, float(window.dataset_drift))
    columns = [*window.features, *([window.prediction] if window.prediction else [])]
    for column in columns:
        drift = column.drift
        if drift.status == "ok" and drift.statistic is not None and math.isfinite(drift.statistic):
            score.add_metric([*labels, column.name, drift.test], drift.statistic)
            drifted.add_metric([*labels, column.name], float(drift.drifted))
    perf = window.performance
    for kind, values in (
        ("realized", perf.realized), ("estimated", perf.estimated), ("reference", perf.reference),
    ):  # fmt: skip
        for metric, value in values.items():
            if value is not None and math.isfinite(value):  # not finite: not measured
                performance.add_metric([*labels, metric, kind], value)


def _alerts(active: Sequence[AlertState]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "loopml_alerts_raised", "Alerts raised now (1 per alert)",
        labels=["rule", "metric", "arm", "severity"],
    )  # fmt: skip
    for alert in active:
        # The state has no severity (the rule has); the label stays for the dashboards.
        family.add_metric([alert.rule, alert.metric, alert.arm, ""], 1.0)
    return family
