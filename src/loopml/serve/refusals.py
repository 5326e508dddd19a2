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

from loopml.data.cells import NUMBERS
from loopml.data.severity import NON_FINITE, missing_input, wrong_type
from loopml.errors import InputError
from loopml.serve.schema import CellCode, FeatureRule, InputSchema
from loopml.serve.table import Table, json_kind, truncate, value_at


def empty_request() -> InputError:
    return InputError("the request holds no rows; send at least one record", error="empty")


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
    close = difflib.get_close_matches(first.name, extra, n=1)
    hint = f"; is {close[0]!r} meant to be this field?" if close else ""
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
