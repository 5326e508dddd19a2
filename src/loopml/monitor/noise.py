"""How far a window's metric strays from the holdout by chance alone.

A window of ``n`` labelled rows drawn from the very distribution of the holdout does not
score the holdout's metric exactly: the smaller the window, the further off it lands. So
a drop only means something beside what chance gives at that size. The profile keeps a
sample of the holdout (:class:`~loopml.monitor.profile.HoldoutSample`); for a window of
``n`` rows, :class:`ChanceTable` draws ``n`` of its rows with replacement
:data:`RESAMPLES` times (a bootstrap), computes the metrics of each draw — *realized*
from labels and scores, *estimated* (CBPE) from the scores alone — and measures each
one's drop against the whole sample's metric on the gate's scale
(:func:`~loopml.train.metrics.metric_drop`: a fraction of the reference for error
metrics, an absolute amount for bounded scores).

:class:`Chance` keeps the drops' mean and standard deviation. Its ``level`` is
``mean + 2.326 * std``, the one-sided 99 % point of a normal: a window from an unchanged
world exceeds it about once in a hundred, and an alert that needs two such windows in a
row about once in ten thousand. Its ``z`` is a drop in standard deviations of chance,
what the cumulative check across windows (:mod:`loopml.monitor.cusum`) adds up.

Draws are seeded by the window size, so a window gets the same answer every run; sizes
are rounded down to two significant digits (1,234 labelled rows are judged as 1,200, a
little more lenient) so that windows of nearly one size share one computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.errors import ConfigError
from loopml.monitor.calibration import class_proba
from loopml.monitor.performance import estimate_performance
from loopml.monitor.profile import HoldoutSample, ReferenceProfile
from loopml.train.metrics import compute_metrics, metric_drop

__all__ = ["CHANCE_Z", "MIN_ROWS", "RESAMPLES", "Chance", "ChanceTable", "size_bucket"]

RESAMPLES = 200
CHANCE_Z = 2.326  # one-sided 99 % point of the standard normal
MIN_ROWS = 30  # fewer labelled rows: no chance level (and no z) for the window


@dataclass(frozen=True)
class Chance:
    """The drops a metric shows by chance in windows of one size."""

    mean: float
    std: float

    @property
    def level(self) -> float:
        """The drop a window from an unchanged world exceeds about once in a hundred."""
        return self.mean + CHANCE_Z * self.std

    def z(self, drop: float) -> float | None:
        """``drop`` in standard deviations of chance (None when chance has no spread)."""
        if not self.std > 0:
            return None
        return (drop - self.mean) / self.std


def size_bucket(rows: int) -> int:
    """``rows`` rounded down to two significant digits.

    >>> size_bucket(99), size_bucket(1234), size_bucket(5000), size_bucket(56789)
    (99, 1200, 5000, 56000)
    """
    if rows < 100:
        return int(rows)
    step = 10 ** (len(str(rows)) - 2)
    return int(rows - rows % step)


class ChanceTable:
    """Chance per metric for windows of ``n`` rows of one profile, computed once per size."""

    def __init__(self, profile: ReferenceProfile, resamples: int = RESAMPLES) -> None:
        self._profile = profile
        self._resamples = resamples
        self._cache: dict[tuple[str, int], dict[str, Chance]] = {}

    def realized(self, rows: int) -> dict[str, Chance]:
        """Chance for realized metrics of a window with ``rows`` labelled rows."""
        return self._lookup("realized", rows)

    def estimated(self, rows: int) -> dict[str, Chance]:
        """Chance for estimated (CBPE) metrics of a window of ``rows`` rows."""
        if self._profile.task == "regression" or self._profile.calibration is None:
            return {}
        return self._lookup("estimated", rows)

    def _lookup(self, kind: str, rows: int) -> dict[str, Chance]:
        sample = self._profile.holdout_sample
        if sample is None or sample.rows < MIN_ROWS or rows < MIN_ROWS:
            return {}
        size = size_bucket(rows)
        key = (kind, size)
        if key not in self._cache:
            self._cache[key] = self._compute(kind, sample, size)
        return self._cache[key]

    def _compute(self, kind: str, sample: HoldoutSample, size: int) -> dict[str, Chance]:
        rng = np.random.default_rng([size, 1 if kind == "realized" else 2])
        # Centred on the sample's own metrics: the sample is a part of the holdout, and
        # how far that part happens to be from the whole is not chance in the window.
        centre = self._metrics(kind, sample, np.arange(sample.rows))
        drops: dict[str, list[float]] = {}
        for _ in range(self._resamples):
            rows = rng.integers(0, sample.rows, size)
            for name, value in self._metrics(kind, sample, rows).items():
                reference = centre.get(name)
                if reference is None or not (math.isfinite(reference) and math.isfinite(value)):
                    continue
                try:
                    drops.setdefault(name, []).append(metric_drop(name, reference, value))
                except ConfigError:  # a metric this loopml does not know
                    continue
        return {
            name: Chance(float(np.mean(values)), float(np.std(values, ddof=1)))
            for name, values in drops.items()
            if len(values) >= self._resamples // 2
        }

    def _metrics(self, kind: str, sample: HoldoutSample, rows: Any) -> dict[str, float]:
        profile = self._profile
        task = profile.task
        scores = sample.scores[rows]
        if task != "regression":
            scores = class_proba(task, scores)  # type: ignore[arg-type]
        if kind == "estimated":
            return estimate_performance(task, profile.calibration, scores, profile.threshold)
        labels = sample.labels[rows]
        if task != "regression":
            labels = labels.astype(np.int64)
        with np.errstate(all="ignore"):
            return compute_metrics(
                task,  # type: ignore[arg-type]
                labels,
                scores,
                len(profile.classes),
                threshold=profile.threshold,
            )
