"""Alert messages give the statistic against its threshold, from the window's facts."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest

from loopml.config import AlertRule
from loopml.monitor.alert_messages import describe, monitored, window_evidence
from loopml.monitor.alerts import AlertEvent, WindowView, evaluate
from loopml.monitor.results import ColumnDrift, FeatureReport, PerformanceReport, WindowReport

pytestmark = pytest.mark.unit

FEATURES = ("age", "income", "tenure", "plan", "region", "score", "city")


def feature(name: str, statistic: float, drifted: bool, **kw: Any) -> FeatureReport:
    test, kind, threshold = kw.get("test", ("wasserstein", "distance", 0.1))
    drift = ColumnDrift(
        name, test, kind, threshold, statistic, drifted, reference_rows=9000, current_rows=5000
    )
    return FeatureReport(
        name,
        "numeric",
        drift,
        kw.get("missing", 0.01),
        kw.get("reference_missing", 0.01),
        unseen_rate=kw.get("unseen"),
        unseen_examples=kw.get("examples", []),
    )


def report(metrics: dict[str, float], **kw: Any) -> WindowReport:
    statistics = {"age": 2.07, "income": 0.9, "tenure": 0.5, "plan": 0.3, "region": 0.2}
    features = [feature(name, statistics.get(name, 0.01), name in statistics) for name in FEATURES]
    features[-1] = feature(
        "city", 0.01, False, missing=0.31, unseen=0.12, examples=["Atlantis", "Mu"]
    )
    drifted = [f.name for f in features if f.drift.drifted]
    perf = PerformanceReport(
        labelled_rows=1200,
        realized={"roc_auc": 0.812, "accuracy": 0.75},
        estimated={"roc_auc": 0.83},
        reference={"roc_auc": 0.861, "accuracy": 0.78},
    )
    return WindowReport(
        model="feed", version="3", arm="champion", window="5000 rows", index=4,
        start_ts=1000.0, end_ts=2000.0, rows=5000, status="ok", reason=None,
        features=features, prediction=None, drift_share=len(drifted) / len(features),
        drifted_features=drifted, dataset_drift=True, performance=perf,
        metrics={"rows": 5000.0, **metrics}, complete=True,
        monitored_features=kw.get("monitored", 0), untested_features=kw.get("untested", []),
    )  # fmt: skip


def raise_on(metric: str, window: WindowReport, **rule: Any) -> AlertEvent:
    settings = {"name": "alert", "above": 0.5, **rule}
    alert = AlertRule(metric=metric, raise_after=1, min_rows=1, **settings)
    evidence = partial(window_evidence, window, drift_share_threshold=0.5)
    _, events = evaluate([alert], WindowView.from_report(window), {}, evidence)
    assert len(events) == 1
    return events[0]


def test_a_feature_drift_alert_gives_the_test_its_statistic_and_threshold() -> None:
    event = raise_on("drift.*", report({"drift.age": 1.0}), name="feature-drift")
    assert event.message == (
        "feature-drift raised on feed champion v3: age drifted (wasserstein 2.07 against "
        "threshold 0.1) in window 4 (5,000 rows)"
    )
    assert "= 1 >" not in event.message
    assert event.evidence["feature"]["statistic"] == 2.07
    json.dumps(event.to_dict(), allow_nan=False)


def test_a_p_value_test_is_named_as_one() -> None:
    facts = {"feature": {"test": "ks", "kind": "p_value", "statistic": 0.000123, "threshold": 0.05}}
    assert describe("drift.age", 1.0, 0.5, "above", facts, raised=True) == (
        "age drifted (ks p-value 0.000123 against threshold 0.05)"
    )


def test_dataset_drift_counts_the_monitored_features_and_names_the_drifted() -> None:
    window = report({"dataset_drift": 1.0}, monitored=7)
    event = raise_on("dataset_drift", window, name="dataset-drift")
    assert event.message.startswith(
        "dataset-drift raised on feed champion v3: dataset drift: 5 of 7 monitored features "
        "drifted (share 0.71, threshold 0.5): age, income, tenure, plan, region in window 4"
    )


def test_dataset_drift_says_how_many_were_not_tested() -> None:
    window = report({"dataset_drift": 1.0}, monitored=8, untested=["x"])
    message = raise_on("dataset_drift", window).message
    assert "5 of 8 monitored features drifted; 1 not tested (share" in message


def test_windows_without_the_denominator_share_over_the_tested_features() -> None:
    assert monitored(report({})) == (7, [])
    assert monitored(report({}, monitored=9, untested=["a", "b"])) == (9, ["a", "b"])


def test_missing_values_give_the_rate_now_the_reference_and_the_threshold() -> None:
    window = report({"missing_increase.city": 0.30})
    message = raise_on("missing_increase.*", window, above=0.1).message
    assert "missing values in city at 31% of rows against 1% in the reference: up 30 " in message
    assert "points > 10 points in window 4" in message


def test_unseen_categories_give_the_rate_the_threshold_and_examples() -> None:
    message = raise_on("unseen_rate.*", report({"unseen_rate.city": 0.12}), above=0.1).message
    assert "unseen categories in city: 12% of values against 0% in the reference" in message
    assert "> 10% (e.g. Atlantis, Mu) in window 4" in message


def test_a_realized_drop_gives_the_metric_the_holdout_the_drop_and_the_chance_level() -> None:
    metrics = {"realized_drop": 0.049, "realized_drop.roc_auc": 0.049,
               "realized_drop.accuracy": 0.03, "realized_noise": 0.021}  # fmt: skip
    event = raise_on("realized_drop", report(metrics), above=0.03, name="performance-drop")
    assert event.message == (
        "performance-drop raised on feed champion v3: realized roc_auc 0.812 against holdout "
        "0.861: drop 0.049 > 0.03 and beyond chance (0.021 for 1,200 labelled rows) in "
        "window 4 (1,200 labelled rows)"
    )


def test_a_suffixed_drop_reads_its_own_noise_and_falls_back_without_it() -> None:
    metrics = {"realized_drop.accuracy": 0.03, "realized_noise.accuracy": 0.025}
    message = raise_on("realized_drop.*", report(metrics), above=0.02).message
    assert "realized accuracy 0.75 against holdout 0.78: drop 0.03 > 0.02 and beyond " in (message)
    assert "chance (0.025 for 1,200 labelled rows)" in message
    bare = raise_on("realized_drop.*", report({"realized_drop.accuracy": 0.03}), above=0.02)
    assert "drop 0.03 > 0.02 in window 4" in bare.message


def test_an_estimated_drop_counts_every_row() -> None:
    metrics = {"estimated_drop": 0.031, "estimated_drop.roc_auc": 0.031,
               "estimated_noise": 0.01}  # fmt: skip
    message = raise_on("estimated_drop", report(metrics), above=0.03).message
    assert "estimated roc_auc 0.83 against holdout 0.861: drop 0.031 > 0.03 and beyond " in (
        message
    )
    assert "chance (0.01 for 5,000 rows)" in message


def test_a_cusum_alert_is_a_sustained_drop() -> None:
    metrics = {"performance_cusum": 5.2, "performance_cusum_start": 2.0,
               "realized_drop": 0.049, "realized_drop.roc_auc": 0.049}  # fmt: skip
    message = raise_on("performance_cusum", report(metrics), above=4).message
    assert "sustained drop of realized roc_auc: cumulative evidence 5.2 > 4 over windows 2-4" in (
        message
    )


def test_a_cleared_alert_gives_the_value_that_cleared_it() -> None:
    facts = {"performance": {"kind": "realized", "metric": "roc_auc", "value": 0.85,
                             "holdout": 0.861, "noise": 0.02, "rows": 900}}  # fmt: skip
    assert describe("realized_drop", 0.011, 0.03, "above", facts, raised=False) == (
        "realized roc_auc 0.85 against holdout 0.861: drop 0.011 <= 0.03 (chance level 0.02 "
        "for 900 labelled rows)"
    )


def test_without_facts_the_message_still_gives_value_and_threshold() -> None:
    assert describe("custom.metric", 3.0, 2.0, "above", {}, raised=True) == "custom.metric 3 > 2"
    assert describe("drift.age", 1.0, 0.5, "above", {}, raised=True) == "age drifted"
    assert describe("dataset_drift", 1.0, 0.5, "above", {}, raised=True) == "dataset drift"
