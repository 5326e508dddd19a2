"""Validating a decoded request against the served model's data contract.

:func:`validate` turns a :class:`~loopml.serve.table.Table` into *model-ready arrays*: one
1-D array per contract feature, in contract order — numeric features float64 with NaN
for null, string and boolean features ``object`` arrays of ``str`` spelled exactly as
:func:`loopml.features.pipeline.feature_frame` spells them (nulls as ``MISSING``).

Each failure is an :class:`~loopml.errors.InputError` naming field, row and reason:

================== ==== ==========================================================
error              HTTP when
================== ==== ==========================================================
empty              422  the request has no rows
too_many_rows      413  more rows than ``max_rows``
missing_field      422  a feature is absent (``row`` None), or one record lacks it
extra_field        422  a field the model does not know (``row``: the first record
                        holding it); the *target* too (labels go to ``/feedback``).
                        The entity key, the time column, dropped and non-input
                        contract columns are accepted and ignored.
wrong_type         422  a value of the wrong type (below), a fractional number in an
                        integer feature, or any object / array
null_not_allowed   422  null (or NaN) in a feature the contract says is never null
non_finite         422  ``inf`` / ``-inf`` (or an integer beyond float range)
================== ==== ==========================================================

Types. NaN in a numeric feature *is* null, as in pandas and in training. JSON values
(``origin="json"``) must have the feature's type: numbers (not booleans, not text) for
numeric features, strings for string features; boolean features take ``true`` /
``false`` and the spellings of :data:`loopml.data.infer.BOOL_TEXT` (``"true"``, ``"0"``,
``1``, ``1.0`` ...). Frames (``origin="frame"``, typed by a file reader) are read the way
``feature_frame`` reads them: numeric text is a number and any scalar is a string key —
only stricter where ``loopml validate`` is (a fraction in an integer feature, a boolean
feature's unreadable text). Unseen categories are not errors: they are served (the model
encodes them as unknown) and counted in :attr:`ModelInput.unseen`, for features whose
contract kept every category (as ``loopml validate`` does). The entity key may be a
string, an integer or a whole float, or null (or absent); it comes back as text.

``reject_rows=False`` (serving) raises the first failure: fields first, then the lowest
row, then contract order (the entity key last). ``reject_rows=True`` (batch scoring)
raises only when a feature column is absent; every bad row becomes one ``InputError`` in
:attr:`ModelInput.rejected`, unknown columns are ignored (listed in
:attr:`ModelInput.ignored`), and the features hold the kept rows only.

JSON tables up to :data:`SMALL_ROWS` rows take a per-value loop (one record costs ~15 µs
of CPU for a 15-feature contract); larger ones and every frame are checked a column at a
time with NumPy / pandas (~4M rows/s for the feed table). On JSON tables both paths give
identical results (a property test holds them to it).

>>> from loopml.data.contract import ColumnSpec, Contract
>>> c = Contract(rows=2, target="y", task="regression", columns=(
...     ColumnSpec(name="a", type="integer", nullable=True, null_rate=0.5, n_unique=1),
...     ColumnSpec(name="y", type="float", role="target", nullable=False,
...                null_rate=0.0, n_unique=2)))
>>> validate(Table.from_records([{"a": 3}, {"a": None}]), InputSchema.from_contract(c)).features
{'a': array([ 3., nan])}
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from math import isnan
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from loopml.data.cells import BOOL_TEXT, category_keys
from loopml.data.contract import ColumnSpec, Contract
from loopml.errors import InputError
from loopml.features.pipeline import MISSING
from loopml.serve.table import ABSENT, Column, Table, json_kind, truncate, value_at

Kind = Literal["numeric", "string", "boolean", "key"]
Method = Literal["auto", "loop", "vector"]
Array = np.ndarray[Any, Any]
SMALL_ROWS = 256
"""JSON tables up to this many rows take the per-value loop (measured: faster below ~300)."""
OK, WRONG_TYPE, NULL_NOT_ALLOWED, NON_FINITE, MISSING_FIELD = range(5)
NULL_OK = -1
"""Internal code of a null where null is allowed: fine, but not a category (not unseen)."""
CODES = ("ok", "wrong_type", "null_not_allowed", "non_finite", "missing_field")


@dataclass(frozen=True, slots=True)
class FeatureRule:
    """What one input field must hold. ``categories`` is the complete category set when
    the contract kept every category (unseen values are then counted), else None."""

    name: str
    kind: Kind
    type: str
    nullable: bool
    categories: frozenset[str] | None = None
    numeric: bool = field(init=False)
    integer: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "numeric", self.kind == "numeric")
        object.__setattr__(self, "integer", self.type == "integer")


@dataclass(frozen=True)
class InputSchema:
    """Everything :func:`validate` needs from a contract, computed once per version."""

    features: tuple[FeatureRule, ...]
    target: str
    entity_key: str | None
    ignored: frozenset[str]
    names: frozenset[str] = frozenset()
    known: frozenset[str] = frozenset()
    slots: tuple[int, ...] = ()
    """Each feature's row in its block (numeric or text) on the loop path."""

    @classmethod
    def from_contract(cls, contract: Contract) -> InputSchema:
        """The rules of a contract's features, in contract order."""
        rules = tuple(_rule(spec) for spec in contract.features)
        names = frozenset(rule.name for rule in rules)
        key = contract.entity_key
        ignored = frozenset(
            s.name
            for s in contract.columns
            if s.name not in names and s.role != "target" and s.name != key
        )
        numeric = [rule.kind == "numeric" for rule in rules]
        slots = tuple(
            sum(1 for other in numeric[:i] if other == kind) for i, kind in enumerate(numeric)
        )
        known = names | ignored | ({key} if key else frozenset())
        return cls(rules, contract.target, key, ignored, names, frozenset(known), slots)

    @property
    def key_rule(self) -> FeatureRule:
        return FeatureRule(self.entity_key or "", "key", "key", True)


