"""Load a serving artifact and score model-ready arrays with it: the server's hot path.

:func:`load_runtime` checks every sha256 in the artifact's manifest before anything is
parsed, refuses a pickle unless the operator trusts it, and returns a :class:`Runtime`.
``Runtime.predict`` takes the *model-ready arrays* of the serving brief (one 1-D array per
feature: numeric float64 with NaN for null, categorical ``object`` arrays of ``str`` as
:func:`loopml.features.pipeline.feature_frame` spells them; see :func:`feature_arrays`)
and returns :class:`Outputs`.

For an ONNX artifact everything that does not depend on the request (input names,
column order, output names, the label table) is fixed at load time, so a call is two
``np.array`` packs, ``session.run`` and an argmax.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime as ort
import pandas as pd
import yaml
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

from loopml.data.contract import Contract
from loopml.errors import InputError, RegistryError
from loopml.features.pipeline import feature_frame
from loopml.registry.manifest import (
    CONTRACT_FILE,
    META_FILE,
    PARITY_FILE,
    ArtifactManifest,
    InputSpec,
    ParityResult,
    VerifiedFolder,
    compare_outputs,
    native_labels,
    parse_parity,
    read_verified,
)
from loopml.registry.package import ModelMeta
from loopml.train.metrics import predicted_labels

__all__ = [
    "TRUSTED_TYPES",
    "Outputs",
    "ParityResult",
    "Runtime",
    "feature_arrays",
    "load_runtime",
]

TRUSTED_TYPES: tuple[str, ...] = (
    "collections.OrderedDict",
    "loopml.features.pipeline.Float32",
    "loopml.train.calibrate.Calibrated",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
)
"""Types a skops artifact may hold beyond skops' own defaults (scikit-learn estimators,
numpy and scipy containers): what ``skops.io.get_untrusted_types`` reports for every
loopml candidate pipeline. A skops file with any other type is refused."""

WARM_ROUNDS = 20
Array = np.ndarray[Any, Any]
Scorer = Callable[[Mapping[str, Array]], Array]


@dataclass(frozen=True, slots=True)
class Outputs:
    """What a model says about ``n`` rows.

    ``labels`` are native Python values in the target's own type (the decided class for
    classification; ``values.tolist()`` for regression), ``probabilities`` is (n, k)
    float64 in ``meta.classes`` order, ``values`` is (n,) float64 for regression.
    """

    labels: list[Any]
    probabilities: Array | None = None
    values: Array | None = None


class Runtime:
    """A loaded serving artifact. Thread-safe: onnxruntime sessions and fitted
    scikit-learn pipelines may be called from several threads at once."""

    def __init__(
        self,
        manifest: ArtifactManifest,
        contract: Contract,
        meta: ModelMeta,
        scorer: Scorer,
        parity: tuple[dict[str, Array], Array],
        version: str = "",
    ) -> None:
        self.manifest = manifest
        self.contract = contract
        self.meta = meta
        self.version = version
        self._scorer = scorer
        self._parity_features, self._parity_expected = parity
        self._regression = manifest.task == "regression"
        self._labels = tuple(native_labels(meta.classes, meta.target_type))

    @property
    def format(self) -> str:
        return self.manifest.format

    def predict(self, features: Mapping[str, Array]) -> Outputs:
        """Score model-ready arrays (see the module docstring).

        Raises :class:`InputError` for a missing feature or ragged / non-numeric arrays;
        checking values against the contract is the caller's job.
        """
        scores = self._scorer(features)
        if self._regression:
            return Outputs(labels=scores.tolist(), values=scores)
        labels = self._labels
        decided = predicted_labels(scores, self.meta.threshold).tolist()
        return Outputs(labels=[labels[i] for i in decided], probabilities=scores)

    def check_parity(self) -> ParityResult:
        """Re-score the artifact's parity rows; raise :class:`RegistryError` on a mismatch."""
        got = self._scorer(self._parity_features)
        result = compare_outputs(self._parity_expected, got, self.manifest.task)
        if not result.passed:
            raise RegistryError(
                f"version {self.version or '?'} of {self.meta.name!r} does not reproduce "
                "the outputs recorded with it",
                detail=f"parity rows: {result.describe()}",
                fix="the artifact was tampered with or built for another model; rebuild it "
                "with 'loopml models build-artifact VERSION --force'",
            )
        return result

    def warm(self, rounds: int = WARM_ROUNDS) -> None:
        """Run a few predictions so first requests do not pay for lazy initialisation."""
        if not len(self._parity_expected):
            return
        one = {name: values[:1] for name, values in self._parity_features.items()}
        for _ in range(rounds):
            self.predict(one)
        self.predict(self._parity_features)


