from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.train import plots
from loopml.train.plots import make_plots, plot_feature_importance

pytestmark = pytest.mark.unit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _importance(n: int = 30) -> pd.Series:
    rng = np.random.default_rng(0)
    return pd.Series(rng.random(n), index=[f"feature_{i}" for i in range(n)], name="gain")


def test_binary_plots(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + 0.7 * rng.random(500), 0, 1)
    out = make_plots(
        "binary", y, np.column_stack([1 - p, p]), ["no", "yes"], _importance(), tmp_path
    )
    assert set(out) == {"roc", "pr", "calibration", "confusion_matrix", "feature_importance"}
    for name, path in out.items():
        assert path.parent == tmp_path and path.suffix == ".png", name
        width, height = _png_size(path)
        assert width > 200 and height > 200, name


def test_multiclass_plots(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    proba = rng.dirichlet(np.ones(4), 400)
    out = make_plots("multiclass", y, proba, ["a", "b", "c", "d"], _importance(5), tmp_path)
    assert set(out) == {"confusion_matrix", "roc", "feature_importance"}
    for path in out.values():
        _png_size(path)


def test_regression_plots_skip_empty_importance(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=300)
    out = make_plots(
        "regression", y, y + rng.normal(0, 0.3, 300), [], pd.Series(dtype=float), tmp_path
    )
    assert set(out) == {"predicted_vs_actual", "residuals"}
    for path in out.values():
        _png_size(path)
    assert not (tmp_path / "feature_importance.png").exists()


def test_large_regression_is_subsampled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = plots.plot_residuals

    def spy(y_true: np.ndarray, pred: np.ndarray, path: Path) -> Path:
        seen.append(len(y_true))
        return real(y_true, pred, path)

    monkeypatch.setattr(plots, "MAX_POINTS", 1000)
    monkeypatch.setattr(plots, "plot_residuals", spy)
    y = np.random.default_rng(3).normal(size=5000)
    make_plots("regression", y, y * 0.9, [], pd.Series(dtype=float), tmp_path)
    assert seen == [1000]


def test_feature_importance_shows_the_top_twenty(tmp_path: Path) -> None:
    short = _png_size(plot_feature_importance(_importance(5), tmp_path / "a.png"))
    long = _png_size(plot_feature_importance(_importance(60), tmp_path / "b.png"))
    capped = _png_size(plot_feature_importance(_importance(20), tmp_path / "c.png"))
    assert long[1] > short[1]  # one bar per feature...
    assert long == capped  # ...but never more than 20


def test_plotting_leaves_no_pyplot_figures_open(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.2, 0.7, 0.4, 0.9, 0.6, 0.1])
    make_plots("binary", y, np.column_stack([1 - p, p]), ["n", "y"], _importance(3), tmp_path)
    assert plt.get_fignums() == before
