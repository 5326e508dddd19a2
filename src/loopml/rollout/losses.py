"""Per-row losses of labelled rows: what the sequential comparison on labels adds up.

A classifier's loss on a row is its log loss there (the negative log of the probability
it gave the true class, clipped as :func:`loopml.train.metrics.log_loss` clips it), a
regressor's the squared error; the mean of either is a proper score of the whole arm, so
comparing per-row means compares the arms. Labels are read as the monitor reads them
(:func:`loopml.monitor.performance.encode_labels`); a row without a usable label or with
a non-finite score has no loss (NaN).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loopml.monitor.calibration import class_proba
from loopml.monitor.performance import encode_labels
from loopml.rollout.arms import ArmRows, shared_rows

__all__ = [
    "LOSS_NAMES",
    "arm_losses",
    "loss_name",
    "paired_losses",
    "row_losses",
    "unpaired_losses",
]

_EPS = float(np.finfo(np.float64).eps)  # as loopml.train.metrics.log_loss clips
LOSS_NAMES = {"binary": "log_loss", "multiclass": "log_loss", "regression": "squared_error"}
Array = np.ndarray[Any, Any]


def loss_name(task: str) -> str:
    """The per-row loss of ``task``: ``log_loss`` (classification) or ``squared_error``."""
    return LOSS_NAMES[task]


def row_losses(task: str, classes: tuple[str, ...], scores: Array, labels: list[Any]) -> Array:
    """Each row's loss, NaN where the row has no usable label or score.

    >>> row_losses("binary", ("0", "1"), np.array([[0.2, 0.8], [0.5, 0.5]]), [1, None]).round(4)
    array([0.2231,    nan])
    >>> row_losses("regression", (), np.array([1.0, 3.0]), [2.0, "2"]).tolist()
    [1.0, 1.0]
    """
    codes = encode_labels(task, classes, labels)
    out = np.full(len(labels), np.nan)
    if task == "regression":
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        usable = codes.labelled & np.isfinite(values)
        out[usable] = (values[usable] - codes.values[usable].astype(np.float64)) ** 2
        return out
    p = class_proba(task, scores)  # type: ignore[arg-type]
    usable = codes.labelled & np.isfinite(p).all(axis=1)
    rows = np.flatnonzero(usable)
    p_true = np.clip(p[rows, codes.values[rows].astype(np.int64)], _EPS, 1.0 - _EPS)
    out[rows] = -np.log(p_true)
    return out


def arm_losses(arm: ArmRows) -> Array:
    """:func:`row_losses` of one arm, with its own classes."""
    return row_losses(arm.task, arm.profile.classes, arm.scores, arm.labels)


def unpaired_losses(champion: ArmRows, challenger: ArmRows) -> tuple[Array, Array]:
    """Each arm's losses on its own labelled rows (a traffic stage: different keys)."""
    first, second = arm_losses(champion), arm_losses(challenger)
    return first[np.isfinite(first)], second[np.isfinite(second)]


def paired_losses(
    champion: ArmRows, challenger: ArmRows, pairs: tuple[Array, Array] | None = None
) -> tuple[Array, Array]:
    """Both arms' losses on the same rows (a shadow stage), aligned: the rows both arms
    scored (``pairs``, from :func:`~loopml.rollout.arms.shared_rows` when not given) whose
    label and scores are usable for both; ``champion[k]`` and ``challenger[k]`` are one row.
    """
    i, j = shared_rows(champion, challenger) if pairs is None else pairs
    first, second = arm_losses(champion)[i], arm_losses(challenger)[j]
    usable = np.isfinite(first) & np.isfinite(second)
    return first[usable], second[usable]
