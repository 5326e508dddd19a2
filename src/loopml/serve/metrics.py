"""Prometheus metrics of one server process: requests, errors, latency, rows, the ledger.

Each app gets its own :class:`~prometheus_client.CollectorRegistry`, so two servers in one
process (tests) never share counters. Ledger gauges are read from the ledger when
Prometheus scrapes, not pushed on every request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5,
)  # fmt: skip
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_IGNORED_FIELDS = 100
"""Distinct ignored field names counted by name; clients choose them, so the rest are
counted as ``(other)`` rather than growing the exposition without bound."""
OTHER_FIELD = "(other)"


@dataclass(frozen=True)
class LedgerGauges:
    """What the ledger reports at scrape time."""

    queue_rows: int
    queue_capacity: int
    write_lag_seconds: float
    committed_rows: int
    failed_rows: int


class _LedgerCollector(Collector):
    def __init__(self, read: Callable[[], LedgerGauges | None]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauges = self._read()
        if gauges is None:
            return
        yield GaugeMetricFamily(
            "loopml_ledger_queue_rows", "Predictions waiting to be written", gauges.queue_rows
        )
        yield GaugeMetricFamily(
            "loopml_ledger_queue_capacity", "Rows the ledger queue holds", gauges.queue_capacity
        )
        yield GaugeMetricFamily(
            "loopml_ledger_write_lag_seconds",
            "Age of the oldest prediction not yet committed",
            gauges.write_lag_seconds,
        )
        yield GaugeMetricFamily(
            "loopml_ledger_committed_rows", "Rows committed since start", gauges.committed_rows
        )
        yield GaugeMetricFamily(
            "loopml_ledger_failed_rows", "Rows the ledger failed to write", gauges.failed_rows
        )


def _rollout_counters(r: CollectorRegistry) -> tuple[Counter, Counter]:
    """Model failures per arm, and shadow requests dropped (a full shadow queue)."""
    errors = Counter(
        "loopml_arm_errors_total",
        "Model failures per arm (a challenger's failure is answered by the champion)",
        ["version", "arm"],
        registry=r,
    )
    dropped = Counter(
        "loopml_shadow_dropped_total",
        "Shadow requests dropped unscored: the shadow queue was full",
        ["version"],
        registry=r,
    )
    return errors, dropped


class ServeMetrics:
    """The server's instruments, labelled by route, model version and arm."""

    def __init__(self, ledger: Callable[[], LedgerGauges | None] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "loopml_requests_total",
            "Requests answered",
            ["route", "version", "arm", "status"],
            registry=r,
        )
        self.errors = Counter(
            "loopml_request_errors_total", "Requests refused or failed", ["route", "error"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "loopml_request_latency_seconds",
            "Time from request to response, ledger write included",
            ["route", "version", "arm"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter(
            "loopml_predicted_rows_total", "Rows predicted", ["version", "arm"], registry=r
        )
        self.unseen = Counter(
            "loopml_unseen_categories_total",
            "Categorical values not seen in training (served, encoded as unknown)",
            ["feature"],
            registry=r,
        )
        self.nulls = Counter(
            "loopml_unexpected_nulls_total",
            "Nulls in features that had none in training (served, imputed)",
            ["feature"],
            registry=r,
        )
        self.ignored = Counter(
            "loopml_ignored_fields_total",
            "Request fields the contract does not know (served, ignored), per request",
            ["field"],
            registry=r,
        )
        self._ignored_names: set[str] = set()
        self.ledger_full = Counter(
            "loopml_ledger_full_total", "Requests refused with 503: ledger queue full", registry=r
        )
        self.reloads = Counter(
            "loopml_model_reloads_total", "Model loads after an alias move", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.arm_errors, self.shadow_dropped = _rollout_counters(r)
        self.model_info = Gauge(
            "loopml_model_info", "The served version (value 1)", ["model", "version"], registry=r
        )
        if ledger is not None:
            r.register(_LedgerCollector(ledger))

    def served(self, model: str, version: str) -> None:
        self.model_info.clear()
        self.model_info.labels(model, version).set(1)

    def observe(self, route: str, version: str, arm: str, status: int, seconds: float) -> None:
        self.requests.labels(route, version, arm, str(status)).inc()
        self.latency.labels(route, version, arm).observe(seconds)

    def arm_event(self, kind: str, arm: str, version: str) -> None:
        """Count what the service reports of an arm: a model ``error``, or a shadow
        request ``dropped``."""
        if kind == "error":
            self.arm_errors.labels(version, arm).inc()
        elif kind == "dropped":
            self.shadow_dropped.labels(version).inc()

    def ignored_field(self, name: str) -> None:
        """Count one request holding a field the contract does not know."""
        if name not in self._ignored_names:
            if len(self._ignored_names) >= MAX_IGNORED_FIELDS or len(name) > 100:
                name = OTHER_FIELD
            else:
                self._ignored_names.add(name)
        self.ignored.labels(name).inc()

    def refused(self, route: str, error: str) -> None:
        self.errors.labels(route, error).inc()
        if error == "ledger_full":
            self.ledger_full.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
