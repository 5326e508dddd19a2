"""Hand-built evidence for the guard and decision tests: a healthy stage, then changes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from loopml.rollout.evidence import ArmStats, RolloutStats, SequentialResult
from loopml.rollout.sequential import rho2_for


def realized(effect: float = 0.001, half: float = 0.02, rows: int = 800) -> SequentialResult:
    """An interval ``effect ± half`` over ``rows`` labelled rows per arm."""
    return SequentialResult(
        "log_loss", effect, effect - half, effect + half, 0.05, rows, rows,
        scale=half * rows**0.5 / 2.5, rho2=rho2_for(5000, 0.05),
    )  # fmt: skip


def arm(name: str = "champion", version: str = "1", **changes: Any) -> ArmStats:
    base = ArmStats(name, version, predictions=3000, requests=3000, errors=0,
                    latency_p99_ms=10.0, labelled=800)  # fmt: skip
    return replace(base, **changes)


def healthy(shadow: bool = False, **changes: Any) -> RolloutStats:
    """A stage every default guard passes: 3,000 rows per arm, 10 minutes, 800 labels."""
    base = RolloutStats(
        "r1", 1, since=1000.0, now=1600.0,
        champion=arm(), challenger=arm("shadow" if shadow else "challenger", "2",
                                       latency_p99_ms=11.0),
        prediction_divergence=0.02, estimated_drop=0.001, estimated_noise=0.004,
        realized=realized(), task="binary",
        agreement=0.97 if shadow else None, agreement_rows=3000 if shadow else 0,
        shadow=shadow,
    )  # fmt: skip
    return replace(base, **changes)


def challenger(stats: RolloutStats, **changes: Any) -> RolloutStats:
    return replace(stats, challenger=replace(stats.challenger, **changes))
