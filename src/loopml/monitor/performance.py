"""Model quality in a window: realized once labels arrive, estimated before they do.

Realized performance is the training metric registry (:mod:`loopml.train.metrics`) run
over the rows whose labels came back, overall and per slice, so ``holdout - realized``
compares like with like.

Estimated performance is confidence-based performance estimation (CBPE, as NannyML does
it). At training time :func:`~loopml.monitor.calibration.fit_calibration` fits, on the
holdout, an isotonic map from each class's predicted probability to the frequency the
class was observed with (re-exported here). In a window without labels, each row's
calibrated probability ``c`` stands for its unknown label: the row is counted as a
positive with weight ``c`` and as a negative with weight ``1 - c``, and every metric is
computed from those expected counts. The hard label stays the model's own (``p >= 0.5``
for binary, the argmax otherwise), exactly as the registry's metrics define it.

CBPE holds when ``P(y | scores)`` is the same in the window as on the holdout: under
covariate shift (the inputs move, the relation between inputs and target does not) the
estimate follows the real change. It does *not* hold under label shift or concept drift
(the share of classes, or what the inputs mean for the target, changes): the calibrated
probabilities are then wrong and the estimate misses the drop. Realized performance is
the check for those; the estimate is always reported as an estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from loopml.config import Task
from loopml.errors import ConfigError
from loopml.monitor.calibration import (
    CALIBRATION_METHOD,
    apply_calibration,
    check_task,
    class_proba,
    fit_calibration,
)
from loopml.monitor.results import PerformanceReport
from loopml.train.evaluate import slice_metrics
from loopml.train.metrics import FloatArray, compute_metrics, metric_drop

__all__ = [
    "CALIBRATION_METHOD",
    "LabelCodes",
    "absent_classes",
    "apply_calibration",
    "drops",
    "encode_labels",
    "estimate_performance",
    "fit_calibration",
    "performance_report",
    "realized_performance",
]

_EPS = float(np.finfo(np.float64).eps)


# --- estimated performance (CBPE) ---------------------------------------------------


def estimate_performance(
    task: str,
    calibration: Mapping[str, Any] | None,
    scores: np.ndarray[Any, Any],
    threshold: float | None = None,
) -> dict[str, float]:
    """Expected metrics from calibrated confidence, without labels (CBPE).

    Binary: every metric of the registry (``roc_auc``, ``pr_auc``, ``log_loss``,
    ``brier``, ``accuracy``, ``precision``, ``recall``, ``f1``) on the rows counted once
    as positive with weight ``c`` and once as negative with weight ``1 - c``: ROC AUC is
    the trapezoid under the expected TPR/FPR curve (ties in score grouped), the others
    are ratios of expected confusion counts. Multiclass: ``accuracy``, ``f1_macro`` and
    ``log_loss`` from the expected confusion matrix. Regression, no calibration or no
    rows: ``{}``. A metric that cannot be computed (e.g. ROC AUC when every ``c`` is 0)
    is left out; the result never holds NaN.

    Known limitation: the estimate assumes ``P(y | scores)`` did not change since the
    holdout. It tracks covariate shift but not label shift or concept drift (see the
    module doc).

    >>> import numpy as np
    >>> scores = np.array([[0.8, 0.2], [0.6, 0.4], [0.4, 0.6], [0.1, 0.9]])
    >>> cal = fit_calibration("binary", scores, np.array([0, 1, 0, 1]))
    >>> estimate_performance("binary", cal, scores)["accuracy"]
    0.75
    """
    kind = check_task(task)
    if kind == "regression" or calibration is None:
        return {}
    p = class_proba(kind, scores)
    p = p[np.isfinite(p).all(axis=1)]
    if p.shape[0] == 0:
        return {}
    c = apply_calibration(calibration, p)
    if kind == "binary":
        values = _expected_binary(p, c[:, 1], threshold)
    else:
        values = _expected_multiclass(p, c)
    return {name: value for name, value in values.items() if math.isfinite(value)}


def _expected_binary(p: FloatArray, c: FloatArray, threshold: float | None) -> dict[str, float]:
    """The registry's binary metrics on the rows doubled into weighted positive/negative."""
    n = p.shape[0]
    y = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    weight = np.concatenate([c, 1.0 - c])
    return compute_metrics("binary", y, np.vstack([p, p]), 2, weight=weight, threshold=threshold)


