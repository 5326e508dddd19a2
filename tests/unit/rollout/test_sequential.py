"""The confidence sequence on labels: valid at every look, where a naive test is not.

Two equal models are compared after each of 50 windows of 100 labelled rows per arm, over
many seeded runs: the interval must *ever* show "challenger better" (a false promotion in
A/B) or "challenger worse" (a false rollback) in at most ``alpha`` of the runs, while a
fixed-sample interval recomputed at each look does so far more often. Run this file as a
script to print the figures (false rates, power against a 5 % and a 10 % worse model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy import stats

from loopml.errors import RolloutError
from loopml.rollout.evidence import SequentialResult
from loopml.rollout.sequential import boundary, compare_losses, rho2_for, rows_to_exclude

pytestmark = pytest.mark.unit

ALPHA = 0.05
LOOKS = 50
WINDOW = 100
RUNS = 400
Array = np.ndarray[Any, Any]


def log_losses(rng: np.random.Generator, rows: int) -> Array:
    """Per-row log losses of a calibrated classifier: p ~ Beta(2, 5), y ~ Bernoulli(p)."""
    p = rng.beta(2.0, 5.0, rows)
    y = rng.random(rows) < p
    return np.where(y, -np.log(p), -np.log1p(-p))


def squared_errors(rng: np.random.Generator, rows: int) -> Array:
    """Per-row squared errors of a regression with heavy-tailed residuals (Student t, 5 df)."""
    return rng.standard_t(5.0, rows) ** 2


def paired_losses(rng: np.random.Generator, rows: int) -> tuple[Array, Array]:
    """Two equally good models scoring the same rows: the truth's logit plus own noise."""
    p = rng.beta(2.0, 5.0, rows)
    y = rng.random(rows) < p
    logit = np.log(p / (1 - p))
    arms = []
    for _ in range(2):
        q = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.5, rows))))
        arms.append(np.where(y, -np.log(q), -np.log1p(-q)))
    return arms[0], arms[1]


@dataclass
class Runs:
    """In how many runs the interval ever showed the challenger better / worse."""

    better: float
    worse: float
    breach: float
    """Ever worse than a 1 % limit (``low > 0.01``)."""
    naive_better: float
    naive_worse: float


Z = float(stats.norm.ppf(1 - ALPHA / 2))


def naive_interval(result: SequentialResult) -> tuple[float, float]:
    """The fixed-sample 95 % interval of the same estimate, wrongly used at every look."""
    assert result.scale is not None
    half = Z * result.scale / math.sqrt(min(result.n_champion, result.n_challenger))
    return result.effect - half, result.effect + half


def simulate(
    worse_by: float = 0.0, *, runs: int = RUNS, paired: bool = False, regression: bool = False
) -> Runs:
    """``runs`` seeded rollouts of 50 looks; the challenger's losses ``1 + worse_by`` times
    (negative: better); classifier log losses, or a regression's squared errors."""
    counts = np.zeros(5)
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        if paired:
            champion, challenger = paired_losses(rng, LOOKS * WINDOW)
        else:
            draw = squared_errors if regression else log_losses
            champion, challenger = draw(rng, LOOKS * WINDOW), draw(rng, LOOKS * WINDOW)
        challenger = challenger * (1 + worse_by)
        ever = np.zeros(5, dtype=bool)
        for look in range(1, LOOKS + 1):
            k, c = champion[: look * WINDOW], challenger[: look * WINDOW]
            r = compare_losses(k, c, metric="log_loss", alpha=ALPHA, limit=0.01, paired=paired)
            low, high = naive_interval(r)
            ever |= [r.high < 0, r.low > 0, r.low > 0.01, high < 0, low > 0]
        counts += ever
    return Runs(*(float(rate) for rate in counts / runs))


def tolerance(runs: int = RUNS) -> float:
    """Three binomial standard deviations of a rate of ``alpha`` over ``runs`` runs."""
    return 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)


def test_equal_models_are_rarely_told_apart_over_50_looks() -> None:
    runs = simulate()
    print(f"\nunpaired, equal models, {RUNS} runs x {LOOKS} looks: {runs}")
    assert runs.better <= ALPHA + tolerance()
    assert runs.worse <= ALPHA + tolerance()
    assert runs.better + runs.worse <= ALPHA + tolerance()
    # the check can fail: a fixed-sample interval at every look is wrong far more often
    assert runs.naive_better + runs.naive_worse > ALPHA + tolerance()
    assert runs.naive_better + runs.naive_worse > 2 * (runs.better + runs.worse)


