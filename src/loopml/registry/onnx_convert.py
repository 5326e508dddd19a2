"""Convert a fitted loopml pipeline (ColumnTransformer + model) into one ONNX graph.

skl2onnx converts the scikit-learn parts, onnxmltools the LightGBM and XGBoost models.
Choices, each checked against the native pipeline by the parity test of the builder:

- numeric columns enter as float32: skl2onnx's imputer and onnxruntime's tree ensembles
  only have float kernels (a double graph fails to load), and float32 keeps probabilities
  within ~1e-7 of scikit-learn on our candidates;
- probabilities come out as a plain (n, k) tensor (``zipmap`` off);
- scikit-learn's HistGradientBoosting converts once a bug in skl2onnx 1.20 is worked
  around: it writes Python ``False`` into the integer attribute
  ``nodes_missing_value_tracks_true`` of leaf nodes, which onnx >= 1.17 rejects
  ("Expected an int, got a boolean"); :func:`_hist_gb_converters` casts them;
- the graph skl2onnx builds has one ``[None, 1]`` input per feature column. Feeding 14
  inputs costs onnxruntime's Python binding ~1 µs each, more than the model itself, so
  :func:`pack_inputs` puts one ``Split`` in front: the graph takes one float32 block of all
  numeric columns and one string block of all categorical columns.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import lightgbm
import numpy as np
import onnx
import xgboost
from onnx import TensorProto, helper, numpy_helper
from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from skl2onnx.common.shape_calculator import (
    calculate_linear_classifier_output_shapes,
    calculate_linear_regressor_output_shapes,
)
from skl2onnx.operator_converters.random_forest import (
    convert_sklearn_random_forest_classifier,
    convert_sklearn_random_forest_regressor_converter,
)
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from loopml.features.pipeline import Float32
from loopml.registry.manifest import InputSpec
from loopml.train.calibrate import Calibrated

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}
"""The highest opsets the converters may use; the graph records the lowest it needs."""
NUMERIC_INPUT = "loopml_numeric"
CATEGORICAL_INPUT = "loopml_categorical"
PROBABILITIES_OUTPUT = "probabilities"
CONVERTER_PACKAGES = (
    "skl2onnx", "onnxmltools", "onnx", "onnxruntime", "skops", "scikit-learn", "lightgbm",
    "xgboost-cpu", "numpy",
)  # fmt: skip


@dataclass(frozen=True)
class ConvertedModel:
    """An ONNX graph of a whole pipeline, ready to write as ``model.onnx``."""

    data: bytes
    inputs: tuple[InputSpec, ...]
    outputs: dict[str, str]
    opset: dict[str, int]


def converter_versions() -> dict[str, str]:
    """Installed versions of the packages that build or read serving artifacts."""
    versions: dict[str, str] = {}
    for name in CONVERTER_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


Converter = Callable[[Any, Any, Any], None]


@functools.cache
def register_converters() -> None:
    """Teach skl2onnx LightGBM's and XGBoost's scikit-learn models and loopml's float32
    cast (once per process)."""
    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    # LightGBM splits on doubles (x <= t); XGBoost's thresholds are float32 already.
    lgbm = exact_trees(convert_lightgbm)
    for model, alias, shape, convert, options in (
        (lightgbm.LGBMClassifier, "LightGbmLGBMClassifier",
         calculate_linear_classifier_output_shapes, lgbm, classifier_options),
        (lightgbm.LGBMRegressor, "LightGbmLGBMRegressor",
         calculate_linear_regressor_output_shapes, lgbm, {"split": None}),
        (xgboost.XGBClassifier, "XGBoostXGBClassifier",
         calculate_linear_classifier_output_shapes, convert_xgboost, classifier_options),
        (xgboost.XGBRegressor, "XGBoostXGBRegressor",
         calculate_linear_regressor_output_shapes, convert_xgboost, None),
    ):  # fmt: skip
        update_registered_converter(model, alias, shape, convert, options=options)
    update_registered_converter(Float32, "LoopmlFloat32", _float32_shape, _float32_convert)


def _float32_shape(operator: Any) -> None:
    operator.outputs[0].type = FloatTensorType(operator.inputs[0].type.shape)


def _float32_convert(scope: Any, operator: Any, container: Any) -> None:
    container.add_node(
        "Cast",
        operator.inputs[0].full_name,
        operator.outputs[0].full_name,
        to=TensorProto.FLOAT,
        name=scope.get_unique_operator_name("Float32"),
    )


def float32_thresholds(values: Sequence[float], modes: Sequence[Any]) -> list[float]:
    """Tree thresholds as float32 that split float32 inputs exactly as the doubles do.

    ``x <= t`` for a float32 ``x`` holds exactly when ``x <=`` the largest float32 not above
    ``t``, and ``x < t`` exactly when ``x <`` the smallest float32 not below ``t``; rounding
    to the nearest float32 (what ONNX does by default) can move a threshold past a value
    that lies next to it, and send that value the other way.

    >>> float32_thresholds([0.1, 0.1], ["BRANCH_LEQ", "BRANCH_LT"])
    [0.09999999403953552, 0.10000000149011612]
    """
    out: list[float] = []
    for value, mode in zip(values, modes, strict=True):
        kind = mode.decode() if isinstance(mode, bytes) else str(mode)
        exact = float(value)
        nearest = np.float32(exact)
        # Compared as doubles: NumPy compares a float32 with a Python float in float32.
        if kind in ("BRANCH_LEQ", "BRANCH_GT") and float(nearest) > exact:
            nearest = np.nextafter(nearest, np.float32(-np.inf))
        elif kind in ("BRANCH_LT", "BRANCH_GTE") and float(nearest) < exact:
            nearest = np.nextafter(nearest, np.float32(np.inf))
        out.append(float(nearest))
    return out


class _ExactTrees:
    """A converter container whose tree-ensemble nodes get :func:`float32_thresholds` and
    integer ``nodes_missing_value_tracks_true`` (onnx >= 1.17 rejects booleans there)."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, *args: Any, **attrs: Any) -> Any:
        tracks = "nodes_missing_value_tracks_true"
        if tracks in attrs:
            attrs[tracks] = [int(v) for v in attrs[tracks]]
        if "nodes_values" in attrs and "nodes_modes" in attrs:
            attrs["nodes_values"] = float32_thresholds(attrs["nodes_values"], attrs["nodes_modes"])
        return self._container.add_node(*args, **attrs)


