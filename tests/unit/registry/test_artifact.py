from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loopml.errors import RegistryError
from loopml.features.pipeline import MISSING
from loopml.registry import artifact as artifact_module
from loopml.registry.artifact import build_serving_artifact
from loopml.registry.manifest import (
    MANIFEST_FILE,
    TOLERANCE,
    ArtifactManifest,
    compare_outputs,
    sha256_file,
)
from loopml.registry.onnx_convert import CATEGORICAL_INPUT, NUMERIC_INPUT, pack_inputs
from loopml.registry.runtime import TRUSTED_TYPES, feature_arrays, load_runtime
from tests.unit.registry.models import native_scores, package

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("lightgbm", "binary"),
        ("xgboost", "binary"),
        ("linear", "binary"),
        ("hist_gradient_boosting", "binary"),
        ("lightgbm", "multiclass"),
        ("lightgbm", "regression"),
        ("xgboost", "regression"),
    ],
)
def test_pipeline_converts_to_onnx_with_parity(name: str, task: str, tmp_path: Path) -> None:
    pkg, holdout = package(name, task)  # type: ignore[arg-type]
    manifest = build_serving_artifact(pkg, holdout, tmp_path / "serving")

    assert manifest.format == "onnx", manifest.fallback_reason
    assert manifest.fallback_reason == ""
    assert manifest.parity.passed and manifest.parity.labels_equal
    assert manifest.parity.rows_checked == len(holdout)
    assert 0.0 <= manifest.parity.max_abs_diff <= TOLERANCE
    assert manifest.candidate == name
    assert [(i.name, i.columns) for i in manifest.inputs] == [
        (NUMERIC_INPUT, ("num",)),
        (CATEGORICAL_INPUT, ("cat",)),
    ]
    # Independently of the builder's own check: the served model agrees with the native one.
    runtime = load_runtime(tmp_path / "serving")
    outputs = runtime.predict(feature_arrays(holdout, pkg.contract))
    native = native_scores(pkg, holdout)
    if task == "regression":
        assert outputs.values is not None
        assert np.max(np.abs(outputs.values - native) / np.maximum(1, np.abs(native))) <= 1e-5
    else:
        assert outputs.probabilities is not None
        assert outputs.probabilities.shape == native.shape
        assert np.max(np.abs(outputs.probabilities - native)) <= 1e-5
        assert np.array_equal(outputs.probabilities.argmax(axis=1), native.argmax(axis=1))


def test_folder_holds_exactly_the_listed_files_with_their_checksums(tmp_path: Path) -> None:
    pkg, holdout = package("lightgbm", "binary")
    folder = tmp_path / "serving"
    manifest = build_serving_artifact(pkg, holdout, folder, parity_rows=10)

    names = {p.name for p in folder.iterdir()}
    assert names == {"manifest.json", "model.onnx", "contract.yaml", "model.json", "parity.json"}
    assert set(manifest.files) == names - {"manifest.json"}
    for name, sha in manifest.files.items():
        assert sha256_file(folder / name) == sha
    assert [p.name for p in tmp_path.iterdir()] == ["serving"]  # no temp folder left behind
    on_disk = ArtifactManifest.from_json((folder / MANIFEST_FILE).read_text())
    assert on_disk == manifest
    assert ArtifactManifest.from_json(manifest.to_json()) == manifest
    assert manifest.converters["skl2onnx"] and manifest.converters["onnxruntime"]
    assert 13 <= manifest.opset[""] <= 17 and 1 <= manifest.opset["ai.onnx.ml"] <= 3
    assert manifest.features == (("num", "numeric"), ("cat", "categorical"))
    assert manifest.classes == ("0", "1") and manifest.target_type == "integer"


def test_parity_rows_are_model_ready_values_with_native_outputs(tmp_path: Path) -> None:
    pkg, holdout = package("linear", "binary")
    holdout.loc[0, "num"] = np.nan
    holdout.loc[1, "cat"] = None
    build_serving_artifact(pkg, holdout, tmp_path / "serving", parity_rows=5)

    parity = json.loads((tmp_path / "serving" / "parity.json").read_text())
    assert parity["rows"] == 5
    assert parity["features"]["num"][0] is None
    assert parity["features"]["cat"][1] == MISSING
    assert parity["kinds"] == {"num": "numeric", "cat": "categorical"}
    expected = native_scores(pkg, holdout.head(5))
    assert np.allclose(parity["probabilities"], expected, rtol=0, atol=1e-15)


def test_dummy_model_falls_back_to_skops(tmp_path: Path) -> None:
    pkg, holdout = package("dummy", "binary")
    manifest = build_serving_artifact(pkg, holdout, tmp_path / "serving")

    assert manifest.format == "skops"
    assert manifest.model_file == "model.skops"
    assert "onnx:" in manifest.fallback_reason
    assert "DummyClassifier" in manifest.fallback_reason
    assert manifest.parity.passed and manifest.parity.max_abs_diff == 0.0
    assert not (tmp_path / "serving" / "model.onnx").exists()


