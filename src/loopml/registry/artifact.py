"""Build the serving artifact of a model package: one ONNX graph, parity-checked.

:func:`build_serving_artifact` tries the formats in order — ONNX, then skops (a data-only
format loaded with an explicit list of trusted types), then a joblib pickle as the last
resort — and keeps the first whose *loaded* model reproduces the native pipeline on the
holdout: probabilities within 1e-5 and identical labels, or regression values within
1e-5 of ``max(1, |y|)``. The check loads the written folder with the server's own loader
(:func:`loopml.registry.runtime.load_runtime`), so what was checked is what will be served.
What went wrong with the formats that were skipped is kept in ``fallback_reason``.

The folder is built beside its destination and renamed into place: a reader never sees a
half-written artifact. See :mod:`loopml.registry.manifest` for its layout.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import skops.io as sio

from loopml.errors import LoopmlError, RegistryError
from loopml.registry.manifest import (
    CONTRACT_FILE,
    FORMATS,
    MANIFEST_FILE,
    META_FILE,
    MODEL_FILES,
    PARITY_FILE,
    ArtifactManifest,
    Format,
    InputSpec,
    ParityResult,
    compare_outputs,
    parity_payload,
    sha256_file,
)
from loopml.registry.onnx_convert import convert_pipeline, converter_versions
from loopml.registry.package import ModelPackage
from loopml.registry.runtime import TRUSTED_TYPES, feature_arrays, load_runtime
from loopml.registry.store import (
    SERVING_ARTIFACT,
    SERVING_DIFF_TAG,
    SERVING_ROWS_TAG,
    ModelRegistry,
    VersionInfo,
)

__all__ = [
    "ArtifactManifest",
    "ParityResult",
    "ServingStatus",
    "build_serving_artifact",
    "ensure_serving_artifact",
]

PARITY_MAX_ROWS = 100_000
"""Most holdout rows the parity check scores (the first ones): enough to meet every kind of
row, bounded so registering a model trained on a huge table stays quick."""

Array = np.ndarray[Any, Any]
_Written = tuple[tuple[InputSpec, ...], dict[str, str], dict[str, int]]


def build_serving_artifact(
    package: ModelPackage,
    holdout: pd.DataFrame,
    folder: Path,
    *,
    parity_rows: int = 64,
    formats: Sequence[Format] = FORMATS,
) -> ArtifactManifest:
    """Write the serving artifact of ``package`` into ``folder`` and return its manifest.

    ``holdout`` is the raw holdout table (as logged by training); ``parity_rows`` of its
    rows go into ``parity.json`` for the server's self-check after loading. ``formats``
    restricts or reorders the formats tried. Raises :class:`RegistryError` if no format
    reproduces the pipeline (in practice a pickle always does).
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"formats must be some of {FORMATS}, got {list(formats)}")
    if len(holdout) == 0:
        raise RegistryError(
            "cannot build a serving artifact: the holdout has no rows",
            fix="retrain so the version has a holdout to check the artifact against",
        )
    contract = package.contract
    features = feature_arrays(holdout.iloc[:PARITY_MAX_ROWS], contract)
    expected = _native_scores(package, features)
    kinds = {s.name: "numeric" if s.is_numeric else "categorical" for s in contract.features}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        _write_common(package, tmp, features, kinds, expected, parity_rows)
        manifest = _first_faithful(package, tmp, formats, features, expected)
        _move_into_place(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _native_scores(package: ModelPackage, features: dict[str, Array]) -> Array:
    frame = pd.DataFrame(
        {name: pd.Series(values, dtype=values.dtype) for name, values in features.items()}
    )
    pipeline = package.pipeline
    if package.meta.task == "regression":
        return np.asarray(pipeline.predict(frame), dtype=np.float64)
    return np.asarray(pipeline.predict_proba(frame), dtype=np.float64)


def _write_common(
    package: ModelPackage,
    folder: Path,
    features: dict[str, Array],
    kinds: dict[str, str],
    expected: Array,
    parity_rows: int,
) -> None:
    rows = max(1, parity_rows)
    head = {name: values[:rows] for name, values in features.items()}
    (folder / CONTRACT_FILE).write_text(package.contract.to_yaml(), encoding="utf-8")
    (folder / META_FILE).write_text(package.meta.to_json(), encoding="utf-8")
    (folder / PARITY_FILE).write_text(
        parity_payload(head, kinds, expected[:rows], package.meta.task), encoding="utf-8"
    )


def _first_faithful(
    package: ModelPackage,
    folder: Path,
    formats: Sequence[Format],
    features: dict[str, Array],
    expected: Array,
) -> ArtifactManifest:
    """Write each format in turn; keep the first whose loaded model passes parity."""
    reasons: list[str] = []
    for fmt in formats:
        model_path = folder / MODEL_FILES[fmt]
        try:
            manifest = _manifest(package, folder, fmt, _WRITERS[fmt](package, model_path))
            _write_manifest(folder, manifest)
            parity = _parity(folder, fmt, features, expected)
        except Exception as exc:  # converters fail in many ways; each one means "fall back"
            reasons.append(f"{fmt}: {_one_line(exc)}")
            model_path.unlink(missing_ok=True)
            continue
        if not parity.passed:
            reasons.append(f"{fmt}: parity failed ({parity.describe()})")
            model_path.unlink(missing_ok=True)
            continue
        manifest = replace(manifest, parity=parity, fallback_reason="; ".join(reasons))
        _write_manifest(folder, manifest)
        load_runtime(folder, trust_pickle=fmt == "pickle").check_parity()
        return manifest
    (folder / MANIFEST_FILE).unlink(missing_ok=True)
    raise RegistryError(
        f"cannot build a serving artifact for {package.meta.name!r} ({package.meta.candidate})",
        detail="\n".join(reasons),
        fix="retrain with another candidate (lightgbm, xgboost and linear convert to ONNX)",
    )


def _parity(folder: Path, fmt: Format, features: dict[str, Array], expected: Array) -> ParityResult:
    runtime = load_runtime(folder, trust_pickle=fmt == "pickle")
    outputs = runtime.predict(features)
    got = outputs.values if runtime.manifest.task == "regression" else outputs.probabilities
    return compare_outputs(expected, np.asarray(got), runtime.manifest.task)


def _write_onnx(package: ModelPackage, path: Path) -> _Written:
    kinds = [
        (s.name, "numeric" if s.is_numeric else "categorical") for s in package.contract.features
    ]
    converted = convert_pipeline(package.pipeline, kinds, package.meta.task)
    path.write_bytes(converted.data)
    return converted.inputs, converted.outputs, converted.opset


def _write_skops(package: ModelPackage, path: Path) -> _Written:
    sio.dump(package.pipeline, path)
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
    if untrusted:
        raise ValueError(f"the pipeline holds types outside TRUSTED_TYPES: {untrusted}")
    return (), {}, {}


def _write_pickle(package: ModelPackage, path: Path) -> _Written:
    joblib.dump(package.pipeline, path, compress=3)
    return (), {}, {}


_WRITERS: dict[Format, Callable[[ModelPackage, Path], _Written]] = {
    "onnx": _write_onnx,
    "skops": _write_skops,
    "pickle": _write_pickle,
}


def _manifest(
    package: ModelPackage, folder: Path, fmt: Format, written: _Written
) -> ArtifactManifest:
    """The manifest before parity is known (``parity.passed`` False until checked)."""
    inputs, outputs, opset = written
    meta, contract = package.meta, package.contract
    model_file = MODEL_FILES[fmt]
    return ArtifactManifest(
        format=fmt,
        model_file=model_file,
        files={
            name: sha256_file(folder / name)
            for name in (model_file, CONTRACT_FILE, META_FILE, PARITY_FILE)
        },
        task=meta.task,
        target=meta.target,
        target_type=meta.target_type,
        classes=tuple(meta.classes),
        features=tuple(
            (s.name, "numeric" if s.is_numeric else "categorical") for s in contract.features
        ),
        parity=ParityResult(0, 0.0, 0.0, False, passed=False),
        candidate=meta.candidate,
        inputs=inputs,
        outputs=outputs,
        converters=converter_versions(),
        opset=opset,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _write_manifest(folder: Path, manifest: ArtifactManifest) -> None:
    (folder / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")


def _move_into_place(tmp: Path, folder: Path) -> None:
    """Rename the finished folder into place, replacing an older artifact if present."""
    if not folder.exists():
        tmp.rename(folder)
        return
    old = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
    folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _one_line(exc: BaseException) -> str:
    text = exc.headline if isinstance(exc, LoopmlError) else str(exc)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first[:200]}"


@dataclass(frozen=True)
class ServingStatus:
    """A version's serving artifact as ``loopml models build-artifact`` reports it."""

    version: str
    format: str
    parity_max_diff: float | None
    rows_checked: int | None
    built: bool
    fallback_reason: str = ""

    @classmethod
    def from_tags(cls, info: VersionInfo) -> ServingStatus:
        diff = info.tags.get(SERVING_DIFF_TAG)
        rows = info.tags.get(SERVING_ROWS_TAG)
        return cls(
            version=info.version,
            format=info.serving_format or "none",
            parity_max_diff=float(diff) if diff else None,
            rows_checked=int(rows) if rows else None,
            built=False,
        )


def ensure_serving_artifact(
    registry: ModelRegistry, version: str, *, trust_pickle: bool, force: bool = False
) -> ServingStatus:
    """Build and attach a version's serving artifact unless it has one (or ``force``),
    from its registered package and the holdout its training run logged.

    Building unpickles the package's ``pipeline.joblib``: only after its sha256 matched the
    one recorded at registration, and only if ``trust_pickle``
    (see :meth:`ModelRegistry.load_package`)."""
    info = registry.version(version)
    if info.serving_format and not force:
        return ServingStatus.from_tags(info)
    package = registry.load_package(info.version, trust_pickle=trust_pickle)
    holdout = registry.load_holdout(info.run_id)
    with tempfile.TemporaryDirectory(prefix=f"loopml-serving-{info.version}-") as tmp:
        folder = Path(tmp) / SERVING_ARTIFACT
        manifest = build_serving_artifact(package, holdout, folder)
        registry.attach_serving_artifact(info.version, folder)
    return _built_status(info.version, manifest)


def _built_status(version: str, manifest: ArtifactManifest) -> ServingStatus:
    return ServingStatus(
        version=version,
        format=manifest.format,
        parity_max_diff=manifest.parity.max_abs_diff,
        rows_checked=manifest.parity.rows_checked,
        built=True,
        fallback_reason=manifest.fallback_reason,
    )
