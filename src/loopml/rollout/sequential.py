"""The always-valid comparison of two arms on labels: a confidence sequence, pure.

The question is "how much worse is the challenger?" and it is asked again after every
window of labels. A fixed-sample test asked 50 times is wrong far more often than its
alpha (the simulation test shows how often); a *confidence sequence* is an interval that
holds at every look at once: the chance that it ever, at any look, misses the true effect
is at most ``alpha``.

The effect is relative: ``mean loss of the challenger / mean loss of the champion - 1``
(positive: the challenger is worse; 0.01 is 1 % more loss). Its interval is the
asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas
("Time-uniform central limit theory and asymptotic confidence sequences", 2021, Thm 2.2):
Robbins' two-sided normal-mixture boundary (Howard, Ramdas, McAuliffe and Sekhon 2021)
with the plug-in standard deviation,

    effect ± sd · sqrt(2 (t ρ² + 1) / (t² ρ²) · log(sqrt(t ρ² + 1) / alpha)),

where ``t`` is the rows of the smaller arm and ``sd`` the effect's per-row standard
deviation by the delta method on the ratio of means:

- paired (shadow stage, both arms scored the same rows): ``sd² = var(c - r·k) / mean(k)²``
  over rows, ``r = mean(c) / mean(k)``;
- unpaired (canary and A/B: different rows): ``sd² = t · (var(c)/n_c + r² var(k)/n_k) /
  mean(k)²``, the two means independent.

``ρ²`` sets where the interval is tightest: ``(-2 log α + log(1 - 2 log α)) / t*`` for
``tune_rows = t*`` rows per arm (the paper's approximate optimum); the guarantee holds for
any choice, only the width changes. The guarantee is asymptotic (the central limit theorem,
uniformly over time), so a guard reads it only after ``min_labels`` rows per arm; the
simulation test checks it at the sizes a rollout sees.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from loopml.errors import RolloutError
from loopml.rollout.evidence import SequentialResult

__all__ = ["DEFAULT_TUNE_ROWS", "boundary", "compare_losses", "rho2_for", "rows_to_exclude"]

DEFAULT_TUNE_ROWS = 5000
"""Rows per arm where the interval is tightest by default (a rollout's labels per stage)."""
_MAX_ROWS = 10**9
"""Beyond this many rows per arm, ``needed`` says "cannot be told" (None)."""


def rho2_for(tune_rows: int, alpha: float) -> float:
    """The mixture's ``ρ²`` that makes the interval tightest near ``tune_rows`` rows.

    >>> round(rho2_for(5000, 0.05), 6)
    0.001587
    """
    level = -2.0 * math.log(alpha)
    return (level + math.log(level + 1.0)) / tune_rows


def boundary(rows: float, rho2: float, alpha: float) -> float:
    """The unit-variance half-width after ``rows`` rows (multiply by the per-row sd).

    It shrinks as rows grow, roughly like ``sqrt(log(rows) / rows)``: a little wider than a
    fixed-sample interval, the price of looking as often as one likes.

    >>> boundary(5000, rho2_for(5000, 0.05), 0.05) > 1.96 / math.sqrt(5000)
    True
    """
    grown = rows * rho2 + 1.0
    return math.sqrt(2.0 * grown / (rows * rows * rho2) * math.log(math.sqrt(grown) / alpha))


def compare_losses(
    champion: np.ndarray[Any, Any],
    challenger: np.ndarray[Any, Any],
    *,
    metric: str,
    alpha: float,
    limit: float,
    paired: bool = False,
    tune_rows: int = DEFAULT_TUNE_ROWS,
) -> SequentialResult:
    """Compare per-row losses (lower is better) of the two arms, valid at every look.

    ``effect`` is the challenger's relative increase of mean loss (positive: worse), with
    its always-valid interval ``low`` – ``high`` at ``alpha``; ``needed`` the labelled rows
    still expected on the smaller arm before the interval excludes ``limit`` if the effect
    stays where it is (None when it already does, or cannot be told). With fewer than two
    rows in an arm, or a champion with no loss at all, the interval is unbounded
    (effect 0, ``low`` -inf, ``high`` +inf).

    >>> rng = np.random.default_rng(0)
    >>> champion = rng.exponential(0.5, 4000)
    >>> result = compare_losses(champion, champion * 1.3, metric="log_loss", alpha=0.05,
    ...                         limit=0.01, paired=True)
    >>> round(result.effect, 3), result.low > 0.01, result.needed
    (0.3, True, None)
    """
    champ = _losses(champion, "champion")
    chall = _losses(challenger, "challenger")
    if paired and champ.size != chall.size:
        raise RolloutError(
            f"a paired comparison needs the same rows in both arms, got {champ.size:,} "
            f"champion and {chall.size:,} challenger losses",
            fix="pass the losses of the rows both arms scored, in the same order",
        )
    rows = min(champ.size, chall.size)
    unbounded = SequentialResult(
        metric, 0.0, -math.inf, math.inf, alpha, int(champ.size), int(chall.size),
        paired=paired, rho2=rho2_for(tune_rows, alpha),
    )  # fmt: skip
    mean_k = float(champ.mean()) if champ.size else 0.0
    if rows < 2 or mean_k <= 0.0:
        return unbounded
    ratio = float(chall.mean()) / mean_k
    if paired:
        variance = float(np.var(chall - ratio * champ, ddof=1))
    else:
        variance = rows * (
            float(np.var(chall, ddof=1)) / chall.size
            + ratio**2 * float(np.var(champ, ddof=1)) / champ.size
        )
    scale = math.sqrt(max(variance, 0.0)) / mean_k
    half = scale * boundary(rows, unbounded.rho2 or 0.0, alpha)
    effect = ratio - 1.0
    result = replace(unbounded, effect=effect, low=effect - half, high=effect + half, scale=scale)
    return replace(result, needed=rows_to_exclude(result, limit) or None)


def rows_to_exclude(result: SequentialResult, bound: float) -> int | None:
    """More labelled rows on the smaller arm until ``result``'s interval excludes ``bound``,
    if the effect and its per-row spread stay as they are (the other arm growing in
    proportion); 0 when it already does; None when it cannot be told (no spread known, the
    effect on the bound, or more than a billion rows).

    >>> r = SequentialResult("log_loss", 0.05, -0.01, 0.11, 0.05, 1000, 1000, scale=1.0,
    ...                      rho2=rho2_for(5000, 0.05))
    >>> rows_to_exclude(r, 0.0) > 0, rows_to_exclude(r, 0.2), rows_to_exclude(r, 0.05)
    (True, 0, None)
    """
    if result.low > bound or result.high < bound:
        return 0
    rows = min(result.n_champion, result.n_challenger)
    gap = abs(result.effect - bound)
    if result.scale is None or result.rho2 is None or gap == 0.0 or rows < 2:
        return None
    if result.scale * boundary(_MAX_ROWS, result.rho2, result.alpha) >= gap:
        return None
    low, high = rows, _MAX_ROWS
    while high - low > 1:  # the boundary shrinks with rows: bisect for the first row past
        middle = (low + high) // 2
        if result.scale * boundary(middle, result.rho2, result.alpha) < gap:
            high = middle
        else:
            low = middle
    return high - rows


def _losses(values: np.ndarray[Any, Any], arm: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    losses = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(losses)):
        bad = int(np.count_nonzero(~np.isfinite(losses)))
        raise RolloutError(
            f"{bad:,} of the {arm}'s {losses.size:,} per-row losses are not finite",
            fix="clip predicted probabilities away from 0 and 1 before taking log loss",
        )
    return losses
