"""Evaluation plots written as PNG files, one function per plot.

Figures are built with :class:`matplotlib.figure.Figure` directly and saved through the
Agg canvas, never through ``pyplot``: no global backend switch in the user's process, no
figure registry to leak into, and safe to call from any thread. Plots that draw one mark
per row are subsampled to at most :data:`MAX_POINTS` rows (seeded, so deterministic).

>>> import numpy as np, pandas as pd, tempfile
>>> from pathlib import Path
>>> y = np.array([0, 1, 0, 1])
>>> p = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
>>> out_dir = Path(tempfile.mkdtemp())
>>> out = make_plots("binary", y, p, ["no", "yes"], pd.Series(dtype=float), out_dir)
>>> sorted(out)
['calibration', 'confusion_matrix', 'pr', 'roc']
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import NDArray
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

from loopml.config import Task
from loopml.train.metrics import FloatArray, check_predictions, predicted_labels

MAX_POINTS = 100_000
TOP_FEATURES = 20
MAX_ROC_CLASSES = 10
_DPI = 110


def make_plots(
    task: Task,
    y_true: NDArray[np.generic],
    pred: NDArray[np.generic],
    classes: Sequence[str],
    importance: pd.Series,
    out_dir: Path,
    *,
    seed: int = 0,
) -> dict[str, Path]:
    """Write every plot that fits ``task`` into ``out_dir``; return ``{name: path}``.

    binary: roc, pr, calibration, confusion_matrix; multiclass: confusion_matrix, roc
    (one-vs-rest, up to 10 classes); regression: predicted_vs_actual, residuals; all
    tasks: feature_importance, unless ``importance`` is empty.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    y, p = check_predictions(task, y_true, pred, len(classes))
    plots: dict[str, Path] = {}
    if task == "binary":
        plots["roc"] = plot_roc(y, p[:, 1], out_dir / "roc.png")
        plots["pr"] = plot_pr(y, p[:, 1], out_dir / "pr.png")
        plots["calibration"] = plot_calibration(y, p[:, 1], out_dir / "calibration.png")
    if task in ("binary", "multiclass"):
        labels = predicted_labels(p)
        plots["confusion_matrix"] = plot_confusion_matrix(
            y, labels, classes, out_dir / "confusion_matrix.png"
        )
    if task == "multiclass":
        plots["roc"] = plot_roc_one_vs_rest(y, p, classes, out_dir / "roc.png")
    if task == "regression":
        y_s, p_s = _subsample(np.random.default_rng(seed), np.asarray(y, dtype=np.float64), p)
        plots["predicted_vs_actual"] = plot_predicted_vs_actual(
            y_s, p_s, out_dir / "predicted_vs_actual.png"
        )
        plots["residuals"] = plot_residuals(y_s, p_s, out_dir / "residuals.png")
    if not importance.empty:
        plots["feature_importance"] = plot_feature_importance(
            importance, out_dir / "feature_importance.png"
        )
    return plots


def _subsample(rng: np.random.Generator, *arrays: FloatArray) -> tuple[FloatArray, ...]:
    n = arrays[0].shape[0]
    if n <= MAX_POINTS:
        return arrays
    keep = np.sort(rng.choice(n, size=MAX_POINTS, replace=False))
    return tuple(a[keep] for a in arrays)


def _figure(width: float = 6.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    fig.clear()
    return path


def _diagonal(ax: Axes, label: str) -> None:
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label=label)