def exact_trees(convert: Converter) -> Converter:
    """``convert`` writing its tree ensembles through :class:`_ExactTrees`."""

    @functools.wraps(convert)
    def converter(scope: Any, operator: Any, container: Any) -> None:
        convert(scope, operator, _ExactTrees(container))

    return converter


def _hist_gb_converters() -> dict[type, Converter]:
    return {
        HistGradientBoostingClassifier: exact_trees(convert_sklearn_random_forest_classifier),
        HistGradientBoostingRegressor: exact_trees(
            convert_sklearn_random_forest_regressor_converter
        ),
    }


def snap_hist_gb_thresholds(estimator: Any) -> Any:
    """A copy of a fitted HistGradientBoosting model whose split thresholds are the largest
    float32 not above the original (skl2onnx hands the converter float32 thresholds, rounded
    to nearest). On float32 inputs — all the pipeline feeds it — it predicts exactly as the
    original: no float32 lies between the two thresholds."""
    snapped = copy.deepcopy(estimator)
    for iteration in snapped._predictors:
        for predictor in iteration:
            nodes = predictor.nodes
            exact = nodes["num_threshold"]
            down = exact.astype(np.float32)
            above = down.astype(np.float64) > exact
            down[above] = np.nextafter(down[above], np.float32(-np.inf))
            nodes["num_threshold"] = np.where(nodes["is_leaf"] == 1, exact, down)
    return snapped


