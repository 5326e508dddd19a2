"""Calibration for estimated performance: fit the holdout's isotonic maps, apply them.

:func:`fit_calibration` runs at training time on the holdout and returns a JSON-safe
calibration (one increasing isotonic map per class, from predicted probability to
observed frequency); :func:`apply_calibration` turns a window's scores into calibrated
class probabilities for CBPE (see :mod:`loopml.monitor.performance`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.isotonic import IsotonicRegression

from loopml.config import Task
from loopml.errors import RegistryError
from loopml.train.metrics import FloatArray

__all__ = [
    "CALIBRATION_METHOD",
    "CALIBRATION_VERSION",
    "apply_calibration",
    "check_task",
    "class_proba",
    "fit_calibration",
]

CALIBRATION_METHOD = "isotonic"
CALIBRATION_VERSION = 1
_TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")


def fit_calibration(
    task: str, scores: np.ndarray[Any, Any], y: np.ndarray[Any, Any], *, max_points: int = 512
) -> dict[str, Any] | None:
    """Fit the isotonic calibration CBPE needs, on holdout probabilities and labels.

    ``scores`` are class probabilities ``(n, k)`` (binary: column 1 is the positive
    class; a vector of positive-class probabilities is accepted too), ``y`` class indices
    ``0..k-1``. One increasing isotonic map per class (binary: the positive class only)
    from predicted probability to observed frequency. The result is JSON-safe and holds at
    most ``max_points`` breakpoints per class whatever the holdout size; ``None`` for
    regression or an empty holdout.

    >>> import numpy as np
    >>> scores = np.array([[0.8, 0.2], [0.6, 0.4], [0.4, 0.6], [0.1, 0.9]])
    >>> cal = fit_calibration("binary", scores, np.array([0, 1, 0, 1]))
    >>> apply_calibration(cal, scores)[:, 1].tolist()
    [0.0, 0.5, 0.5, 1.0]
    """
    kind = check_task(task)
    if kind == "regression":
        return None
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    p = class_proba(kind, scores)
    labels = np.asarray(y).astype(np.int64)
    if labels.shape != (p.shape[0],):
        raise ValueError(f"{p.shape[0]} score rows but labels of shape {labels.shape}")
    finite = np.isfinite(p).all(axis=1)
    p, labels = p[finite], labels[finite]
    if p.shape[0] == 0:
        return None
    fitted = [1] if kind == "binary" else list(range(p.shape[1]))
    curves = [_fit_curve(i, p[:, i], labels == i, max_points) for i in fitted]
    return {
        "method": CALIBRATION_METHOD,
        "version": CALIBRATION_VERSION,
        "task": kind,
        "n_classes": int(p.shape[1]),
        "rows": int(p.shape[0]),
        "curves": curves,
    }


def _fit_curve(
    index: int, score: FloatArray, hit: NDArray[np.bool_], max_points: int
) -> dict[str, Any]:
    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(score, hit.astype(np.float64))
    x = np.asarray(model.X_thresholds_, dtype=np.float64)
    fy = np.asarray(model.y_thresholds_, dtype=np.float64)
    keep = _breakpoints_to_keep(x, fy, max_points)
    return {"class": index, "x": x[keep].tolist(), "y": fy[keep].tolist()}


def _breakpoints_to_keep(x: FloatArray, y: FloatArray, max_points: int) -> NDArray[np.intp]:
    """At most ``max_points`` of the isotonic breakpoints, the curve's shape kept.

    The isotonic map is linear between its breakpoints (scikit-learn already drops the
    inner points of flat runs), so the largest error of a coarser curve through a subset
    is at a dropped breakpoint. Starting from both ends, the breakpoint the current subset
    misses most is added until ``max_points`` are kept (Douglas-Peucker by insertion).
    A holdout of a few hundred thousand rows rarely yields more than 512 breakpoints;
    on 2M rows the 512 kept ones stay within 0.002 of the full curve.
    """
    n = x.shape[0]
    if n <= max_points:
        return np.arange(n)
    keep = np.array([0, n - 1])
    while keep.size < max_points:
        error = np.abs(np.interp(x, x[keep], y[keep]) - y)
        worst = int(np.argmax(error))
        if error[worst] <= 1e-12:
            break
        keep = np.insert(keep, np.searchsorted(keep, worst), worst)
    return keep


def apply_calibration(calibration: Mapping[str, Any], scores: np.ndarray[Any, Any]) -> FloatArray:
    """Calibrated class probabilities ``(n, k)`` for the model's ``scores``.

    Binary returns ``[1 - c, c]``. Multiclass rows are renormalised to sum to 1; a row
    whose every class calibrates to 0 keeps the model's own probabilities.

    >>> import numpy as np
    >>> identity = {"method": "isotonic", "version": 1, "task": "binary", "n_classes": 2,
    ...             "curves": [{"class": 1, "x": [0.0, 1.0], "y": [0.0, 1.0]}]}
    >>> apply_calibration(identity, np.array([0.25, 0.9])).tolist()
    [[0.75, 0.25], [0.09999999999999998, 0.9]]
    """
    kind, n_classes, curves = _read_calibration(calibration)
    p = class_proba(kind, scores)
    if p.shape[1] != n_classes:
        raise ValueError(f"the calibration is for {n_classes} classes, scores have {p.shape[1]}")
    if kind == "binary":
        x, fy = curves[1]
        c = np.interp(p[:, 1], x, fy)
        return np.column_stack([1.0 - c, c])
    out = np.column_stack([np.interp(p[:, i], *curves[i]) for i in range(n_classes)])
    total = out.sum(axis=1, keepdims=True)
    dead = total[:, 0] <= 0
    # A row every class calibrates to 0 for: keep the model's own probabilities.
    out[dead], total[dead] = p[dead], p[dead].sum(axis=1, keepdims=True)
    return np.asarray(out / total, dtype=np.float64)


def _read_calibration(
    calibration: Mapping[str, Any],
) -> tuple[Task, int, dict[int, tuple[FloatArray, FloatArray]]]:
    """Validate a stored calibration; a corrupt one is a :class:`RegistryError`."""
    try:
        if calibration.get("method") != CALIBRATION_METHOD:
            raise ValueError(f"unknown method {calibration.get('method')!r}")
        if int(calibration.get("version", 0)) > CALIBRATION_VERSION:
            raise ValueError(f"format version {calibration['version']} is newer than this loopml")
        kind = check_task(str(calibration["task"]))
        n_classes = int(calibration["n_classes"])
        curves: dict[int, tuple[FloatArray, FloatArray]] = {}
        for curve in calibration["curves"]:
            x = np.asarray(curve["x"], dtype=np.float64)
            fy = np.asarray(curve["y"], dtype=np.float64)
            if x.ndim != 1 or x.shape != fy.shape or x.size == 0:
                raise ValueError("a curve's x and y must be equally long, non-empty lists")
            curves[int(curve["class"])] = (x, fy)
        needed = {1} if kind == "binary" else set(range(n_classes))
        if kind == "regression" or not needed <= set(curves):
            raise ValueError(f"curves for classes {sorted(needed)} expected, got {sorted(curves)}")
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RegistryError(
            "the calibration stored with the model version is malformed",
            detail=f"{type(exc).__name__}: {exc}",
            fix="rebuild the reference profile with 'loopml monitor profile VERSION'",
        ) from exc
    return kind, n_classes, curves


# --- shared with performance.py ----------------------------------------------------


def check_task(task: str) -> Task:
    """``task`` as a :data:`~loopml.data.contract.Task`; an unknown one is a ValueError."""
    if task not in _TASKS:
        raise ValueError(f"unknown task {task!r}")
    return task


def class_proba(task: Task, scores: np.ndarray[Any, Any]) -> FloatArray:
    """Class probabilities ``(n, k)``; a binary vector is widened to ``[1 - p, p]``."""
    p = np.asarray(scores, dtype=np.float64)
    if task == "binary" and p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    if p.ndim != 2 or (task == "binary" and p.shape[1] != 2):
        raise ValueError(f"{task} scores must have shape (n, k), got {p.shape}")
    return p
