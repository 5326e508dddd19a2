"""The server's counters of what is served anyway: unseen categories, unexpected nulls,
ignored fields (whose names a client chooses, so their labels are bounded)."""

from __future__ import annotations

import pytest

from loopml.serve.metrics import MAX_IGNORED_FIELDS, OTHER_FIELD, ServeMetrics

pytestmark = pytest.mark.unit


def _value(metrics: ServeMetrics, line: str) -> float:
    text = metrics.exposition().decode()
    assert line in text, text
    return float(text.split(line)[1].split()[0])


def test_unexpected_nulls_are_counted_per_feature() -> None:
    metrics = ServeMetrics()
    metrics.nulls.labels("amount").inc(2)
    assert _value(metrics, 'loopml_unexpected_nulls_total{feature="amount"}') == 2.0


def test_ignored_fields_are_counted_by_name_up_to_a_bound() -> None:
    metrics = ServeMetrics()
    metrics.ignored_field("bonus")
    metrics.ignored_field("bonus")
    assert _value(metrics, 'loopml_ignored_fields_total{field="bonus"}') == 2.0
    for i in range(MAX_IGNORED_FIELDS + 5):
        metrics.ignored_field(f"f{i}")
    metrics.ignored_field("bonus")  # a name already counted keeps its own line
    metrics.ignored_field("x" * 500)
    text = metrics.exposition().decode()
    assert text.count("loopml_ignored_fields_total{") == MAX_IGNORED_FIELDS + 1
    assert _value(metrics, f'loopml_ignored_fields_total{{field="{OTHER_FIELD}"}}') == 7.0
    assert _value(metrics, 'loopml_ignored_fields_total{field="bonus"}') == 3.0


def test_model_errors_are_counted_per_arm_and_dropped_shadows_per_version() -> None:
    metrics = ServeMetrics()
    metrics.arm_event("error", "challenger", "2")
    metrics.arm_event("error", "shadow", "2")
    metrics.arm_event("dropped", "shadow", "2")
    metrics.arm_event("dropped", "shadow", "2")
    assert _value(metrics, 'loopml_arm_errors_total{arm="challenger",version="2"}') == 1.0
    assert _value(metrics, 'loopml_arm_errors_total{arm="shadow",version="2"}') == 1.0
    assert _value(metrics, 'loopml_shadow_dropped_total{version="2"}') == 2.0