def _expected_multiclass(p: FloatArray, c: FloatArray) -> dict[str, float]:
    """Accuracy, macro F1 and log loss from the expected confusion matrix.

    Computed directly rather than on rows repeated ``k`` times, which would cost
    ``n * k * k`` memory.
    """
    n, k = p.shape
    predicted = np.argmax(p, axis=1)
    cells = c.T @ np.eye(k)[predicted]  # cells[true, predicted] = expected rows
    tp = np.diag(cells)
    denom = cells.sum(axis=0) + cells.sum(axis=1)
    per_class = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    log_p = -np.log(np.clip(p, _EPS, 1.0 - _EPS))
    return {
        "accuracy": float(tp.sum() / n),
        "f1_macro": float(per_class.mean()),
        "log_loss": float(np.sum(c * log_p) / n),
    }


# --- realized performance (labels arrived) ------------------------------------------


@dataclass(frozen=True)
class LabelCodes:
    """Feedback labels as model targets.

    ``values`` are class indices (classification, -1 where unusable) or floats
    (regression, NaN where unusable); ``labelled`` marks the usable rows. ``unknown``
    counts labels that were given but are not among the classes (or not numbers, for
    regression), with a few ``examples``.
    """

    values: NDArray[Any]
    labelled: NDArray[np.bool_]
    unknown: int
    examples: tuple[str, ...] = ()


def encode_labels(
    task: str, classes: Sequence[str], labels: Sequence[Any] | NDArray[Any]
) -> LabelCodes:
    """Map feedback labels (strings, ints, bools, as JSON gave them) to model targets.

    A label matches a class by its text; ``1`` and ``1.0`` also match ``"1"``, ``True``
    also matches ``"1"`` or ``"true"``. ``None`` and NaN mean "no label yet".

    >>> codes = encode_labels("binary", ["0", "1"], [1, "0", True, None, "x", 1.0])
    >>> codes.values.tolist(), codes.unknown, codes.examples
    ([1, 0, 1, -1, -1, 1], 1, ('x',))
    """
    kind = check_task(task)
    items = list(labels)
    index = {str(name): i for i, name in enumerate(classes)}
    out = np.full(len(items), -1 if kind != "regression" else np.nan)
    unknown: list[str] = []
    for row, value in enumerate(items):
        if _is_missing(value):
            continue
        code = _number(value) if kind == "regression" else _class_code(value, index)
        if code is None:
            unknown.append(str(value))
        else:
            out[row] = code
    examples = tuple(dict.fromkeys(unknown))[:5]
    if kind == "regression":
        return LabelCodes(out, np.isfinite(out), len(unknown), examples)
    codes = out.astype(np.int64)
    return LabelCodes(codes, codes >= 0, len(unknown), examples)


def _is_missing(value: Any) -> bool:
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _class_code(value: Any, index: Mapping[str, int]) -> int | None:
    for key in _spellings(value):
        if key in index:
            return index[key]
    return None


def _spellings(value: Any) -> list[str]:
    """The class names a feedback label may stand for, most literal first."""
    text = str(value)
    keys = [text, text.strip()]
    if isinstance(value, bool | np.bool_):
        keys += [str(bool(value)), str(int(value)), str(bool(value)).lower()]
    elif isinstance(value, float | np.floating) and float(value).is_integer():
        keys.append(str(int(value)))
    elif isinstance(value, str) and text.strip().lower() in ("true", "false"):
        keys += [text.strip().capitalize(), text.strip().lower()]
    return keys


