"""``loopml train`` on the tables a new user brings first, through the CLI.

scikit-learn's bundled tables (regression, multiclass, binary) and generated tables for
the cases they lack: a linear truth the linear model must win and be registered with, 2 %
positives whose registered model must beat the base rate on proper scores, copies, a
leaking column, awkward column names served through ONNX, and a promotion compared only
on rows neither version trained on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from tests.integration.conftest import Cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def bundled(name: str) -> tuple[pd.DataFrame, str]:
    loader, target = {
        "diabetes": (datasets.load_diabetes, "progression"),
        "iris": (datasets.load_iris, "species"),
        "wine": (datasets.load_wine, "cultivar"),
        "breast_cancer": (datasets.load_breast_cancer, "diagnosis"),
    }[name]
    bunch = loader(as_frame=True)
    frame = bunch.frame.rename(columns={"target": target})
    if name != "diabetes":
        frame[target] = [str(bunch.target_names[i]) for i in bunch.target]
    return frame, target


def train(cli: Cli, tmp_path: Path, frame: pd.DataFrame, target: str, *init: str) -> dict:
    frame.to_csv(tmp_path / "table.csv", index=False)
    cli("init", "--data", "table.csv", "--target", target, *init)
    result = cli("train", "--json", check=None)
    assert result.code in (0, 1), result.stderr
    return dict(result.json())


def leaderboard(result: dict) -> dict[str, dict[str, float]]:
    return {row["name"]: row["metrics"] for row in result["leaderboard"]}


@pytest.mark.parametrize("name", ["diabetes", "iris", "wine", "breast_cancer"])
def test_every_bundled_table_gets_a_registered_onnx_model(
    name: str, cli: Cli, tmp_path: Path
) -> None:
    frame, target = bundled(name)
    result = train(cli, tmp_path, frame, target)
    assert result["version"] == "1", result["gate"]["reason"]
    assert result["serving_format"] == "onnx", result["serving_fallback"]
    assert result["gate"]["reason"].startswith(f"{result['chosen']} chosen")
    board = leaderboard(result)
    metric = result["metric"]
    better = (lambda a, b: a < b) if metric == "rmse" else (lambda a, b: a > b)
    assert better(board[result["chosen"]][metric], board["dummy"][metric])
    if name == "breast_cancer":
        assert result["decision"].startswith("label 'malignant' when P(malignant) >= ")


def test_a_linear_truth_is_won_and_registered_by_the_linear_model(cli: Cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1200, 4))
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    frame["y"] = x @ np.array([3.0, -2.0, 1.0, 0.0]) + rng.normal(0, 0.5, 1200)
    result = train(cli, tmp_path, frame, "y")
    assert (result["chosen"], result["version"]) == ("linear", "1")


def test_two_percent_positives_beat_the_base_rate_on_proper_scores(
    cli: Cli, tmp_path: Path
) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8000, 4))
    logit = -4.6 + x @ np.array([1.2, -0.8, 0.5, 0.0])
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    frame["event"] = np.where(rng.random(8000) < 1 / (1 + np.exp(-logit)), "yes", "no")
    assert 0.01 < (frame["event"] == "yes").mean() < 0.03
    result = train(cli, tmp_path, frame, "event")
    assert result["version"] == "1"
    board = leaderboard(result)
    chosen, base = board[result["chosen"]], board["dummy"]
    assert chosen["log_loss"] < base["log_loss"] and chosen["brier"] < base["brier"]
    assert "label 'yes' when P(yes) >= " in result["decision"]


def test_copies_and_a_leaking_column_are_pointed_out(cli: Cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 3))
    churned = x[:, 0] + rng.normal(0, 1, 2000) > 0.5
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["refund_issued"] = np.where(churned, rng.uniform(5, 50, 2000), 0.0)
    frame["churned"] = np.where(churned, "yes", "no")
    frame = pd.concat([frame, frame.sample(700, random_state=0)], ignore_index=True)
    findings = train(cli, tmp_path, frame, "churned")["findings"]
    assert any(f.startswith("700 of 2,700 rows (25.9 %) are exact copies") for f in findings)
    assert any("possible target leakage: 'refund_issued'" in f for f in findings)


def test_awkward_column_names_are_served_through_onnx(cli: Cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    amount = np.round(1e6 + rng.uniform(0, 300, 3000), 2)
    frame = pd.DataFrame({"amt.total": amount, "small x": rng.choice([0.1, 0.2, 0.7], 3000),
                          "région": rng.choice(["nord", "sud"], 3000)})  # fmt: skip
    frame["y"] = np.where((amount - 1e6) / 100 + frame["small x"] > 1.6, "yes", "no")
    env = {"LOOPML_TRAIN__CANDIDATES": "[lightgbm, hist_gradient_boosting]"}
    frame.to_csv(tmp_path / "table.csv", index=False)
    cli("init", "--data", "table.csv", "--target", "y")
    result = cli("train", "--json", env=env | {"LOOPML_GATE__MARGIN": "0"}).json()
    assert result["serving_format"] == "onnx", result["serving_fallback"]


def test_init_positive_is_honoured_and_checked(cli: Cli, tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(40.0), "y": ["yes", "no"] * 20})
    frame.to_csv(tmp_path / "t.csv", index=False)
    cli("init", "--data", "t.csv", "--target", "y", "--positive", "no")
    assert "positive_class: 'no'" in (tmp_path / "loopml.yaml").read_text()
    bad = cli("init", "--data", "t.csv", "--target", "y", "--positive", "maybe", "--force",
              check=1)  # fmt: skip
    assert "positive class 'maybe' is not a class" in bad.stderr


def test_promotion_compares_on_rows_neither_version_trained_on(cli: Cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(6000, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["y"] = np.where(x[:, 0] - x[:, 1] + rng.normal(0, 1, 6000) > 0, "yes", "no")
    frame.iloc[:2500].to_csv(tmp_path / "table.csv", index=False)
    cli("init", "--data", "table.csv", "--target", "y")
    assert cli("train", "--json").json()["version"] == "1"
    frame.to_csv(tmp_path / "table.csv", index=False)  # a superset: v1's rows and more
    cli("contract", "update", "--yes")
    assert cli("train", "--json").json()["version"] == "2"
    promoted = cli("promote", "2", "--reason", "more data", check=None)
    audit = " ".join(e["reason"] for e in json.loads(cli("audit", "--json").stdout))
    said = " ".join((promoted.stdout + promoted.stderr + audit).split())  # Rich wraps lines
    assert "holdout rows neither version trained on" in said, said
    assert "the champion trained on left out" in said
