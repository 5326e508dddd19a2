"""The evidence of one stage, from the ledger and the servers' counters.

Both arms of the current stage, from its start to now: the champion is the ledger's arm
``champion`` of the champion version; the challenger is arm ``challenger`` (a traffic
stage) or ``shadow`` (a shadow stage) of the challenger version. At full share (the last
canary step, blue-green) the champion answers nobody, so its side is its own answers over
a period as long as the stage so far, just before the stage began. In a canary stage the
champion's p99 latency is read on its requests nearest in time to the challenger's
(:func:`matched_latency`), so both arms see the same bursts of load. Everything is computed
with the monitor's code, each version against its own reference profile:

- realized metrics on labelled rows: :func:`loopml.monitor.performance.realized_performance`;
- the label-free estimate: :func:`loopml.monitor.performance.estimate_performance`
  (CBPE, with the version's calibration); ``estimated_drop`` is the challenger's estimate
  of the gate metric against the champion's (:func:`loopml.train.metrics.metric_drop`,
  positive: the challenger is worse) and ``estimated_noise`` the drop chance alone gives
  at the challenger's row count (:class:`loopml.monitor.noise.ChanceTable`);
- prediction divergence and agreement: :mod:`loopml.rollout.divergence` (the monitor's
  drift tests);
- the comparison on labels: per-row losses (:mod:`loopml.rollout.losses`) handed to
  :func:`loopml.rollout.sequential.compare_losses`, paired on the same rows in shadow.

Requests and errors are the servers' counters (:meth:`RolloutStore.counts`), not the
ledger's: a request that failed inside the model left no ledger row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from scipy.stats import binom

from loopml.config import ProjectConfig
from loopml.errors import LoopmlError, RolloutError
from loopml.ledger.connect import open_backend
from loopml.ledger.records import LedgerQuery
from loopml.monitor.noise import CHANCE_Z, ChanceTable
from loopml.monitor.performance import estimate_performance, realized_performance
from loopml.monitor.profile import ReferenceProfile
from loopml.monitor.run import ProfileLoader, chance_table, registry_profiles
from loopml.rollout.arms import ArmRows, Array, read_arm, shared_rows
from loopml.rollout.divergence import agreement, divergence_chance, prediction_divergence
from loopml.rollout.evidence import ArmStats, RolloutStats, SequentialResult
from loopml.rollout.losses import loss_name, paired_losses, unpaired_losses
from loopml.rollout.plan import RolloutState
from loopml.rollout.sequential import compare_losses
from loopml.rollout.state import ArmCount, RolloutStore
from loopml.train.metrics import default_metric, metric_drop

__all__ = ["Compare", "collect_stats"]

Compare = Callable[..., SequentialResult]
""":func:`~loopml.rollout.sequential.compare_losses`'s signature."""
MIN_COMPARED = 2  # labelled rows per arm before the comparison on labels is asked at all
NOISE_ROWS = 2000
"""Above this many rows the estimate's chance level is the one at this size scaled by
``sqrt(NOISE_ROWS / rows)`` (a mean's spread), not a fresh bootstrap at every size:
within ~8 % of the bootstrap at 5k-50k rows, and 0.25 s once per version instead of
15 s per size at 50k (measured on a binary profile, 200 resamples)."""