def _rule(spec: ColumnSpec) -> FeatureRule:
    kind: Kind = "numeric" if spec.is_numeric else "string"
    if spec.type == "boolean":
        kind = "boolean"
    complete = bool(spec.categories) and len(spec.categories or {}) >= spec.n_unique
    categories = frozenset(spec.categories or {}) if complete else None
    return FeatureRule(spec.name, kind, spec.type, spec.nullable, categories)


@dataclass(frozen=True)
class ModelInput:
    """A validated request: model-ready arrays of the rows that will be scored."""

    features: dict[str, Array]
    n_rows: int
    unseen: dict[str, int]
    """feature -> scored rows holding a category the contract never saw (only counts > 0)."""
    rejected: list[InputError] = field(default_factory=list)
    kept: Array | None = None
    """Positions of the scored rows when rows were rejected; None means every row."""
    ignored: tuple[str, ...] = ()
    """Unknown columns that were ignored (``reject_rows=True`` only)."""
    keys: list[str | None] | pd.Series | None = field(default=None, repr=False)
    """The entity keys as read: a list (of the scored rows), or a frame's text column."""

    @cached_property
    def entity_keys(self) -> list[str | None] | None:
        """The entity key of each scored row as text; None without a key column.

        A frame's text column is turned into a list on first use only: a million keys
        cost a tenth of a second that batch scoring does not need to spend.
        """
        if self.keys is None or isinstance(self.keys, list):
            return self.keys
        values = cast(Any, self.keys).to_numpy(dtype=object, na_value=None)
        return list((values if self.kept is None else values[self.kept]).tolist())


def validate(
    table: Table,
    schema: InputSchema,
    *,
    reject_rows: bool = False,
    max_rows: int | None = None,
    method: Method = "auto",
) -> ModelInput:
    """Check a table against the schema: model-ready arrays, or :class:`InputError`.

    ``method`` forces the per-value loop or the column-wise path (for tests and
    benchmarks; both give the same result on JSON tables).
    """
    n = table.n_rows
    if n == 0:
        raise InputError("the request holds no rows; send at least one record", error="empty")
    if max_rows is not None and n > max_rows:
        raise InputError(
            f"{n:,} rows in one request; at most {max_rows:,} are accepted, so split it",
            error="too_many_rows",
            status=413,
        )
    ignored = _check_fields(table, schema, reject_rows)
    loop = method == "loop" or (method == "auto" and table.origin == "json" and n <= SMALL_ROWS)
    read = _read_loop(table, schema) if loop else _read_vector(table, schema)
    return _finish(read, table, schema, reject_rows, ignored)