def convert_pipeline(
    pipeline: Any, features: Sequence[tuple[str, str]], task: str
) -> ConvertedModel:
    """One ONNX graph of ``pipeline`` with packed inputs (see :func:`pack_inputs`).

    ``features`` are ``(name, "numeric" | "categorical")`` in model order. Raises whatever
    the converters raise when a step has no converter; the caller falls back.
    """
    register_converters()
    names = graph_names([name for name, _ in features])
    estimator = pipeline.steps[-1][1]
    calibrated = estimator if isinstance(estimator, Calibrated) else None
    if calibrated is not None:
        estimator = calibrated.estimator
    if isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        estimator = snap_hist_gb_thresholds(estimator)
    pipeline = Pipeline([("features", _renamed(pipeline.steps[0][1], names)), ("model", estimator)])
    initial = [
        (
            names[name],
            FloatTensorType([None, 1]) if kind == "numeric" else StringTensorType([None, 1]),
        )
        for name, kind in features
    ]
    options = None if task == "regression" else {id(estimator): {"zipmap": False}}
    model = convert_sklearn(
        pipeline,
        initial_types=initial,
        options=options,
        target_opset=dict(OPSET),
        custom_conversion_functions=_hist_gb_converters(),
    )
    outputs = _output_names(model, task)
    if calibrated is not None:
        model = append_calibration(model, calibrated.coef, calibrated.intercept)
    numeric = [name for name, kind in features if kind == "numeric"]
    categorical = [name for name, kind in features if kind == "categorical"]
    packed, inputs = pack_inputs(model, numeric, categorical, names)
    onnx.checker.check_model(packed)
    opset = {o.domain or "": int(o.version) for o in packed.opset_import}
    return ConvertedModel(packed.SerializeToString(), inputs, outputs, opset)


def _output_names(model: Any, task: str) -> dict[str, str]:
    names = [output.name for output in model.graph.output]
    if task == "regression":
        if len(names) != 1:
            raise ValueError(f"a regression graph should have one output, not {names}")
        return {"values": names[0]}
    if PROBABILITIES_OUTPUT not in names:
        raise ValueError(f"the classifier graph has no {PROBABILITIES_OUTPUT!r} output: {names}")
    return {"probabilities": PROBABILITIES_OUTPUT}


def append_calibration(model: Any, coef: Any, intercept: Any) -> Any:
    """The graph with :class:`~loopml.train.calibrate.Calibrated`'s calibrator after its
    probabilities: ``softmax(log(clip(p)) @ coef + intercept)``, a sigmoid for two classes."""
    graph = model.graph
    taken = _tensor_names(graph)
    raw = _fresh(f"{PROBABILITIES_OUTPUT}_raw", taken)
    for node in graph.node:
        node.output[:] = [raw if o == PROBABILITIES_OUTPUT else o for o in node.output]
        node.input[:] = [raw if i == PROBABILITIES_OUTPUT else i for i in node.input]
    weights, bias = np.asarray(coef, np.float32), np.asarray(intercept, np.float32)
    names = {k: _fresh(f"calibration_{k}", taken) for k in ("w", "b", "lo", "hi", "one")}
    t = {k: _fresh(f"calibration_{k}", taken) for k in ("clip", "log", "mm", "z", "s", "neg")}
    graph.initializer.extend([
        numpy_helper.from_array(weights, names["w"]),
        numpy_helper.from_array(bias, names["b"]),
        numpy_helper.from_array(np.array(1e-7, np.float32), names["lo"]),
        numpy_helper.from_array(np.array(1 - 1e-7, np.float32), names["hi"]),
        numpy_helper.from_array(np.ones((1, 1), np.float32), names["one"]),
    ])  # fmt: skip
    nodes = [
        helper.make_node("Clip", [raw, names["lo"], names["hi"]], [t["clip"]]),
        helper.make_node("Log", [t["clip"]], [t["log"]]),
        helper.make_node("MatMul", [t["log"], names["w"]], [t["mm"]]),
        helper.make_node("Add", [t["mm"], names["b"]], [t["z"]]),
    ]
    if weights.shape[1] == 1:
        nodes += [
            helper.make_node("Sigmoid", [t["z"]], [t["s"]]),
            helper.make_node("Sub", [names["one"], t["s"]], [t["neg"]]),
            helper.make_node("Concat", [t["neg"], t["s"]], [PROBABILITIES_OUTPUT], axis=1),
        ]
    else:
        nodes.append(helper.make_node("Softmax", [t["z"]], [PROBABILITIES_OUTPUT], axis=1))
    graph.node.extend(nodes)
    return model