def realized_performance(
    task: str,
    classes: Sequence[str],
    labels: Sequence[Any] | np.ndarray[Any, Any],
    scores: np.ndarray[Any, Any],
    *,
    frame: pd.DataFrame | None = None,
    slice_columns: Sequence[str] = (),
    min_slice_rows: int = 200,
    max_slices: int = 10,
    threshold: float | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]], int]:
    """Metrics over the rows whose labels arrived: ``(metrics, slices, labelled rows)``.

    ``labels`` and ``scores`` (and ``frame``, for slices) are row-aligned; see
    :func:`encode_labels` for how labels are read. Rows with no label, a label outside
    the classes or a non-finite score are skipped. Slices are ``{"column", "value",
    "rows", "metrics"}`` for the ``max_slices`` most frequent values of each slice column
    with at least ``min_slice_rows`` labelled rows. Metrics that are not computable
    (ROC AUC with one class present, R² of a constant target) are left out.

    >>> import numpy as np
    >>> scores = np.array([[0.8, 0.2], [0.6, 0.4], [0.4, 0.6]])
    >>> metrics, slices, rows = realized_performance(
    ...     "binary", ["no", "yes"], ["no", None, "yes"], scores)
    >>> rows, metrics["accuracy"], metrics["roc_auc"]
    (2, 1.0, 1.0)
    """
    kind = check_task(task)
    codes = encode_labels(kind, classes, labels)
    p = _scores(kind, scores)
    if p.shape[0] != codes.values.shape[0]:
        raise ValueError(f"{p.shape[0]} score rows but {codes.values.shape[0]} labels")
    finite = np.isfinite(p).all(axis=1) if p.ndim == 2 else np.isfinite(p)
    rows = np.flatnonzero(codes.labelled & finite)
    if rows.size == 0:
        return {}, [], 0
    n_classes = len(classes)
    y, pred = codes.values[rows], p[rows]
    metrics = _finite(compute_metrics(kind, y, pred, n_classes, threshold=threshold))
    slices: list[dict[str, Any]] = []
    if frame is not None and slice_columns:
        if len(frame) != p.shape[0]:
            raise ValueError(f"frame has {len(frame)} rows but there are {p.shape[0]} scores")
        results = slice_metrics(
            kind,
            y,
            pred,
            n_classes=n_classes,
            frame=frame.iloc[rows].reset_index(drop=True),
            columns=slice_columns,
            min_rows=min_slice_rows,
            max_per_column=max_slices,
            threshold=threshold,
        )
        slices = [
            {"column": s.column, "value": s.value, "rows": s.rows, "metrics": _finite(s.metrics)}
            for s in results
        ]
    return metrics, slices, int(rows.size)


# --- the window's performance report ------------------------------------------------