# -- fields ----------------------------------------------------------------------------


def _check_fields(table: Table, schema: InputSchema, reject_rows: bool) -> tuple[str, ...]:
    given = table.columns.keys()
    if not schema.names <= given:
        missing = [rule for rule in schema.features if rule.name not in given]
        raise _missing_fields(missing)
    if given <= schema.known:
        return ()
    extra = tuple(name for name in given if name not in schema.known)
    if reject_rows:
        return extra
    values = table.columns[extra[0]]
    row = next((i for i, v in enumerate(values) if v is not ABSENT), 0)
    raise _extra_field(extra[0], schema, row)


def _missing_fields(missing: list[FeatureRule]) -> InputError:
    first = missing[0]
    null = "; send null when the value is unknown" if first.nullable else ""
    others = [rule.name for rule in missing[1:]]
    more = ""
    if others:
        more = f"; also missing: {', '.join(others[:8])}" + (", ..." if len(others) > 8 else "")
    return InputError(
        f"the model needs this {first.type} field and the request lacks it{null}{more}",
        error="missing_field",
        field=first.name,
    )


def _extra_field(name: str, schema: InputSchema, row: int) -> InputError:
    """An unknown field, at the first record that holds it."""
    if name == schema.target:
        reason = (
            "this is the model's target, not an input; send labels to POST /feedback with "
            "the request id of the prediction"
        )
    else:
        inputs = [rule.name for rule in schema.features]
        close = difflib.get_close_matches(name, inputs, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(inputs[:12]) + (", ..." if len(inputs) > 12 else "")
        reason = f"not an input of this model{hint}; remove it (inputs: {shown})"
    return InputError(reason, error="extra_field", field=name, row=row)


# -- cells: the rules of one value, shared by both paths ---------------------------------


class _Fail:
    """A failed cell, carrying its error code."""

    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        self.code = code


_FAIL = {code: _Fail(code) for code in (WRONG_TYPE, NON_FINITE, MISSING_FIELD)}
_NUMBERS = (int, float, np.integer, np.floating)
_SCALARS = (str, bool, np.bool_, *_NUMBERS)
_NUMBER_TEXT = re.compile(
    r"\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf(inity)?)\s*", re.IGNORECASE
)
Cell = Callable[[Any, FeatureRule, bool], Any]


def _is_null(v: object) -> bool:
    return (
        v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float | np.floating) and isnan(v))
    )


def _numeric_cell(v: object, rule: FeatureRule, lenient: bool) -> float | _Fail | None:
    if _is_null(v):
        return None
    x = _as_number(v, lenient)
    if isinstance(x, _Fail):
        return x
    if x - x != 0.0:
        return _FAIL[NON_FINITE]
    return _FAIL[WRONG_TYPE] if rule.integer and not x.is_integer() else x


def _as_number(v: object, lenient: bool) -> float | _Fail:
    if v is ABSENT:
        return _FAIL[MISSING_FIELD]
    if isinstance(v, str) and lenient and _NUMBER_TEXT.fullmatch(v):
        return float(v)
    if isinstance(v, bool | np.bool_) or not isinstance(v, _NUMBERS):
        return _FAIL[WRONG_TYPE]
    try:
        return float(v)
    except OverflowError:
        return _FAIL[NON_FINITE]


def _string_cell(v: object, rule: FeatureRule, lenient: bool) -> str | _Fail | None:
    if isinstance(v, str):
        return str(v)
    if _is_null(v):
        return None
    if v is ABSENT:
        return _FAIL[MISSING_FIELD]
    return str(v) if lenient and isinstance(v, _SCALARS) else _FAIL[WRONG_TYPE]


def _boolean_cell(v: object, rule: FeatureRule, lenient: bool) -> str | _Fail | None:
    if v is True or v is False:
        return str(v)
    if _is_null(v):
        return None
    if v is ABSENT:
        return _FAIL[MISSING_FIELD]
    key = BOOL_TEXT.get(str(v).strip().lower()) if isinstance(v, _SCALARS) else None
    return _FAIL[WRONG_TYPE] if key is None else key


def _key_cell(v: object, rule: FeatureRule, lenient: bool) -> str | _Fail | None:
    if isinstance(v, str):
        return str(v)
    if _is_null(v) or v is ABSENT:
        return None  # the entity key is optional
    if isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
        return str(int(v))
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return _FAIL[WRONG_TYPE]


