"""Serving artifacts through the CLI with a real MLflow store: ``loopml train`` registers a
version with a parity-checked ONNX artifact, ``loopml models`` shows it, ``loopml models
build-artifact`` builds one for a version that lacks it, and the artifact fetched from the
store scores like the MLflow model registered beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.integration.conftest import Cli
from tests.integration.test_cli_loop import load_champion

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVING_TAGS = (
    "loopml.serving_artifact",
    "loopml.serving_parity_max_diff",
    "loopml.serving_parity_rows",
    "loopml.serving_sha256",
)


def test_train_and_build_artifact(cli: Cli, tmp_path: Path) -> None:
    cli("data", "feed", "--rows", "4000", "--seed", "3", "--out", "feed.parquet")
    cli("init", "--data", "feed.parquet", "--target", "engaged", "--name", "feed")
    env = {"LOOPML_TRAIN__CANDIDATES": "[lightgbm]", "LOOPML_GATE__MARGIN": "0"}
    assert cli("train", "--json", env=env).json()["version"] == "1"

    tags = cli("models", "--json").json()[0]["tags"]
    assert tags["loopml.serving_artifact"] == "onnx"
    assert float(tags["loopml.serving_parity_max_diff"]) <= 1e-5
    assert int(tags["loopml.serving_parity_rows"]) > 500
    table = cli("models").stdout
    assert "serving" in table and "onnx" in table

    kept = cli("models", "build-artifact", "1", "--json").json()
    assert [(r["version"], r["format"], r["built"]) for r in kept] == [("1", "onnx", False)]

    _forget_serving_artifact(tmp_path)  # as for a version registered before this feature
    assert "none" in cli("models").stdout
    untrusted = cli("models", "build-artifact", "1", check=2)  # building unpickles pipeline.joblib
    assert "--trust-pickle" in untrusted.stderr and "nothing was loaded" in untrusted.stderr
    built = cli("models", "build-artifact", "--trust-pickle", "--json").json()
    assert [(r["version"], r["format"], r["built"]) for r in built] == [("1", "onnx", True)]
    assert built[0]["parity_max_diff"] <= 1e-5 and built[0]["rows_checked"] > 500
    assert cli("models", "build-artifact", "--json").json() == []  # nothing left to build
    rebuilt = cli("models", "build-artifact", "1", "--force", "--trust-pickle").stdout
    assert "onnx" in rebuilt and "built" in rebuilt

    rows = pd.read_parquet(tmp_path / "feed.parquet").head(25)
    _served_matches_mlflow(tmp_path, rows)

    missing = cli("models", "build-artifact", "9", check=2)
    assert "no version 9" in missing.stderr
    both = cli("models", "build-artifact", "1", "--all", check=2)
    assert "not both" in both.stderr


def _registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    from loopml.config import load_project
    from loopml.registry.store import open_registry

    return open_registry(load_project(tmp_path / "loopml.yaml", environ={}))


def _forget_serving_artifact(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    for key in SERVING_TAGS:
        registry.client.delete_model_version_tag("feed", "1", key)


def _served_matches_mlflow(tmp_path: Path, rows: pd.DataFrame) -> None:
    from loopml.registry.runtime import feature_arrays, load_runtime

    registry = _registry(tmp_path)
    sha = registry.version("1").tags["loopml.serving_sha256"]
    folder = registry.fetch_serving_artifact("1", tmp_path / ".loopml" / "serving")
    runtime = load_runtime(folder, manifest_sha256=sha)
    runtime.check_parity()
    out = runtime.predict(feature_arrays(rows, runtime.contract))
    expected = load_champion(tmp_path, "feed", rows)
    assert out.labels == expected["prediction"].tolist()
    assert out.probabilities is not None
    assert np.max(np.abs(out.probabilities[:, 1] - expected["proba_1"].to_numpy())) <= 1e-5
