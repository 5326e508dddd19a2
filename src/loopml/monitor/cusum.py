"""A sustained drop across windows: a one-sided CUSUM on the primary metric's drop.

One window's drop is judged against chance at its size (:mod:`loopml.monitor.noise`); a
drop that is real but small shows in every window a little, and no single window proves
it. The cumulative sum adds the evidence up, window after window, as Page's CUSUM does
(river's ``PageHinkley`` is the same idea on a stream of single values)::

    S_0 = 0,   S_t = max(0, S_{t-1} + min(z_t, CAP) - SLACK)

``z_t`` is the window's drop in standard deviations of chance. With an unchanged world
``z`` is about N(0, 1) and the sum keeps falling back to zero; a drop of ``d`` standard
deviations adds ``d - SLACK`` per window. The ``concept-drift`` rule raises when the
sum passes ``CUSUM_LIMIT`` (3, in :mod:`loopml.config`). Capping each window's part at
``CAP`` means one outlier window can never raise the alert on its own (at most
``4 - 1.5 = 2.5`` per window: it takes at least two), while a clear drop (``z > 3``)
passes 3 in two windows and a drop of 2.5 standard deviations in three.

Why a slack of 1.5 and not the textbook half of the shift to detect: live windows are
often a little worse than the holdout as a whole, with nothing wrong — a window covers a
narrow span of time, while the holdout's metric pools many (on the generated feed, a
stationary 5,000-row window's ROC AUC sits 0.7 standard deviations of chance below the
holdout's, every window). The slack absorbs such an offset: the sum then falls by 0.8
per window on average, and reaches 3 in about one excursion in 700
(``exp(-2 * 0.8 * 3 / 0.74)``, the window-to-window variance measured on the feed); with
no offset, about once in 200,000 windows (Siegmund's approximation of the run length).

A window without a ``z`` (too few labels, no holdout sample) leaves the sum as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CUSUM_CAP", "CUSUM_SLACK", "Cusum", "cusum_step"]

CUSUM_SLACK = 1.5  # standard deviations a window's drop must exceed to add evidence
CUSUM_CAP = 4.0  # the most evidence one window adds


def cusum_step(previous: float, z: float | None) -> float:
    """The sum after one more window.

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
    """The sum after a window, and the window its current run of evidence began in
    (``None`` while the sum is zero)."""

    value: float = 0.0
    start: int | None = None

    def step(self, z: float | None, index: int) -> Cusum:
        """The state after window ``index`` with drop ``z`` (see :func:`cusum_step`).

        >>> Cusum().step(5.0, 7).step(4.0, 8)
        Cusum(value=5.0, start=7)
        """
        value = cusum_step(self.value, z)
        if value <= 0.0:
            return Cusum()
        return Cusum(value, self.start if self.value > 0.0 else index)

    def metrics(self) -> dict[str, float]:
        """As window metrics: ``performance_cusum`` (and ``performance_cusum_start``)."""
        out = {"performance_cusum": self.value}
        if self.start is not None:
            out["performance_cusum_start"] = float(self.start)
        return out

    @classmethod
    def of(cls, metrics: Mapping[str, float]) -> Cusum:
        """The state a window's metrics hold (a window stored before: zero)."""
        start = metrics.get("performance_cusum_start")
        value = float(metrics.get("performance_cusum", 0.0))
        return cls(value, None if start is None or value <= 0.0 else int(start))
