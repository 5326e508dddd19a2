"""Reading a request a column at a time: frames, large JSON tables and typed tensors.

Each column is first sorted by what it holds (:class:`_Col`): floats (a NumPy float array,
NaN null), booleans, text (factorized: each distinct value is read once) or a mix (read
value by value with the cell readers of :mod:`loopml.serve.values`). The cell rules are
those of :mod:`loopml.data.cells`, applied to whole arrays: a frame's numeric text is read
as pandas reads it, its typed values are category keys as ``loopml validate`` makes them.
Failures are ``int8`` arrays of :class:`~loopml.serve.refusals.CellCode` values, compared
with a member's ``.value`` (NumPy compares an enum member as a Python object: ~2 µs).

>>> from loopml.data.contract import ColumnSpec, Contract
>>> from loopml.serve.schema import InputSchema
>>> c = Contract(rows=2, target="y", task="regression", columns=(
...     ColumnSpec(name="a", type="integer", nullable=True, null_rate=0.5, n_unique=1),
...     ColumnSpec(name="y", type="float", role="target", nullable=False,
...                null_rate=0.0, n_unique=2)))
>>> frame = pd.DataFrame({"a": [" 3", None, "x"]})
>>> read = read_columns(Table.from_frame(frame), InputSchema.from_contract(c))
>>> read.features["a"], read.bad[0].rows, read.bad[0].codes
(array([ 3., nan, nan]), array([2]), array([1], dtype=int8))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from loopml.data.cells import category_keys, fractional, text_numbers
from loopml.features.pipeline import MISSING
from loopml.serve.schema import Array, Bad, CellCode, FeatureRule, InputSchema, Read
from loopml.serve.table import Column, Table
from loopml.serve.values import (
    Cell,
    as_list,
    boolean_cell,
    each,
    key_cell,
    numeric_cell,
    string_cell,
)


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


def read_columns(table: Table, schema: InputSchema) -> Read:
    """Read a table a column at a time (see the module docs)."""
    n, lenient = table.n_rows, table.origin == "frame"
    features: dict[str, Array] = {}
    read = Read(features, None, [], {}, {})
    for column, rule in enumerate(schema.features):
        col = _normalize(table.columns[rule.name], n)
        if rule.numeric:
            values, codes = _vector_numbers(col, rule, lenient)
        else:
            values, codes, rows = _vector_texts(col, rule, lenient)
            if rows.size:
                read.unseen[rule.name] = rows
        features[rule.name] = values
        _collect(read, codes, column, rule)
    if schema.entity_key is not None and schema.entity_key in table.columns:
        read.keys, codes = _vector_keys(table.columns[schema.entity_key], schema.key_rule)
        _collect(read, codes, len(schema.features), schema.key_rule)
    return read


def _collect(read: Read, codes: Array | None, column: int, rule: FeatureRule) -> None:
    """Record a column's failures and unexpected nulls (``codes`` None: all plain)."""
    if codes is None:
        return
    failed = np.flatnonzero(codes > 0)
    if failed.size:
        read.bad.append(Bad(failed, np.full(failed.size, column), codes[failed]))
    if rule.null_code == CellCode.NULL_UNEXPECTED:
        nulls = np.flatnonzero(codes == CellCode.NULL_UNEXPECTED.value)
        if nulls.size:
            read.nulls[rule.name] = nulls


def _null_codes(null: Array, rule: FeatureRule) -> Array:
    codes = np.zeros(null.size, dtype=np.int8)
    codes[null] = rule.null_code
    return codes


