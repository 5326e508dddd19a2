"""The quality of the signal: the drift share's denominator, drops beside chance, the
cumulative check across windows and macro metrics on windows that lack classes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest

from loopml.config import CUSUM_LIMIT, AlertRule, MonitorConfig
from loopml.ledger.records import LedgerRecord
from loopml.monitor.alerts import WindowView
from loopml.monitor.alerts import evaluate as evaluate_alerts
from loopml.monitor.cusum import Cusum, cusum_step
from loopml.monitor.evaluate import evaluate_window
from loopml.monitor.noise import ChanceTable
from loopml.monitor.performance import fit_calibration, realized_performance
from loopml.monitor.profile import (
    HoldoutSample,
    ReferenceProfile,
    categorical_profile,
    numeric_profile,
)
from loopml.monitor.results import WindowReport
from loopml.monitor.windows import WindowData, decode_window
from loopml.train.metrics import compute_metrics

pytestmark = pytest.mark.unit

N_REF = 4_000
FEATURES = ("a", "b", "c", "d", "e", "f", "g")


# --- a regression model in dollars --------------------------------------------------


def regression_profile(noise: float = 900.0) -> ReferenceProfile:
    rng = np.random.default_rng(3)
    truth = rng.normal(50_000, 8_000, N_REF)
    predicted = truth + rng.normal(0, noise, N_REF)
    metrics = compute_metrics("regression", truth, predicted, 0)
    # A small table's reference (<= 1,000 rows): Kolmogorov-Smirnov, as Evidently chooses.
    columns = tuple(numeric_profile(name, rng.normal(size=800)) for name in FEATURES)
    return ReferenceProfile(
        model="m", task="regression", target="price", classes=(), features=columns,
        prediction=numeric_profile("prediction", predicted),
        label=numeric_profile("price", truth), holdout_metrics=metrics, holdout_rows=N_REF,
        train_rows=N_REF, points=2048,
        holdout_sample=HoldoutSample.draw("regression", truth, predicted),
    )  # fmt: skip


def regression_window(
    n: int, seed: int, *, noise: float = 900.0, shift: float = 0.0, nulls: int = 0
) -> WindowData:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        truth = float(rng.normal(50_000, 8_000))
        features: dict[str, Any] = {name: float(rng.normal()) for name in FEATURES}
        if shift:
            features["a"] += shift
            features["b"] += shift
            features["c"] += shift
            features["d"] += shift
        if i < nulls:
            features["e"] = None
        output = {"value": truth + float(rng.normal(0, noise))}
        records.append(LedgerRecord(
            f"r{i}", 0, float(i), "m", "1", "champion", None, orjson.dumps(features).decode(),
            orjson.dumps(output).decode(), 0.1, orjson.dumps(truth).decode(), None,
        ))  # fmt: skip
    return WindowData("1", "champion", 0, 0.0, float(n), True, records)


def evaluate(profile: ReferenceProfile, data: WindowData, **kw: Any) -> WindowReport:
    config = kw.pop("config", MonitorConfig(window="100", min_rows=100))
    decoded = decode_window(data.records, profile, [])
    return evaluate_window(profile, data, decoded, config, "100 rows", primary="rmse", **kw)


# --- the drift share ------------------------------------------------------------------


def test_one_null_never_removes_a_feature_from_the_drift_share() -> None:
    report = evaluate(regression_profile(), regression_window(100, 1, nulls=1))
    assert report.monitored_features == len(FEATURES)
    assert report.untested_features == []  # 99 values are plenty for a drift test
    e = next(f for f in report.features if f.name == "e")
    assert e.drift.status == "ok" and e.missing_rate == pytest.approx(0.01)
    assert not report.dataset_drift
    assert report.drift_share is not None and report.drift_share < 0.5


def test_the_share_counts_untested_features_in_its_denominator() -> None:
    report = evaluate(regression_profile(), regression_window(100, 2, nulls=90))
    assert report.untested_features == ["e"]  # 10 values: too few to test
    drifted = len(report.drifted_features)
    assert report.drift_share == pytest.approx(drifted / len(FEATURES))


def test_a_window_where_most_features_shifted_is_dataset_drift_whatever_the_nulls() -> None:
    report = evaluate(regression_profile(), regression_window(100, 3, shift=3.0, nulls=95))
    assert {"a", "b", "c", "d"} <= set(report.drifted_features)
    assert report.drift_share == pytest.approx(4 / 7, abs=0.15)
    assert report.dataset_drift


# --- drops beside chance ------------------------------------------------------------


def test_error_metric_drops_are_relative_and_stationary_windows_stay_within_chance() -> None:
    profile = regression_profile()
    chance = ChanceTable(profile)
    breaches = 0
    for seed in range(40):
        report = evaluate(profile, regression_window(100, 100 + seed), chance=chance)
        m = report.metrics
        assert abs(m["realized_drop"]) < 1.0  # a fraction of the holdout RMSE, not dollars
        assert m["realized_noise"] > 0.05  # 100 rows: RMSE varies by more than 5 % by chance
        breaches += m["realized_drop"] > max(0.05, m["realized_noise"])
    assert breaches <= 2  # the 99 % level: about one window in a hundred


def test_a_real_drop_exceeds_chance_and_breaches_the_rule() -> None:
    profile = regression_profile()
    doubled = regression_window(400, 9, noise=1_800.0)
    report = evaluate(profile, doubled, chance=ChanceTable(profile))
    m = report.metrics
    assert m["realized_drop"] == pytest.approx(1.0, abs=0.3)  # RMSE doubled: 100 % worse
    assert m["realized_drop"] > m["realized_noise"] and m["realized_z"] > 5
    rule = AlertRule(name="performance-drop", metric="realized_drop", above=0.05, raise_after=1,
                     min_rows=100)  # fmt: skip
    _, events = evaluate_rules(rule, m)
    assert [e.state for e in events] == ["raised"]


def test_a_drop_above_the_threshold_but_within_chance_does_not_breach() -> None:
    rule = AlertRule(name="performance-drop", metric="realized_drop", above=0.05, raise_after=1,
                     min_rows=1)  # fmt: skip
    within = {"realized_drop": 0.08, "realized_noise": 0.12}
    beyond = {"realized_drop": 0.15, "realized_noise": 0.12}
    no_chance_known = {"realized_drop": 0.08}
    assert evaluate_rules(rule, within)[1] == []
    assert [e.state for e in evaluate_rules(rule, beyond)[1]] == ["raised"]
    assert [e.state for e in evaluate_rules(rule, no_chance_known)[1]] == ["raised"]


def evaluate_rules(rule: AlertRule, metrics: dict[str, float]) -> Any:
    view = WindowView("m", "1", "champion", 0, 0.0, 1.0, 400, 400, metrics)
    return evaluate_alerts([rule], view, {})


def test_chance_shrinks_with_the_window_and_is_the_same_every_run() -> None:
    profile = regression_profile()
    small, large = ChanceTable(profile).realized(100), ChanceTable(profile).realized(2_000)
    assert small["rmse"].level > 2 * large["rmse"].level > 0
    assert ChanceTable(profile).realized(100) == small  # seeded by the size
    assert ChanceTable(profile).realized(1_234) == ChanceTable(profile).realized(1_200)


def test_no_holdout_sample_means_no_chance_level_and_no_z() -> None:
    profile = regression_profile()
    old = ReferenceProfile.from_dict({**profile.to_dict(), "holdout_sample": None})
    report = evaluate(old, regression_window(100, 4), chance=ChanceTable(old))
    assert "realized_noise" not in report.metrics and "realized_z" not in report.metrics
    assert report.metrics["performance_cusum"] == 0.0


def test_the_profile_keeps_its_holdout_sample_through_json() -> None:
    profile = regression_profile()
    back = ReferenceProfile.from_json(profile.to_json())
    assert back.holdout_sample is not None and back.holdout_sample.rows == N_REF
    assert profile.holdout_sample is not None
    assert np.allclose(back.holdout_sample.scores, profile.holdout_sample.scores, atol=1e-3)


# --- the cumulative check -----------------------------------------------------------


def test_cusum_needs_two_windows_and_forgets_noise() -> None:
    assert cusum_step(0.0, 40.0) < CUSUM_LIMIT  # one outlier window never raises on its own
    assert cusum_step(cusum_step(0.0, 3.1), 3.1) > CUSUM_LIMIT  # a clear drop twice does
    s = 0.0
    rng = np.random.default_rng(0)
    peak = 0.0
    for z in rng.normal(size=2_000):  # an unchanged world: z ~ N(0, 1)
        s = cusum_step(s, float(z))
        peak = max(peak, s)
    assert peak < CUSUM_LIMIT


def test_cusum_carries_across_windows_of_a_small_sustained_drop() -> None:
    profile = regression_profile()
    chance = ChanceTable(profile)
    cusum, raised_at = Cusum(), None
    for i in range(6):  # RMSE 25 % worse: within chance for one window of 100 rows
        report = evaluate(profile, regression_window(100, 50 + i, noise=1_125.0), chance=chance,
                          cusum=cusum)  # fmt: skip
        cusum = Cusum.of(report.metrics)
        if raised_at is None and cusum.value > CUSUM_LIMIT:
            raised_at = i
    assert raised_at is not None and raised_at <= 4
    assert cusum.start is not None and cusum.start <= raised_at


# --- macro metrics on windows that lack classes ------------------------------------


def test_macro_f1_of_a_window_with_one_class_present_is_not_a_third() -> None:
    scores = np.tile([0.98, 0.01, 0.01], (200, 1))
    scores[:2] = [0.01, 0.98, 0.01]  # two mistakes out of 200: accuracy 0.99
    metrics, _, _ = realized_performance("multiclass", ["a", "b", "c"], ["a"] * 200, scores)
    assert metrics["accuracy"] == pytest.approx(0.99)
    assert metrics["f1_macro"] == pytest.approx(2 * 0.99 / (1 + 0.99), abs=1e-3)  # class a's
    assert not math.isclose(metrics["f1_macro"], 1 / 3, abs_tol=0.05)


def test_the_report_names_the_classes_a_window_lacks() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, N_REF)
    proba = np.full((N_REF, 3), 0.05)
    proba[np.arange(N_REF), y] = 0.9
    profile = ReferenceProfile(
        model="m", task="multiclass", target="y", classes=("a", "b", "c"),
        features=(numeric_profile("x", rng.normal(size=N_REF)),),
        prediction=categorical_profile("prediction", np.array(["a", "b", "c"])[y]),
        label=categorical_profile("y", np.array(["a", "b", "c"])[y]),
        holdout_metrics=compute_metrics("multiclass", y, proba, 3), holdout_rows=N_REF,
        train_rows=N_REF, points=2048, calibration=fit_calibration("multiclass", proba, y),
        holdout_sample=HoldoutSample.draw("multiclass", y, proba),
    )  # fmt: skip
    records = [
        LedgerRecord(
            f"r{i}", 0, float(i), "m", "1", "champion", None, orjson.dumps({"x": 0.1}).decode(),
            orjson.dumps({"label": "a", "proba_a": 0.9, "proba_b": 0.05, "proba_c": 0.05}).decode(),
            0.1, '"a"', None,
        )
        for i in range(150)
    ]  # fmt: skip
    data = WindowData("1", "champion", 0, 0.0, 150.0, True, records)
    decoded = decode_window(data.records, profile, [])
    config = MonitorConfig(window="100", min_rows=100)
    chance = ChanceTable(profile)
    report = evaluate_window(
        profile, data, decoded, config, "100 rows", primary="f1_macro", chance=chance
    )
    assert report.performance.absent_classes == ["b", "c"]
    assert report.performance.realized["f1_macro"] == pytest.approx(1.0)
    assert report.metrics["realized_drop"] <= 0.0


# --- what clients send back ---------------------------------------------------------


def test_values_a_client_rounded_are_the_values_the_reference_holds() -> None:
    from loopml.monitor.drift import column_drift

    exact = np.array([0.0506801187398187, -0.044641636506989] * 300)
    reference = numeric_profile("sex", exact)
    rounded = np.round(exact[:200], 10)  # pandas' to_json keeps 10 digits
    as_float32 = exact[:200].astype(np.float32).astype(np.float64)
    for sent in (rounded, as_float32):
        result = column_drift(reference, sent)
        assert result.status == "ok" and not result.drifted, result


def test_served_probabilities_in_float32_do_not_look_like_prediction_drift() -> None:
    from loopml.monitor.drift import column_drift
    from loopml.monitor.reference import prediction_values

    rng = np.random.default_rng(2)
    logits = rng.normal(0, 30, 800)  # a confident model: many probabilities near 0 and 1
    p = 1 / (1 + np.exp(-logits))
    profiled = prediction_values("binary", ("0", "1"), np.column_stack([1 - p, p]))
    reference = numeric_profile("prediction", profiled)  # <= 1,000 rows: KS
    # Served in float32 as 1 - P(negative): the tiny probabilities become exactly 0.
    negative = (1 - p[:300]).astype(np.float32)
    served = np.column_stack([negative, np.float32(1) - negative]).astype(np.float64)
    assert (served[:, 1] == 0).mean() > 0.15
    result = column_drift(reference, prediction_values("binary", ("0", "1"), served))
    assert result.test == "ks" and not result.drifted, result
    unrounded = column_drift(numeric_profile("prediction", p), served[:, 1])
    assert unrounded.drifted  # what the rounding is for


def test_cusum_learns_a_steady_offset_and_still_raises_a_change_within_three_windows() -> None:
    rng = np.random.default_rng(11)
    # Windows that all sit 1.2 sd of chance below the holdout (the feed's sit 0.7 below).
    steady = rng.normal(1.2, 0.86, 3_000)
    state, alarms = Cusum(), 0
    for index, z in enumerate(steady):
        state = state.step(float(z), index)
        if state.value > CUSUM_LIMIT:
            alarms += 1
            state = Cusum(0.0, None, state.windows, state.z_sum)
    assert alarms == 0
    assert state.level == pytest.approx(1.2, abs=0.1)
    # Judged against the holdout alone, the same windows raise false alerts.
    naive, naive_alarms = 0.0, 0
    for z in steady:
        naive = cusum_step(naive, float(z))
        if naive > CUSUM_LIMIT:
            naive_alarms, naive = naive_alarms + 1, 0.0
    assert naive_alarms > 0
    # Then the world changes: 3.2 sd more, and the change is raised within three windows.
    for offset, z in enumerate(rng.normal(4.4, 0.86, 3)):
        state = state.step(float(z), len(steady) + offset)
        if state.value > CUSUM_LIMIT:
            break
    assert state.value > CUSUM_LIMIT and state.start is not None
    assert state.level == pytest.approx(1.2, abs=0.1)  # the drop did not become the level
