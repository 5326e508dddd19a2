from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopml.errors import InputError, RegistryError
from loopml.registry.artifact import build_serving_artifact
from loopml.registry.manifest import MANIFEST_FILE, sha256_bytes, sha256_file
from loopml.registry.runtime import Outputs, feature_arrays, load_runtime
from tests.unit.registry.models import native_scores, package

pytestmark = pytest.mark.unit


def built(
    tmp_path: Path, name: str, task: str, *, seed: int = 0, **kwargs: Any
) -> tuple[Path, Any, Any]:
    """Build an artifact in tmp_path/<name>-<task>-<seed>; return folder, package, holdout."""
    target_type = kwargs.pop("target_type", "integer")
    pkg, holdout = package(name, task, seed=seed, target_type=target_type)  # type: ignore[arg-type]
    folder = tmp_path / f"{name}-{task}-{seed}"
    build_serving_artifact(pkg, holdout, folder, **kwargs)
    return folder, pkg, holdout


def forge(folder: Path, name: str, data: bytes) -> None:
    """Replace a file *and* its sha256 in the manifest, as an attacker or a bug would."""
    (folder / name).write_bytes(data)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["files"][name] = sha256_bytes(data)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("target_type", "expected"),
    [("integer", {0, 1}), ("boolean", {False, True}), ("string", {"low", "mid"})],
)
def test_labels_come_back_as_native_python_values(
    tmp_path: Path, target_type: str, expected: set[Any]
) -> None:
    folder, pkg, holdout = built(tmp_path, "lightgbm", "binary", target_type=target_type)
    runtime = load_runtime(folder)
    out = runtime.predict(feature_arrays(holdout, pkg.contract))

    assert isinstance(out, Outputs) and out.values is None
    assert set(out.labels) == expected
    assert {type(v) for v in out.labels} == {type(next(iter(expected)))}
    assert out.probabilities is not None and out.probabilities.dtype == np.float64
    assert out.probabilities.shape == (len(holdout), 2)
    classes = list(pkg.meta.classes)
    native = native_scores(pkg, holdout).argmax(axis=1)
    assert [str(v) for v in out.labels] == [classes[i] for i in native]


def test_regression_outputs_values(tmp_path: Path) -> None:
    folder, pkg, holdout = built(tmp_path, "xgboost", "regression")
    out = load_runtime(folder).predict(feature_arrays(holdout.head(7), pkg.contract))
    assert out.probabilities is None and out.values is not None
    assert out.values.dtype == np.float64 and out.values.shape == (7,)
    assert out.labels == out.values.tolist()
    assert all(type(v) is float for v in out.labels)
    assert np.allclose(out.values, native_scores(pkg, holdout.head(7)), rtol=1e-5, atol=1e-5)


def test_one_row_and_multiclass(tmp_path: Path) -> None:
    folder, pkg, holdout = built(tmp_path, "lightgbm", "multiclass")
    runtime = load_runtime(folder, threads=2)
    one = feature_arrays(holdout.head(1), pkg.contract)
    out = runtime.predict(one)
    assert out.probabilities is not None and out.probabilities.shape == (1, 3)
    assert abs(out.probabilities.sum() - 1) < 1e-6
    assert out.labels[0] in {0, 1, 2}
    assert runtime.predict(feature_arrays(holdout, pkg.contract)).probabilities.shape == (
        len(holdout),
        3,
    )


def test_runtime_exposes_manifest_contract_meta_and_version(tmp_path: Path) -> None:
    folder, pkg, _ = built(tmp_path, "linear", "binary", parity_rows=12)
    runtime = load_runtime(folder)
    assert runtime.version == folder.name
    assert load_runtime(folder, version="7").version == "7"
    assert runtime.format == runtime.manifest.format == "onnx"
    assert runtime.contract == pkg.contract
    assert runtime.meta == pkg.meta
    result = runtime.check_parity()
    assert result.passed and result.rows_checked == 12 and result.max_abs_diff <= 1e-5
    runtime.warm()


def test_skops_runtime_has_the_same_interface(tmp_path: Path) -> None:
    folder, pkg, holdout = built(tmp_path, "dummy", "multiclass", target_type="string")
    runtime = load_runtime(folder)
    assert runtime.format == "skops"
    out = runtime.predict(feature_arrays(holdout.head(4), pkg.contract))
    assert out.probabilities is not None and out.probabilities.shape == (4, 3)
    assert np.array_equal(out.probabilities, native_scores(pkg, holdout.head(4)))
    assert {type(v) for v in out.labels} == {str}
    assert runtime.check_parity().max_abs_diff == 0.0