# -- the per-value loop (small JSON tables) ----------------------------------------------


@dataclass
class _Bad:
    """Failed cells: positions, contract columns (entity key last) and error codes."""

    rows: Array
    columns: Array
    codes: Array


@dataclass
class _Read:
    features: dict[str, Array]
    keys: list[str | None] | pd.Series | None
    bad: list[_Bad]
    unseen: dict[str, Sequence[int] | Array]


def _read_one(table: Table, schema: InputSchema) -> _Read | None:
    """The usual request, one JSON record of well-typed values, in one pass; None for
    anything else (the loop then reads it)."""
    columns = table.columns
    numbers: list[float] = []
    texts: list[str] = []
    unseen: dict[str, Sequence[int] | Array] = {}
    for rule in schema.features:
        v = columns[rule.name][0]
        kind = type(v)
        if rule.numeric:
            if kind is float:
                if v - v != 0.0 or (rule.integer and not v.is_integer()):
                    return None
            elif kind is not int or not -1e308 < v < 1e308:
                return None
            numbers.append(v)
            continue
        if kind is bool and rule.kind == "boolean":
            v = "True" if v else "False"
        elif kind is not str or rule.kind != "string":
            return None
        texts.append(v)
        if rule.categories is not None and v not in rule.categories:
            unseen[rule.name] = [0]
    keys = _one_key(columns, schema.entity_key)
    if keys == []:
        return None
    num = np.array(numbers, dtype=np.float64).reshape(-1, 1)
    txt = np.array(texts, dtype=object).reshape(-1, 1)
    features = {
        rule.name: (num if rule.numeric else txt)[slot]
        for rule, slot in zip(schema.features, schema.slots, strict=False)
    }
    return _Read(features, keys, [], unseen)


def _one_key(columns: dict[str, Column], key: str | None) -> list[str | None] | None:
    """The key of a one-record request: None without one, [] if not plain text."""
    if key is None or key not in columns:
        return None
    value = columns[key][0]
    return [value] if type(value) is str else []


def _read_loop(table: Table, schema: InputSchema) -> _Read:
    n, lenient, columns = table.n_rows, table.origin == "frame", table.columns
    if n == 1 and table.origin == "json" and all(type(c) is list for c in columns.values()):
        read = _read_one(table, schema)
        if read is not None:
            return read
    numbers: list[float] = []
    texts: list[str] = []
    failed: list[tuple[int, int, int]] = []
    unseen: dict[str, Sequence[int] | Array] = {}
    for column, rule in enumerate(schema.features):
        values = _as_list(columns[rule.name])
        if rule.numeric:
            _loop_numbers(values, rule, column, lenient, numbers, failed)
            continue
        rows = _loop_texts(values, rule, column, lenient, texts, failed)
        if rows:
            unseen[rule.name] = rows
    num = np.array(numbers, dtype=np.float64).reshape(-1, n)
    txt = np.array(texts, dtype=object).reshape(-1, n)
    features = {
        rule.name: (num if rule.numeric else txt)[slot]
        for rule, slot in zip(schema.features, schema.slots, strict=False)
    }
    keys = None
    if schema.entity_key is not None and schema.entity_key in columns:
        keys = _loop_keys(_as_list(columns[schema.entity_key]), schema, failed)
    bad = [_Bad(*(np.array(part) for part in zip(*failed, strict=True)))] if failed else []
    return _Read(features, keys, bad, unseen)


def _as_list(values: Column) -> Sequence[Any]:
    if type(values) is list or type(values) is tuple:
        return values
    if isinstance(values, np.ndarray | pd.Series):
        return values.tolist()  # python scalars: the loop's type checks are exact
    return list(values)


def _loop_numbers(
    values: Sequence[Any],
    rule: FeatureRule,
    column: int,
    lenient: bool,
    out: list[float],
    failed: list[tuple[int, int, int]],
) -> None:
    integer = rule.integer
    for row, v in enumerate(values):
        kind = type(v)
        # the common cases first: a finite float (whole, if need be) or a plain int
        if kind is float and v - v == 0.0 and (not integer or v.is_integer()):
            out.append(v)
            continue
        if kind is int and -1e308 < v < 1e308:
            out.append(v)
            continue
        x = _numeric_cell(v, rule, lenient)
        if isinstance(x, float):
            out.append(x)
            continue
        out.append(np.nan)
        if x is not None:
            failed.append((row, column, x.code))
        elif not rule.nullable:
            failed.append((row, column, NULL_NOT_ALLOWED))


