"""The rollout guards: what a stage must pass, each a function plus its metadata.

One guard per key of ``rollout.guards`` in ``loopml.yaml``, registered explicitly
(registering a name twice is an error). A guard reads the stage's
:class:`~loopml.rollout.evidence.RolloutStats`, its :class:`~loopml.config.GuardLimit` and
the policy, and returns a :class:`~loopml.rollout.decision.Reason`:

- ``wait`` when its value is unknown or its sample is below what it needs — a guard
  without enough data holds, it never passes;
- ``skip`` when it does not apply (agreement outside the shadow stage or for regression; the
  estimated drop when the task has no estimate) or is disabled;
- ``breach`` when the value is beyond the limit, ``pass`` otherwise.

Samples: ``error_rate`` needs ``min_predictions`` requests on the challenger (a breach that
is already certain — more errors than ``max × min_predictions`` — is called early);
``latency_p99_ratio``, ``prediction_divergence`` and ``estimated_drop`` need
``min_predictions`` predictions on both arms, ``agreement`` as many rows scored by both;
``realized_drop`` needs ``min_labels`` labelled rows per arm.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from loopml.config import GuardLimit, RolloutConfig, RolloutGuards
from loopml.errors import RolloutError
from loopml.rollout.decision import Reason, Verdict
from loopml.rollout.evidence import RolloutStats

CHANCE_Z = 2.326
"""One-sided 99 %: how far a share may stray by chance before it counts as evidence."""

__all__ = ["DEFAULT_MIN_LABELS", "Guard", "GuardCheck", "guard", "judge", "register", "registered"]

GuardCheck = Callable[[RolloutStats, GuardLimit, RolloutConfig], Reason]
DEFAULT_MIN_LABELS = 500
"""Labelled rows per arm the realized-drop guard needs when its ``min_labels`` is unset."""


@dataclass(frozen=True)
class Guard:
    """A registered guard: its name (a key of ``rollout.guards``), what it measures and
    the sample it needs, and the function that judges it."""

    name: str
    about: str
    needs: str
    check: GuardCheck


_REGISTRY: dict[str, Guard] = {}


def register(entry: Guard) -> Guard:
    """Add ``entry`` to the registry; a name already registered is an error."""
    if entry.name in _REGISTRY:
        raise RolloutError(
            f"a rollout guard named {entry.name!r} is already registered",
            fix="give the new guard a name of its own",
        )
    _REGISTRY[entry.name] = entry
    return entry


def guard(name: str, *, about: str, needs: str) -> Callable[[GuardCheck], GuardCheck]:
    """Register the decorated function as the guard ``name``."""

    def add(check: GuardCheck) -> GuardCheck:
        register(Guard(name, about, needs, check))
        return check

    return add


def registered() -> tuple[Guard, ...]:
    """Every guard, in registration order."""
    return tuple(_REGISTRY.values())


def judge(stats: RolloutStats, policy: RolloutConfig) -> tuple[Reason, ...]:
    """Every guard's verdict on ``stats``, in the order of ``rollout.guards``.

    >>> from loopml.rollout.evidence import ArmStats
    >>> stats = RolloutStats("r", 1, 0.0, 60.0, ArmStats("champion", "1"),
    ...                      ArmStats("challenger", "2"))
    >>> [r.verdict for r in judge(stats, RolloutConfig())][:3]
    ['wait', 'wait', 'wait']
    """
    reasons = []
    for name in RolloutGuards.model_fields:
        entry = _REGISTRY.get(name)
        if entry is None:
            raise RolloutError(
                f"no rollout guard is registered for rollout.guards.{name}",
                fix="register one in loopml.rollout.guards",
            )
        limit: GuardLimit = getattr(policy.guards, name)
        if not limit.enabled:
            reasons.append(_reason(name, "skip", None, limit, 0, f"{name}: disabled"))
        else:
            reasons.append(entry.check(stats, limit, policy))
    return tuple(reasons)


# --- the shared verdict logic --------------------------------------------------------


def _bound(limit: GuardLimit) -> float:
    return limit.max if limit.max is not None else limit.min  # type: ignore[return-value]


def _beyond(value: float, limit: GuardLimit) -> bool:
    return value > limit.max if limit.max is not None else value < _bound(limit)


def _reason(
    name: str, verdict: Verdict, value: float | None, limit: GuardLimit, sample: int, text: str
) -> Reason:
    return Reason(name, verdict, value, _bound(limit), sample, text)


_SIGNS = {(True, True): ">", (True, False): "<=", (False, True): "<", (False, False): ">="}
"""The comparison a message shows: (the limit is a max, the value is beyond it)."""


def _compare(
    name: str,
    label: str,
    value: float,
    limit: GuardLimit,
    sample: int,
    unit: str,
    show: Callable[[float], str],
) -> Reason:
    """Breach or pass, with the one-line message ``label value > limit over sample unit``."""
    breached = _beyond(value, limit)
    sign = _SIGNS[limit.max is not None, breached]
    text = f"{label} {show(value)} {sign} {show(_bound(limit))} over {sample:,} {unit}"
    return _reason(name, "breach" if breached else "pass", value, limit, sample, text)


def _sample_wait(
    name: str, label: str, limit: GuardLimit, sample: int, needed: int, unit: str
) -> Reason:
    text = f"{label}: {sample:,} of {needed:,} {unit} so far"
    return _reason(name, "wait", None, limit, sample, text)


def _pct(value: float) -> str:
    return f"{value:.1%}" if abs(value) >= 0.001 or value == 0 else f"{value:.2%}"


def _num(value: float) -> str:
    return f"{value:.3g}"


def _both(stats: RolloutStats) -> int:
    return min(stats.champion.predictions, stats.challenger.predictions)


def _on_both_arms(
    name: str,
    label: str,
    value: float | None,
    stats: RolloutStats,
    limit: GuardLimit,
    policy: RolloutConfig,
    show: Callable[[float], str] = _num,
) -> Reason:
    """A guard on both arms' predictions: wait below ``min_predictions`` or without a value."""
    sample = _both(stats)
    if sample < policy.min_predictions:
        return _sample_wait(name, label, limit, sample, policy.min_predictions, "rows per arm")
    if value is None:
        text = f"{label}: not computed yet over {sample:,} rows per arm"
        return _reason(name, "wait", None, limit, sample, text)
    return _compare(name, label, value, limit, sample, "rows per arm", show)


