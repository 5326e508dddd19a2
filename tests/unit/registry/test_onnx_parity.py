"""ONNX for every candidate on every table: values lying on split thresholds, column names
with dots, spaces and non-ASCII letters, weighted and calibrated models — the served graph
gives the native pipeline's probabilities within 1e-5 and the same labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from loopml.config import Task
from loopml.data.contract import Contract
from loopml.data.infer import infer_contract
from loopml.features.pipeline import feature_frame
from loopml.registry.artifact import build_serving_artifact
from loopml.registry.manifest import TOLERANCE
from loopml.registry.onnx_convert import float32_thresholds, graph_names
from loopml.registry.package import ModelMeta, ModelPackage
from loopml.registry.runtime import feature_arrays, load_runtime
from loopml.train.calibrate import Calibrated, fit_calibrator
from loopml.train.candidates import BuildContext, fit_candidate, get_candidate
from loopml.train.split import encode_target

pytestmark = pytest.mark.unit
CANDIDATES = ("linear", "lightgbm", "xgboost", "hist_gradient_boosting")


def awkward_table(task: Task, seed: int = 0, n: int = 3000) -> pd.DataFrame:
    """Amounts with cents around a million (many share one float32, so trained splits fall
    between values the graph cannot tell apart) under names a converter mangles."""
    rng = np.random.default_rng(seed)
    amount = np.round(1e6 + rng.uniform(0, 300, n), 2)
    small = rng.choice([0.1, 0.2, 0.3, 0.7], n)
    count = rng.integers(0, 40, n).astype(float)
    signal = (amount - 1e6) / 100 + small * 2 + count / 20 + rng.normal(0, 0.5, n)
    frame = pd.DataFrame(
        {"amt.total": amount, "small x": small, "année": count,
         "région": rng.choice(["nord", "sud", "est"], n)}
    )  # fmt: skip
    if task == "regression":
        frame["y"] = signal
    elif task == "binary":
        frame["y"] = np.where(signal > 2.5, "yes", "no")
    else:
        frame["y"] = np.select([signal < 2.0, signal < 3.0], ["low", "mid"], "high")
    return frame


def packaged(name: str, task: Task, *, weighted: bool = False) -> tuple[ModelPackage, pd.DataFrame]:
    frame = awkward_table(task)
    contract = infer_contract(frame, target="y", task=task, entity_key=None, time_column=None)
    x, y = feature_frame(frame, contract), encode_target(frame["y"], contract)
    spec = get_candidate(name)
    ctx = BuildContext.for_contract(contract, seed=0, class_weight="balanced" if weighted else None)
    pipeline = fit_candidate(spec, dict(spec.defaults(task)), ctx, contract, x, y)
    if weighted:
        calibrator = fit_calibrator(pipeline.predict_proba(x), y, len(contract.classes))
        model = Calibrated(pipeline.steps[-1][1], calibrator.coef, calibrator.intercept).fit()
        pipeline = Pipeline([*pipeline.steps[:-1], ("model", model)])
    return ModelPackage(pipeline, contract, _meta(contract, name)), frame


def _meta(contract: Contract, name: str) -> ModelMeta:
    return ModelMeta(
        name="t", task=contract.task, target="y", target_type=contract.target_spec.type,
        classes=tuple(contract.classes), candidate=name,
    )  # fmt: skip


def served_matches_native(pkg: ModelPackage, frame: pd.DataFrame, folder: Path) -> None:
    manifest = build_serving_artifact(pkg, frame, folder)
    assert manifest.format == "onnx", manifest.fallback_reason
    assert manifest.parity.max_abs_diff <= TOLERANCE and manifest.parity.labels_equal
    outputs = load_runtime(folder).predict(feature_arrays(frame, pkg.contract))
    x = feature_frame(frame, pkg.contract)
    if pkg.meta.task == "regression":
        native = pkg.pipeline.predict(x)
        assert outputs.values is not None
        assert np.max(np.abs(outputs.values - native) / np.maximum(1, np.abs(native))) <= 1e-5
    else:
        native = pkg.pipeline.predict_proba(x)
        assert outputs.probabilities is not None
        assert np.max(np.abs(outputs.probabilities - native)) <= 1e-5


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("name", CANDIDATES)
def test_every_candidate_converts_exactly(name: str, task: Task, tmp_path: Path) -> None:
    pkg, frame = packaged(name, task)
    served_matches_native(pkg, frame, tmp_path / "serving")


@pytest.mark.parametrize("task", ["binary", "multiclass"])
@pytest.mark.parametrize("name", CANDIDATES)
def test_weighted_and_calibrated_models_convert_exactly(
    name: str, task: Task, tmp_path: Path
) -> None:
    pkg, frame = packaged(name, task, weighted=True)
    served_matches_native(pkg, frame, tmp_path / "serving")


def test_thresholds_round_toward_the_side_that_keeps_every_float32_on_its_branch() -> None:
    below, above = np.float32(1000214.8125), np.float32(1000214.875)
    split = 1000214.84375000001  # LightGBM's double threshold between the two
    (leq,) = float32_thresholds([split], ["BRANCH_LEQ"])
    assert (float(below) <= leq) == (float(below) <= split)
    assert (float(above) <= leq) == (float(above) <= split)
    (lt,) = float32_thresholds([split], [b"BRANCH_LT"])
    assert (float(above) < lt) == (float(above) < split)


def test_graph_names_are_plain_and_distinct() -> None:
    names = graph_names(["age", "crl.tot", "small x", "année", "feature_1"])
    assert names["age"] == "age" and names["feature_1"] == "feature_1"
    assert len(set(names.values())) == 5
    assert all(n.replace("_", "").isalnum() and n.isascii() for n in names.values())