def test_onnx_that_fails_parity_is_not_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A graph of another model converts fine but scores differently: fall back."""
    pkg, holdout = package("lightgbm", "binary")
    other, _ = package("lightgbm", "binary", seed=5)
    real = artifact_module.convert_pipeline
    monkeypatch.setattr(
        artifact_module,
        "convert_pipeline",
        lambda pipeline, features, task: real(other.pipeline, features, task),
    )
    manifest = build_serving_artifact(pkg, holdout, tmp_path / "serving")

    assert manifest.format == "skops"
    assert "onnx: parity failed" in manifest.fallback_reason
    assert not (tmp_path / "serving" / "model.onnx").exists()


def test_pickle_is_the_last_resort(tmp_path: Path) -> None:
    pkg, holdout = package("xgboost", "multiclass")
    manifest = build_serving_artifact(pkg, holdout, tmp_path / "serving", formats=("pickle",))
    assert manifest.format == "pickle" and manifest.model_file == "model.joblib"
    assert manifest.parity.passed and manifest.parity.max_abs_diff == 0.0


def test_rebuilding_replaces_the_folder(tmp_path: Path) -> None:
    pkg, holdout = package("dummy", "regression")
    folder = tmp_path / "serving"
    build_serving_artifact(pkg, holdout, folder, formats=("pickle",))
    manifest = build_serving_artifact(pkg, holdout, folder)
    assert manifest.format == "skops"
    assert not (folder / "model.joblib").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["serving"]


def test_empty_holdout_is_refused(tmp_path: Path) -> None:
    pkg, holdout = package("linear", "regression")
    with pytest.raises(RegistryError, match="holdout has no rows"):
        build_serving_artifact(pkg, holdout.iloc[:0], tmp_path / "serving")
    assert not (tmp_path / "serving").exists()


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_trusted_types_cover_every_candidate(task: str) -> None:
    import skops.io as sio

    for name in ("dummy", "linear", "lightgbm", "xgboost", "hist_gradient_boosting"):
        pkg, _ = package(name, task, n=200)  # type: ignore[arg-type]
        untrusted = set(sio.get_untrusted_types(data=sio.dumps(pkg.pipeline)))
        assert untrusted <= set(TRUSTED_TYPES), (name, untrusted - set(TRUSTED_TYPES))


def test_features_named_like_the_packed_inputs_still_convert(tmp_path: Path) -> None:
    from loopml.registry.package import ModelMeta, ModelPackage
    from loopml.train.candidates import BuildContext, fit_candidate, get_candidate
    from loopml.train.split import encode_target
    from tests.unit.registry.models import table

    contract, frame = table("binary")
    names = {"num": NUMERIC_INPUT, "cat": CATEGORICAL_INPUT}
    contract = contract.model_copy(
        update={
            "columns": tuple(
                c.model_copy(update={"name": names.get(c.name, c.name)}) for c in contract.columns
            )
        }
    )
    frame = frame.rename(columns=names)
    ctx = BuildContext.for_contract(contract, seed=0, class_weight=None)
    y = encode_target(frame["y"], contract)
    pipeline = fit_candidate(get_candidate("linear"), {}, ctx, contract, frame, y)
    meta = ModelMeta("toy", "binary", "y", "integer", tuple(contract.classes), "linear")
    manifest = build_serving_artifact(
        ModelPackage(pipeline, contract, meta), frame, tmp_path / "serving"
    )
    assert manifest.format == "onnx", manifest.fallback_reason
    assert [i.name for i in manifest.inputs] == [f"{NUMERIC_INPUT}_1", f"{CATEGORICAL_INPUT}_1"]
    assert [i.columns for i in manifest.inputs] == [(NUMERIC_INPUT,), (CATEGORICAL_INPUT,)]


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_packed_inputs_work_at_every_opset(opset: int) -> None:
    """Split takes its sizes as an attribute before opset 13 and as an input after."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Concat", ["a", "b"], ["ab"], axis=1),
            helper.make_node("Identity", ["c"], ["c_out"]),
        ],
        "g",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info("c", TensorProto.STRING, [None, 1]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 1]),
        ],
        [
            helper.make_tensor_value_info("ab", TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info("c_out", TensorProto.STRING, [None, 1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    packed, specs = pack_inputs(model, ["a", "b"], ["c"])
    session = ort.InferenceSession(packed.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {
        NUMERIC_INPUT: np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32),
        CATEGORICAL_INPUT: np.array([["x"], ["y"]], dtype=object),
    }
    ab, c = session.run(None, feed)
    assert ab.tolist() == [[1.0, 2.0], [3.0, 4.0]] and c.tolist() == [["x"], ["y"]]
    assert [(s.name, s.dtype, s.columns) for s in specs] == [
        (NUMERIC_INPUT, "float32", ("a", "b")),
        (CATEGORICAL_INPUT, "string", ("c",)),
    ]


def test_compare_outputs_criteria() -> None:
    want = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert compare_outputs(want, want + 5e-6, "binary").passed
    assert not compare_outputs(want, want + 2e-5, "binary").passed
    flipped = compare_outputs(want, want[:, ::-1], "binary")
    assert not flipped.passed and not flipped.labels_equal
    assert not compare_outputs(want, want[:1], "binary").passed
    values = np.array([1000.0, 0.5])
    # relative to max(1, |y|): 5e-3 off on 1000 is fine, 5e-5 off on 0.5 is not
    assert compare_outputs(values, values + np.array([5e-3, 0.0]), "regression").passed
    assert not compare_outputs(values, values + np.array([0.0, 5e-5]), "regression").passed
