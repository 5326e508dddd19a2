"""Why a request is refused: the code of each failed cell and the text of each InputError.

Every refusal is an :class:`~loopml.errors.InputError` naming ``error``, ``field``, ``row``
and a ``reason`` that says what was expected and how to fix it (the table of errors is in
:mod:`loopml.serve.validation`), in the words of :mod:`loopml.data.severity` that
``loopml validate`` uses for the same finding. Readers mark failed cells with a
:class:`~loopml.serve.schema.CellCode`; :func:`cell_error` turns one into its InputError.

>>> from loopml.data.contract import ColumnSpec, Contract
>>> c = Contract(rows=2, target="y", task="regression", columns=(
...     ColumnSpec(name="a", type="integer", nullable=True, null_rate=0.5, n_unique=1),
...     ColumnSpec(name="y", type="float", role="target", nullable=False,
...                null_rate=0.0, n_unique=2)))
>>> cell_error(Table.from_records([{"a": 1.5}]), InputSchema.from_contract(c), 0, 0,
...            CellCode.WRONG_TYPE).to_body()["reason"]
'expected a whole number (the contract says integer), got the number 1.5'
>>> check_fields(Table.from_records([{"a": 1, "b": 2}]), InputSchema.from_contract(c))
('b',)
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopml.data.cells import NUMBERS
from loopml.data.severity import NON_FINITE, missing_input, wrong_type
from loopml.errors import InputError
from loopml.serve.schema import CellCode, FeatureRule, InputSchema
from loopml.serve.table import Table, json_kind, truncate, value_at
from loopml.serve.values import as_list


def empty_request() -> InputError:
    return InputError("the request holds no rows; send at least one record", error="empty")


def check_lengths(table: Table, schema: InputSchema, max_chars: int) -> None:
    """Refuse (422 ``too_long``) a text longer than the field takes: ``max_chars``, or the
    field's longest known category when that is longer. The string features and the
    entity key are served and stored, so an 8 MB "category" would be stored verbatim."""
    columns = table.columns
    for rule in schema.stored_texts:
        values = columns.get(rule.name)
        if values is None:
            continue
        if type(values) is list and len(values) == 1:  # the usual request: one record
            v = values[0]
            if type(v) is not str or len(v) <= max_chars:
                continue
        limit = max(max_chars, rule.longest)
        if type(values) is list:
            row = _long_row(values, limit)
        elif isinstance(values, pd.Series):
            row = _long_series_row(values, limit)
        elif isinstance(values, np.ndarray) and values.dtype.kind != "O":
            continue  # a typed tensor of numbers holds no text
        else:
            row = _long_row(as_list(values), limit)
        if row is not None:
            raise _too_long(rule, row, len(str(value_at(values, row))), limit)


def _long_series_row(series: pd.Series, limit: int) -> int | None:
    if not (series.dtype == object or isinstance(series.dtype, pd.StringDtype)):
        return None
    longer = (series.str.len() > limit).to_numpy(dtype=bool, na_value=False)
    return int(np.flatnonzero(longer)[0]) if longer.any() else None


def _long_row(values: Sequence[Any], limit: int) -> int | None:
    try:  # text and nulls (the usual column): the longest is found at C speed
        if max(map(len, filter(None, values)), default=0) <= limit:
            return None
    except TypeError:  # numbers among them
        pass
    return next(
        (row for row, v in enumerate(values) if isinstance(v, str) and len(v) > limit), None
    )


def _too_long(rule: FeatureRule, row: int, length: int, limit: int) -> InputError:
    known = f" (its longest known category has {rule.longest:,})" if rule.longest else ""
    return InputError(
        f"a text of {length:,} characters; this field takes at most {limit:,}{known}; send "
        "the category itself, not a document (the server's limit is serve.max_string_chars)",
        error="too_long",
        field=rule.name,
        row=row,
    )


def too_many_rows(rows: int, max_rows: int) -> InputError:
    return InputError(
        f"{rows:,} rows in one request; at most {max_rows:,} are accepted, so split it",
        error="too_many_rows",
        status=413,
    )


# -- fields ----------------------------------------------------------------------------


def check_fields(table: Table, schema: InputSchema) -> tuple[str, ...]:
    """Raise for an absent feature; return the unknown fields, which are ignored (a
    warning in ``loopml validate``: ``extra_column``)."""
    given = table.columns.keys()
    extra = () if given <= schema.known else tuple(n for n in given if n not in schema.known)
    if not schema.names <= given:
        missing = [rule for rule in schema.features if rule.name not in given]
        raise _missing_fields(missing, extra)
    return extra


def _missing_fields(missing: list[FeatureRule], extra: tuple[str, ...]) -> InputError:
    first = missing[0]
    # a client's field names can be megabytes long: only plausible names are compared
    names = [name for name in extra[:100] if len(name) <= 2 * len(first.name) + 20]
    close = difflib.get_close_matches(first.name, names, n=1)
    hint = f"; is {truncate(close[0], 60)} meant to be this field?" if close else ""
    others = [rule.name for rule in missing[1:]]
    more = ""
    if others:
        more = f"; also missing: {', '.join(others[:8])}" + (", ..." if len(others) > 8 else "")
    return InputError(
        f"the request lacks this field: {missing_input(first.type)}; send null when the "
        f"value is unknown{hint}{more}",
        error=CellCode.MISSING_FIELD.error,
        field=first.name,
    )


# -- cells -----------------------------------------------------------------------------


def cell_error(
    table: Table, schema: InputSchema, row: int, column: int, code: CellCode
) -> InputError:
    """The InputError of one bad cell (``column`` past the features is the entity key)."""
    rule = schema.features[column] if column < len(schema.features) else schema.key_rule
    value = value_at(table.columns[rule.name], row)
    return InputError(
        _reason(rule, code, value, table.origin == "json"),
        error=code.error,
        field=rule.name,
        row=row,
    )


def _reason(rule: FeatureRule, code: CellCode, value: object, strict: bool) -> str:
    if code == CellCode.MISSING_FIELD:
        return (
            f"this record lacks the field: {missing_input(rule.type)}; send null when the "
            "value is unknown"
        )
    got = json_kind(value)
    if code == CellCode.NON_FINITE:
        return f"{NON_FINITE}, got {got}; send null when the value is unknown"
    hint = ""
    if strict and rule.kind == "numeric" and isinstance(value, str):
        hint = "; send numbers without quotes"
    elif strict and rule.kind == "string" and isinstance(value, NUMBERS):
        hint = f'; send text in quotes, e.g. "{truncate(value)}"'
    return f"{wrong_type(rule.type)}, got {got}{hint}"