# --- the guards ----------------------------------------------------------------------


@guard("error_rate", about="share of the challenger's requests that failed", needs="requests")
def error_rate(stats: RolloutStats, limit: GuardLimit, policy: RolloutConfig) -> Reason:
    arm = stats.challenger
    rate = arm.error_rate
    needed = policy.min_predictions
    # more errors than max x min_predictions: the rate at min_predictions is over max however
    # the remaining requests go, so the breach is certain now
    certain = limit.max is not None and arm.errors > limit.max * needed
    if rate is None or (arm.requests < needed and not certain):
        return _sample_wait("error_rate", "error rate", limit, arm.requests, needed, "requests")
    return _compare("error_rate", "error rate", rate, limit, arm.requests, "requests", _pct)


@guard("latency_p99_ratio", about="challenger p99 latency / champion p99", needs="predictions")
def latency_p99_ratio(stats: RolloutStats, limit: GuardLimit, policy: RolloutConfig) -> Reason:
    """Judged in traffic stages only (a shadow scores in a background thread, whose timing
    is not a client's latency), and breached only beyond chance: a p99 is an arm's few
    slowest rows, so the ratio must exceed its limit even from the challenger's fastest
    plausible p99 to the champion's slowest (their 95 % order-statistic intervals)."""
    name, label = "latency_p99_ratio", "p99 latency ratio"
    if stats.shadow:
        text = (
            f"{label}: judged from the first traffic stage (a shadow scores in the "
            "background; its timing is not the latency a client sees)"
        )
        return _reason(name, "skip", None, limit, 0, text)
    champion, challenger = stats.champion.latency_p99_ms, stats.challenger.latency_p99_ms
    ratio = None
    if champion is not None and challenger is not None and champion > 0:
        ratio = challenger / champion
    reason = _on_both_arms(name, label, ratio, stats, limit, policy, _times)
    least = _least_ratio(stats)
    if reason.verdict != "breach" or least is None or _beyond(least, limit):
        return reason
    text = f"{reason.message}, but within chance (at least {_times(least)} at 95 %)"
    return _reason(name, "pass", ratio, limit, reason.sample, text)


def _least_ratio(stats: RolloutStats) -> float | None:
    """The challenger's fastest plausible p99 over the champion's slowest plausible one."""
    fast, slow = stats.challenger.latency_p99_range_ms, stats.champion.latency_p99_range_ms
    if fast is None or slow is None or slow[1] <= 0:
        return None
    return fast[0] / slow[1]


def _times(value: float) -> str:
    return f"{value:.2f}x"