def _loop_texts(
    values: Sequence[Any],
    rule: FeatureRule,
    column: int,
    lenient: bool,
    out: list[str],
    failed: list[tuple[int, int, int]],
) -> list[int]:
    """Append each value's key (MISSING when null or bad); the rows with unseen keys."""
    unseen: list[int] = []
    string = rule.kind == "string"
    cell = _string_cell if string else _boolean_cell
    categories = rule.categories
    for row, v in enumerate(values):
        key = v if string and type(v) is str else cell(v, rule, lenient)
        if isinstance(key, str):
            out.append(key)
            if categories is not None and key not in categories:
                unseen.append(row)
            continue
        out.append(MISSING)
        if key is not None:
            failed.append((row, column, key.code))
        elif not rule.nullable:
            failed.append((row, column, NULL_NOT_ALLOWED))
    return unseen


def _loop_keys(
    values: Sequence[Any], schema: InputSchema, failed: list[tuple[int, int, int]]
) -> list[str | None]:
    if all(type(v) is str for v in values):
        return list(values)
    keys, codes = _each(_key_cell, values, schema.key_rule, False, None)
    column = len(schema.features)
    failed.extend((int(row), column, int(codes[row])) for row in np.flatnonzero(codes > 0))
    return keys


def _each(
    cell: Cell, values: Iterable[Any], rule: FeatureRule, lenient: bool, fill: Any
) -> tuple[list[Any], Array]:
    """Apply a cell rule to every value: (values with ``fill`` where null or bad, codes)."""
    out: list[Any] = []
    codes: list[int] = []
    null_code = NULL_OK if rule.nullable else NULL_NOT_ALLOWED
    for v in values:
        result = cell(v, rule, lenient)
        if result is None:
            out.append(fill)
            codes.append(null_code)
        elif isinstance(result, _Fail):
            out.append(fill)
            codes.append(result.code)
        else:
            out.append(result)
            codes.append(OK)
    return out, np.array(codes, dtype=np.int8)


# -- the column-wise path (frames and large tables) --------------------------------------


@dataclass
class _Col:
    """One column, sorted by how it can be read: ``float`` (x: float64, NaN null),
    ``bool`` (x: bool, null mask), ``str`` (factorized: codes, uniques; -1 null) or
    ``objects`` (anything else: cell by cell)."""

    kind: str
    source: Column
    x: Array | None = None
    null: Array | None = None
    integral: bool = False
    codes: Array | None = None
    uniques: Array | None = None


_INT_TYPES = {int, np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32, np.uint16, np.uint8}
_NUMBER_TYPES = _INT_TYPES | {float, np.float64, np.float32, np.float16}
_BOOL_TYPES = {bool, np.bool_}
_NULL_TYPES = {type(None), float, np.float64, np.float32, type(pd.NA), type(pd.NaT)}


def _normalize(values: Column, n: int) -> _Col:
    if isinstance(values, pd.Series):
        return _from_series(values)
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "biuf":
        return _from_typed(values, values)
    if isinstance(values, np.ndarray):
        return _from_objects(values.astype(object).reshape(-1), values)
    return _from_sequence(values, n)


def _from_sequence(values: Sequence[Any], n: int) -> _Col:
    """A JSON column: its Python types say how to read it, without a pass for nulls."""
    types = set(map(type, values))
    if types <= {str, type(None)}:
        codes, uniques = pd.factorize(np.fromiter(values, dtype=object, count=n))
        return _Col("str", values, codes=codes, uniques=np.asarray(uniques, dtype=object))
    if types <= _NUMBER_TYPES | {type(None)}:
        try:
            x = np.array(values, dtype=np.float64)  # None -> NaN
        except (OverflowError, TypeError, ValueError):
            return _Col("objects", values)
        return _Col("float", values, x=x, integral=types - {type(None)} <= _INT_TYPES)
    if types <= _BOOL_TYPES | {type(None)}:
        null = np.fromiter((v is None for v in values), dtype=bool, count=n)
        flags = np.fromiter((v is True or v is np.True_ for v in values), dtype=bool, count=n)
        return _Col("bool", values, x=flags, null=null)
    return _from_objects(np.fromiter(values, dtype=object, count=n), values)