@pytest.mark.parametrize(("name", "fmt"), [("lightgbm", "onnx"), ("dummy", "skops")])
def test_bad_feature_arrays_are_input_errors(tmp_path: Path, name: str, fmt: str) -> None:
    folder, pkg, holdout = built(tmp_path, name, "binary")
    runtime = load_runtime(folder)
    assert runtime.format == fmt
    features = feature_arrays(holdout.head(3), pkg.contract)

    with pytest.raises(InputError) as missing:
        runtime.predict({"num": features["num"]})
    assert missing.value.error == "missing_field" and missing.value.field == "cat"
    with pytest.raises(InputError) as ragged:
        runtime.predict({"num": features["num"][:2], "cat": features["cat"]})
    assert ragged.value.error == "wrong_type"
    with pytest.raises(InputError):
        runtime.predict({"num": np.array(["a", "b", "c"], dtype=object), "cat": features["cat"]})
    empty = runtime.predict({"num": np.array([], dtype=np.float64), "cat": np.array([], object)})
    assert empty.labels == [] and empty.probabilities is not None
    assert empty.probabilities.shape == (0, 2)


def test_a_corrupted_model_file_is_refused(tmp_path: Path) -> None:
    folder, _, _ = built(tmp_path, "lightgbm", "binary")
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="corrupt") as info:
        load_runtime(folder)
    assert "sha256 mismatch for model.onnx" in info.value.detail
    assert "build-artifact" in info.value.fix


def test_missing_files_and_paths_in_the_manifest_are_refused(tmp_path: Path) -> None:
    folder, _, _ = built(tmp_path, "linear", "regression")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["files"]["../model.onnx"] = manifest["files"].pop("model.onnx")
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match="corrupt"):
        load_runtime(folder)
    shutil.rmtree(folder)
    with pytest.raises(RegistryError, match="corrupt"):
        load_runtime(folder)


def test_manifest_must_match_the_sha_recorded_on_the_version(tmp_path: Path) -> None:
    folder, _, _ = built(tmp_path, "linear", "binary")
    good = sha256_file(folder / MANIFEST_FILE)
    assert load_runtime(folder, manifest_sha256=good).format == "onnx"
    with pytest.raises(RegistryError, match="corrupt") as info:
        load_runtime(folder, manifest_sha256="0" * 64)
    assert "recorded on the version" in info.value.detail


def test_pickle_is_refused_unless_trusted(tmp_path: Path) -> None:
    folder, pkg, holdout = built(tmp_path, "linear", "binary", formats=("pickle",))
    with pytest.raises(RegistryError, match="pickle") as info:
        load_runtime(folder)
    assert "serve.trust_pickle" in info.value.fix and "--trust-pickle" in info.value.fix

    runtime = load_runtime(folder, trust_pickle=True)
    out = runtime.predict(feature_arrays(holdout, pkg.contract))
    assert np.array_equal(out.probabilities, native_scores(pkg, holdout))


def test_a_swapped_model_with_a_forged_sha_fails_the_parity_self_check(tmp_path: Path) -> None:
    folder, _, _ = built(tmp_path, "lightgbm", "binary", seed=0)
    other, _, _ = built(tmp_path, "lightgbm", "binary", seed=5)
    forge(folder, "model.onnx", (other / "model.onnx").read_bytes())

    runtime = load_runtime(folder)  # checksums match: only the self-check can notice
    with pytest.raises(RegistryError, match="does not reproduce") as info:
        runtime.check_parity()
    assert "parity rows" in info.value.detail


class Gadget:
    """Not on the trusted list: a skops file holding it must not be loaded."""

    def __init__(self) -> None:
        self.payload = "anything"


def test_skops_file_with_untrusted_types_is_refused(tmp_path: Path) -> None:
    import skops.io as sio

    folder, pkg, _ = built(tmp_path, "dummy", "binary")
    pkg.pipeline.gadget_ = Gadget()
    forge(folder, "model.skops", sio.dumps(pkg.pipeline))
    with pytest.raises(RegistryError, match="does not trust") as info:
        load_runtime(folder)
    assert "Gadget" in info.value.detail


def test_inconsistent_artifact_is_refused(tmp_path: Path) -> None:
    folder, _, _ = built(tmp_path, "linear", "binary")
    meta = json.loads((folder / "model.json").read_text())
    meta["classes"] = ["0", "1", "2"]
    forge(folder, "model.json", json.dumps(meta).encode())
    with pytest.raises(RegistryError, match="inconsistent"):
        load_runtime(folder)
