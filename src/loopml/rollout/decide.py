"""``decide(stats, policy, state) -> Decision``: pure, the whole rollout rule in one place.

In order:

1. a paused rollout holds (``paused: <reason>``); one that is no longer running holds too,
   and so does evidence collected for another rollout or stage (a stale read);
2. a guard breached with ``on_breach: rollback`` rolls back at once, with no need to wait
   for the bake; one breached with ``on_breach: hold`` holds;
3. a guard still waiting for data, a stage younger than ``bake_seconds`` or an arm below
   ``min_predictions`` holds, saying what is still needed (rows, seconds, labels);
4. every guard passed (or skipped): the last stage promotes, any other advances.

Strategy ``ab`` is decided on labels, on its traffic stage: it promotes only when the
always-valid interval shows the challenger better (``high < 0``, less loss than the
champion), rolls back when it shows it worse than the realized-drop limit, and otherwise
holds with the labelled rows still needed. Strategy ``shadow`` has only the shadow stage,
so its last stage passing promotes.
"""

from __future__ import annotations

import math

from loopml.config import RolloutConfig
from loopml.rollout.decision import Advance, Decision, Hold, Promote, Reason, Rollback
from loopml.rollout.evidence import RolloutStats, SequentialResult
from loopml.rollout.guards import DEFAULT_MIN_LABELS, judge
from loopml.rollout.plan import RolloutState
from loopml.rollout.sequential import rows_to_exclude

__all__ = ["decide", "still_needed"]


def decide(stats: RolloutStats, policy: RolloutConfig, state: RolloutState) -> Decision:
    """Advance, Hold, Promote or Rollback, each with every guard's reason and a summary.

    >>> from loopml.rollout.evidence import ArmStats
    >>> from loopml.rollout.plan import stages_of
    >>> policy = RolloutConfig()
    >>> state = RolloutState("r", "m", "1", "2", "canary", stages_of(policy))
    >>> stats = RolloutStats("r", 0, 0.0, 10.0, ArmStats("champion", "1"),
    ...                      ArmStats("shadow", "2"))
    >>> decision = decide(stats, policy, state)
    >>> decision.kind, decision.summary.split(";")[0]
    ('hold', 'hold: 290 s more bake')
    """
    reasons = judge(stats, policy)
    stopped = _stopped(stats, policy, state, reasons)
    if stopped is not None:
        return stopped
    if state.strategy == "ab" and state.current.kind == "traffic":
        return _judge_ab(stats.realized, policy, reasons)
    if state.last_stage:
        return Promote(reasons, f"promote: every guard passed at {state.current.label}")
    upcoming = state.stages[state.stage + 1].label
    return Advance(reasons, f"advance to {upcoming}: every guard passed at {state.current.label}")


def _stopped(
    stats: RolloutStats, policy: RolloutConfig, state: RolloutState, reasons: tuple[Reason, ...]
) -> Decision | None:
    """Hold or Rollback before the stage can pass: paused, a breach, or data still missing."""
    if state.status == "paused":
        why = state.paused_reason or state.reason or "no reason given"
        return Hold(reasons, f"paused: {why}")
    if state.status != "running":
        return Hold(reasons, f"the rollout is {state.status.replace('_', ' ')}: nothing to decide")
    if (stats.rollout_id, stats.stage) != (state.rollout_id, state.stage):
        return Hold(
            reasons,
            f"hold: the evidence is of rollout {stats.rollout_id} stage {stats.stage}, not of "
            f"{state.rollout_id} stage {state.stage}: collect it again",
        )
    breached = [r for r in reasons if r.verdict == "breach"]
    rollbacks = [r for r in breached if getattr(policy.guards, r.guard).on_breach == "rollback"]
    if rollbacks:
        return Rollback(reasons, "roll back: " + "; ".join(r.message for r in rollbacks))
    if breached:
        return Hold(reasons, "hold (breach set to hold): " + "; ".join(r.message for r in breached))
    needs = still_needed(stats, policy, reasons)
    return Hold(reasons, "hold: " + "; ".join(needs)) if needs else None


def still_needed(
    stats: RolloutStats, policy: RolloutConfig, reasons: tuple[Reason, ...]
) -> list[str]:
    """What the stage still lacks before it can be judged: bake time, predictions per arm,
    and each waiting guard's own account (empty when nothing is missing)."""
    needs = []
    if stats.elapsed < policy.bake_seconds:
        needs.append(f"{math.ceil(policy.bake_seconds - stats.elapsed):,} s more bake")
    short = [arm for arm in (stats.champion, stats.challenger)
             if arm.predictions < policy.min_predictions]  # fmt: skip
    for arm in short:
        missing = policy.min_predictions - arm.predictions
        needs.append(f"{missing:,} more predictions on the {arm.arm}")
    waiting = [r for r in reasons if r.verdict == "wait"]
    if short:  # the guards on predictions wait for those rows: say it once
        needs.extend(r.message for r in waiting if "labelled" in r.message)
        others = sum("labelled" not in r.message for r in waiting)
        if others:
            needs.append(f"{others} guard{'s' if others > 1 else ''} wait for those predictions")
    else:
        needs.extend(r.message for r in waiting)
    return needs


def _judge_ab(
    result: SequentialResult | None, policy: RolloutConfig, reasons: tuple[Reason, ...]
) -> Decision:
    """The A/B stage on labels: promote when shown better, roll back when shown worse than
    the limit, hold otherwise (the guards have already passed)."""
    limit = policy.guards.realized_drop
    min_labels = limit.min_labels or DEFAULT_MIN_LABELS
    rows = 0 if result is None else min(result.n_champion, result.n_challenger)
    if result is None or rows < min_labels:
        return Hold(
            reasons, f"hold: the A/B test has {rows:,} of {min_labels:,} labelled rows per arm"
        )
    bound = limit.max if limit.max is not None else 0.0
    interval = (
        f"{result.metric} {result.effect:+.1%} ({result.low:+.1%} to {result.high:+.1%}) "
        f"over {rows:,} labelled rows per arm"
    )
    if result.high < 0:
        return Promote(reasons, f"promote: the challenger is better, {interval}")
    if result.low > bound:
        return Rollback(
            reasons, f"roll back: the challenger is worse than {bound:+.1%}, {interval}"
        )
    if result.low > 0:
        return Hold(
            reasons,
            f"hold: the challenger is worse than the champion (within the {bound:+.1%} limit), "
            f"{interval}; it will not be promoted: abort the rollout",
        )
    more = rows_to_exclude(result, 0.0)
    told = f"about {more:,} more labelled rows per arm" if more else "more labels than can be told"
    return Hold(reasons, f"hold: the A/B test needs {told} to tell, {interval}")