def test_equal_models_on_the_same_rows_paired() -> None:
    runs = simulate(paired=True, runs=RUNS)
    print(f"\npaired, equal models, {RUNS} runs x {LOOKS} looks: {runs}")
    assert runs.better <= ALPHA + tolerance() and runs.worse <= ALPHA + tolerance()
    assert runs.naive_better + runs.naive_worse > ALPHA + tolerance()


def test_equal_regressions_with_heavy_tailed_errors() -> None:
    runs = simulate(regression=True, runs=200)
    print(f"\nregression squared errors, equal models, 200 runs x {LOOKS} looks: {runs}")
    assert runs.better <= ALPHA + tolerance(200) and runs.worse <= ALPHA + tolerance(200)


def test_a_worse_challenger_is_found() -> None:
    runs = simulate(0.10, runs=100)
    print(f"\nunpaired, challenger 10% worse, 100 runs: {runs}")
    assert runs.better == 0
    assert runs.worse > 0.5


def test_identical_arms_give_a_zero_effect_inside_a_shrinking_interval() -> None:
    losses = log_losses(np.random.default_rng(1), 4000)
    small = compare_losses(losses[:400], losses[:400], metric="log_loss", alpha=ALPHA, limit=0.01)
    large = compare_losses(losses, losses, metric="log_loss", alpha=ALPHA, limit=0.01)
    assert small.effect == pytest.approx(0.0) and large.effect == pytest.approx(0.0)
    assert small.low < 0 < small.high
    assert large.high - large.low < small.high - small.low
    assert (large.n_champion, large.n_challenger, large.metric) == (4000, 4000, "log_loss")
    assert large.needed is not None and large.needed > 0  # 0 effect: to exclude +1 % needs more


def test_needed_rows_bring_the_interval_past_the_limit() -> None:
    rng = np.random.default_rng(2)
    champion = log_losses(rng, 200_000)
    challenger = log_losses(rng, 200_000) * 1.06
    early = compare_losses(champion[:1000], challenger[:1000], metric="log_loss", alpha=ALPHA,
                           limit=0.0)  # fmt: skip
    assert early.low < 0 < early.high and early.needed is not None
    later = 1000 + 2 * early.needed
    result = compare_losses(champion[:later], challenger[:later], metric="log_loss",
                            alpha=ALPHA, limit=0.0)  # fmt: skip
    assert result.low > 0 and result.needed is None


def test_rows_to_exclude_matches_the_boundary() -> None:
    result = compare_losses(np.full(100, 1.0) + np.arange(100) % 3, np.full(100, 1.1)
                            + np.arange(100) % 3, metric="mse", alpha=ALPHA, limit=0.0)  # fmt: skip
    extra = rows_to_exclude(result, 10.0)
    assert extra == 0  # 10.0 (a 1000 % drop) is far outside the interval already
    assert result.scale is not None and result.rho2 == rho2_for(5000, ALPHA)
    n = rows_to_exclude(result, 0.2)
    assert n is not None
    rows = 100 + n
    assert result.scale * boundary(rows, result.rho2, ALPHA) < abs(result.effect - 0.2)
    assert result.scale * boundary(rows - 1, result.rho2, ALPHA) >= abs(result.effect - 0.2)


def test_too_few_rows_give_an_unbounded_interval() -> None:
    result = compare_losses(np.array([1.0]), np.array([2.0, 3.0]), metric="log_loss",
                            alpha=ALPHA, limit=0.01)  # fmt: skip
    assert (result.low, result.high, result.needed) == (-math.inf, math.inf, None)
    zero = compare_losses(np.zeros(10), np.ones(10), metric="mse", alpha=ALPHA, limit=0.01)
    assert zero.high == math.inf


def test_bad_losses_are_refused_with_a_fix() -> None:
    with pytest.raises(RolloutError, match="not finite") as info:
        compare_losses(np.array([1.0, np.inf]), np.ones(2), metric="log_loss", alpha=ALPHA,
                       limit=0.01)  # fmt: skip
    assert "clip" in info.value.fix
    with pytest.raises(RolloutError, match="same rows"):
        compare_losses(np.ones(3), np.ones(4), metric="log_loss", alpha=ALPHA, limit=0.01,
                       paired=True)  # fmt: skip


if __name__ == "__main__":
    print("equal, unpaired:", simulate(runs=1000))
    print("equal, paired:", simulate(paired=True, runs=1000))
    print("equal, regression:", simulate(regression=True, runs=1000))
    for change in (0.02, 0.05, 0.10, 0.20, -0.05, -0.10):
        word = f"{abs(change):.0%} {'worse' if change > 0 else 'better'}"
        print(f"challenger {word}, unpaired:", simulate(change, runs=400))
        print(f"challenger {word}, paired:", simulate(change, runs=400, paired=True))
