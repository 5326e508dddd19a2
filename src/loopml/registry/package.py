"""The model package: what a registered version is made of, as files in one folder.

``pipeline.joblib``  the fitted scikit-learn pipeline (features + model), for MLflow's pyfunc
``contract.yaml``    the data contract the pipeline was trained under
``model.json``       task, classes, target type, candidate, params, metrics, lineage
``serving/``         an empty folder (unused; the serving artifact lives beside the package)

The joblib file is a pickle. loopml's commands load it only to build a serving artifact
(``loopml models build-artifact``), only after its sha256 matched the one recorded in the
registry at registration (:mod:`loopml.registry.package_digest`), and only when the pickle
is trusted (``--trust-pickle`` / ``serve.trust_pickle``). Serving, batch scoring,
promotion and profiling score through the version's serving artifact instead — one ONNX
graph of the whole pipeline, logged to the training run's ``serving/`` artifact path (see
:mod:`loopml.registry.artifact`). MLflow's own pyfunc loader (:func:`read_package`) is
MLflow's way in, for users who load a version with ``mlflow.pyfunc.load_model``.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import yaml

from loopml.config import Task
from loopml.data.contract import Contract
from loopml.errors import RegistryError

PIPELINE_FILE = "pipeline.joblib"
CONTRACT_FILE = "contract.yaml"
META_FILE = "model.json"
SERVING_DIR = "serving"


@dataclass(frozen=True)
class ModelMeta:
    """What a consumer needs to interpret the pipeline's outputs."""

    name: str
    task: Task
    target: str
    target_type: str
    classes: tuple[str, ...]
    candidate: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str = ""
    data_fingerprint: str = ""
    threshold: float | None = None
    """Binary only: a row is labelled positive (class index 1) when its probability is at
    least this; None (versions before thresholds, other tasks): 0.5, or the argmax."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        raw = json.loads(text)
        raw["classes"] = tuple(raw.get("classes", ()))
        return cls(**raw)


@dataclass(frozen=True)
class ModelPackage:
    pipeline: Any
    contract: Contract
    meta: ModelMeta


def write_package(package: ModelPackage, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(package.pipeline, folder / PIPELINE_FILE, compress=3)
    package.contract.save(folder / CONTRACT_FILE)
    (folder / META_FILE).write_text(package.meta.to_json(), encoding="utf-8")
    (folder / SERVING_DIR).mkdir(exist_ok=True)
    return folder


def read_package(folder: Path) -> ModelPackage:
    """Load a package written by :func:`write_package` (a loopml-registered version)."""
    missing = [f for f in (PIPELINE_FILE, CONTRACT_FILE, META_FILE) if not (folder / f).is_file()]
    if missing:
        raise RegistryError(
            f"{folder} is not a loopml model package",
            detail=f"missing: {', '.join(missing)}",
            fix="only versions registered by 'loopml train' can be used here",
        )
    return ModelPackage(
        pipeline=joblib.load(folder / PIPELINE_FILE),
        contract=Contract.load(folder / CONTRACT_FILE),
        meta=ModelMeta.from_json((folder / META_FILE).read_text(encoding="utf-8")),
    )


def package_from_files(contents: dict[str, bytes]) -> ModelPackage:
    """A package from its files' bytes, already checked (see
    :func:`loopml.registry.package_digest.read_checked`): parsed from exactly the bytes
    that were hashed, so a file swapped after the check is never the one loaded."""
    return ModelPackage(
        pipeline=joblib.load(io.BytesIO(contents[PIPELINE_FILE])),
        contract=Contract.model_validate(yaml.safe_load(contents[CONTRACT_FILE].decode("utf-8"))),
        meta=ModelMeta.from_json(contents[META_FILE].decode("utf-8")),
    )
