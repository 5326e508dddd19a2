"""A sustained drop across windows: a one-sided CUSUM on the primary metric's drop.

One window's drop is judged against chance at its size (:mod:`loopml.monitor.noise`); a
drop that is real but small shows in every window a little, and no single window proves
it. The cumulative sum adds the evidence up, window after window, as Page's CUSUM does::

    S_0 = 0,   S_t = max(0, S_{t-1} + min(z_t - b_{t-1}, CAP) - SLACK)

``z_t`` is the window's drop in standard deviations of chance, ``b`` the series' own
level of ``z``. With an unchanged world ``z - b`` is about N(0, 1) and the sum keeps
falling back to zero; a drop of ``d`` standard deviations adds ``d - SLACK`` per window.
The ``concept-drift`` rule raises when the sum passes ``CUSUM_LIMIT`` (3, in
:mod:`loopml.config`). Capping each window's part at ``CAP`` means one outlier window can
never raise the alert on its own (at most ``4 - 1.5 = 2.5``: it takes two), while a
change of more than 3 standard deviations passes 3 in two windows, and of 2.5 in three.

**Why a level of its own** (as river's Page-Hinkley detector compares a stream with its
own running mean): live windows are often a little worse than the holdout as a whole
with nothing wrong — a window covers a narrow span of time, while the holdout's metric
pools many. On the generated feed, stationary 5,000-row windows sit 0.7 standard
deviations of chance below the holdout's ROC AUC, every window; judged against the
holdout alone, that offset added up to a false alert about once in 400 windows. ``b`` is
the mean ``z`` of the version's windows so far, shrunk towards 0 (the holdout) by
:data:`PRIOR_WINDOWS` pseudo-windows, and it only learns while the sum is zero, so a real
drop does not teach it that the drop is normal. A drop that is there from the version's
first window is not a change: the per-window ``performance-drop`` rule (against the
holdout, beyond chance) is the check for it.

A window without a ``z`` (too few labels, no holdout sample) leaves everything as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CUSUM_CAP", "CUSUM_SLACK", "PRIOR_WINDOWS", "Cusum", "cusum_step"]

CUSUM_SLACK = 1.5  # standard deviations a window's drop must exceed to add evidence
CUSUM_CAP = 4.0  # the most evidence one window adds
PRIOR_WINDOWS = 2.0  # pseudo-windows at the holdout's level the series' level starts from


def cusum_step(previous: float, z: float | None) -> float:
    """The sum after one more window of (already levelled) drop ``z``.

    >>> s = 0.0
    >>> for z in (0.4, -1.0, 5.0, 4.0, 3.0):
    ...     s = cusum_step(s, z)
    >>> round(s, 2)
    6.5
    >>> cusum_step(2.0, None)
    2.0
    """
    if z is None:
        return previous
    return max(0.0, previous + max(min(z, CUSUM_CAP), -CUSUM_CAP) - CUSUM_SLACK)


@dataclass(frozen=True)
class Cusum:
    """The state of one series after a window: the sum, the window its current run of
    evidence began in (``None`` while the sum is zero), and what the series' level is
    learnt from (the number of windows and the sum of their ``z``)."""

    value: float = 0.0
    start: int | None = None
    windows: int = 0
    z_sum: float = 0.0

    @property
    def level(self) -> float:
        """The series' own level of ``z``, shrunk towards the holdout's (0)."""
        return self.z_sum / (self.windows + PRIOR_WINDOWS)

    def step(self, z: float | None, index: int) -> Cusum:
        """The state after window ``index`` with drop ``z``.

        >>> Cusum().step(5.0, 7).step(4.0, 8).value
        5.0
        >>> calm = Cusum(windows=8, z_sum=6.0)  # a series 0.6 sd below the holdout
        >>> calm.step(2.0, 9).value, Cusum().step(2.0, 9).value
        (0.0, 0.5)
        """
        if z is None:
            return self
        value = cusum_step(self.value, z - self.level)
        if value > 0.0:
            start = self.start if self.value > 0.0 else index
            return Cusum(value, start, self.windows, self.z_sum)
        return Cusum(0.0, None, self.windows + 1, self.z_sum + z)

    def metrics(self) -> dict[str, float]:
        """As window metrics: ``performance_cusum`` (and ``performance_cusum_start``),
        ``performance_level`` and ``performance_level_windows``."""
        out = {
            "performance_cusum": self.value,
            "performance_level": self.level,
            "performance_level_windows": float(self.windows),
        }
        if self.start is not None:
            out["performance_cusum_start"] = float(self.start)
        return out

    @classmethod
    def of(cls, metrics: Mapping[str, float]) -> Cusum:
        """The state a window's metrics hold (a window stored before: zero).

        >>> state = Cusum(windows=8, z_sum=6.0).step(4.0, 9)
        >>> Cusum.of(state.metrics()) == state
        True
        """
        start = metrics.get("performance_cusum_start")
        value = float(metrics.get("performance_cusum", 0.0))
        windows = int(metrics.get("performance_level_windows", 0))
        z_sum = float(metrics.get("performance_level", 0.0)) * (windows + PRIOR_WINDOWS)
        return cls(value, None if start is None or value <= 0.0 else int(start), windows, z_sum)