def graph_names(columns: Sequence[str]) -> dict[str, str]:
    """The name of each column inside the graph: itself when it is a plain identifier,
    else ``feature_<i>`` (converters rewrite dots, spaces and other letters in tensor names
    differently, and the graph then does not check). The artifact's input specs keep the
    real names, so the server reads requests by them.

    >>> graph_names(["age", "crl.tot", "année"])
    {'age': 'age', 'crl.tot': 'feature_1', 'année': 'feature_2'}
    """
    taken = {c for c in columns if _PLAIN.fullmatch(c)}
    names: dict[str, str] = {}
    for i, column in enumerate(columns):
        if _PLAIN.fullmatch(column):
            names[column] = column
            continue
        name, n = f"feature_{i}", i
        while name in taken:
            n += len(columns)
            name = f"feature_{n}"
        taken.add(name)
        names[column] = name
    return names


def _renamed(preprocessor: Any, names: Mapping[str, str]) -> Any:
    """A copy of a fitted ColumnTransformer that selects its columns by graph names."""
    if all(key == value for key, value in names.items()):
        return preprocessor
    renamed = copy.deepcopy(preprocessor)
    renamed.transformers_ = [
        (name, step, [names.get(c, c) for c in cols] if isinstance(cols, list) else cols)
        for name, step, cols in renamed.transformers_
    ]
    renamed.feature_names_in_ = np.asarray(
        [names.get(c, c) for c in renamed.feature_names_in_], dtype=object
    )
    return renamed


def pack_inputs(
    model: Any,
    numeric: Sequence[str],
    categorical: Sequence[str],
    names: Mapping[str, str] | None = None,
) -> tuple[Any, tuple[InputSpec, ...]]:
    """Replace the per-column inputs of ``model`` by one 2-D block per kind.

    A ``Split`` along axis 1 turns each block back into the ``[None, 1]`` tensors the
    converted graph reads, under their graph names (``names``: column -> name in the graph,
    by default the column itself), so the rest of the graph is untouched. The input specs
    list the columns by their real names, in block order.
    """

    graph = model.graph
    taken = _tensor_names(graph)
    # skl2onnx stamps the lowest opset the graph needs (11 for some XGBoost graphs), and
    # Split takes its sizes as an attribute before opset 13, as an input from 13 on.
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    new_inputs: list[Any] = []
    nodes: list[Any] = []
    initializers = list(graph.initializer)
    specs: list[InputSpec] = []
    for base, columns, elem, dtype in (
        (NUMERIC_INPUT, list(numeric), TensorProto.FLOAT, "float32"),
        (CATEGORICAL_INPUT, list(categorical), TensorProto.STRING, "string"),
    ):
        if not columns:
            continue
        name = _fresh(base, taken)
        outputs = [columns[i] if names is None else names[columns[i]] for i in range(len(columns))]
        new_inputs.append(helper.make_tensor_value_info(name, elem, [None, len(columns)]))
        ones = np.ones(len(columns), dtype=np.int64)
        node_name = _fresh("Split", taken)
        if opset < 13:
            split = helper.make_node(
                "Split", [name], outputs, axis=1, split=ones.tolist(), name=node_name
            )
        else:
            sizes = _fresh(f"{name}_split", taken)
            initializers.append(numpy_helper.from_array(ones, name=sizes))
            split = helper.make_node("Split", [name, sizes], outputs, axis=1, name=node_name)
        nodes.append(split)
        specs.append(InputSpec(name, dtype, tuple(columns)))  # type: ignore[arg-type]
    packed_graph = helper.make_graph(
        [*nodes, *graph.node],
        graph.name,
        new_inputs,
        list(graph.output),
        initializers,
        value_info=list(graph.value_info),
    )
    packed = helper.make_model(
        packed_graph, opset_imports=list(model.opset_import), ir_version=model.ir_version
    )
    packed.producer_name = model.producer_name
    packed.producer_version = model.producer_version
    return packed, tuple(specs)


def _tensor_names(graph: Any) -> set[str]:
    names = {i.name for i in graph.input} | {o.name for o in graph.output}
    names |= {t.name for t in graph.initializer}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        names.add(node.name)
    return names


def _fresh(base: str, taken: set[str]) -> str:
    """``base``, or ``base_1``, ``base_2``... whichever no tensor of the graph uses yet."""
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name
