"""Splitting a table for training: the holdout, the tuning validation part, target encoding.

Classification splits are stratified by hand rather than with ``train_test_split`` so that
every class with at least two rows lands on *both* sides, whatever its size; a model whose
training part lacks a class would predict a narrower set of probabilities than the
contract promises.

Exact copies — rows with the same features and target (:func:`copy_groups`) — stay on one
side of a random split, the holdout's and the tuning validation's alike: a copy on both
sides would let the holdout score rows the model trained on, and flatter it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from loopml.config import SplitConfig
from loopml.data.contract import Contract
from loopml.data.infer import parse_datetime
from loopml.data.severity import UNKNOWN_CLASS_FIX, unknown_classes
from loopml.errors import ConfigError, ContractError
from loopml.features.pipeline import feature_frame

IntArray = np.ndarray[Any, np.dtype[np.int64]]


def encode_target(series: pd.Series[Any], contract: Contract) -> np.ndarray[Any, Any]:
    """The target as model labels: class indices into ``contract.classes``, or floats.

    An integral float label (``1.0``, as a column with nulls is often read) also matches
    the class ``"1"``.

    >>> from loopml.data.contract import ColumnSpec, Contract
    >>> c = Contract(rows=2, target="y", task="binary", columns=(ColumnSpec(
    ...     name="y", type="string", role="target", nullable=False, null_rate=0.0,
    ...     n_unique=2, categories={"no": 0.5, "yes": 0.5}),))
    >>> encode_target(pd.Series(["yes", "no", "yes"]), c).tolist()
    [1, 0, 1]
    """
    nulls = int(series.isna().sum())
    if nulls:
        raise ContractError(
            f"target {contract.target!r} has {nulls} null value(s)",
            fix="drop unlabelled rows before training (split_holdout does this)",
        )
    if contract.task == "regression":
        return _numeric_target(series, contract.target)
    index = {label: i for i, label in enumerate(contract.classes)}
    codes = {value: _class_index(value, index) for value in series.unique()}
    unknown = sorted(str(value) for value, code in codes.items() if code < 0)
    if unknown:
        raise ContractError(  # the words of loopml validate's unknown_class
            unknown_classes(contract.target, len(unknown)),
            detail=f"unknown: {', '.join(unknown[:10])}; known: {', '.join(contract.classes)}",
            fix=UNKNOWN_CLASS_FIX,
        )
    return np.asarray(series.map(codes).to_numpy(dtype=np.int64))


def _class_index(value: Any, index: dict[str, int]) -> int:
    label = str(value)
    if label in index:
        return index[label]
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return index.get(str(int(value)), -1)
    return -1


def _numeric_target(series: pd.Series[Any], name: str) -> np.ndarray[Any, Any]:
    converted = pd.to_numeric(series, errors="coerce")
    broken = int(converted.isna().sum())
    if broken:
        examples = ", ".join(repr(v) for v in series[converted.isna()].unique()[:5])
        raise ContractError(
            f"regression target {name!r} holds {broken} value(s) that are not numbers",
            detail=f"examples: {examples}",
            fix="clean the target column, or choose a classification task",
        )
    return np.asarray(converted.to_numpy(dtype=np.float64))


def split_holdout(
    df: pd.DataFrame, contract: Contract, split: SplitConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a table into (train, holdout); rows with a null target are dropped first.

    ``strategy: random`` draws the holdout at random (stratified by target for
    classification, seeded by ``split.seed``); ``strategy: time`` sorts by the contract's
    time column and holds out the latest ``split.holdout`` fraction (rows with a null time
    sort first, into the training part). Original row labels are kept.
    """
    if contract.target not in df.columns:
        raise ContractError(
            f"the table has no target column {contract.target!r}",
            fix="check data.target in loopml.yaml against the table's columns",
        )
    labelled = df[df[contract.target].notna()]
    if split.strategy == "time":
        train, holdout = _time_split(labelled, contract, split.holdout)
    else:
        train, holdout = _random_split(labelled, contract, split)
    for part, rows in (("training", train), ("holdout", holdout)):
        if rows.empty:
            raise ContractError(
                f"the {part} part of the split would be empty",
                detail=f"{len(labelled)} labelled row(s), holdout fraction {split.holdout}",
                fix="use a table with more labelled rows, or change split.holdout",
            )
    return train, holdout


