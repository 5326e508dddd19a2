"""The rules of one cell: when a value is null, a number, a whole number, a boolean, a key.

One set of rules for every reader of input values: ``loopml validate``
(:mod:`loopml.data.validate`, whole columns of a table), the contract's categories
(:mod:`loopml.data.infer`), the feature frame (:mod:`loopml.features.pipeline`) and the
server's validation (:mod:`loopml.serve.validation`, value by value or column-wise). Each
rule comes as a scalar function and, where a column is read at once, its vectorised twin
that applies the same rule.

- **Null**: ``None``, ``pd.NA``, ``pd.NaT`` and NaN (:func:`is_null`, ``pd.isna``).
- **Number**: a number that is not a boolean (a boolean is never a number). Values typed by
  a file reader or a database (``strict=False``) may also be numeric text, read as pandas
  reads it (``" 2 "``, ``"1e3"``, ``"inf"``; not ``"1_000"``, ``"nan"`` or ``""``), or a
  :class:`~decimal.Decimal` (SQL ``NUMERIC``). An integer beyond float range is infinite.
- **Whole**: a finite number equal to its floor (what an ``integer`` column holds).
- **Boolean**: ``True`` / ``False``, or a spelling in :data:`BOOL_TEXT` once stripped and
  lower-cased (``"true"``, ``" FALSE "``, ``"1"``, ``1``, ``1.0``); the key is ``"True"`` or
  ``"False"``.
- **Category key**: the text of a value, with whole floats of a float column as integer
  text (``1.0`` -> ``"1"``), so a column read with gaps matches one read without.

>>> as_number(" 2 ", strict=False), as_number(" 2 ", strict=True), as_number(True, strict=False)
(2.0, None, None)
>>> boolean_key(" TRUE "), boolean_key(0.0), boolean_key("yes")
('True', 'False', None)
>>> category_keys(pd.Series([1.0, None, 0.0])).tolist()
['1', '0']
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

Array = np.ndarray[Any, Any]
BOOL_TEXT = {
    "true": "True",
    "false": "False",
    "1": "True",
    "0": "False",
    "1.0": "True",
    "0.0": "False",
}
"""Boolean spellings (stripped, lower-cased) -> the key of a boolean category."""
NUMBERS = (int, float, np.integer, np.floating)
"""The types of a number value (``bool`` is an ``int``: exclude it first)."""


def is_null(value: object) -> bool:
    """None, ``pd.NA``, ``pd.NaT`` or NaN."""
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float | np.floating) and math.isnan(value))
    )


def as_number(value: object, *, strict: bool) -> float | None:
    """The value as a float (maybe NaN or infinite); None when it is not a number.

    ``strict``: the value's type is the sender's choice (JSON), so only numbers count;
    otherwise numeric text and decimals count too (values typed by a file reader).
    """
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, NUMBERS):
        try:
            return float(value)
        except OverflowError:  # an int beyond float range
            return math.inf if value > 0 else -math.inf
    if strict:
        return None
    if isinstance(value, str):
        number = float(text_numbers(np.array([value], dtype=object))[0])
        return None if math.isnan(number) else number
    return float(value) if isinstance(value, Decimal) else None


def text_numbers(texts: Array) -> Array:
    """Texts (an object array of ``str``, or None) as float64; NaN where not a number."""
    numbers = pd.to_numeric(texts, errors="coerce")
    return np.asarray(numbers, dtype=np.float64)


def read_numbers(series: pd.Series) -> tuple[Array, Array]:
    """A column as numbers: (float64 values, NaN where null or not a number; the mask of
    present values that are not numbers), by the rule of :func:`as_number` (not strict)."""
    present = series.notna().to_numpy()
    if ptypes.is_bool_dtype(series.dtype):
        return np.full(len(series), np.nan), present
    if ptypes.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(series), dtype=bool)
    values = series.to_numpy(dtype=object, copy=True)
    values[~present] = None
    if set(map(type, values[present])) <= {str}:
        numbers = text_numbers(values)
    else:
        read = (as_number(v, strict=False) for v in values)
        numbers = np.fromiter((np.nan if x is None else x for x in read), float, len(values))
    return numbers, present & np.isnan(numbers)


def is_whole(number: float) -> bool:
    """A finite number without a fraction (what an ``integer`` column holds)."""
    return number.is_integer()


def fractional(numbers: Array) -> Array:
    """The mask of finite numbers with a fraction (an ``integer`` column refuses them)."""
    out = np.zeros(numbers.size, dtype=bool)
    finite = np.isfinite(numbers)
    out[finite] = numbers[finite] != np.floor(numbers[finite])
    return out


def boolean_key(value: object) -> str | None:
    """``"True"`` / ``"False"`` for a boolean or one of its spellings; None otherwise."""
    if value is True or value is False:
        return str(value)
    if isinstance(value, dict | list | tuple | set):  # never a spelling; its text may be long
        return None
    return BOOL_TEXT.get(str(value).strip().lower())


def boolean_keys(series: pd.Series) -> pd.Series:
    """Non-null values of a boolean column as "True" / "False"; NaN where unreadable.

    Text exports spell booleans many ways (``true``, ``1``, ``1.0``); validation and the
    feature pipeline both read them through here, so what one accepts the other encodes.
    """
    values = series.dropna()
    if ptypes.is_bool_dtype(values.dtype):
        return values.astype(str)
    return values.astype(str).str.strip().str.lower().map(BOOL_TEXT)


def category_keys(series: pd.Series) -> pd.Series:
    """Non-null values as the strings used for contract categories and class labels.

    Floats that are all whole numbers become integer text (``1.0`` -> ``"1"``), so a
    column read with gaps (float) matches one read without (integer).
    """
    values = series.dropna()
    if ptypes.is_float_dtype(values.dtype):
        numbers = values.to_numpy(dtype=float)
        finite = np.isfinite(numbers)
        if finite.all() and np.all(numbers == np.floor(numbers)):
            return pd.Series(numbers.astype(np.int64), index=values.index).astype(str)
    return values.astype(str)