def _from_typed(array: Array, source: Column) -> _Col:
    if array.dtype.kind == "b":
        return _Col("bool", source, x=array, null=np.zeros(array.size, dtype=bool))
    x = array.astype(np.float64, copy=False)
    return _Col("float", source, x=x, integral=array.dtype.kind in "iu")


def _from_series(series: pd.Series) -> _Col:
    dtype = series.dtype
    if isinstance(dtype, pd.StringDtype):
        codes, uniques = pd.factorize(series)
        return _Col("str", series, codes=codes, uniques=np.asarray(uniques, dtype=object))
    if ptypes.is_bool_dtype(dtype) and not series.hasnans:
        return _from_typed(series.to_numpy(dtype=bool), series)
    if ptypes.is_numeric_dtype(dtype) and not ptypes.is_bool_dtype(dtype):
        x = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return _Col("float", series, x=x, integral=ptypes.is_integer_dtype(dtype))
    return _from_objects(series.to_numpy(dtype=object), series)


def _from_objects(array: Array, source: Column) -> _Col:
    """Sort an object column by the types it holds; anything mixed is read cell by cell."""
    null = np.asarray(pd.isna(array), dtype=bool)
    present = array
    if null.any():
        if not set(map(type, array[null])) <= _NULL_TYPES:
            return _Col("objects", source)
        present = array[~null]
    types = set(map(type, present))
    if not types:
        return _Col("float", source, x=np.full(array.size, np.nan))
    if types <= {str}:
        codes, uniques = pd.factorize(array)
        return _Col("str", source, codes=codes, uniques=np.asarray(uniques, dtype=object))
    if types <= _BOOL_TYPES:
        flags = np.zeros(array.size, dtype=bool)
        flags[~null] = present.astype(bool)
        return _Col("bool", source, x=flags, null=null)
    x = np.full(array.size, np.nan)
    try:
        if types <= _NUMBER_TYPES:
            x[~null] = present.astype(np.float64)
            return _Col("float", source, x=x, integral=types <= _INT_TYPES)
    except OverflowError:  # an int beyond float range: the cells say non_finite
        pass
    return _Col("objects", source)


def _read_vector(table: Table, schema: InputSchema) -> _Read:
    n, lenient = table.n_rows, table.origin == "frame"
    features: dict[str, Array] = {}
    bad: list[_Bad] = []
    unseen: dict[str, Sequence[int] | Array] = {}
    for column, rule in enumerate(schema.features):
        col = _normalize(table.columns[rule.name], n)
        if rule.numeric:
            values, codes = _vector_numbers(col, rule, lenient)
        else:
            values, codes, rows = _vector_texts(col, rule, lenient)
            if rows.size:
                unseen[rule.name] = rows
        features[rule.name] = values
        _collect(bad, codes, column)
    keys = None
    if schema.entity_key is not None and schema.entity_key in table.columns:
        keys, codes = _vector_keys(table.columns[schema.entity_key], schema.key_rule)
        _collect(bad, codes, len(schema.features))
    return _Read(features, keys, bad, unseen)


def _collect(bad: list[_Bad], codes: Array | None, column: int) -> None:
    """Record a column's failures (``codes`` None: none failed)."""
    if codes is None:
        return
    failed = np.flatnonzero(codes > 0)
    if failed.size:
        bad.append(_Bad(failed, np.full(failed.size, column), codes[failed]))


def _null_codes(null: Array, rule: FeatureRule) -> Array:
    codes = np.zeros(null.size, dtype=np.int8)
    codes[null] = NULL_OK if rule.nullable else NULL_NOT_ALLOWED
    return codes