def performance_report(
    task: str,
    classes: Sequence[str],
    calibration: Mapping[str, Any] | None,
    reference_metrics: Mapping[str, float],
    scores: np.ndarray[Any, Any],
    labels: Sequence[Any] | np.ndarray[Any, Any],
    frame: pd.DataFrame | None = None,
    slice_columns: Sequence[str] = (),
    min_slice_rows: int = 200,
    min_labelled: int = 1,
    max_slices: int = 10,
    threshold: float | None = None,
) -> PerformanceReport:
    """Realized (labelled rows), estimated (all rows) and holdout metrics of one window.

    Realized metrics need at least ``min_labelled`` labelled rows. ``status`` is
    ``"not_enough_data"`` when neither realized nor estimated metrics could be computed
    (e.g. ``"not enough data: no labels yet"`` for regression); ``reason`` otherwise
    notes what is missing (no labels yet, labels outside the classes) or is ``None``.

    >>> import numpy as np
    >>> report = performance_report("regression", [], None, {"rmse": 1.0},
    ...                             np.array([1.0, 2.0]), [None, None])
    >>> report.status, report.reason
    ('not_enough_data', 'not enough data: no labels yet')
    """
    kind = check_task(task)
    rows = int(np.asarray(scores).shape[0])
    estimated = estimate_performance(kind, calibration, scores, threshold) if rows else {}
    codes = encode_labels(kind, classes, labels)
    labelled = int(codes.labelled.sum())
    realized: dict[str, float] = {}
    slices: list[dict[str, Any]] = []
    if labelled >= max(min_labelled, 1):
        realized, slices, labelled = realized_performance(
            kind, classes, labels, scores, frame=frame, slice_columns=slice_columns,
            min_slice_rows=min_slice_rows, max_slices=max_slices, threshold=threshold,
        )  # fmt: skip
    notes = _notes(kind, rows, labelled, min_labelled, codes, calibration)
    ok = bool(realized or estimated)
    reason = "; ".join(notes) if notes else None
    if not ok:
        reason = f"not enough data: {reason or 'no metric is computable'}"
    return PerformanceReport(
        labelled_rows=labelled,
        realized=dict(realized),
        estimated=dict(estimated),
        reference=dict(_finite(reference_metrics)),
        slices=slices,
        status="ok" if ok else "not_enough_data",
        reason=reason,
    )


def _notes(
    task: Task,
    rows: int,
    labelled: int,
    min_labelled: int,
    codes: LabelCodes,
    calibration: Mapping[str, Any] | None,
) -> list[str]:
    if rows == 0:
        return ["no rows"]
    notes = []
    if labelled == 0:
        notes.append("no labels yet")
    elif labelled < min_labelled:
        notes.append(f"{labelled} labelled rows, realized metrics need {min_labelled}")
    if codes.unknown:
        shown = ", ".join(repr(e) for e in codes.examples)
        notes.append(f"{codes.unknown} label(s) not among the model's classes ignored: {shown}")
    if task != "regression" and calibration is None:
        notes.append("no calibration stored with the model version: no estimate")
    return notes


def drops(reference: Mapping[str, float], values: Mapping[str, float]) -> dict[str, float]:
    """How much worse than the holdout each metric is, on the gate's scale: positive
    means worse (:func:`~loopml.train.metrics.metric_drop`: a fraction of the holdout
    value for error metrics, an absolute amount for bounded scores).

    Only metrics present and finite on both sides, and known to the registry.

    >>> d = drops({"roc_auc": 0.9, "rmse": 200.0}, {"roc_auc": 0.85, "rmse": 230.0})
    >>> {k: round(v, 6) for k, v in d.items()}
    {'roc_auc': 0.05, 'rmse': 0.15}
    """
    out: dict[str, float] = {}
    for name, value in values.items():
        ref = reference.get(name)
        if ref is None or not (math.isfinite(ref) and math.isfinite(value)):
            continue
        try:
            out[name] = metric_drop(name, float(ref), float(value))
        except ConfigError:  # a metric this loopml does not know: no direction to judge
            continue
    return out


def absent_classes(
    task: str, classes: Sequence[str], labels: Sequence[Any] | np.ndarray[Any, Any]
) -> list[str]:
    """The model's classes that none of the window's labels hold (classification only):
    their per-class metrics are undefined and macro averages leave them out.

    >>> absent_classes("multiclass", ["a", "b", "c"], ["a", None, "a"])
    ['b', 'c']
    """
    kind = check_task(task)
    if kind == "regression":
        return []
    codes = encode_labels(kind, classes, labels)
    if not codes.labelled.any():
        return []
    seen = set(codes.values[codes.labelled].tolist())
    return [name for i, name in enumerate(classes) if i not in seen]


# --- helpers ------------------------------------------------------------------------


def _scores(task: Task, scores: np.ndarray[Any, Any]) -> FloatArray:
    if task == "regression":
        return np.asarray(scores, dtype=np.float64).reshape(-1)
    return class_proba(task, scores)


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
