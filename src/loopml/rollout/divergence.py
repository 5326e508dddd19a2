"""How differently the two arms answer: prediction divergence and (shadow) agreement.

Both are computed with the monitor's drift tests (:func:`loopml.monitor.drift.
column_drift`), the champion's predictions of the stage standing as the reference
profile and the challenger's as the window:

- binary: the Jensen–Shannon distance (natural log, as the monitor's ``jensen_shannon``
  test; from 0, the same distribution, to ``sqrt(ln 2)`` ≈ 0.83, disjoint) between the
  positive-class probabilities, binned as the test bins them;
- multiclass: the same distance between the predicted-class shares;
- regression: the monitor's ``wasserstein`` test — the Wasserstein-1 distance over the
  champion's standard deviation — capped at 1 (a shift of one standard deviation or more).

Agreement is the share of rows both arms answer with the same class, on the same rows:
only a shadow stage scores one row with both (classification only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loopml.monitor.drift import column_drift
from loopml.monitor.evaluate import TEST_MIN_VALUES
from loopml.monitor.profile import ColumnProfile, categorical_profile, numeric_profile
from loopml.rollout.arms import ArmRows, shared_rows

__all__ = ["DIVERGENCE_TESTS", "agreement", "divergence_chance", "prediction_divergence"]

DIVERGENCE_TESTS = {"binary": "jensen_shannon", "multiclass": "jensen_shannon",
                    "regression": "wasserstein"}  # fmt: skip
Array = np.ndarray[Any, Any]
CHANCE_ROUNDS = 20
CHANCE_Z = 2.326
"""The chance level is the mean + 2.326 sd of the distance between random halves of the
pooled predictions: exceeded by chance about once in a hundred (the monitor's rule)."""


def prediction_divergence(
    task: str, champion: Array, challenger: Array, min_rows: int = TEST_MIN_VALUES
) -> float | None:
    """The distance between the arms' predictions (see the module doc), in [0, 1];
    None with fewer than ``min_rows`` usable predictions on either side, or when the
    test has no answer (a constant champion, for regression).

    >>> rng = np.random.default_rng(0)
    >>> same = rng.random(2000)
    >>> prediction_divergence("binary", same, same)
    0.0
    >>> round(prediction_divergence("binary", same, np.full(2000, 0.5)), 2)
    0.75
    """
    reference: ColumnProfile = (
        categorical_profile("prediction", champion)
        if task == "multiclass"
        else numeric_profile("prediction", champion, points=None)  # exact: no sketch error
    )
    if reference.rows < min_rows:
        return None
    drift = column_drift(reference, challenger, test=DIVERGENCE_TESTS[task], min_rows=min_rows)
    if drift.status != "ok" or drift.statistic is None:
        return None
    return min(float(drift.statistic), 1.0)


def divergence_chance(
    task: str, champion: Array, challenger: Array, *, rounds: int = CHANCE_ROUNDS, seed: int = 0
) -> float | None:
    """How large :func:`prediction_divergence` gets by chance alone for these two sample
    sizes: the arms' predictions pooled, shuffled and split again ``rounds`` times (a
    permutation test's null: both arms answer alike). The distance is biased upwards on
    small samples — two halves of one model's 200 predictions read about 0.1 apart — so a
    divergence within this level is not evidence. None when no split can be measured.

    >>> rng = np.random.default_rng(1)
    >>> level = divergence_chance("binary", rng.random(200), rng.random(200))
    >>> 0.05 < level < 0.3
    True
    """
    pooled = np.concatenate([np.asarray(champion), np.asarray(challenger)])
    n = len(champion)
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(rounds):
        shuffled = rng.permutation(pooled)
        value = prediction_divergence(task, shuffled[:n], shuffled[n:])
        if value is not None:
            found.append(value)
    if len(found) < 2:
        return None
    return float(np.mean(found) + CHANCE_Z * np.std(found, ddof=1))


def agreement(
    champion: ArmRows, challenger: ArmRows, pairs: tuple[Array, Array] | None = None
) -> tuple[float | None, int]:
    """The share of rows both arms scored (``pairs``, from :func:`~loopml.rollout.arms.
    shared_rows` when not given) that they answer with the same class, and how many rows
    that is; ``(None, 0)`` for regression or no shared row."""
    if champion.task == "regression":
        return None, 0
    i, j = shared_rows(champion, challenger) if pairs is None else pairs
    first, second = champion.predicted_classes()[i], challenger.predicted_classes()[j]
    usable = (first != None) & (second != None)  # noqa: E711 -- elementwise, object arrays
    both = int(usable.sum())
    if not both:
        return None, 0
    return float(np.mean(first[usable] == second[usable])), both
