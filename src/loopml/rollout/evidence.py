"""The evidence a stage is judged on, as values (computed by :mod:`loopml.rollout.stats`).

Both arms are compared over the same period — the current stage, from its start — and,
for the shadow stage, the same rows. Every value that could not be computed (too few rows,
no labels, a task it does not apply to) is ``None`` with its sample size beside it, and a
guard reading ``None`` holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from loopml.config import Task

__all__ = ["ArmStats", "RolloutStats", "SequentialResult"]


@dataclass(frozen=True)
class ArmStats:
    """One arm's side of a stage: what it answered (or shadowed) and how."""

    arm: str
    version: str
    predictions: int = 0
    """Rows it scored in this stage (ledger rows of its arm and version)."""
    requests: int = 0
    """Requests routed to it (the servers' counters, every replica summed); for the shadow
    arm, the rows it was handed to score (not those dropped from a full queue). The
    error-rate guard waits until the challenger's side reaches ``min_predictions``."""
    errors: int = 0
    """Of those, how many failed inside the model (5xx), never a client's bad input."""
    latency_p99_ms: float | None = None
    latency_p99_range_ms: tuple[float, float] | None = None
    """Where the arm's true p99 lies with 95 % confidence, from the order statistics of its
    latencies (distribution-free): a p99 is its few slowest rows, so it is noisy."""
    labelled: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    """Realized metrics on its labelled rows (``realized.<metric>``) and the label-free
    estimate (``estimated.<metric>``), as the monitor computes them."""

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class SequentialResult:
    """An always-valid comparison of the arms on labels, looked at after every window.

    ``effect`` is the challenger's drop against the champion in the gate's scale (positive:
    the challenger is worse), with its ``low`` – ``high`` interval at ``alpha``, valid at
    every look. ``needed`` is the labelled rows per arm still expected before the interval
    can exclude the limit (None when it already does, or cannot be told)."""

    metric: str
    effect: float
    low: float
    high: float
    alpha: float
    n_champion: int
    n_challenger: int
    needed: int | None = None
    paired: bool = False
    scale: float | None = None
    """The effect's per-row standard deviation at the smaller arm's row count (the
    interval's half-width is ``scale`` times the unit boundary); None when not computed."""
    rho2: float | None = None
    """The normal mixture's tuning (see :mod:`loopml.rollout.sequential`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RolloutStats:
    """Everything :func:`loopml.rollout.decide.decide` reads about one stage."""

    rollout_id: str
    stage: int
    since: float
    """The stage's start (unix seconds): every count is from here on."""
    now: float
    champion: ArmStats
    challenger: ArmStats
    """The challenger's side: arm ``challenger`` in a traffic stage, ``shadow`` in a
    shadow stage."""
    prediction_divergence: float | None = None
    """Distance between the arms' prediction distributions (see stats)."""
    divergence_noise: float | None = None
    """How large ``prediction_divergence`` gets by chance alone at these sample sizes
    (pooled predictions split at random): a divergence within it is not evidence."""
    agreement: float | None = None
    """Share of rows both arms label alike (shadow stage: the same rows)."""
    agreement_rows: int = 0
    estimated_drop: float | None = None
    """The challenger's label-free estimate (CBPE) against the champion's, gate scale."""
    estimated_noise: float | None = None
    """How large ``estimated_drop`` gets by chance alone at these sample sizes: 2.326
    standard deviations of the difference of the two arms' estimates, each arm's from its
    version's holdout resampled at its row count (the monitor's chance tables): a drop
    below it is not evidence."""
    realized: SequentialResult | None = None
    task: Task | None = None
    """The model's task: the agreement guard does not apply to regression."""
    has_estimate: bool = True
    """Whether the challenger and champion have a label-free estimate at all (False for
    regression, or a version stored without calibration): the estimated-drop guard is then
    skipped instead of waiting for an estimate that never comes."""
    shadow_dropped: int = 0
    """Shadow requests dropped because the shadow queue was full (every replica)."""
    shadow: bool = False
    """A shadow stage: the challenger scored off the response path, in a background thread
    (its timing is not the latency a client would see)."""

    @property
    def elapsed(self) -> float:
        return self.now - self.since

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
