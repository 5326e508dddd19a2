"""decide(): every branch, from hand-built evidence; each decision carries every guard's
reason and a summary a person reads."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.config import GuardLimit, RolloutConfig, RolloutGuards, Strategy
from loopml.rollout.decide import decide
from loopml.rollout.decision import Advance, Decision, Hold, Promote, Rollback
from loopml.rollout.evidence import RolloutStats
from loopml.rollout.plan import RolloutState, stages_of
from tests.unit.rollout.helpers import arm, challenger, healthy, realized

pytestmark = pytest.mark.unit

POLICY = RolloutConfig()


def state_at(stage: int, strategy: Strategy = "canary", policy: RolloutConfig = POLICY,
             **changes: object) -> RolloutState:  # fmt: skip
    base = RolloutState("r1", "m", "1", "2", strategy, stages_of(policy, strategy), stage=stage)
    return base.at(**changes)


def policy_with(name: str, **limit: object) -> RolloutConfig:
    guards = POLICY.guards.model_copy(update={name: GuardLimit(**limit)})  # type: ignore[arg-type]
    return POLICY.model_copy(update={"guards": guards})


def judged(stats: RolloutStats, policy: RolloutConfig, state: RolloutState) -> Decision:
    """``decide`` on evidence collected for ``state``'s rollout and stage."""
    return decide(replace(stats, stage=state.stage), policy, state)


def check(decision: Decision, kind: type[Decision], *parts: str) -> None:
    assert type(decision) is kind, decision.summary
    assert [r.guard for r in decision.reasons] == list(RolloutGuards.model_fields)
    for part in parts:
        assert part in decision.summary, decision.summary
    json.dumps(decision.to_dict())  # the audit log and `rollout status --json` can write it


def test_every_guard_passing_advances_to_the_next_stage() -> None:
    decision = judged(healthy(), POLICY, state_at(1))
    check(decision, Advance, "advance to 25%: every guard passed at 5%")


def test_the_shadow_stage_advances_to_the_first_traffic_step() -> None:
    check(judged(healthy(shadow=True), POLICY, state_at(0)), Advance, "advance to 5%")


def test_the_last_stage_promotes() -> None:
    check(judged(healthy(), POLICY, state_at(4)), Promote, "every guard passed at 100%")


def test_shadow_strategy_promotes_from_its_only_stage() -> None:
    state = state_at(0, "shadow")
    assert [s.label for s in state.stages] == ["shadow"]
    check(judged(healthy(shadow=True), POLICY, state), Promote, "at shadow")


def test_blue_green_promotes_after_its_full_switch() -> None:
    check(judged(healthy(), POLICY, state_at(1, "blue_green")), Promote, "at 100%")


def test_a_paused_rollout_holds_whatever_the_evidence() -> None:
    bad = challenger(healthy(), errors=500)
    state = state_at(1, status="paused", paused_reason="holiday freeze")
    decision = judged(bad, POLICY, state)
    check(decision, Hold)
    assert decision.summary == "paused: holiday freeze"
    assert {r.guard: r.verdict for r in decision.reasons}["error_rate"] == "breach"
    assert judged(bad, POLICY, state_at(1, status="paused")).summary == "paused: no reason given"


def test_a_finished_rollout_has_nothing_to_judged() -> None:
    decision = judged(healthy(), POLICY, state_at(4, status="rolled_back"))
    check(decision, Hold, "the rollout is rolled back: nothing to decide")


def test_evidence_of_another_stage_is_not_acted_on() -> None:
    bad = challenger(healthy(), errors=500)
    decision = decide(bad, POLICY, state_at(2))
    check(decision, Hold, "the evidence is of rollout r1 stage 1, not of r1 stage 2")
    other = replace(bad, rollout_id="r0")
    check(decide(other, POLICY, state_at(1)), Hold, "rollout r0 stage 1")


def test_a_rollback_breach_rolls_back_at_once_before_the_bake() -> None:
    young = replace(healthy(), now=1010.0)
    bad = challenger(young, requests=2104, errors=107)
    decision = judged(bad, POLICY, state_at(1))
    check(decision, Rollback, "roll back: error rate 5.1% > 1.0% over 2,104 requests")
    breach = next(r for r in decision.reasons if r.verdict == "breach")
    assert (breach.guard, breach.limit, breach.sample) == ("error_rate", 0.01, 2104)


def test_every_rollback_breach_is_named() -> None:
    bad = challenger(healthy(prediction_divergence=0.4), latency_p99_ms=40.0)
    decision = judged(bad, POLICY, state_at(2))
    check(decision, Rollback, "p99 latency ratio 4.00x > 1.50x", "prediction divergence 0.4")


def test_a_breach_set_to_hold_holds() -> None:
    policy = policy_with("latency_p99_ratio", max=1.5, on_breach="hold")
    decision = judged(
        challenger(healthy(), latency_p99_ms=40.0), policy, state_at(1, policy=policy)
    )
    check(decision, Hold, "breach set to hold", "p99 latency ratio 4.00x > 1.50x")


def test_holds_until_the_stage_has_baked() -> None:
    decision = judged(replace(healthy(), now=1100.0), POLICY, state_at(1))
    check(decision, Hold)
    assert decision.summary == "hold: 200 s more bake"


def test_holds_until_both_arms_have_min_predictions_saying_how_many_more() -> None:
    few = challenger(healthy(), predictions=1500, requests=1500)
    decision = judged(few, POLICY, state_at(1))
    check(decision, Hold, "500 more predictions on the challenger",
          "4 guards wait for those predictions")  # fmt: skip
    assert "error rate: 1,500 of 2,000" in next(
        r.message for r in decision.reasons if r.guard == "error_rate"
    )  # each guard still gives its own account in the reasons
    champion_short = replace(healthy(), champion=arm(predictions=10))
    check(
        judged(champion_short, POLICY, state_at(1)), Hold, "1,990 more predictions on the champion"
    )


