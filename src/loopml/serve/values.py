"""Reading a request value by value: the cell readers, and the reader of small JSON tables.

A cell reader applies the cell rules of :mod:`loopml.data.cells` to one value of one field:
it returns the model-ready value, None for a null, or the :class:`CellCode` of the failure.
``lenient`` reads a value typed by a file reader (numeric text is a number, a scalar is
text); otherwise the value must have the field's type (JSON). Both readers of a table use
them: :func:`read_values` here for every value of a small JSON table, and
:mod:`loopml.serve.columns` for each distinct value, or each value of a mixed column.

:func:`read_values` reads each value where it lies, with the common well-typed values
checked inline: a JSON request of a few records is read before NumPy would have set up
its first column.

>>> from loopml.serve.schema import FeatureRule
>>> rule = FeatureRule("age", "numeric", "integer", nullable=True)
>>> numeric_cell(3, rule, False), numeric_cell("3", rule, False), numeric_cell("3", rule, True)
(3.0, <CellCode.WRONG_TYPE: 1>, 3.0)
>>> numeric_cell(2.5, rule, False), numeric_cell(None, rule, False)
(<CellCode.WRONG_TYPE: 1>, None)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from loopml.data.cells import NUMBERS, as_number, boolean_key, is_null, is_whole
from loopml.features.pipeline import MISSING
from loopml.serve.schema import Array, Bad, CellCode, FeatureRule, InputSchema, Read
from loopml.serve.table import ABSENT, Column, Table

Cell = Callable[[Any, FeatureRule, bool], Any]
Failed = list[tuple[int, int, int]]
"""Failed cells as they are found: (row, contract column, code)."""
Rows = dict[str, Sequence[int] | Array]
"""Per feature, the rows where something served is counted (unseen categories, nulls)."""
SCALARS = (str, bool, np.bool_, *NUMBERS)
"""The values a text field of a typed table (``lenient``) reads as their text."""


# -- cells -----------------------------------------------------------------------------


def numeric_cell(v: object, rule: FeatureRule, lenient: bool) -> float | CellCode | None:
    if is_null(v):
        return None
    if v is ABSENT:
        return CellCode.MISSING_FIELD
    x = as_number(v, strict=not lenient)
    if x is None:
        return CellCode.WRONG_TYPE
    if x - x != 0.0:
        return CellCode.NON_FINITE
    return CellCode.WRONG_TYPE if rule.integer and not is_whole(x) else x


def string_cell(v: object, rule: FeatureRule, lenient: bool) -> str | CellCode | None:
    if isinstance(v, str):
        return str(v)
    if is_null(v):
        return None
    if v is ABSENT:
        return CellCode.MISSING_FIELD
    return str(v) if lenient and isinstance(v, SCALARS) else CellCode.WRONG_TYPE


def boolean_cell(v: object, rule: FeatureRule, lenient: bool) -> str | CellCode | None:
    if v is True or v is False:
        return str(v)
    if is_null(v):
        return None
    if v is ABSENT:
        return CellCode.MISSING_FIELD
    key = boolean_key(v)
    return CellCode.WRONG_TYPE if key is None else key


def key_cell(v: object, rule: FeatureRule, lenient: bool) -> str | CellCode | None:
    if isinstance(v, str):
        return str(v)
    if is_null(v) or v is ABSENT:
        return None  # the entity key is optional
    if isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
        return str(int(v))
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return CellCode.WRONG_TYPE


def each(
    cell: Cell, values: Iterable[Any], rule: FeatureRule, lenient: bool, fill: Any
) -> tuple[list[Any], Array]:
    """Apply a cell reader to every value: (values with ``fill`` where null or bad, codes)."""
    out: list[Any] = []
    codes: list[int] = []  # the codes' values: NumPy reads an enum member slowly
    null_code, ok = rule.null_code.value, CellCode.OK.value
    for v in values:
        result = cell(v, rule, lenient)
        if result is None:
            out.append(fill)
            codes.append(null_code)
        elif isinstance(result, CellCode):
            out.append(fill)
            codes.append(result.value)
        else:
            out.append(result)
            codes.append(ok)
    return out, np.array(codes, dtype=np.int8)


def as_list(values: Column) -> Sequence[Any]:
    """A column as a sequence of Python values (the inline type checks are exact)."""
    if type(values) is list or type(values) is tuple:
        return values
    if isinstance(values, np.ndarray | pd.Series):
        return values.tolist()
    return list(values)


# -- the reader of small JSON tables ---------------------------------------------------


def read_values(table: Table, schema: InputSchema) -> Read:
    """Read a JSON table value by value (see the module docs)."""
    n, columns = table.n_rows, table.columns
    if n == 1:
        one = _one_record(columns, schema)
        if one is not None:
            return one
    failed: Failed = []
    unseen: Rows = {}
    nulls: Rows = {}
    numbers = _numbers(columns, schema, failed, nulls)
    features = _features(numbers, _texts(columns, schema, failed, unseen, nulls), n, schema)
    keys = None
    if schema.entity_key is not None and schema.entity_key in columns:
        keys = _keys(as_list(columns[schema.entity_key]), schema, failed)
    bad = [Bad(*(np.array(part) for part in zip(*failed, strict=True)))] if failed else []
    return Read(features, keys, bad, unseen, nulls)


def _features(
    numbers: list[float], texts: list[str], n: int, schema: InputSchema
) -> dict[str, Array]:
    """The model-ready arrays: rows of a numeric and a text block, in contract order."""
    num = np.array(numbers, dtype=np.float64).reshape(-1, n)
    txt = np.array(texts, dtype=object).reshape(-1, n)
    return {
        rule.name: (num if rule.numeric else txt)[slot]
        for rule, slot in zip(schema.features, schema.slots, strict=True)
    }


def _one_record(columns: dict[str, Column], schema: InputSchema) -> Read | None:
    """The usual request, one JSON record of well-typed values, read in one pass (~1.3x
    faster than the general loop); None for anything else, which the loop then reads. It
    takes only plain values (finite numbers, text, true / false) and reads them as the
    loop does (a property test holds the two alike)."""
    numbers: list[float] = []
    texts: list[str] = []
    unseen: Rows = {}
    for rule in schema.features:
        values = columns[rule.name]
        if type(values) is not list:
            return None
        v = values[0]
        kind = type(v)
        if rule.numeric:
            if not (
                (kind is float and v - v == 0.0 and (not rule.integer or v.is_integer()))
                or (kind is int and -1e308 < v < 1e308)
            ):
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
    keys: list[str | None] | None = None
    if schema.entity_key is not None and schema.entity_key in columns:
        given = columns[schema.entity_key]
        if type(given) is not list or type(given[0]) is not str:
            return None
        keys = [given[0]]
    return Read(_features(numbers, texts, 1, schema), keys, [], unseen)


def _numbers(
    columns: dict[str, Column], schema: InputSchema, failed: Failed, nulls: Rows
) -> list[float]:
    """Every value of the numeric features, feature after feature (NaN where null or bad)."""
    out: list[float] = []
    append = out.append
    for column, rule in schema.numeric:
        values = columns[rule.name]
        if type(values) is not list:
            values = as_list(values)
        integer = rule.integer
        for row, v in enumerate(values):
            kind = type(v)
            # the common cases first: a finite float (whole, if need be) or a plain int
            if (kind is float and v - v == 0.0 and (not integer or v.is_integer())) or (
                kind is int and -1e308 < v < 1e308
            ):
                append(v)
            else:
                append(_number(v, rule, row, column, failed, nulls))
    return out


def _number(
    v: object, rule: FeatureRule, row: int, column: int, failed: Failed, nulls: Rows
) -> float:
    x = numeric_cell(v, rule, False)
    if isinstance(x, float):
        return x
    _note(rule.null_code if x is None else x, rule, row, column, failed, nulls)
    return np.nan


def _note(
    code: CellCode, rule: FeatureRule, row: int, column: int, failed: Failed, nulls: Rows
) -> None:
    """Record a cell that is not a plain value: a failure, or a null to count."""
    if code > CellCode.OK:
        failed.append((row, column, code))
    elif code == CellCode.NULL_UNEXPECTED:
        _add(nulls, rule, row)


def _texts(
    columns: dict[str, Column], schema: InputSchema, failed: Failed, unseen: Rows, nulls: Rows
) -> list[str]:
    """Every key of the string and boolean features (MISSING where null or bad); the rows
    holding an unseen category go to ``unseen``, those of an unexpected null to ``nulls``."""
    out: list[str] = []
    append = out.append
    for column, rule in schema.texts:
        values = columns[rule.name]
        if type(values) is not list:
            values = as_list(values)
        string, categories = rule.kind == "string", rule.categories
        for row, v in enumerate(values):
            if string and type(v) is str:
                append(v)
                if categories is not None and v not in categories:
                    _add(unseen, rule, row)
            else:
                append(_text(v, rule, (row, column), failed, unseen, nulls))
    return out


def _add(rows_of: Rows, rule: FeatureRule, row: int) -> None:
    rows = rows_of.get(rule.name)
    if rows is None:
        rows_of[rule.name] = [row]
    else:
        cast(list[int], rows).append(row)


def _text(
    v: object,
    rule: FeatureRule,
    cell: tuple[int, int],
    failed: Failed,
    unseen: Rows,
    nulls: Rows,
) -> str:
    key = (string_cell if rule.kind == "string" else boolean_cell)(v, rule, False)
    if isinstance(key, str):
        if rule.categories is not None and key not in rule.categories:
            _add(unseen, rule, cell[0])
        return key
    _note(rule.null_code if key is None else key, rule, *cell, failed, nulls)
    return MISSING


def _keys(values: Sequence[Any], schema: InputSchema, failed: Failed) -> list[str | None]:
    if type(values[0]) is str and (len(values) == 1 or set(map(type, values)) == {str}):
        return list(values)
    keys, codes = each(key_cell, values, schema.key_rule, False, None)
    column = len(schema.features)
    failed.extend((int(row), column, int(codes[row])) for row in np.flatnonzero(codes > 0))
    return keys