def _vector_numbers(col: _Col, rule: FeatureRule, lenient: bool) -> tuple[Array, Array | None]:
    if col.kind == "float" and col.x is not None:
        x = col.x
        whole = not rule.integer or col.integral
        if np.isfinite(x).all() and (whole or bool((x == np.floor(x)).all())):
            return x, None
        codes = _null_codes(np.isnan(x), rule)
        codes[np.isinf(x)] = NON_FINITE
        if not whole:
            codes[np.isfinite(x) & (x != np.floor(x))] = WRONG_TYPE
        return x, codes
    if col.kind == "bool" and col.null is not None:
        codes = _null_codes(col.null, rule)
        codes[~col.null] = WRONG_TYPE
        return np.full(col.null.size, np.nan), codes
    if col.kind == "str" and col.uniques is not None and col.codes is not None:
        lut, lut_codes = _lookup(_numeric_cell, col.uniques, rule, lenient, np.nan)
        return np.asarray(lut, dtype=np.float64)[col.codes], lut_codes[col.codes]
    values, codes = _each(_numeric_cell, _as_list(col.source), rule, lenient, np.nan)
    return np.asarray(values, dtype=np.float64), codes


def _lookup(
    cell: Cell, uniques: Array, rule: FeatureRule, lenient: bool, fill: Any
) -> tuple[list[Any], Array]:
    """A cell rule applied to each distinct value, plus a last entry for null (code -1)."""
    values, codes = _each(cell, uniques.tolist(), rule, lenient, fill)
    null_code = NULL_OK if rule.nullable else NULL_NOT_ALLOWED
    return [*values, fill], np.append(codes, np.int8(null_code)).astype(np.int8)


def _vector_texts(col: _Col, rule: FeatureRule, lenient: bool) -> tuple[Array, Array | None, Array]:
    """(model-ready keys, codes or None when all are fine, rows with unseen categories)."""
    if col.kind == "str" and col.uniques is not None and col.codes is not None:
        return _factorized_texts(col.uniques, col.codes, rule, lenient)
    if col.kind in ("float", "bool"):
        values, codes, real = _typed_texts(col, rule, lenient)
    else:
        cell: Cell = _string_cell if rule.kind == "string" else _boolean_cell
        found, codes = _each(cell, _as_list(col.source), rule, lenient, MISSING)
        values = np.empty(len(found), dtype=object)
        values[:] = found
        real = codes == OK
    return values, codes, _unseen_rows(values, real, rule.categories)


def _factorized_texts(
    uniques: Array, index: Array, rule: FeatureRule, lenient: bool
) -> tuple[Array, Array | None, Array]:
    """Texts of a factorized column: each distinct value is checked once."""
    if rule.kind == "string":  # every distinct value is a key already
        lut = [*uniques.tolist(), MISSING]
        lut_codes = np.zeros(len(lut), dtype=np.int8)
        lut_codes[-1] = NULL_OK if rule.nullable else NULL_NOT_ALLOWED
    else:
        lut, lut_codes = _lookup(_boolean_cell, uniques, rule, lenient, MISSING)
    table = np.empty(len(lut), dtype=object)
    table[:] = lut
    codes = lut_codes[index] if (lut_codes > 0).any() else None
    rows = np.zeros(0, dtype=np.int64)
    if rule.categories is not None:
        flags = (lut_codes == OK) & np.fromiter(
            (v not in rule.categories for v in lut), bool, len(lut)
        )
        if flags.any():
            rows = np.flatnonzero(flags[index])
    return table[index], codes, rows


def _typed_texts(col: _Col, rule: FeatureRule, lenient: bool) -> tuple[Array, Array, Array]:
    x = col.x if col.x is not None else np.zeros(0)
    null = np.isnan(x) if col.kind == "float" else col.null
    assert null is not None
    codes = _null_codes(null, rule)
    values = np.full(x.size, MISSING, dtype=object)
    if rule.kind == "boolean":
        one = (x == 1) & ~null
        zero = (x == 0) & ~null & ~np.signbit(x.astype(np.float64))
        values[one], values[zero] = "True", "False"
        codes[~(one | zero | null)] = WRONG_TYPE
    elif lenient:
        source = col.source
        series = (
            source.reset_index(drop=True)
            if isinstance(source, pd.Series)
            else pd.Series(
                np.asarray(source, dtype=object) if isinstance(source, list | tuple) else source
            )
        )
        keys = category_keys(series)
        values[keys.index.to_numpy()] = keys.to_numpy(dtype=object)
    else:
        codes[~null] = WRONG_TYPE
    return values, codes, codes == OK