def collect_stats(
    project: ProjectConfig,
    store: RolloutStore,
    state: RolloutState,
    now: float,
    *,
    profiles: ProfileLoader | None = None,
    compare: Compare = compare_losses,
) -> RolloutStats:
    """Both arms of the current stage of ``state``, from its start to ``now``.

    ``profiles`` loads a version's reference profile (default: from the registry, as
    the monitor does); ``compare`` is the comparison on labels (default
    :func:`~loopml.rollout.sequential.compare_losses`).
    """
    if not project.serve.ledger.enabled:
        raise RolloutError(
            f"cannot judge rollout {state.rollout_id}: the prediction ledger is disabled",
            detail="a stage is judged on the predictions and labels the ledger records",
            fix="set serve.ledger.enabled: true in loopml.yaml (and restart the server)",
        )
    load = profiles or registry_profiles(project)
    champion_profile, challenger_profile = _profiles(load, state)
    shadow = state.current.kind == "shadow"
    champion, challenger = _read(project, state, now, champion_profile, challenger_profile, shadow)
    counts = store.counts(state.rollout_id, state.stage)
    primary = project.gate.metric or default_metric(champion_profile.task)  # type: ignore[arg-type]
    champion_stats, champion_estimate = _arm_stats(champion, counts)
    challenger_stats, challenger_estimate = _arm_stats(challenger, counts)
    if not shadow and not _full_share(state):
        champion_stats = _latency_at(champion_stats, matched_latency(champion, challenger))
    pairs = shared_rows(champion, challenger) if shadow else None
    agreed, agreed_rows = agreement(champion, challenger, pairs) if pairs is not None else (None, 0)
    return RolloutStats(
        rollout_id=state.rollout_id,
        stage=state.stage,
        since=state.stage_started_at,
        now=now,
        champion=champion_stats,
        challenger=challenger_stats,
        prediction_divergence=prediction_divergence(
            champion.task, champion.prediction, challenger.prediction
        ),
        divergence_noise=divergence_chance(
            champion.task, champion.prediction, challenger.prediction
        ),
        agreement=agreed,
        agreement_rows=agreed_rows,
        estimated_drop=_drop(primary, champion_estimate, challenger_estimate),
        estimated_noise=_difference_noise(
            (chance_table(project.name, state.champion, champion_profile), len(champion)),
            (chance_table(project.name, state.challenger, challenger_profile), len(challenger)),
            primary,
        ),
        realized=_realized(project, champion, challenger, pairs, compare),
        shadow_dropped=counts["shadow"].dropped if shadow and "shadow" in counts else 0,
        task=champion_profile.task,  # type: ignore[arg-type]
        has_estimate=_estimable(champion_profile, challenger_profile),
        shadow=shadow,
    )


def _profiles(
    load: ProfileLoader, state: RolloutState
) -> tuple[ReferenceProfile, ReferenceProfile]:
    loaded = []
    for role, version in (("champion", state.champion), ("challenger", state.challenger)):
        try:
            loaded.append(load(version))
        except LoopmlError as exc:
            raise RolloutError(
                f"cannot judge rollout {state.rollout_id}: the {role} (version {version}) "
                f"has no usable reference profile: {exc.headline}",
                detail=exc.detail,
                fix=exc.fix or f"run 'loopml monitor profile {version}'",
            ) from exc
    return loaded[0], loaded[1]


def _read(
    project: ProjectConfig,
    state: RolloutState,
    now: float,
    champion: ReferenceProfile,
    challenger: ReferenceProfile,
    shadow: bool,
) -> tuple[ArmRows, ArmRows]:
    def query(version: str, arm: str, since: float, until: float) -> LedgerQuery:
        return LedgerQuery(since=since, until=until, version=version, arm=arm, model=project.name)

    since = state.stage_started_at
    # At full share the champion answers nobody: its side is its own answers over a period
    # as long as the stage so far, just before the stage began.
    reference = (since - (now - since), since) if _full_share(state) else (since, now)
    backend = open_backend(project.serve.ledger.url, project.root)
    try:
        with backend.reader() as reader:  # one snapshot for both arms
            first = read_arm(reader, query(state.champion, "champion", *reference), champion)
            arm = "shadow" if shadow else "challenger"
            second = read_arm(reader, query(state.challenger, arm, since, now), challenger)
    finally:
        backend.close()
    return first, second


def _estimable(*profiles: ReferenceProfile) -> bool:
    """Whether both versions have a label-free estimate (a classifier with a calibration)."""
    return all(p.task != "regression" and p.calibration is not None for p in profiles)