def copy_groups(frame: pd.DataFrame) -> IntArray:
    """A group number per row; rows holding the same values in every column share one.

    >>> copy_groups(pd.DataFrame({"a": [1, 2, 1], "y": ["x", "x", "x"]})).tolist()
    [0, 1, 0]
    """
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    groups, _ = pd.factorize(hashed)
    return np.asarray(groups, dtype=np.int64)


def contract_copies(df: pd.DataFrame, contract: Contract) -> IntArray:
    """:func:`copy_groups` over the contract's features and target (not the key, time or
    dropped columns: two rows that differ only there are the same example twice)."""
    groups, _ = pd.factorize(row_hashes(df, contract))
    return np.asarray(groups, dtype=np.int64)


def row_hashes(df: pd.DataFrame, contract: Contract) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """A 64-bit hash per row of its features (as the model reads them) and target, the
    same for the same example whatever file it came from: what ``loopml train`` stores of
    its training rows, so a promotion can compare two versions on rows neither trained on."""
    names = [spec.name for spec in contract.features if spec.name in df.columns]
    frame = feature_frame(df[names], _only(contract, names)).astype(str) if names else df[[]]
    if contract.target in df.columns:
        frame = frame.assign(__target=df[contract.target].astype(str).to_numpy())
    return np.asarray(pd.util.hash_pandas_object(frame, index=False).to_numpy(), np.uint64)


def _only(contract: Contract, names: list[str]) -> Contract:
    keep = set(names) | {contract.target}
    return contract.model_copy(
        update={"columns": tuple(c for c in contract.columns if c.name in keep)}
    )