def _unseen_rows(values: Array, real: Array, categories: frozenset[str] | None) -> Array:
    if categories is None or not real.any():
        return np.zeros(0, dtype=np.int64)
    positions = np.flatnonzero(real)
    codes, uniques = pd.factorize(values[positions])
    flags = np.fromiter((u not in categories for u in uniques), bool, len(uniques))
    rows: Array = positions[flags[codes]]
    return rows


def _vector_keys(
    values: Column, rule: FeatureRule
) -> tuple[list[str | None] | pd.Series, Array | None]:
    """Entity keys: a frame's text column as is (listed lazily), else checked cell by cell."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.StringDtype):
        return values, None
    if (
        isinstance(values, pd.Series)
        and ptypes.is_integer_dtype(values.dtype)
        and not values.hasnans
    ):
        values = values.to_numpy()
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(str).astype(object).tolist(), None
    values = _as_list(values)
    if all(type(v) is str for v in values):
        return list(values), None
    return _each(_key_cell, values, rule, False, None)


# -- results ---------------------------------------------------------------------------


def _finish(
    read: _Read, table: Table, schema: InputSchema, reject_rows: bool, ignored: tuple[str, ...]
) -> ModelInput:
    n = table.n_rows
    if not read.bad:
        unseen = {name: len(rows) for name, rows in read.unseen.items()}
        return ModelInput(read.features, n, unseen, [], None, ignored, read.keys)
    rows = np.concatenate([bad.rows for bad in read.bad])
    columns = np.concatenate([bad.columns for bad in read.bad])
    codes = np.concatenate([bad.codes for bad in read.bad])
    order = np.lexsort((columns, rows))
    rows, columns, codes = rows[order], columns[order], codes[order]
    if not reject_rows:
        raise cell_error(table, schema, int(rows[0]), int(columns[0]), int(codes[0]))
    first = np.ones(rows.size, dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    rejected = [
        cell_error(table, schema, int(r), int(c), int(k))
        for r, c, k in zip(rows[first], columns[first], codes[first], strict=True)
    ]
    keep = np.ones(n, dtype=bool)
    keep[rows] = False
    kept = np.flatnonzero(keep)
    features = {name: values[kept] for name, values in read.features.items()}
    keys = read.keys
    if isinstance(keys, list):
        keys = [keys[i] for i in kept.tolist()]
    counts = {name: int(keep[r].sum()) for name, r in read.unseen.items()}
    unseen = {name: count for name, count in counts.items() if count}
    return ModelInput(features, int(kept.size), unseen, rejected, kept, ignored, keys)


def cell_error(table: Table, schema: InputSchema, row: int, column: int, code: int) -> InputError:
    """The InputError of one bad cell (``column`` past the features is the entity key)."""
    rule = schema.features[column] if column < len(schema.features) else schema.key_rule
    value = value_at(table.columns[rule.name], row)
    return InputError(
        _reason(rule, code, value, table.origin == "json"),
        error=CODES[code],
        field=rule.name,
        row=row,
    )


_EXPECTED = {
    "numeric": "a number",
    "string": "a string",
    "boolean": "a boolean (true / false, or the text 'true' / 'false' / '1' / '0')",
    "key": "a string or an integer",
}


def _reason(rule: FeatureRule, code: int, value: object, strict: bool) -> str:
    if code == MISSING_FIELD:
        null = " (null is allowed when the value is unknown)" if rule.nullable else ""
        return f"this record lacks the field; every record needs every model input{null}"
    if code == NULL_NOT_ALLOWED:
        return (
            f"null is not allowed: the contract says this {rule.type} field is never null "
            "(nullable: false); send a value"
        )
    got = json_kind(value)
    if code == NON_FINITE:
        instead = "null" if rule.nullable else "a finite number"
        return f"expected a finite number, got {got}; send {instead} instead"
    expected, hint = _EXPECTED[rule.kind], ""
    if rule.kind == "numeric" and rule.integer and isinstance(value, float | np.floating):
        expected = "a whole number (the contract says integer)"
    elif strict and rule.kind == "numeric" and isinstance(value, str):
        hint = "; send numbers without quotes"
    elif strict and rule.kind == "string" and isinstance(value, _NUMBERS):
        hint = f'; send text in quotes, e.g. "{truncate(value)}"'
    return f"expected {expected}, got {got}{hint}"
