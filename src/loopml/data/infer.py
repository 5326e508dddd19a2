"""Inferring the data contract from the training table, and checking it can be trained on.

Types are read from the pandas dtypes, with one addition: a text column whose values are
nearly all (>= 95 %) date or timestamp strings, e.g. ISO 8601 ``2024-01-31T12:00:00Z``,
is a ``datetime`` column (:func:`parse_datetime` reads it). Floats stay ``float`` even when
their values happen to be whole numbers, so later fractional values are not rejected.

Categories (string / boolean columns) keep the :data:`MAX_CATEGORIES` most frequent values
with their frequency among non-null rows; a column with more distinct values than that
has ``len(categories) < n_unique``, and validation then does not flag unseen values. The
target of a classification task always keeps every class. Category keys are made by
:func:`loopml.data.cells.category_keys`; use it whenever values must be matched against a
contract (e.g. turning a target column into class labels), so ``1.0`` read from a CSV with
gaps and ``1`` read from a full one are the same class ``"1"``.

>>> import pandas as pd
>>> df = pd.DataFrame({"id": ["a", "b", "c", "d"], "x": [1.5, 2.0, None, 4.0], "y": [0, 1, 0, 1]})
>>> contract = infer_contract(df, target="y", task="binary", entity_key="id", time_column=None)
>>> contract.target_spec.categories
{'0': 0.5, '1': 0.5}
>>> contract.column("x").null_rate, contract.column("x").max
(0.25, 4.0)
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from loopml.data.cells import category_keys
from loopml.data.contract import ColumnSpec, ColumnType, Contract, Role
from loopml.errors import ConfigError, ContractError

MAX_CATEGORIES = 200
DATETIME_SHARE = 0.95
_DATETIME_SAMPLE = 500
_DATE_LIKE = re.compile(
    r"\s*(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{4}|\d{4}/\d{1,2}/\d{1,2})"
    r"([T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2}|UTC)?\s*"
)
# Tried in order after ISO 8601; month-first before day-first, as pandas does.
_DATE_FORMATS = (
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%Y/%m/%d",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M",
)
_KEY_NAME = re.compile(
    r"(?i:^(id|key|uuid|guid)$|[_\-\s.](id|key|uuid|guid)$)|[a-z0-9](Id|ID|Key|UUID)$"
)
_TIME_NAMES = ("ts", "time", "timestamp", "date", "datetime", "created_at", "event_time")
_TIME_NAME = re.compile(r"(?i)(time|date|_at$|_ts$|^ts_)")
_CLASSIFICATION = frozenset({"binary", "multiclass"})
_MAX_CLASSES = 20


def parse_datetime(series: pd.Series) -> pd.Series:
    """The series as datetimes; values that do not parse become ``NaT``.

    Datetime dtypes pass through. Text is read as ISO 8601 first, then with the first of
    a few common formats (``%m/%d/%Y``, ``%d/%m/%Y`` ...) that reads more values. Mixed
    time zones are converted to UTC.
    """
    if ptypes.is_datetime64_any_dtype(series.dtype):
        return series
    if not (ptypes.is_string_dtype(series.dtype) or ptypes.is_object_dtype(series.dtype)):
        return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]")
    text = series.where(series.notna(), None).astype(object)
    best = _to_datetime(text, "ISO8601")
    target = int(series.notna().sum())
    for fmt in _DATE_FORMATS:
        if int(best.notna().sum()) >= target:
            break
        candidate = _to_datetime(text, fmt)
        if int(candidate.notna().sum()) > int(best.notna().sum()):
            best = candidate
    return best


def _to_datetime(text: pd.Series, fmt: str) -> pd.Series:
    try:
        return pd.to_datetime(text, format=fmt, errors="coerce")
    except ValueError:  # mixed UTC offsets
        return pd.to_datetime(text, format=fmt, errors="coerce", utc=True)


def looks_like_datetime(series: pd.Series) -> bool:
    """True when >= 95 % of a text column's distinct non-null values are dates/timestamps."""
    if not (ptypes.is_string_dtype(series.dtype) or ptypes.is_object_dtype(series.dtype)):
        return False
    values = pd.Series(series.dropna().unique()[:_DATETIME_SAMPLE], dtype=object)
    if len(values) == 0 or not all(isinstance(v, str) for v in values):
        return False
    # The shape test stops ISO 8601's lenient reading of bare years ("2021") or numbers.
    shaped = values.map(lambda v: bool(_DATE_LIKE.fullmatch(v)))
    if shaped.mean() < DATETIME_SHARE:
        return False
    return bool(parse_datetime(values).notna().mean() >= DATETIME_SHARE)