def _random_split(
    df: pd.DataFrame, contract: Contract, split: SplitConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    groups = contract_copies(df, contract)
    first = _first_rows(groups)
    if len(first) < len(df):  # copies: split one row per group, then bring the copies along
        train, _ = _random_split(df.iloc[first].reset_index(drop=True), contract, split)
        keep = np.isin(groups, groups[first[train.index.to_numpy()]])
        return df.iloc[np.flatnonzero(keep)], df.iloc[np.flatnonzero(~keep)]
    rng = np.random.default_rng(split.seed)
    if contract.task == "regression":
        order = rng.permutation(len(df))
        n_holdout = math.ceil(len(df) * split.holdout) if len(df) > 1 else 0
        return df.iloc[np.sort(order[n_holdout:])], df.iloc[np.sort(order[:n_holdout])]
    labels = df[contract.target].astype(str).to_numpy()
    values, counts = np.unique(labels, return_counts=True)
    if len(values) > 0 and counts.min() < 2:
        rare = values[counts < 2]
        raise ContractError(
            f"cannot stratify the split: class {rare[0]!r} has {counts.min()} labelled row",
            detail=f"classes with fewer than 2 rows: {', '.join(map(str, rare[:10]))}",
            fix="add rows of these classes, drop them, or merge them with a related class",
        )
    train_idx, holdout_idx = stratified_indices(labels, split.holdout, rng)
    return df.iloc[train_idx], df.iloc[holdout_idx]


def _first_rows(groups: IntArray) -> IntArray:
    """The position of each group's first row, in row order."""
    _, first = np.unique(groups, return_index=True)
    return np.sort(first)


def _time_split(
    df: pd.DataFrame, contract: Contract, fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    column = contract.time_column
    if column is None:
        raise ConfigError(
            "split.strategy is 'time' but the data contract has no time column",
            fix="set data.time_column in loopml.yaml and run 'loopml contract update', "
            "or use split.strategy: random",
        )
    if column not in df.columns:
        raise ContractError(
            f"the table has no time column {column!r}",
            fix="add the column, or change data.time_column in loopml.yaml",
        )
    keys = _sortable_time(df[column]).reset_index(drop=True)
    # Unknown times sort first so they never reach the holdout.
    order = keys.sort_values(kind="stable", na_position="first").index.to_numpy()
    n_holdout = math.ceil(len(df) * fraction) if len(df) > 1 else 0
    cut = len(df) - n_holdout
    return df.iloc[order[:cut]], df.iloc[order[cut:]]


def _sortable_time(series: pd.Series[Any]) -> pd.Series[Any]:
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series
    parsed = parse_datetime(series)  # the same reading of dates as the contract's
    broken = parsed.isna() & series.notna()
    if broken.any():
        examples = ", ".join(repr(v) for v in series[broken].unique()[:5])
        raise ContractError(
            f"time column {series.name!r} holds {int(broken.sum())} value(s) that are not times",
            detail=f"examples: {examples}",
            fix="fix the values, or use split.strategy: random",
        )
    return parsed


def stratified_indices(
    labels: np.ndarray[Any, Any], fraction: float, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """(kept, drawn) row positions, drawing ``fraction`` of each class.

    A class with two rows or more keeps at least one row on each side; a single-row class
    stays entirely in the kept part.
    """
    kept: list[IntArray] = []
    drawn: list[IntArray] = []
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        n_drawn = 0 if len(rows) < 2 else min(max(round(len(rows) * fraction), 1), len(rows) - 1)
        drawn.append(rows[:n_drawn])
        kept.append(rows[n_drawn:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(drawn))


def split_validation(
    X: pd.DataFrame,
    y: np.ndarray[Any, Any],
    task: str,
    fraction: float = 0.2,
    seed: int = 0,
    *,
    ordered: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(X_train, X_valid, y_train, y_valid) for tuning; stratified for classification.

    ``ordered``: the rows are in time order (a time split's training part) and the last
    ``fraction`` validates, so tuning rewards what generalises forward in time.
    """
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    rng = np.random.default_rng(seed)
    if ordered and len(X) > 1:
        cut = len(X) - min(max(round(len(X) * fraction), 1), len(X) - 1)
        return X.iloc[:cut], X.iloc[cut:], y[:cut], y[cut:]
    groups = copy_groups(X.astype(str).assign(__target=np.asarray(y).astype(str)))
    first = _first_rows(groups)
    if len(first) < len(X):  # copies stay on one side (see the module doc)
        kept, _ = _validation_rows(task, np.asarray(y)[first], fraction, rng)
        train = np.isin(groups, groups[first[kept]])
        return X.iloc[np.flatnonzero(train)], X.iloc[np.flatnonzero(~train)], y[train], y[~train]
    train_idx, valid_idx = _validation_rows(task, np.asarray(y), fraction, rng)
    return X.iloc[train_idx], X.iloc[valid_idx], y[train_idx], y[valid_idx]


def _validation_rows(
    task: str, y: np.ndarray[Any, Any], fraction: float, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    n = len(y)
    if task == "regression":
        order = rng.permutation(n)
        n_valid = min(max(round(n * fraction), 1), n - 1) if n > 1 else 0
        return np.sort(order[n_valid:]), np.sort(order[:n_valid])
    return stratified_indices(y, fraction, rng)


def sample_rows(
    X: pd.DataFrame, y: np.ndarray[Any, Any], task: str, max_rows: int, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    """At most ``max_rows`` rows, stratified for classification (every class kept)."""
    if len(X) <= max_rows:
        return X, y
    rng = np.random.default_rng(seed)
    if task == "regression":
        rows = np.sort(rng.choice(len(X), size=max_rows, replace=False))
    else:
        _, rows = stratified_indices(np.asarray(y), max_rows / len(X), rng)
        rows = _with_every_class(np.asarray(y), rows, rng)
    return X.iloc[rows], y[rows]


def _with_every_class(
    labels: np.ndarray[Any, Any], rows: IntArray, rng: np.random.Generator
) -> IntArray:
    # stratified_indices leaves single-row classes out of the drawn part; add them back.
    missing = np.setdiff1d(np.unique(labels), labels[rows])
    extra = [rng.choice(np.flatnonzero(labels == value), size=1) for value in missing]
    return np.sort(np.concatenate([rows, *extra])) if extra else rows
