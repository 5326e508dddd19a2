"""A registered version's serving runtime, every byte checked against the registry.

The one way loopml's commands score with a version: serving, batch scoring, promotion
and profile rebuilding all come here. The serving artifact is fetched into the cache
(:meth:`ModelRegistry.fetch_serving_artifact` checks the manifest's sha256 against the
version's tag and every file against the manifest) and loaded with that same sha256, so a
copy changed between the fetch and the load is refused as well. An ONNX or skops artifact
is data: nothing is unpickled. A pickle artifact needs ``trust_pickle``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.registry.runtime import Runtime, load_runtime
from loopml.registry.store import SERVING_SHA_TAG, ModelRegistry

__all__ = ["frame_scores", "open_runtime"]


def open_runtime(
    registry: ModelRegistry,
    version: str,
    cache_root: Path,
    *,
    trust_pickle: bool,
    threads: int = 1,
) -> Runtime:
    """Fetch, verify and load ``version``'s serving artifact (not warmed, parity unchecked:
    callers run :meth:`Runtime.check_parity` when they are ready to)."""
    folder = registry.fetch_serving_artifact(version, cache_root)
    sha = registry.version(version).tags.get(SERVING_SHA_TAG, "")
    return load_runtime(
        folder, trust_pickle=trust_pickle, threads=threads, version=str(version),
        manifest_sha256=sha,
    )  # fmt: skip


def frame_scores(runtime: Runtime, model_frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    """What :func:`loopml.train.evaluate.model_scores` returns for a feature frame (the
    output of :func:`loopml.features.pipeline.feature_frame`), scored by ``runtime``:
    probabilities (n, k), or values for regression."""
    arrays = {
        spec.name: model_frame[spec.name].to_numpy(dtype=np.float64 if spec.is_numeric else object)
        for spec in runtime.contract.features
    }
    outputs = runtime.predict(arrays)
    scores = outputs.values if runtime.manifest.task == "regression" else outputs.probabilities
    return np.asarray(scores, dtype=np.float64)