def column_type(series: pd.Series) -> ColumnType:
    """The contract type of a column: integer, float, boolean, string or datetime."""
    dtype = series.dtype
    if ptypes.is_bool_dtype(dtype):
        return "boolean"
    if ptypes.is_integer_dtype(dtype):
        return "integer"
    if ptypes.is_float_dtype(dtype):
        return "float"
    if ptypes.is_datetime64_any_dtype(dtype):
        return "datetime"
    if ptypes.is_object_dtype(dtype):
        values = series.dropna()
        if len(values) and values.map(lambda v: isinstance(v, bool | np.bool_)).all():
            return "boolean"  # a CSV column of True/False with gaps reads as object
    return "datetime" if looks_like_datetime(series) else "string"


def _categories(series: pd.Series, limit: int | None) -> dict[str, float]:
    keys = category_keys(series)
    if len(keys) == 0:
        return {}
    counts = keys.value_counts()
    # Sort by count then by key, so ties are broken the same way on every run.
    ordered = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))
    if limit is not None:
        ordered = ordered[:limit]
    total = len(keys)
    return {str(key): int(count) / total for key, count in ordered}


def _column_spec(series: pd.Series, name: str, role: Role, task: str) -> ColumnSpec:
    kind = column_type(series)
    rows = len(series)
    nulls = int(series.isna().sum())
    n_unique = int(series.nunique(dropna=True))
    spec: dict[str, object] = {
        "name": name,
        "type": kind,
        "role": role,
        "nullable": nulls > 0,
        "null_rate": nulls / rows if rows else 0.0,
        "n_unique": n_unique,
        "unique": n_unique > 0 and n_unique == rows - nulls,
    }
    if kind in ("integer", "float"):
        numbers = series.to_numpy(dtype=float, na_value=np.nan)
        finite = numbers[np.isfinite(numbers)]
        if finite.size:
            spec["min"], spec["max"] = float(finite.min()), float(finite.max())
    if role == "target" and task in _CLASSIFICATION:
        spec["categories"] = _categories(series, None)
    elif kind in ("string", "boolean") and role != "key":  # every key is new: no categories
        spec["categories"] = _categories(series, MAX_CATEGORIES)
    return ColumnSpec.model_validate(spec)


