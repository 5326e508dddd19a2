"""What a serving artifact folder holds, and how it proves it is whole.

A serving artifact is a folder::

    manifest.json   this module's ArtifactManifest: format, files and their sha256, ...
    model.onnx      the whole fitted pipeline (or model.skops / model.joblib as a fallback)
    contract.yaml   the data contract the pipeline was trained under
    model.json      the version's ModelMeta
    parity.json     holdout rows (model-ready values) with the native pipeline's outputs

``manifest.json`` lists the sha256 of every other file; its own sha256 is stored as a tag
on the registered version, so the chain of trust runs registry tag -> manifest -> files.
The runtime re-scores ``parity.json`` after loading, which catches a model swapped in
with a matching sha (a forged manifest) as well as a runtime that computes differently.

This module is pure apart from reading and hashing files; it is shared by the builder
(:mod:`loopml.registry.artifact`), the registry adapter and the runtime.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from loopml.errors import RegistryError

Format = Literal["onnx", "skops", "pickle"]
FORMATS: tuple[Format, ...] = ("onnx", "skops", "pickle")
MODEL_FILES: dict[Format, str] = {
    "onnx": "model.onnx",
    "skops": "model.skops",
    "pickle": "model.joblib",
}
MANIFEST_FILE = "manifest.json"
CONTRACT_FILE = "contract.yaml"
META_FILE = "model.json"
PARITY_FILE = "parity.json"
SCHEMA = 1
TOLERANCE = 1e-5
"""Parity bound: absolute on probabilities; on regression values relative to max(1, |y|)."""


@dataclass(frozen=True)
class ParityResult:
    """How closely a loaded artifact reproduces the native pipeline on some rows.

    ``max_abs_diff`` is over probabilities (classification) or values (regression);
    ``max_rel_diff`` is ``|diff| / max(1, |expected|)``, the regression criterion (for
    classification it equals ``max_abs_diff``, probabilities being at most 1).
    ``labels_equal`` is always True for regression.
    """

    rows_checked: int
    max_abs_diff: float
    max_rel_diff: float
    labels_equal: bool
    tolerance: float = TOLERANCE
    passed: bool = True

    def describe(self) -> str:
        labels = "labels equal" if self.labels_equal else "labels differ"
        return (
            f"{self.rows_checked} rows, max abs diff {self.max_abs_diff:.3g}, "
            f"max rel diff {self.max_rel_diff:.3g} (bound {self.tolerance:g}), {labels}"
        )


@dataclass(frozen=True)
class InputSpec:
    """One ONNX graph input: a 2-D block holding ``columns`` side by side."""

    name: str
    dtype: Literal["float32", "string"]
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ArtifactManifest:
    """The description of a serving artifact folder (``manifest.json``)."""

    format: Format
    model_file: str
    files: dict[str, str]
    task: str
    target: str
    target_type: str
    classes: tuple[str, ...]
    features: tuple[tuple[str, str], ...]
    parity: ParityResult
    candidate: str = ""
    inputs: tuple[InputSpec, ...] = ()
    outputs: dict[str, str] = field(default_factory=dict)
    fallback_reason: str = ""
    converters: dict[str, str] = field(default_factory=dict)
    opset: dict[str, int] = field(default_factory=dict)
    created: str = ""
    schema: int = SCHEMA

    @property
    def feature_names(self) -> list[str]:
        return [name for name, _ in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [name for name, kind in self.features if kind == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [name for name, kind in self.features if kind == "categorical"]

    def to_json(self) -> str:
        raw = asdict(self)
        raw["features"] = [{"name": n, "kind": k} for n, k in self.features]
        return json.dumps(raw, indent=2, sort_keys=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ArtifactManifest:
        """Parse ``manifest.json``; anything malformed is a :class:`RegistryError`."""
        try:
            raw = json.loads(text)
            if raw.get("schema") != SCHEMA or raw.get("format") not in FORMATS:
                raise ValueError(f"schema {raw.get('schema')!r}, format {raw.get('format')!r}")
            if raw.get("model_file") != MODEL_FILES[raw["format"]]:
                raise ValueError(f"model_file {raw.get('model_file')!r} for {raw['format']}")
            raw["classes"] = tuple(str(c) for c in raw["classes"])
            raw["features"] = tuple((str(f["name"]), str(f["kind"])) for f in raw["features"])
            raw["parity"] = ParityResult(**raw["parity"])
            raw["inputs"] = tuple(
                InputSpec(i["name"], i["dtype"], tuple(i["columns"])) for i in raw.get("inputs", ())
            )
            return cls(**raw)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegistryError(
                "the serving artifact's manifest.json is not valid",
                detail=f"{type(exc).__name__}: {exc}",
                fix="rebuild the artifact with 'loopml models build-artifact VERSION --force'",
            ) from exc


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class VerifiedFolder:
    """A serving artifact read into memory after its checksums matched."""

    folder: Path
    manifest: ArtifactManifest
    contents: dict[str, bytes] = field(repr=False)

    def text(self, name: str) -> str:
        return self.contents[name].decode("utf-8")


def read_verified(folder: Path, expected_manifest_sha: str | None = None) -> VerifiedFolder:
    """Read a serving artifact folder into memory, checking every sha256 on the way.

    Everything is read once and checked on the bytes that were read, so a file swapped
    between the check and its use cannot slip through. Raises :class:`RegistryError`
    ("corrupt") on a missing file, a mismatch, a symlink or a file name that is a path.
    """
    manifest_bytes = _read_plain(folder, MANIFEST_FILE)
    found = sha256_bytes(manifest_bytes)
    if expected_manifest_sha is not None and found != expected_manifest_sha:
        raise _corrupt(
            folder,
            "manifest.json does not match the sha256 recorded on the version "
            f"(expected sha256 {expected_manifest_sha}, found {found})",
        )
    manifest = ArtifactManifest.from_json(manifest_bytes.decode("utf-8"))
    needed = {manifest.model_file, CONTRACT_FILE, META_FILE, PARITY_FILE}
    unlisted = sorted(needed - set(manifest.files))
    if unlisted:
        raise _corrupt(folder, f"manifest.json lists no sha256 for {', '.join(unlisted)}")
    contents: dict[str, bytes] = {}
    for name, expected in manifest.files.items():
        data = _read_plain(folder, name)
        if (got := sha256_bytes(data)) != expected:
            raise _corrupt(
                folder, f"sha256 mismatch for {name} (expected sha256 {expected}, found {got})"
            )
        contents[name] = data
    return VerifiedFolder(folder=folder, manifest=manifest, contents=contents)


def _read_plain(folder: Path, name: str) -> bytes:
    """Read ``folder/name``, refusing names that are paths and symlinked files."""
    if not name or name != Path(name).name or name in {".", ".."}:
        raise _corrupt(folder, f"manifest.json names a file outside the folder: {name!r}")
    path = folder / name
    if path.is_symlink():
        raise _corrupt(folder, f"{name} is a symbolic link")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _corrupt(folder, f"cannot read {name}: {exc.strerror or exc}") from exc


def _corrupt(folder: Path, detail: str) -> RegistryError:
    return RegistryError(
        f"the serving artifact in {folder} is corrupt; nothing was loaded",
        detail=detail,
        fix="rebuild it with 'loopml models build-artifact VERSION --force' "
        "(and delete the cached copy if it came from the serving cache)",
    )


def native_labels(classes: tuple[str, ...], target_type: str) -> list[Any]:
    """Class names (stored as strings) back in the target's own type.

    The one rule for both faces of a version: the serving runtime and the MLflow pyfunc
    model (:mod:`loopml.registry.pyfunc_model`). It lives here, not there, because
    importing that module builds an MLflow ``PythonModel`` (a second of imports and a
    warning MLflow forces through every filter) on the server's load path.

    >>> native_labels(("0", "1"), "integer"), native_labels(("False", "True"), "boolean")
    ([0, 1], [False, True])
    """
    if target_type == "integer":
        return [int(float(c)) for c in classes]
    if target_type == "float":
        return [float(c) for c in classes]
    if target_type == "boolean":
        return [c.lower() in {"true", "1"} for c in classes]
    return list(classes)


# -- parity ----------------------------------------------------------------------------


def compare_outputs(
    expected: np.ndarray[Any, Any], got: np.ndarray[Any, Any], task: str
) -> ParityResult:
    """Compare native outputs with an artifact's: probabilities (n, k) or values (n,).

    Classification passes when every probability is within :data:`TOLERANCE` and the
    argmax labels are identical; regression when every ``|diff| / max(1, |expected|)`` is
    within it (absolute for small values, relative for large ones, since float32 outputs
    carry ~7 significant digits).
    """
    want = np.asarray(expected, dtype=np.float64)
    have = np.asarray(got, dtype=np.float64)
    rows = int(want.shape[0]) if want.ndim else 0
    if want.shape != have.shape:
        return ParityResult(rows, math.inf, math.inf, False, TOLERANCE, passed=False)
    if rows == 0:
        return ParityResult(0, 0.0, 0.0, True, TOLERANCE, passed=True)
    diff = np.abs(want - have)
    diff = np.where(np.isnan(want) & np.isnan(have), 0.0, diff)
    max_abs = float(np.max(diff)) if np.all(np.isfinite(diff)) else math.inf
    if task == "regression":
        max_rel = float(np.max(diff / np.maximum(1.0, np.abs(want))))
        max_rel = max_rel if math.isfinite(max_rel) else math.inf
        return ParityResult(rows, max_abs, max_rel, True, TOLERANCE, max_rel <= TOLERANCE)
    labels_equal = bool(np.array_equal(want.argmax(axis=1), have.argmax(axis=1)))
    passed = max_abs <= TOLERANCE and labels_equal
    return ParityResult(rows, max_abs, max_abs, labels_equal, TOLERANCE, passed)


def parity_payload(
    features: dict[str, np.ndarray[Any, Any]],
    kinds: dict[str, str],
    expected: np.ndarray[Any, Any],
    task: str,
) -> str:
    """``parity.json``: model-ready rows (numeric NaN written as null) and expected outputs."""
    columns: dict[str, list[Any]] = {}
    for name, values in features.items():
        if kinds[name] == "numeric":
            columns[name] = [None if math.isnan(v) else v for v in values.astype(float).tolist()]
        else:
            columns[name] = [str(v) for v in values.tolist()]
    key = "values" if task == "regression" else "probabilities"
    payload = {
        "rows": len(expected),
        "features": columns,
        "kinds": kinds,
        key: np.asarray(expected, dtype=np.float64).tolist(),
    }
    return json.dumps(payload, allow_nan=False)


def parse_parity(
    text: str, task: str
) -> tuple[dict[str, np.ndarray[Any, Any]], np.ndarray[Any, Any]]:
    """Read ``parity.json`` back into model-ready arrays and the expected outputs."""
    try:
        raw = json.loads(text)
        features: dict[str, np.ndarray[Any, Any]] = {}
        for name, values in raw["features"].items():
            if raw["kinds"][name] == "numeric":
                features[name] = np.array(
                    [math.nan if v is None else v for v in values], dtype=np.float64
                )
            else:
                features[name] = np.array([str(v) for v in values], dtype=object)
        expected = np.asarray(raw["values" if task == "regression" else "probabilities"], float)
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(
            "the serving artifact's parity.json is not valid",
            detail=f"{type(exc).__name__}: {exc}",
            fix="rebuild the artifact with 'loopml models build-artifact VERSION --force'",
        ) from exc
    return features, cast(np.ndarray[Any, Any], expected)
