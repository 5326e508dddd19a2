"""The MLflow pyfunc face of a version agrees with the serving runtime on every label."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.registry.artifact import build_serving_artifact
from loopml.registry.pyfunc_model import predict_frame
from loopml.registry.runtime import feature_arrays, load_runtime
from tests.unit.registry.models import package

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("task", "target_type"),
    [("multiclass", "integer"), ("binary", "boolean"), ("multiclass", "string")],
)
def test_label_decoding_matches_the_mlflow_model(
    tmp_path: Path, task: str, target_type: str
) -> None:
    pkg, holdout = package("linear", task, target_type=target_type)  # type: ignore[arg-type]
    build_serving_artifact(pkg, holdout, tmp_path / "serving")
    runtime = load_runtime(tmp_path / "serving")

    mine = runtime.predict(feature_arrays(holdout, pkg.contract)).labels
    theirs = predict_frame(pkg, holdout)["prediction"].tolist()
    assert mine == theirs and [type(v) for v in mine] == [type(v) for v in theirs]
    assert len(set(mine)) > 1  # more than one class predicted: the decoding was exercised