def infer_contract(
    df: pd.DataFrame,
    *,
    target: str,
    task: str,
    entity_key: str | None,
    time_column: str | None,
    drop: Sequence[str] = (),
    positive_class: str | None = None,
) -> Contract:
    """Infer the contract of a training table: each column's type, role and statistics.

    Raises :class:`ContractError` when a named column is not in the table and
    :class:`ConfigError` when the roles contradict each other.
    """
    columns = [str(c) for c in df.columns]
    for setting, name in (
        ("data.target", target),
        ("data.entity_key", entity_key),
        ("data.time_column", time_column),
        *(("data.drop", d) for d in drop),
    ):
        if name is not None and name not in columns:
            raise missing_column_error(name, columns, setting)
    if target in drop:
        raise ConfigError(f"data.drop lists the target '{target}'", fix="remove it from data.drop")
    for setting, name in (("data.entity_key", entity_key), ("data.time_column", time_column)):
        if name == target:
            raise ConfigError(
                f"{setting} is the target '{target}'",
                fix=f"choose another column for {setting}, or leave it unset",
            )
    roles: dict[str, Role] = {name: "dropped" for name in drop}
    if time_column is not None:
        roles[time_column] = "time"
    if entity_key is not None:
        roles[entity_key] = "key"
    roles[target] = "target"
    specs = tuple(
        _column_spec(df[original], name, roles.get(name, "feature"), task)
        for original, name in zip(df.columns, columns, strict=True)
    )
    _check_positive_class(positive_class, task, specs[columns.index(target)])
    return Contract.model_validate(
        {
            "rows": len(df),
            "target": target,
            "task": task,
            "entity_key": entity_key,
            "time_column": time_column,
            "positive_class": positive_class,
            "columns": specs,
        }
    )


def _check_positive_class(positive: str | None, task: str, target: ColumnSpec) -> None:
    if positive is None:
        return
    known = sorted(target.categories or {})
    if task != "binary" or positive not in known:
        raise ContractError(
            f"positive class {positive!r} is not a class of the binary target {target.name!r}",
            detail=f"task: {task}; classes: {', '.join(known) or 'none'}",
            fix="set data.positive_class (or --positive) to one of the classes, or unset it",
        )


def missing_column_error(name: str, columns: Sequence[str], setting: str) -> ContractError:
    """A ContractError for a column the project names but the table lacks."""
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
    close += [c for c in columns if c.lower() == name.lower() and c not in close]
    hint = f"; close matches: {', '.join(close)}" if close else ""
    return ContractError(
        f"column '{name}' ({setting}) is not in the table",
        detail=f"columns: {', '.join(columns)}{hint}",
        fix=f"set {setting} to one of the table's columns"
        + (f", e.g. '{close[0]}'" if close else ""),
    )


def guess_task(series: pd.Series) -> tuple[str, str]:
    """Guess the task from the target column: ``(task, reason)``.

    >>> guess_task(pd.Series([0, 1, 1, 0]))
    ('binary', 'the target has 2 distinct values (0, 1)')
    """
    values = series.dropna()
    n = int(values.nunique())
    if n <= 2:
        shown = ", ".join(sorted(category_keys(values).unique()))
        return "binary", f"the target has {n} distinct value{'s' * (n != 1)} ({shown})"
    kind = column_type(values)
    if kind in ("string", "boolean", "datetime"):
        return "multiclass", f"the target holds {kind} values with {n} classes"
    numbers = values.to_numpy(dtype=float)
    numbers = numbers[np.isfinite(numbers)]
    whole = kind == "integer" or bool(np.all(numbers == np.floor(numbers)))
    if whole and n <= _MAX_CLASSES and n * 10 <= len(values):
        return "multiclass", f"the target has {n} distinct whole numbers in {len(values):,} rows"
    if whole:
        return "regression", f"the target has {n} distinct whole numbers, too many for classes"
    return "regression", f"the target holds fractional numbers ({n} distinct values)"


def guess_entity_key(df: pd.DataFrame, exclude: Sequence[str] = ()) -> str | None:
    """A unique, non-null column that looks like an id, or None.

    Id-like names (``id``, ``user_id``, ``customerId``, ``order_key``) come first; a unique
    text column of another name is the fallback.
    """
    best: tuple[int, int, str] | None = None
    for position, (name, series) in enumerate(df.items()):
        label = str(name)
        if label in exclude or len(series) < 2 or series.isna().any():
            continue
        kind = column_type(series)
        if kind not in ("integer", "string") or series.nunique() != len(series):
            continue
        rank = 0 if _KEY_NAME.search(label) else (1 if kind == "string" else None)
        if rank is not None and (best is None or (rank, position) < best[:2]):
            best = (rank, position, label)
    return best[2] if best else None