def _vector_numbers(col: _Col, rule: FeatureRule, lenient: bool) -> tuple[Array, Array | None]:
    if col.kind == "float" and col.x is not None:
        x = col.x
        whole = not rule.integer or col.integral
        if np.isfinite(x).all() and (whole or not fractional(x).any()):
            return x, None
        codes = _null_codes(np.isnan(x), rule)
        codes[np.isinf(x)] = CellCode.NON_FINITE
        if not whole:
            codes[fractional(x)] = CellCode.WRONG_TYPE
        return x, codes
    if col.kind == "bool" and col.null is not None:
        codes = _null_codes(col.null, rule)
        codes[~col.null] = CellCode.WRONG_TYPE
        return np.full(col.null.size, np.nan), codes
    if col.kind == "str" and col.uniques is not None and col.codes is not None:
        numbers, number_codes = _text_numbers(col.uniques, rule, lenient)
        return numbers[col.codes], number_codes[col.codes]
    values, codes = each(numeric_cell, as_list(col.source), rule, lenient, np.nan)
    return np.asarray(values, dtype=np.float64), codes


def _text_numbers(uniques: Array, rule: FeatureRule, lenient: bool) -> tuple[Array, Array]:
    """Distinct texts as numbers (NaN where bad) and their codes, plus a last entry for null
    (index -1). Only a typed table's text can be a number (:func:`numeric_cell`'s rule)."""
    x = text_numbers(uniques) if lenient else np.full(uniques.size, np.nan)
    codes = np.zeros(x.size + 1, dtype=np.int8)
    codes[:-1][np.isnan(x)] = CellCode.WRONG_TYPE
    codes[:-1][np.isinf(x)] = CellCode.NON_FINITE
    if rule.integer:
        codes[:-1][fractional(x)] = CellCode.WRONG_TYPE
    codes[-1] = rule.null_code
    numbers = np.append(np.where(codes[:-1] == CellCode.OK.value, x, np.nan), np.nan)
    return numbers, codes


def _lookup(
    cell: Cell, uniques: Array, rule: FeatureRule, lenient: bool, fill: Any
) -> tuple[list[Any], Array]:
    """A cell rule applied to each distinct value, plus a last entry for null (code -1)."""
    values, codes = each(cell, uniques.tolist(), rule, lenient, fill)
    null_code = rule.null_code
    return [*values, fill], np.append(codes, np.int8(null_code)).astype(np.int8)


def _vector_texts(col: _Col, rule: FeatureRule, lenient: bool) -> tuple[Array, Array | None, Array]:
    """(model-ready keys, codes or None when all are fine, rows with unseen categories)."""
    if col.kind == "str" and col.uniques is not None and col.codes is not None:
        return _factorized_texts(col.uniques, col.codes, rule, lenient)
    if col.kind in ("float", "bool"):
        values, codes, real = _typed_texts(col, rule, lenient)
    else:
        cell: Cell = string_cell if rule.kind == "string" else boolean_cell
        found, codes = each(cell, as_list(col.source), rule, lenient, MISSING)
        values = np.empty(len(found), dtype=object)
        values[:] = found
        real = codes == CellCode.OK.value
    return values, codes, _unseen_rows(values, real, rule.categories)


def _factorized_texts(
    uniques: Array, index: Array, rule: FeatureRule, lenient: bool
) -> tuple[Array, Array | None, Array]:
    """Texts of a factorized column: each distinct value is checked once."""
    if rule.kind == "string":  # every distinct value is a key already
        lut = [*uniques.tolist(), MISSING]
        lut_codes = np.zeros(len(lut), dtype=np.int8)
        lut_codes[-1] = rule.null_code
    else:
        lut, lut_codes = _lookup(boolean_cell, uniques, rule, lenient, MISSING)
    table = np.empty(len(lut), dtype=object)
    table[:] = lut
    plain = not (lut_codes > 0).any() and lut_codes[-1] != CellCode.NULL_UNEXPECTED.value
    codes = None if plain else lut_codes[index]
    rows = np.zeros(0, dtype=np.int64)
    if rule.categories is not None:
        flags = (lut_codes == CellCode.OK.value) & np.fromiter(
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
        codes[~(one | zero | null)] = CellCode.WRONG_TYPE
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
        codes[~null] = CellCode.WRONG_TYPE
    return values, codes, codes == CellCode.OK.value


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
    values = as_list(values)
    if all(type(v) is str for v in values):
        return list(values), None
    return each(key_cell, values, rule, False, None)
