"""Each rollout guard: wait without enough data, skip where it does not apply, breach or
pass against its limit, with a message a person reads."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.config import GuardLimit, RolloutConfig, RolloutGuards
from loopml.errors import RolloutError
from loopml.rollout.decision import Reason
from loopml.rollout.guards import Guard, judge, register, registered
from tests.unit.rollout.helpers import arm, challenger, healthy, realized

pytestmark = pytest.mark.unit

POLICY = RolloutConfig()


def verdicts(stats: object, policy: RolloutConfig = POLICY) -> dict[str, Reason]:
    return {r.guard: r for r in judge(stats, policy)}  # type: ignore[arg-type]


def with_guard(name: str, **limit: object) -> RolloutConfig:
    guards = POLICY.guards.model_copy(update={name: GuardLimit(**limit)})  # type: ignore[arg-type]
    return POLICY.model_copy(update={"guards": guards})


def test_one_guard_per_key_of_the_policy_in_its_order() -> None:
    assert [g.name for g in registered()] == list(RolloutGuards.model_fields)
    assert all(g.about and g.needs for g in registered())
    assert [r.guard for r in judge(healthy(), POLICY)] == list(RolloutGuards.model_fields)


def test_registering_a_name_twice_is_an_error() -> None:
    existing = registered()[0]
    with pytest.raises(RolloutError, match="already registered"):
        register(Guard(existing.name, "again", "rows", existing.check))
    assert registered()[0] is existing


def test_a_healthy_traffic_stage_passes_every_guard_but_agreement() -> None:
    found = verdicts(healthy())
    assert found.pop("agreement").verdict == "skip"
    assert {r.verdict for r in found.values()} == {"pass"}
    assert found["error_rate"].message == "error rate 0.0% <= 1.0% over 3,000 requests"
    assert found["latency_p99_ratio"].message == (
        "p99 latency ratio 1.10x <= 1.50x over 3,000 rows per arm"
    )
    assert found["latency_p99_ratio"].value == pytest.approx(1.1)
    assert found["latency_p99_ratio"].limit == 1.5


def test_error_rate_breaches_with_its_figures() -> None:
    reason = verdicts(challenger(healthy(), requests=2104, errors=107))["error_rate"]
    assert (reason.verdict, reason.sample, reason.limit) == ("breach", 2104, 0.01)
    assert reason.value == pytest.approx(107 / 2104)
    assert reason.message == "error rate 5.1% > 1.0% over 2,104 requests"


def test_error_rate_waits_for_min_predictions_unless_the_breach_is_certain() -> None:
    few = verdicts(challenger(healthy(), requests=1200, errors=3))["error_rate"]
    assert (few.verdict, few.value, few.sample) == ("wait", None, 1200)
    assert few.message == "error rate: 1,200 of 2,000 requests so far"
    # 21 errors > 1 % of 2,000: however the next 1,900 requests go, the rate stays over
    certain = verdicts(challenger(healthy(), requests=100, errors=21))["error_rate"]
    assert certain.verdict == "breach" and certain.value == pytest.approx(0.21)
    # 20 errors could still end at exactly 1 %: not certain, wait
    assert verdicts(challenger(healthy(), requests=100, errors=20))["error_rate"].verdict == "wait"
    none = verdicts(challenger(healthy(), requests=0, errors=0))["error_rate"]
    assert none.verdict == "wait"


def test_latency_ratio_breaches_and_waits() -> None:
    slow = verdicts(challenger(healthy(), latency_p99_ms=33.0))["latency_p99_ratio"]
    assert slow.verdict == "breach" and slow.message.startswith("p99 latency ratio 3.30x > 1.50x")
    unknown = verdicts(replace(healthy(), champion=arm(latency_p99_ms=None)))["latency_p99_ratio"]
    assert unknown.verdict == "wait" and "not computed yet" in unknown.message
    few = verdicts(challenger(healthy(), predictions=150))["latency_p99_ratio"]
    assert few.verdict == "wait" and few.message == (
        "p99 latency ratio: 150 of 2,000 rows per arm so far"
    )


@pytest.mark.parametrize(
    ("divergence", "verdict"), [(None, "wait"), (0.2, "breach"), (0.1, "pass"), (0.05, "pass")]
)
def test_prediction_divergence(divergence: float | None, verdict: str) -> None:
    reason = verdicts(healthy(prediction_divergence=divergence))["prediction_divergence"]
    assert reason.verdict == verdict and reason.value == divergence
    if verdict == "breach":
        assert reason.message == "prediction divergence 0.2 > 0.1 over 3,000 rows per arm"


def test_agreement_is_judged_in_the_shadow_stage_only_and_not_for_regression() -> None:
    assert verdicts(healthy(shadow=True))["agreement"].verdict == "pass"
    low = verdicts(healthy(shadow=True, agreement=0.8))["agreement"]
    assert (low.verdict, low.value, low.limit) == ("breach", 0.8, 0.9)
    assert low.message == "agreement 80.0% < 90.0% over 3,000 rows"
    few = verdicts(healthy(shadow=True, agreement_rows=500))["agreement"]
    assert few.verdict == "wait" and "500 of 2,000 rows scored by both" in few.message
    traffic = verdicts(healthy(agreement=0.5, agreement_rows=3000))["agreement"]
    assert traffic.verdict == "skip" and "shadow stage" in traffic.message
    regression = verdicts(healthy(shadow=True, task="regression", agreement=None))["agreement"]
    assert regression.verdict == "skip" and "regression" in regression.message


def test_estimated_drop_breaches_only_above_its_limit_and_the_chance_level() -> None:
    drop = verdicts(healthy(estimated_drop=0.03, estimated_noise=0.01))["estimated_drop"]
    assert drop.verdict == "breach" and drop.message.startswith("estimated drop 0.03 > 0.01")
    chance = verdicts(healthy(estimated_drop=0.03, estimated_noise=0.05))["estimated_drop"]
    assert chance.verdict == "pass" and "within the chance level 0.05" in chance.message
    unknown_noise = verdicts(healthy(estimated_drop=0.03, estimated_noise=None))
    assert unknown_noise["estimated_drop"].verdict == "breach"
    assert verdicts(healthy(estimated_drop=None))["estimated_drop"].verdict == "wait"
    no_estimate = verdicts(healthy(estimated_drop=None, has_estimate=False))["estimated_drop"]
    assert no_estimate.verdict == "skip" and "no label-free estimate" in no_estimate.message


def test_realized_drop_reads_the_whole_interval() -> None:
    worse = verdicts(healthy(realized=realized(0.05, 0.02)))["realized_drop"]
    assert (worse.verdict, worse.value, worse.sample) == ("breach", 0.05, 800)
    assert worse.message == (
        "realized log_loss increase +5.0% (+3.0% to +7.0%): worse than +1.0% over 800 "
        "labelled rows per arm"
    )
    # the point estimate is past the limit, the interval is not: not shown worse, passes
    unsure = verdicts(healthy(realized=realized(0.02, 0.03)))["realized_drop"]
    assert unsure.verdict == "pass" and "not shown beyond +1.0%" in unsure.message
    few = verdicts(healthy(realized=realized(0.5, 0.1, rows=300)))["realized_drop"]
    assert few.verdict == "wait" and few.message == (
        "realized drop: 300 of 500 labelled rows per arm so far"
    )
    assert verdicts(healthy(realized=None))["realized_drop"].verdict == "wait"


def test_realized_drop_without_min_labels_needs_the_default() -> None:
    policy = with_guard("realized_drop", max=0.02)
    assert verdicts(healthy(realized=realized(rows=499)), policy)["realized_drop"].verdict == "wait"
    assert verdicts(healthy(realized=realized(rows=500)), policy)["realized_drop"].verdict == "pass"


def test_disabled_guards_are_skipped_and_limits_come_from_the_policy() -> None:
    policy = with_guard("error_rate", max=0.01, enabled=False)
    reason = verdicts(challenger(healthy(), errors=3000), policy)["error_rate"]
    assert (reason.verdict, reason.message) == ("skip", "error_rate: disabled")
    strict = with_guard("latency_p99_ratio", max=1.05)
    assert verdicts(healthy(), strict)["latency_p99_ratio"].verdict == "breach"


@settings(max_examples=200, deadline=None)
@given(
    predictions=st.integers(0, 1999),
    requests=st.integers(0, 1999),
    labels=st.integers(0, 499),
    agreement=st.none() | st.floats(0, 1),
    divergence=st.none() | st.floats(0, 1),
    shadow=st.booleans(),
)
def test_a_guard_without_enough_data_never_passes(
    predictions: int,
    requests: int,
    labels: int,
    agreement: float | None,
    divergence: float | None,
    shadow: bool,
) -> None:
    stats = healthy(
        shadow=shadow, agreement=agreement, agreement_rows=predictions,
        prediction_divergence=divergence, realized=realized(0.0, 0.01, rows=labels),
    )  # fmt: skip
    stats = challenger(stats, predictions=predictions, requests=requests, errors=0)
    assert all(r.verdict in {"wait", "skip"} for r in judge(stats, POLICY))


def test_latency_is_not_judged_on_a_shadow_which_scores_in_the_background() -> None:
    slow_shadow = challenger(healthy(shadow=True), latency_p99_ms=33.0)
    found = verdicts(slow_shadow)["latency_p99_ratio"]
    assert found.verdict == "skip"
    assert "judged from the first traffic stage" in found.message


def test_a_p99_ratio_over_its_limit_only_by_chance_passes() -> None:
    """The point ratio is 2x, but the challenger's p99 may be as fast as 12 ms and the
    champion's as slow as 14 ms: not evidence of a slower model."""
    noisy = challenger(healthy(), latency_p99_ms=20.0, latency_p99_range_ms=(12.0, 30.0))
    noisy = replace(noisy, champion=arm(latency_p99_ms=10.0, latency_p99_range_ms=(8.0, 14.0)))
    found = verdicts(noisy)["latency_p99_ratio"]
    assert found.verdict == "pass"
    assert found.message.endswith("but within chance (at least 0.86x at 95 %)")
    slow = challenger(noisy, latency_p99_ms=40.0, latency_p99_range_ms=(30.0, 50.0))
    assert verdicts(slow)["latency_p99_ratio"].verdict == "breach"


def test_a_divergence_within_chance_passes_and_one_beyond_it_breaches() -> None:
    noisy = replace(healthy(), prediction_divergence=0.15, divergence_noise=0.18)
    found = verdicts(noisy)["prediction_divergence"]
    assert found.verdict == "pass"
    assert found.message.endswith("but within chance (0.18 at these sample sizes)")
    real = replace(noisy, prediction_divergence=0.4)
    assert verdicts(real)["prediction_divergence"].verdict == "breach"


def test_an_agreement_under_its_limit_only_by_chance_passes() -> None:
    """89.7 % over 2,000 rows could be 91.3 % (one-sided 99 %): not evidence."""
    close = replace(healthy(shadow=True), agreement=0.897, agreement_rows=2000)
    found = verdicts(close)["agreement"]
    assert found.verdict == "pass"
    assert "but within chance (could be 91.3% over 2,000 rows)" in found.message
    far = replace(close, agreement=0.80)
    assert verdicts(far)["agreement"].verdict == "breach"