def quantile_range(values: Array, q: float, confidence: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free ``confidence`` interval of the ``q`` quantile: the order
    statistics whose ranks bound it (the count of values below the true quantile is
    binomial); with too few values for the upper rank, the largest value bounds it.
    None without values."""
    n = len(values)
    if n == 0:
        return None
    tail = (1 - confidence) / 2
    low_rank = max(0, int(binom.ppf(tail, n, q)) - 1)  # 0-based ranks into the sorted values
    high_rank = min(n - 1, int(binom.ppf(1 - tail, n, q)))
    ordered = np.partition(values, (low_rank, high_rank))
    return float(ordered[low_rank]), float(ordered[high_rank])


def matched_latency(champion: ArmRows, challenger: ArmRows) -> Array:
    """The champion's latencies at the challenger's moments: for each challenger row, the
    champion row scored nearest in time. A canary's challenger answers a few requests in
    twenty; compared with all of the champion's, a short burst of load on the machine
    lifts the small arm's p99 and is diluted in the large one's. Matched in time, both
    arms see the same bursts. Empty without rows on either side."""
    if not len(champion) or not len(challenger):
        return np.empty(0)
    order = np.argsort(champion.ts, kind="stable")
    times = champion.ts[order]
    right = np.clip(np.searchsorted(times, challenger.ts), 0, len(times) - 1)
    left = np.clip(right - 1, 0, len(times) - 1)
    nearer = np.where(
        np.abs(times[left] - challenger.ts) <= np.abs(times[right] - challenger.ts), left, right
    )
    return np.asarray(champion.latency_ms[order][nearer])


def _latency_at(stats: ArmStats, latency: Array) -> ArmStats:
    """``stats`` with its p99 (and interval) read on ``latency`` instead."""
    finite = latency[np.isfinite(latency)]
    if not len(finite):
        return stats
    return replace(
        stats,
        latency_p99_ms=float(np.percentile(finite, 99)),
        latency_p99_range_ms=quantile_range(finite, 0.99),
    )


def _full_share(state: RolloutState) -> bool:
    return state.current.kind == "traffic" and state.current.share >= 1.0


def _arm_stats(arm: ArmRows, counts: dict[str, ArmCount]) -> tuple[ArmStats, dict[str, float]]:
    """The arm's side, and its estimated metrics (for the estimated drop)."""
    profile = arm.profile
    n = len(arm)
    metrics: dict[str, float] = {}
    labelled = 0
    estimated: dict[str, float] = {}
    if n:
        realized, _, labelled = realized_performance(
            profile.task, profile.classes, arm.labels, arm.scores, threshold=profile.threshold
        )
        estimated = estimate_performance(
            profile.task, profile.calibration, arm.scores, profile.threshold
        )
        metrics = {f"realized.{k}": v for k, v in realized.items()}
        metrics |= {f"estimated.{k}": v for k, v in estimated.items()}
    latency = arm.latency_ms[np.isfinite(arm.latency_ms)]
    count = counts.get(arm.arm)
    stats = ArmStats(
        arm=arm.arm,
        version=arm.version,
        predictions=n,
        requests=count.requests if count is not None else 0,
        errors=count.errors if count is not None else 0,
        latency_p99_ms=float(np.percentile(latency, 99)) if len(latency) else None,
        latency_p99_range_ms=quantile_range(latency, 0.99),
        labelled=labelled,
        metrics=metrics,
    )
    return stats, estimated


def _drop(metric: str, champion: dict[str, float], challenger: dict[str, float]) -> float | None:
    if metric not in champion or metric not in challenger:
        return None
    drop = metric_drop(metric, champion[metric], challenger[metric])
    return drop if math.isfinite(drop) else None


def _difference_noise(
    champion: tuple[ChanceTable, int], challenger: tuple[ChanceTable, int], metric: str
) -> float | None:
    """How far the two arms' estimates stray apart by chance: each arm's estimate of
    ``metric`` strays by its own chance (its version's holdout resampled at its row
    count); their difference by both — ``CHANCE_Z`` standard deviations of it. (On the
    same rows, in a shadow stage, it strays less: this level is then conservative.)"""
    spreads = [_spread(table, metric, rows) for table, rows in (champion, challenger)]
    if any(spread is None for spread in spreads):
        return None
    return CHANCE_Z * math.sqrt(sum(spread**2 for spread in spreads if spread is not None))


def _spread(table: ChanceTable, metric: str, rows: int) -> float | None:
    """The standard deviation of one arm's estimate at ``rows`` (measured at up to
    ``NOISE_ROWS`` and scaled by the square root beyond: a bootstrap at 50k rows costs
    ~15 s and the scaled figure is within ~8 % of it)."""
    if rows < 2:
        return None
    size = min(rows, NOISE_ROWS)
    chance = table.estimated(size).get(metric)
    if chance is None or not math.isfinite(chance.std):
        return None
    return chance.std * math.sqrt(size / rows)


def _realized(
    project: ProjectConfig,
    champion: ArmRows,
    challenger: ArmRows,
    pairs: tuple[Array, Array] | None,
    compare: Compare,
) -> SequentialResult | None:
    """The comparison on labels: paired on the same rows when ``pairs`` (a shadow stage)."""
    if pairs is None:
        first, second = unpaired_losses(champion, challenger)
    else:
        first, second = paired_losses(champion, challenger, pairs)
    if len(first) < MIN_COMPARED or len(second) < MIN_COMPARED:
        return None
    guard = project.rollout.guards.realized_drop
    return compare(
        first,
        second,
        metric=loss_name(champion.task),
        alpha=project.rollout.alpha,
        limit=float(guard.max if guard.max is not None else guard.min or 0.0),
        paired=pairs is not None,
    )
