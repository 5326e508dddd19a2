"""The whole foundation loop, driven through the CLI in a temporary folder:
init -> validate -> train -> models -> promote -> rollback -> audit, on a generated feed
table and on scikit-learn's breast-cancer table as a CSV, with a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.integration.conftest import Cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def load_champion(folder: Path, name: str, frame: pd.DataFrame) -> pd.DataFrame:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{folder / '.loopml' / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    return pd.DataFrame(model.predict(frame))


def promote_and_roll_back(cli: Cli, tmp_path: Path) -> None:
    """Version 2 exists as challenger, version 1 is champion."""
    attempt = cli("promote", "2", "--reason", "retrained", check=None)
    if attempt.code == 0:
        forced = False
    else:
        assert attempt.code == 1, attempt.stderr
        assert "does not beat champion 1" in attempt.stderr
        assert "--force" in attempt.stderr
        cli("promote", "2", "--reason", "operator override", "--force")
        forced = True
    versions = {v["version"]: v for v in cli("models", "--json").json()}
    assert versions["2"]["aliases"] == ["champion"]
    assert versions["1"]["aliases"] == []

    cli("rollback", "--reason", "bad predictions")
    versions = {v["version"]: v for v in cli("models", "--json").json()}
    assert versions["1"]["aliases"] == ["champion"]
    no_more = cli("rollback", "--reason", "again", check=2)
    assert "no previous champion" in no_more.stderr

    audit = cli("audit", "--json").json()
    moves = [(e["alias"], e["action"], e["from_version"], e["to_version"]) for e in audit]
    assert moves[0] == ("champion", "register", None, "1")
    assert moves[1] == ("challenger", "register", None, "2")
    assert ("champion", "promote", "1", "2") in moves
    assert ("challenger", "retire", "2", None) in moves
    assert moves[-1] == ("champion", "rollback", "2", "1")
    promote_entry = next(e for e in audit if e["action"] == "promote")
    assert promote_entry["forced"] is forced
    assert promote_entry["actor"]
    assert "audit" not in cli("audit").stderr


def test_feed_table_through_the_whole_loop(cli: Cli, tmp_path: Path) -> None:
    cli("data", "feed", "--rows", "6000", "--seed", "3", "--out", "feed.parquet")
    init = cli("init", "--data", "feed.parquet", "--target", "engaged", "--name", "feed")
    assert "impression_id" in init.stdout and "ts" in init.stdout  # guesses are shown
    assert (tmp_path / "loopml.yaml").is_file()
    assert (tmp_path / "loopml.contract.yaml").is_file()

    cli("validate", "feed.parquet")
    cli("data", "feed", "--rows", "3000", "--seed", "4", "--scenario", "broken_feature",
        "--onset", "0", "--out", "broken.parquet")  # fmt: skip
    broken = cli("validate", "broken.parquet", "--json", check=1).json()
    kinds = {(v["kind"], v["column"]) for v in broken["violations"]}
    assert any(column == "user_activity" for _, column in kinds), kinds

    first = cli("train", "--json").json()
    assert first["version"] == "1" and first["alias"] == "champion"
    assert {row["kind"] for row in first["leaderboard"]} == {"baseline", "candidate"}
    assert Path(first["report"]).is_file()

    cli("data", "feed", "--rows", "6000", "--seed", "5", "--out", "feed.parquet")
    second = cli("train", "--json").json()
    assert second["version"] == "2" and second["alias"] == "challenger"

    table = cli("models").stdout
    assert "champion" in table and "challenger" in table
    promote_and_roll_back(cli, tmp_path)

    fresh = pd.read_parquet(tmp_path / "feed.parquet").head(20)
    predictions = load_champion(tmp_path, "feed", fresh)
    assert len(predictions) == 20
    assert set(predictions["prediction"]).issubset({0, 1})
    assert ((predictions["proba_1"] >= 0) & (predictions["proba_1"] <= 1)).all()


def test_breast_cancer_csv_through_the_whole_loop(cli: Cli, tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    init = cli("init", "--data", "cancer.csv", "--target", "target")
    assert "binary" in init.stdout
    assert "positive class: 1 (the last of 0, 1)" in init.stdout
    cli("validate", "cancer.csv")
    # On this small, nearly linear table the tuned trees need not beat logistic
    # regression; a zero margin keeps the flow under test, not the model ranking.
    env = {"LOOPML_GATE__MARGIN": "0", "LOOPML_TRAIN__BASELINES": "[dummy]"}
    first = cli("train", "--json", env=env).json()
    assert first["version"] == "1"
    second = cli("train", "--json", env=env | {"LOOPML_TRAIN__SEED": "7"}).json()
    assert second["version"] == "2"
    promote_and_roll_back(cli, tmp_path)
    predictions = load_champion(tmp_path, "cancer", frame.drop(columns="target").head(10))
    assert len(predictions) == 10


def test_promotion_gate_lets_a_better_version_through_and_holds_a_worse_one(
    cli: Cli, tmp_path: Path
) -> None:
    """v1 learns from 1,500 rows, v2 from 12,000: v2 must win on v2's holdout without
    --force; promoting v1 back over v2 must be refused, and the champion must not move."""
    cli("data", "feed", "--rows", "1500", "--seed", "21", "--out", "feed.parquet")
    cli("init", "--data", "feed.parquet", "--target", "engaged", "--name", "feed")
    env = {"LOOPML_GATE__MARGIN": "0", "LOOPML_TRAIN__BOOTSTRAP": "200"}
    assert cli("train", "--json", env=env).json()["version"] == "1"
    cli("data", "feed", "--rows", "12000", "--seed", "22", "--out", "feed.parquet")
    assert cli("train", "--json", env=env).json()["version"] == "2"

    promoted = cli("promote", "2", "--reason", "more data", env=env)
    assert "paired 95% interval" in promoted.stdout or "roc_auc" in promoted.stdout
    refused = cli("promote", "1", "--reason", "go back", env=env, check=1)
    assert "does not beat champion 2" in refused.stderr
    versions = {v["version"]: v["aliases"] for v in cli("models", "--json").json()}
    assert versions == {"1": [], "2": ["champion"]}
    audit = cli("audit", "--json").json()
    promotion = next(e for e in audit if e["action"] == "promote")
    assert promotion["forced"] is False and "paired" in promotion["reason"]