@guard("prediction_divergence", about="distance between the arms' predictions", needs="predictions")
def prediction_divergence(stats: RolloutStats, limit: GuardLimit, policy: RolloutConfig) -> Reason:
    """Breached only above its limit *and* above the distance chance alone gives at these
    sample sizes (``stats.divergence_noise``), as the monitor judges a drop."""
    reason = _on_both_arms(
        "prediction_divergence", "prediction divergence", stats.prediction_divergence,
        stats, limit, policy,
    )  # fmt: skip
    noise = stats.divergence_noise
    value = stats.prediction_divergence
    if reason.verdict != "breach" or noise is None or value is None or value > noise:
        return reason
    text = f"{reason.message}, but within chance ({_num(noise)} at these sample sizes)"
    return _reason("prediction_divergence", "pass", value, limit, reason.sample, text)


@guard("agreement", about="share of shadowed rows both arms label alike", needs="rows")
def agreement(stats: RolloutStats, limit: GuardLimit, policy: RolloutConfig) -> Reason:
    if stats.challenger.arm != "shadow":
        text = "agreement: judged only in the shadow stage (both arms on the same rows)"
        return _reason("agreement", "skip", None, limit, 0, text)
    if stats.task == "regression":
        text = "agreement: does not apply to regression"
        return _reason("agreement", "skip", None, limit, 0, text)
    rows = stats.agreement_rows
    if rows < policy.min_predictions or stats.agreement is None:
        needed = policy.min_predictions
        return _sample_wait("agreement", "agreement", limit, rows, needed, "rows scored by both")
    reason = _compare("agreement", "agreement", stats.agreement, limit, rows, "rows", _pct)
    share = stats.agreement
    # A share of n rows strays by chance: breached only when even the far end of its
    # one-sided 99 % interval is beyond the limit (the monitor's chance rule).
    spread = CHANCE_Z * math.sqrt(max(share * (1 - share), 0.0) / rows)
    plausible = min(1.0, share + spread) if limit.min is not None else max(0.0, share - spread)
    if reason.verdict != "breach" or _beyond(plausible, limit):
        return reason
    text = f"{reason.message}, but within chance (could be {_pct(plausible)} over {rows:,} rows)"
    return _reason("agreement", "pass", share, limit, rows, text)


@guard("estimated_drop", about="label-free estimate (CBPE) vs the champion's", needs="predictions")
def estimated_drop(stats: RolloutStats, limit: GuardLimit, policy: RolloutConfig) -> Reason:
    if not stats.has_estimate:
        text = "estimated drop: no label-free estimate for this task or version"
        return _reason("estimated_drop", "skip", None, limit, 0, text)
    drop, noise = stats.estimated_drop, stats.estimated_noise
    reason = _on_both_arms("estimated_drop", "estimated drop", drop, stats, limit, policy)
    if reason.verdict != "breach" or drop is None or noise is None or drop > noise:
        return reason
    # over the limit but within what chance alone gives at this sample: not evidence
    text = f"{reason.message}, but within the chance level {_num(noise)}"
    return _reason("estimated_drop", "pass", drop, limit, reason.sample, text)


@guard(
    "realized_drop", about="always-valid interval of the loss increase on labels", needs="labels"
)
def realized_drop(stats: RolloutStats, limit: GuardLimit, policy: RolloutConfig) -> Reason:
    result = stats.realized
    needed = limit.min_labels or DEFAULT_MIN_LABELS
    unit = "labelled rows per arm"
    if result is None:
        return _sample_wait("realized_drop", "realized drop", limit, 0, needed, unit)
    sample = min(result.n_champion, result.n_challenger)
    if sample < needed:
        return _sample_wait("realized_drop", "realized drop", limit, sample, needed, unit)
    # the interval is always valid, so it is judged as a whole: a breach when all of it is
    # beyond the limit, a pass when the challenger is not shown to be beyond it
    bound = _bound(limit)
    breached = result.low > bound if limit.max is not None else result.high < bound
    interval = f"{result.effect:+.1%} ({result.low:+.1%} to {result.high:+.1%})"
    head = f"realized {result.metric} increase {interval}"
    if breached:
        word = "worse" if limit.max is not None else "better"
        text = f"{head}: {word} than {bound:+.1%} over {sample:,} {unit}"
    else:
        text = f"{head}: not shown beyond {bound:+.1%} over {sample:,} {unit}"
    verdict: Verdict = "breach" if breached else "pass"
    return _reason("realized_drop", verdict, result.effect, limit, sample, text)
