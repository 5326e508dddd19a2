"""Multiclass and regression through the same loop as binary: train -> register ->
promote -> load with plain MLflow, on scikit-learn's bundled wine and diabetes tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.integration.conftest import Cli
from tests.integration.test_cli_loop import load_champion

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_multiclass_wine(cli: Cli, tmp_path: Path) -> None:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    frame.to_csv(tmp_path / "wine.csv", index=False)
    init = cli("init", "--data", "wine.csv", "--target", "target")
    assert "multiclass" in init.stdout
    env = {"LOOPML_GATE__MARGIN": "0", "LOOPML_GATE__MIN_SLICE_ROWS": "10"}
    result = cli("train", "--json", env=env, check=None)
    assert result.code in (0, 1), result.stderr
    trained = result.json()
    assert trained["metric"] == "f1_macro"
    names = {row["name"] for row in trained["leaderboard"]}
    assert {"dummy", "linear", "lightgbm", "xgboost", "hist_gradient_boosting"} <= names
    if trained["version"] is None:
        assert "does not beat baseline" in trained["gate"]["reason"]
        return
    predictions = load_champion(tmp_path, "wine", frame.drop(columns="target").head(6))
    assert set(predictions["prediction"]) <= {"barolo", "grignolino", "barbera"}
    proba = predictions[["proba_barbera", "proba_barolo", "proba_grignolino"]]
    assert ((proba.sum(axis=1) - 1).abs() < 1e-6).all()


def test_regression_diabetes(cli: Cli, tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame.to_csv(tmp_path / "diabetes.csv", index=False)
    cli("init", "--data", "diabetes.csv", "--target", "target", "--task", "regression")
    first = cli("train", "--json", env={"LOOPML_GATE__MARGIN": "0"}, check=None).json()
    assert first["metric"] == "rmse"
    assert {row["kind"] for row in first["leaderboard"]} == {"baseline", "candidate"}
    mean = next(r for r in first["leaderboard"] if r["name"] == "dummy")["metrics"]["rmse"]
    best = min(r["metrics"]["rmse"] for r in first["leaderboard"])
    assert best < mean  # something learned more than the mean
    if first["version"] is not None:
        predictions = load_champion(tmp_path, "diabetes", frame.drop(columns="target").head(5))
        assert predictions["prediction"].dtype.kind == "f"
        assert predictions.index.tolist() == [0, 1, 2, 3, 4]
        assert not pd.isna(predictions["prediction"]).any()