def feature_arrays(frame: pd.DataFrame, contract: Contract) -> dict[str, Array]:
    """Model-ready arrays of a raw frame, via :func:`feature_frame` (same spelling).

    >>> from loopml.data.contract import ColumnSpec, Contract
    >>> c = Contract(rows=2, target="y", task="regression", columns=(
    ...     ColumnSpec(name="a", type="string", nullable=True, null_rate=0.5, n_unique=1,
    ...                categories={"x": 1.0}),
    ...     ColumnSpec(name="y", type="float", role="target", nullable=False,
    ...                null_rate=0.0, n_unique=2)))
    >>> feature_arrays(pd.DataFrame({"a": ["x", None], "y": [0.1, 0.2]}), c)["a"].tolist()
    ['x', '__missing__']
    """
    model_frame = feature_frame(frame, contract)
    return {
        spec.name: model_frame[spec.name].to_numpy(dtype=np.float64 if spec.is_numeric else object)
        for spec in contract.features
    }


def load_runtime(
    folder: Path,
    *,
    trust_pickle: bool = False,
    threads: int = 1,
    version: str | None = None,
    manifest_sha256: str | None = None,
) -> Runtime:
    """Load the serving artifact in ``folder`` after checking every file's sha256.

    ``version`` defaults to the folder's name (the version, for folders made by
    ``ModelRegistry.fetch_serving_artifact``). ``manifest_sha256`` (the version's
    ``loopml.serving_sha256`` tag) also binds the manifest itself to the registry.
    A pickle artifact is refused unless ``trust_pickle`` (unpickling runs code).
    """
    verified = read_verified(folder, manifest_sha256)
    manifest = verified.manifest
    if manifest.format == "pickle" and not trust_pickle:
        raise RegistryError(
            f"the serving artifact in {folder} is a pickle, which loopml does not load by default",
            detail="unpickling runs code from the file; only load pickles of your own models",
            fix="set serve.trust_pickle: true in loopml.yaml or pass --trust-pickle, or "
            "retrain with a candidate that converts to ONNX",
        )
    contract = _contract(verified)
    meta = ModelMeta.from_json(verified.text(META_FILE))
    _check_consistent(manifest, contract, meta, folder)
    scorer = _scorer(verified, threads)
    parity = parse_parity(verified.text(PARITY_FILE), manifest.task)
    return Runtime(manifest, contract, meta, scorer, parity, version or folder.name)


def _contract(verified: VerifiedFolder) -> Contract:
    try:
        return Contract.model_validate(yaml.safe_load(verified.text(CONTRACT_FILE)))
    except (yaml.YAMLError, ValueError) as exc:
        raise RegistryError(
            f"the serving artifact in {verified.folder} holds an invalid contract.yaml",
            detail=str(exc).splitlines()[0][:300],
            fix="rebuild it with 'loopml models build-artifact VERSION --force'",
        ) from exc


def _check_consistent(
    manifest: ArtifactManifest, contract: Contract, meta: ModelMeta, folder: Path
) -> None:
    kinds = [(s.name, "numeric" if s.is_numeric else "categorical") for s in contract.features]
    problems = [
        what
        for what, ok in (
            ("task", manifest.task == meta.task == contract.task),
            ("classes", manifest.classes == meta.classes),
            ("features", list(manifest.features) == kinds),
        )
        if not ok
    ]
    if problems:
        raise RegistryError(
            f"the serving artifact in {folder} is inconsistent",
            detail=f"manifest.json, model.json and contract.yaml disagree on: "
            f"{', '.join(problems)}",
            fix="rebuild it with 'loopml models build-artifact VERSION --force'",
        )


def _scorer(verified: VerifiedFolder, threads: int) -> Scorer:
    manifest = verified.manifest
    data = verified.contents[manifest.model_file]
    if manifest.format == "onnx":
        return _OnnxScorer(_session(data, threads, verified.folder), manifest)
    if manifest.format == "skops":
        return _PipelineScorer(_load_skops(data, verified.folder), manifest)

    return _PipelineScorer(joblib.load(io.BytesIO(data)), manifest)


def _session(data: bytes, threads: int, folder: Path) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own, unrelated exception types
        raise RegistryError(
            f"onnxruntime cannot load the model in {folder}",
            detail=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
            fix="rebuild it with 'loopml models build-artifact VERSION --force'",
        ) from exc


