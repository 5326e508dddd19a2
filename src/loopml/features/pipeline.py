"""The feature pipeline, built from the data contract.

Every model is one scikit-learn :class:`~sklearn.pipeline.Pipeline`:
``[("features", ColumnTransformer), ("model", estimator)]``. It is fed the frame made by
:func:`feature_frame` both at training and at serving time, so the two cannot drift apart.

The transformers are deliberately the plain, well-known ones (median imputer, standard
scaler, one-hot encoder) because the fitted pipeline is converted to a single ONNX graph by
skl2onnx, with one ``[None, 1]`` input per column. Two consequences:

- a null categorical value is written as the string :data:`MISSING` by
  :func:`feature_frame` rather than imputed inside the pipeline: ONNX string tensors cannot
  hold NaN and skl2onnx's string imputer only replaces a string marker, so the marker is
  set where the frame is built, identically for training, the pipeline and the ONNX graph;
- the one-hot encoder gets an explicit category list instead of ``min_frequency`` /
  ``max_categories``: skl2onnx refuses scikit-learn's "infrequent" category, while an
  explicit list plus ``handle_unknown="ignore"`` converts cleanly and still bounds the
  width (rare and unseen values both encode as all zeros);
- numeric columns are cast to float32 first (:class:`Float32`), because the ONNX graph
  reads float32: the model is trained on, and the native pipeline predicts from, exactly
  the values the graph compares with its thresholds, so a value lying on a split is sent
  the same way by both (``1000123.45`` and ``1000123.43`` are one float32).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from loopml.data.cells import boolean_keys, category_keys
from loopml.data.contract import ColumnSpec, Contract
from loopml.errors import ContractError

MISSING = "__missing__"
"""How :func:`feature_frame` writes a null categorical value; it has its own one-hot column."""
MAX_CATEGORIES = 50
"""Most one-hot columns per categorical feature; rarer values encode as all zeros."""
PERMUTATION_ROWS = 2_000


class Float32(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Cast numeric inputs to float32: the precision of the served ONNX graph.

    >>> Float32().fit_transform(np.array([[1000123.45, 0.1]])).tolist()
    [[1000123.4375, 0.10000000149011612]]
    """

    def fit(self, X: Any, y: Any = None) -> Float32:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray[Any, Any]:
        # Beyond float32's range a number would become inf; keep it the largest float32.
        limit = float(np.finfo(np.float32).max)
        return np.clip(np.asarray(X, dtype=np.float64), -limit, limit).astype(np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray[Any, Any]:
        return np.asarray(input_features if input_features is not None else [], dtype=object)


def model_features(contract: Contract) -> list[str]:
    """The feature columns a model sees, in contract order (see :attr:`Contract.features`)."""
    return [spec.name for spec in contract.features]


def feature_frame(df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The contract's feature columns, in contract order, with model-ready dtypes.

    Numeric columns become float64 (NaN for nulls); string and boolean columns become
    object columns of ``str`` with nulls as :data:`MISSING`. Extra columns are dropped.

    >>> from loopml.data.contract import ColumnSpec, Contract
    >>> c = Contract(rows=2, target="y", task="regression", columns=(
    ...     ColumnSpec(name="a", type="integer", nullable=True, null_rate=0.5, n_unique=1),
    ...     ColumnSpec(name="y", type="float", role="target", nullable=False,
    ...                null_rate=0.0, n_unique=2)))
    >>> feature_frame(pd.DataFrame({"a": [1, None], "y": [0.1, 0.2]}), c)["a"].tolist()
    [1.0, nan]
    """
    names = model_features(contract)
    missing = [name for name in names if name not in df.columns]
    if missing:
        raise ContractError(
            f"the table lacks {len(missing)} feature column(s) the model needs",
            detail="missing: " + ", ".join(missing),
            fix="add the columns to the input, or retrain with an updated contract",
        )
    if not names:
        raise ContractError(
            "the contract has no usable feature columns",
            detail="only numeric, string and boolean features can be used",
            fix="mark at least one column as a feature in the contract",
        )
    columns = {
        spec.name: _numeric(df[spec.name]) if spec.is_numeric else _categorical(df[spec.name], spec)
        for spec in contract.features
    }
    return pd.DataFrame(columns, index=df.index)


def _numeric(series: pd.Series[Any]) -> pd.Series[float]:
    if series.dtype == np.float64:
        return series.astype(np.float64)
    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype("Float64")
    converted = pd.to_numeric(series, errors="coerce")
    broken = converted.isna() & series.notna()
    if broken.any():
        examples = ", ".join(repr(v) for v in series[broken].unique()[:5])
        raise ContractError(
            f"column {series.name!r} should be numeric but holds {int(broken.sum())} "
            "value(s) that are not numbers",
            detail=f"examples: {examples}",
            fix="fix the data upstream, or run 'loopml contract update' if the type changed",
        )
    values = np.asarray(converted.to_numpy(dtype=np.float64, na_value=np.nan))
    return pd.Series(values, index=series.index, name=series.name, dtype=np.float64)


def _categorical(series: pd.Series[Any], spec: ColumnSpec) -> pd.Series[Any]:
    """Category keys exactly as the contract and validation spell them (``1.0`` -> ``"1"``,
    ``"true"`` -> ``"True"`` in a boolean column), nulls as :data:`MISSING`."""
    present = series.notna().to_numpy()
    keys = boolean_keys(series) if spec.type == "boolean" else category_keys(series)
    raw = series[present].astype(str).to_numpy(dtype=object)
    readable = keys.notna().to_numpy()
    values = np.full(len(series), MISSING, dtype=object)
    values[np.flatnonzero(present)] = np.where(readable, keys.to_numpy(dtype=object), raw)
    return pd.Series(values, index=series.index, name=series.name, dtype=object)


def category_levels(
    frame: pd.DataFrame, contract: Contract, max_categories: int = MAX_CATEGORIES
) -> dict[str, list[str]]:
    """The most frequent values of each categorical feature in ``frame`` (a feature frame).

    Ties are broken by value so the result is deterministic.
    """
    levels: dict[str, list[str]] = {}
    for name in contract.categorical_features:
        values = frame[name].dropna().astype(str)
        counts = values[values != MISSING].value_counts()
        ranked = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
        levels[name] = [str(value) for value, _ in ranked[:max_categories]]
    return levels


def _contract_levels(contract: Contract, max_categories: int) -> dict[str, list[str]]:
    levels: dict[str, list[str]] = {}
    for name in contract.categorical_features:
        cats = contract.column(name).categories
        if not cats:
            raise ContractError(
                f"column {name!r} has no categories in the contract",
                fix="pass levels learned from the training data (category_levels)",
            )
        ranked = sorted(cats.items(), key=lambda kv: (-kv[1], kv[0]))
        levels[name] = [value for value, _ in ranked[:max_categories]]
    return levels


def build_preprocessor(
    contract: Contract,
    *,
    scale: bool,
    levels: Mapping[str, Sequence[str]] | None = None,
    max_categories: int = MAX_CATEGORIES,
) -> ColumnTransformer:
    """The feature transformer: impute (+ scale) numeric columns, one-hot categorical ones.

    It expects a frame made by :func:`feature_frame` (nulls in categorical columns already
    written as :data:`MISSING`).

    ``levels`` gives the one-hot categories per categorical column (see
    :func:`category_levels`); by default the contract's most frequent categories are used.
    ``scale=True`` adds a :class:`StandardScaler` to numeric columns, for linear models.
    """
    transformers: list[tuple[str, Any, list[str]]] = []
    numeric = contract.numeric_features
    categorical = contract.categorical_features
    if numeric:
        steps: list[tuple[str, Any]] = [
            ("float32", Float32()),
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ]
        if scale:
            steps.append(("scale", StandardScaler()))
        transformers.append(("num", Pipeline(steps), numeric))
    if categorical:
        chosen = _contract_levels(contract, max_categories) if levels is None else levels
        # The null marker always gets its own column, even if no null was seen in training.
        categories = [
            np.array(sorted({*map(str, chosen.get(name, ())), MISSING}), dtype=object)
            for name in categorical
        ]
        encoder = OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False)
        transformers.append(("cat", encoder, categorical))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


def build_pipeline(
    contract: Contract,
    estimator: Any,
    *,
    scale: bool,
    levels: Mapping[str, Sequence[str]] | None = None,
) -> Pipeline:
    """``[("features", preprocessor), ("model", estimator)]``, unfitted."""
    preprocessor = build_preprocessor(contract, scale=scale, levels=levels)
    return Pipeline([("features", preprocessor), ("model", estimator)])


def output_sources(preprocessor: ColumnTransformer) -> list[str]:
    """For each output column of a fitted preprocessor, the feature it came from."""
    sources: list[str] = []
    for name, transformer, columns in preprocessor.transformers_:
        if name == "num":
            sources.extend(columns)
        elif name == "cat":
            for column, cats in zip(columns, transformer.categories_, strict=True):
                sources.extend([column] * len(cats))
    return sources


def feature_importance(
    pipeline: Pipeline,
    contract: Contract,
    X: pd.DataFrame | None = None,
    y: np.ndarray[Any, Any] | None = None,
    seed: int = 0,
) -> pd.Series[float]:
    """Importance per original feature, summing to 1, largest first.

    Uses the model's own importances (``feature_importances_`` of tree models, ``|coef_|``
    of linear models, summed over classes), with one-hot columns summed back to their
    source column. A model with neither (dummy, HistGradientBoosting) gets a permutation
    importance on at most 2,000 rows of ``X`` / ``y`` when they are given. An empty
    series means no importance could be computed (or every importance is zero).
    """
    model = pipeline.named_steps["model"]
    native = _native_importance(model)
    if native is not None:
        sources = output_sources(pipeline.named_steps["features"])
        raw = pd.Series(native, index=sources, dtype=np.float64).groupby(level=0, sort=False)
        per_feature = raw.sum()
    elif X is not None and y is not None:
        per_feature = _permutation(pipeline, contract, X, y, seed)
    else:
        return pd.Series(dtype=np.float64)
    per_feature = per_feature.clip(lower=0.0)
    total = float(per_feature.sum())
    if not np.isfinite(total) or total <= 0.0:
        return pd.Series(dtype=np.float64)
    ordered = (per_feature / total).reindex(model_features(contract)).fillna(0.0)
    return ordered.sort_values(ascending=False, kind="mergesort")


def _native_importance(model: Any) -> np.ndarray[Any, Any] | None:
    importances = getattr(model, "feature_importances_", None)
    if importances is not None:
        return np.asarray(importances, dtype=np.float64)
    coef = getattr(model, "coef_", None)
    if coef is not None:
        values = np.abs(np.asarray(coef, dtype=np.float64))
        return values.sum(axis=0) if values.ndim == 2 else values
    return None


def _permutation(
    pipeline: Pipeline, contract: Contract, X: pd.DataFrame, y: np.ndarray[Any, Any], seed: int
) -> pd.Series[float]:
    frame = feature_frame(X, contract)
    target = np.asarray(y)
    if len(frame) > PERMUTATION_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(frame), PERMUTATION_ROWS, False))
        frame, target = frame.iloc[rows], target[rows]
    result = permutation_importance(pipeline, frame, target, n_repeats=3, random_state=seed)
    return pd.Series(result.importances_mean, index=frame.columns, dtype=np.float64)
