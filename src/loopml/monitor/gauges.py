"""The latest monitoring results as Prometheus gauges, read when Prometheus scrapes.

The server's background monitor (:mod:`loopml.monitor.loop`) keeps the newest complete
window per version and arm; this collector turns those window dicts
(:meth:`~loopml.monitor.results.WindowReport.to_dict`) and the raised alerts into gauges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["MonitorCollector", "MonitorSnapshot"]


@dataclass(frozen=True)
class MonitorSnapshot:
    """The newest complete window per (version, arm), and the alerts raised now."""

    windows: Sequence[Mapping[str, Any]] = ()
    active_alerts: Sequence[Mapping[str, Any]] = ()
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
            labels = [str(window.get("version")), str(window.get("arm"))]
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
    window: Mapping[str, Any],
    labels: list[str],
    share: GaugeMetricFamily,
    dataset: GaugeMetricFamily,
    score: GaugeMetricFamily,
    drifted: GaugeMetricFamily,
    performance: GaugeMetricFamily,
    window_end: GaugeMetricFamily,
) -> None:
    window_end.add_metric(labels, float(window.get("end_ts") or 0.0))
    if window.get("drift_share") is not None:
        share.add_metric(labels, float(window["drift_share"]))
        dataset.add_metric(labels, float(bool(window.get("dataset_drift"))))
    columns = list(window.get("features") or [])
    if window.get("prediction"):
        columns.append(window["prediction"])
    for column in columns:
        drift = column.get("drift") or {}
        if drift.get("status") == "ok" and drift.get("statistic") is not None:
            name = str(column.get("name"))
            score.add_metric([*labels, name, str(drift.get("test"))], float(drift["statistic"]))
            drifted.add_metric([*labels, name], float(bool(drift.get("drifted"))))
    perf = window.get("performance") or {}
    for kind in ("realized", "estimated", "reference"):
        for metric, value in (perf.get(kind) or {}).items():
            if value is not None:
                performance.add_metric([*labels, str(metric), kind], float(value))


def _alerts(active: Sequence[Mapping[str, Any]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "loopml_alerts_raised", "Alerts raised now (1 per alert)",
        labels=["rule", "metric", "arm", "severity"],
    )  # fmt: skip
    for alert in active:
        family.add_metric(
            [str(alert.get("rule")), str(alert.get("metric")), str(alert.get("arm")),
             str(alert.get("severity", ""))],
            1.0,
        )  # fmt: skip
    return family