def test_holds_while_a_guard_waits_for_labels() -> None:
    decision = judged(healthy(realized=realized(rows=120)), POLICY, state_at(1))
    check(decision, Hold, "hold: realized drop: 120 of 500 labelled rows per arm so far")


def test_skipped_guards_do_not_hold() -> None:
    stats = healthy(estimated_drop=None, has_estimate=False)
    check(judged(stats, POLICY, state_at(1)), Advance)


# --- A/B: decided on labels ------------------------------------------------------------


def test_ab_promotes_only_when_the_challenger_is_shown_better() -> None:
    better = healthy(realized=realized(-0.05, 0.02, rows=4000))
    decision = judged(better, POLICY, state_at(1, "ab"))
    check(decision, Promote, "the challenger is better, log_loss -5.0% (-7.0% to -3.0%) over "
          "4,000 labelled rows per arm")  # fmt: skip


def test_ab_holds_with_the_rows_still_needed_while_the_interval_spans_zero() -> None:
    unsure = healthy(realized=realized(-0.01, 0.02, rows=1000))
    decision = judged(unsure, POLICY, state_at(1, "ab"))
    check(decision, Hold, "the A/B test needs about", "more labelled rows per arm to tell")
    more = int(decision.summary.split("about ")[1].split(" more")[0].replace(",", ""))
    assert more > 1000
    flat = judged(healthy(realized=realized(0.0, 0.02)), POLICY, state_at(1, "ab"))
    check(flat, Hold, "more labels than can be told")


def test_ab_rolls_back_when_worse_than_the_limit() -> None:
    worse = healthy(realized=realized(0.05, 0.02, rows=4000))
    check(judged(worse, POLICY, state_at(1, "ab")), Rollback, "realized log_loss increase +5.0%")
    # with the realized guard disabled the A/B rule itself still rolls back
    policy = policy_with("realized_drop", max=0.01, min_labels=500, enabled=False)
    decision = judged(worse, policy, state_at(1, "ab", policy=policy))
    check(decision, Rollback, "the challenger is worse than +1.0%")


def test_ab_holds_a_challenger_worse_but_within_the_limit_and_says_it_will_not_promote() -> None:
    policy = policy_with("realized_drop", max=0.05, min_labels=500)
    slightly = healthy(realized=realized(0.02, 0.01, rows=4000))
    decision = judged(slightly, policy, state_at(1, "ab", policy=policy))
    check(decision, Hold, "worse than the champion", "will not be promoted")


def test_ab_needs_its_labels_even_with_the_realized_guard_disabled() -> None:
    policy = policy_with("realized_drop", max=0.01, min_labels=500, enabled=False)
    decision = judged(healthy(realized=None), policy, state_at(1, "ab", policy=policy))
    check(decision, Hold, "the A/B test has 0 of 500 labelled rows per arm")


def test_ab_after_its_shadow_stage_advances_to_the_split() -> None:
    check(judged(healthy(shadow=True), POLICY, state_at(0, "ab")), Advance, "advance to 50%")


def test_ab_still_holds_for_bake_and_predictions_before_the_labels_judged() -> None:
    better = healthy(realized=realized(-0.05, 0.02, rows=4000))
    young: RolloutStats = replace(better, now=1200.0)
    check(judged(young, POLICY, state_at(1, "ab")), Hold, "100 s more bake")


# --- invariants over random evidence ---------------------------------------------------

EVIDENCE = st.fixed_dictionaries(
    {
        "elapsed": st.floats(0, 900),
        "predictions": st.integers(0, 5000),
        "errors": st.integers(0, 100),
        "p99": st.none() | st.floats(1, 40),
        "divergence": st.none() | st.floats(0, 0.3),
        "estimated": st.none() | st.floats(-0.05, 0.05),
        "effect": st.floats(-0.1, 0.1),
        "labels": st.integers(0, 2000),
        "stage": st.integers(0, 4),
        "strategy": st.sampled_from(["canary", "ab", "shadow", "blue_green"]),
    }
)


@settings(max_examples=300, deadline=None)
@given(evidence=EVIDENCE)
def test_no_stage_passes_without_its_data_and_a_rollback_breach_always_rolls_back(
    evidence: dict[str, Any],
) -> None:
    strategy = evidence["strategy"]
    stages = stages_of(POLICY, strategy)
    state = state_at(min(evidence["stage"], len(stages) - 1), strategy)
    shadow = state.current.kind == "shadow"
    stats = healthy(
        shadow=shadow, now=1000.0 + evidence["elapsed"],
        prediction_divergence=evidence["divergence"], estimated_drop=evidence["estimated"],
        realized=realized(evidence["effect"], 0.03, rows=evidence["labels"]),
        agreement_rows=evidence["predictions"] if shadow else 0,
    )  # fmt: skip
    stats = challenger(stats, predictions=evidence["predictions"],
                       requests=evidence["predictions"], errors=evidence["errors"],
                       latency_p99_ms=evidence["p99"])  # fmt: skip
    decision = judged(stats, POLICY, state)
    verdicts = {r.verdict for r in decision.reasons}
    if "breach" in verdicts:  # every default guard rolls back
        assert isinstance(decision, Rollback)
    elif isinstance(decision, Advance | Promote):
        assert verdicts <= {"pass", "skip"}
        assert stats.elapsed >= POLICY.bake_seconds
        assert min(stats.champion.predictions, stats.challenger.predictions) >= 2000
        if strategy == "ab" and not shadow:
            assert stats.realized is not None and stats.realized.high < 0
    else:
        assert isinstance(decision, Hold | Rollback) and decision.summary