def plot_roc(y_true: NDArray[np.generic], score: FloatArray, path: Path) -> Path:
    """ROC curve of the positive class, with its AUC in the legend."""
    fpr, tpr, _ = roc_curve(y_true, score)
    auc = float(np.trapezoid(tpr, fpr))
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, linewidth=2, label=f"model (AUC = {auc:.4f})")
    _diagonal(ax, "random guess")
    ax.set(
        title="ROC curve on the holdout",
        xlabel="False positive rate (share of negatives flagged)",
        ylabel="True positive rate (share of positives caught)",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_pr(y_true: NDArray[np.generic], score: FloatArray, path: Path) -> Path:
    """Precision-recall curve, with the positive rate as the no-skill line."""
    precision, recall, _ = precision_recall_curve(y_true, score, drop_intermediate=True)
    base_rate = float(np.mean(y_true == 1))
    fig = _figure()
    ax = fig.add_subplot()
    ax.step(recall, precision, where="post", linewidth=2, label="model")
    ax.axhline(
        base_rate, linestyle="--", color="grey", linewidth=1, label=f"no skill ({base_rate:.3f})"
    )
    ax.set(
        title="Precision–recall curve on the holdout",
        xlabel="Recall (share of positives caught)",
        ylabel="Precision (share of flagged that are positive)",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="upper right")
    return _save(fig, path)


def plot_calibration(
    y_true: NDArray[np.generic], score: FloatArray, path: Path, bins: int = 10
) -> Path:
    """Reliability diagram: observed positive rate per bin of predicted probability."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(score, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    filled = counts > 0
    mean_pred = np.bincount(which, weights=score, minlength=bins)[filled] / counts[filled]
    observed = np.bincount(which, weights=(y_true == 1), minlength=bins)[filled] / counts[filled]
    fig = _figure(6.0, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot(mean_pred, observed, marker="o", linewidth=2, label="model")
    _diagonal(top, "perfectly calibrated")
    top.set(
        title=f"Calibration (reliability diagram, {bins} bins)",
        ylabel="Observed share of positives",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    top.legend(loc="upper left")
    bottom.bar(edges[:-1], counts, width=1.0 / bins, align="edge", edgecolor="white")
    bottom.set(xlabel="Predicted probability of the positive class", ylabel="Rows")
    return _save(fig, path)


def plot_confusion_matrix(
    y_true: NDArray[np.generic], labels: NDArray[np.generic], classes: Sequence[str], path: Path
) -> Path:
    """Confusion matrix: counts, shaded by share of each true class (row)."""
    k = len(classes)
    cells = confusion_matrix(y_true, labels, labels=list(range(k)))
    totals = cells.sum(axis=1, keepdims=True)
    shares = np.divide(cells, totals, out=np.zeros(cells.shape), where=totals > 0)
    size = min(4.0 + 0.5 * k, 14.0)
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="Share of the true class")
    names = [_short(c) for c in classes]
    ax.set_xticks(range(k), names, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
    ax.set_yticks(range(k), names)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                color = "white" if shares[i, j] > 0.5 else "black"
                ax.text(j, i, f"{cells[i, j]:,}", ha="center", va="center", color=color, fontsize=8)
    ax.set(title="Confusion matrix on the holdout", xlabel="Predicted class", ylabel="True class")
    return _save(fig, path)


def plot_roc_one_vs_rest(
    y_true: NDArray[np.generic], proba: FloatArray, classes: Sequence[str], path: Path
) -> Path:
    """One ROC curve per class against all others (the 10 most frequent classes)."""
    counts = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=len(classes))
    shown = [c for c in np.argsort(-counts, kind="stable")[:MAX_ROC_CLASSES] if counts[c] > 0]
    fig = _figure(7.0, 5.5)
    ax = fig.add_subplot()
    for c in shown:
        positive = np.asarray(y_true) == c
        if positive.all():
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, c])
        ax.plot(
            fpr,
            tpr,
            linewidth=1.5,
            label=f"{_short(classes[c])} (AUC {np.trapezoid(tpr, fpr):.3f})",
        )
    _diagonal(ax, "random guess")
    ax.set(
        title="ROC curves, each class against the rest",
        xlabel="False positive rate",
        ylabel="True positive rate",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_predicted_vs_actual(y_true: FloatArray, pred: FloatArray, path: Path) -> Path:
    """Scatter of predicted against actual values, with the identity line."""
    fig = _figure(6.0, 6.0)
    ax = fig.add_subplot()
    ax.scatter(y_true, pred, s=4, alpha=0.3, linewidths=0)
    low = float(min(np.min(y_true), np.min(pred)))
    high = float(max(np.max(y_true), np.max(pred)))
    ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1, label="perfect")
    ax.set(
        title="Predicted vs actual on the holdout", xlabel="Actual value", ylabel="Predicted value"
    )
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_residuals(y_true: FloatArray, pred: FloatArray, path: Path) -> Path:
    """Residuals (actual - predicted) against the prediction, and their histogram."""
    residuals = y_true - pred
    fig = _figure(10.0, 4.5)
    left, right = fig.subplots(1, 2, width_ratios=[2, 1])
    left.scatter(pred, residuals, s=4, alpha=0.3, linewidths=0)
    left.axhline(0.0, linestyle="--", color="grey", linewidth=1)
    left.set(title="Residuals vs prediction", xlabel="Predicted value", ylabel="Actual − predicted")
    right.hist(residuals, bins=50)
    right.set(title="Distribution of residuals", xlabel="Actual − predicted", ylabel="Rows")
    return _save(fig, path)


def plot_feature_importance(importance: pd.Series, path: Path, top: int = TOP_FEATURES) -> Path:
    """Horizontal bars of the ``top`` most important features, largest on top."""
    ranked = top_features(importance, top)
    fig = _figure(7.0, 1.5 + 0.3 * len(ranked))
    ax = fig.add_subplot()
    ax.barh([_short(str(name)) for name in ranked.index[::-1]], ranked.to_numpy()[::-1])
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set(
        title=f"Feature importance (top {len(ranked)})",
        xlabel=str(importance.name) if importance.name else "Importance",
    )
    return _save(fig, path)


def top_features(importance: pd.Series, top: int = TOP_FEATURES) -> pd.Series:
    """The ``top`` features by absolute importance, largest first (ties keep their order)."""
    values = importance.astype(float)
    return values.iloc[np.argsort(-values.abs().to_numpy(), kind="stable")].head(top)


def _short(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