def _load_skops(data: bytes, folder: Path) -> Any:
    # skops (1.5 s to import) loads only for the fallback format, not on every server start.
    import skops.io as sio  # noqa: PLC0415

    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:
        raise RegistryError(
            f"the skops model in {folder} holds types loopml does not trust",
            detail="untrusted: " + ", ".join(untrusted[:10]),
            fix="rebuild the artifact from a loopml candidate; a skops file is only loaded "
            "when every type in it is on loopml's trusted list",
        )
    return sio.loads(data, trusted=list(TRUSTED_TYPES))


class _OnnxScorer:
    """Packs the arrays into the graph's input blocks and runs the session."""

    def __init__(self, session: Any, manifest: ArtifactManifest) -> None:
        # The public ``session.run`` re-validates input names and EP fallback on every call
        # (~4 µs, 15% of a one-row prediction); our feed always has exactly the graph's
        # inputs on the CPU provider, so the compiled session is called directly.
        # Both take (output names, feed, run options) positionally.
        inner_run = getattr(getattr(session, "_sess", None), "run", None)
        self._run: Callable[..., list[Array]] = inner_run if callable(inner_run) else session.run
        self._invalid: type[Exception] = InvalidArgument
        key = "values" if manifest.task == "regression" else "probabilities"
        self._outputs = [manifest.outputs[key]]
        self._specs = manifest.inputs
        self._blocks = tuple(_block_packer(spec) for spec in manifest.inputs)
        self._regression = manifest.task == "regression"

    def __call__(self, features: Mapping[str, Array]) -> Array:
        feed = {name: pack(features) for name, pack in self._blocks}
        if len({block.shape[0] for block in feed.values()}) > 1:
            names = [name for spec in self._specs for name in spec.columns]
            raise _ragged(names, features, numeric=False)
        try:
            out = self._run(self._outputs, feed, None)[0]
        except self._invalid as exc:
            raise InputError(
                f"the features do not fit the model: {str(exc).splitlines()[0][:200]}",
                error="wrong_type",
            ) from exc
        if self._regression:
            return np.asarray(out, dtype=np.float64).reshape(-1)
        return np.asarray(out, dtype=np.float64)


def _block_packer(spec: InputSpec) -> tuple[str, Callable[[Mapping[str, Array]], Array]]:
    columns = spec.columns
    dtype: Any = np.float32 if spec.dtype == "float32" else object

    def pack(features: Mapping[str, Array]) -> Array:
        try:
            block = np.array([features[name] for name in columns], dtype=dtype)
        except KeyError as exc:
            raise _missing(exc.args[0]) from None
        except (ValueError, TypeError) as exc:
            raise _ragged(columns, features, numeric=dtype is np.float32) from exc
        if block.ndim != 2:
            raise _ragged(columns, features, numeric=dtype is np.float32)
        # (k, n) -> (n, k); one row is contiguous either way, more rows need a copy.
        return block.T if block.shape[1] == 1 else np.ascontiguousarray(block.T)

    return spec.name, pack


class _PipelineScorer:
    """A fitted scikit-learn pipeline (skops or pickle artifact) behind the same call."""

    def __init__(self, pipeline: Any, manifest: ArtifactManifest) -> None:
        self._pipeline = pipeline
        self._features = [(n, k == "numeric") for n, k in manifest.features]
        self._regression = manifest.task == "regression"
        # scikit-learn refuses empty input; the ONNX runtime answers it with empty outputs.
        self._empty = np.empty((0,) if self._regression else (0, len(manifest.classes)))

    def __call__(self, features: Mapping[str, Array]) -> Array:
        try:
            columns = {
                name: pd.Series(features[name], dtype=np.float64 if numeric else object)
                for name, numeric in self._features
            }
            frame = pd.DataFrame(columns)
        except KeyError as exc:
            raise _missing(exc.args[0]) from None
        except (ValueError, TypeError) as exc:
            names = [n for n, _ in self._features]
            raise _ragged(names, features, numeric=False) from exc
        lengths = {len(c) for c in columns.values()}
        if len(lengths) > 1:
            raise _ragged([n for n, _ in self._features], features, numeric=False)
        if lengths == {0}:
            return self._empty.copy()
        if self._regression:
            return np.asarray(self._pipeline.predict(frame), dtype=np.float64)
        return np.asarray(self._pipeline.predict_proba(frame), dtype=np.float64)


def _missing(name: object) -> InputError:
    return InputError(
        f"feature {name!r} is missing", error="missing_field", field=str(name), status=422
    )


def _ragged(columns: Sequence[str], features: Mapping[str, Array], *, numeric: bool) -> InputError:
    lengths = {name: int(np.size(features[name])) for name in columns if name in features}
    kind = "numbers" if numeric else "values"
    return InputError(
        f"every feature must be a 1-D array of {kind}, all of the same length "
        f"(got lengths {lengths})",
        error="wrong_type",
    )