def guess_identifiers(df: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Id-named text or integer columns with many distinct values (``user_id``, ``session_key``).

    A model cannot generalise from an identifier — it memorises the training rows — so
    ``loopml init`` proposes to drop these and says so.
    """
    found: list[str] = []
    for name, series in df.items():
        label = str(name)
        if label in exclude or not _KEY_NAME.search(label):
            continue
        if column_type(series) in ("integer", "string") and series.nunique() > MAX_CATEGORIES:
            found.append(label)
    return found


def guess_time_column(df: pd.DataFrame, exclude: Sequence[str] = ()) -> str | None:
    """A datetime column (or text that parses as one), preferring names like ``ts``, ``date``."""
    best: tuple[int, int, str] | None = None
    for position, (name, series) in enumerate(df.items()):
        label = str(name)
        if label in exclude or column_type(series) != "datetime":
            continue
        rank = 0 if label.lower() in _TIME_NAMES else (1 if _TIME_NAME.search(label) else 2)
        if best is None or (rank, position) < best[:2]:
            best = (rank, position, label)
    return best[2] if best else None


def count_null_targets(df: pd.DataFrame, target: str) -> int:
    """Rows whose target is null; training drops them (report the count, not an error)."""
    return int(df[target].isna().sum()) if target in df.columns else 0


def check_trainable(df: pd.DataFrame, contract: Contract) -> None:
    """Raise :class:`ContractError` when a model cannot be trained on this table.

    Checked: the target exists, is not all null, suits the task (two or more classes for
    classification, at most two for binary, numbers for regression); no feature column
    is all null; at least one feature is left. Rows with a null target are not an error:
    training drops them (see :func:`count_null_targets`).
    """
    target = contract.target
    columns = [str(c) for c in df.columns]
    if target not in columns:
        raise missing_column_error(target, columns, "data.target")
    labels = df[target]
    if int(labels.notna().sum()) == 0:
        raise ContractError(
            f"target '{target}' is null in all {len(df):,} rows",
            fix="check data.target names the label column, and the export",
        )
    _check_target_values(labels, contract)
    features = [spec.name for spec in contract.features if spec.name in columns]
    empty = [name for name in features if int(df[name].notna().sum()) == 0]
    if empty:
        shown = ", ".join(f"'{name}'" for name in empty)
        raise ContractError(
            f"feature column{'s' * (len(empty) > 1)} {shown} "
            f"{'are' if len(empty) > 1 else 'is'} null in all {len(df):,} rows",
            fix=f"drop it: 'loopml init ... --drop {empty[0]}', or add {shown} to data.drop "
            "in loopml.yaml and run 'loopml contract update'",
        )
    if not features:
        raise ContractError(
            "no feature columns left to train on",
            detail=f"columns: {', '.join(columns)}; target '{target}', key "
            f"'{contract.entity_key}', time '{contract.time_column}'",
            fix="remove columns from data.drop, or add feature columns to the table",
        )


def _check_target_values(labels: pd.Series, contract: Contract) -> None:
    target, task = contract.target, contract.task
    rows = int(labels.notna().sum())
    if task == "regression":
        if column_type(labels) not in ("integer", "float"):
            raise ContractError(
                f"target '{target}' holds {column_type(labels)} values; regression needs numbers",
                fix="set data.task to binary or multiclass, or choose a numeric target",
            )
        return
    classes = sorted(category_keys(labels).unique())
    if len(classes) < 2:
        raise ContractError(
            f"target '{target}' has a single class '{classes[0]}' in {rows:,} rows; "
            "a classifier needs at least two",
            fix="check the export's filter, or choose another target",
        )
    if task == "binary" and len(classes) > 2:
        shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
        raise ContractError(
            f"target '{target}' has {len(classes)} classes but data.task is binary",
            detail=f"classes: {shown}",
            fix="set data.task: multiclass, or map the target to two classes",
        )
