"""Why a request is refused: the code of each failed cell and the text of each InputError.

Every refusal is an :class:`~loopml.errors.InputError` naming ``error``, ``field``, ``row``
and a ``reason`` that says what was expected and how to fix it (the table of errors is in
:mod:`loopml.serve.validation`). Readers mark failed cells with a
:class:`~loopml.serve.schema.CellCode`; :func:`cell_error` turns one into its InputError.

>>> from loopml.data.contract import ColumnSpec, Contract
>>> c = Contract(rows=2, target="y", task="regression", columns=(
...     ColumnSpec(name="a", type="integer", nullable=True, null_rate=0.5, n_unique=1),
...     ColumnSpec(name="y", type="float", role="target", nullable=False,
...                null_rate=0.0, n_unique=2)))
>>> cell_error(Table.from_records([{"a": 1.5}]), InputSchema.from_contract(c), 0, 0,
...            CellCode.WRONG_TYPE).to_body()["reason"]
'expected a whole number (the contract says integer), got the number 1.5'
"""

from __future__ import annotations

import difflib

import numpy as np

from loopml.data.cells import NUMBERS
from loopml.errors import InputError
from loopml.serve.schema import CellCode, FeatureRule, InputSchema
from loopml.serve.table import ABSENT, Table, json_kind, truncate, value_at


def empty_request() -> InputError:
    return InputError("the request holds no rows; send at least one record", error="empty")


def too_many_rows(rows: int, max_rows: int) -> InputError:
    return InputError(
        f"{rows:,} rows in one request; at most {max_rows:,} are accepted, so split it",
        error="too_many_rows",
        status=413,
    )


# -- fields ----------------------------------------------------------------------------


def check_fields(table: Table, schema: InputSchema, reject_rows: bool) -> tuple[str, ...]:
    """Raise for an absent feature (or, unless ``reject_rows``, an unknown field); return
    the unknown fields that are ignored."""
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


_EXPECTED = {
    "numeric": "a number",
    "string": "a string",
    "boolean": "a boolean (true / false, or the text 'true' / 'false' / '1' / '0')",
    "key": "a string or an integer",
}


def _reason(rule: FeatureRule, code: CellCode, value: object, strict: bool) -> str:
    if code == CellCode.MISSING_FIELD:
        null = " (null is allowed when the value is unknown)" if rule.nullable else ""
        return f"this record lacks the field; every record needs every model input{null}"
    if code == CellCode.NULL_NOT_ALLOWED:
        return (
            f"null is not allowed: the contract says this {rule.type} field is never null "
            "(nullable: false); send a value"
        )
    got = json_kind(value)
    if code == CellCode.NON_FINITE:
        instead = "null" if rule.nullable else "a finite number"
        return f"expected a finite number, got {got}; send {instead} instead"
    expected, hint = _EXPECTED[rule.kind], ""
    if rule.kind == "numeric" and rule.integer and isinstance(value, float | np.floating):
        expected = "a whole number (the contract says integer)"
    elif strict and rule.kind == "numeric" and isinstance(value, str):
        hint = "; send numbers without quotes"
    elif strict and rule.kind == "string" and isinstance(value, NUMBERS):
        hint = f'; send text in quotes, e.g. "{truncate(value)}"'
    return f"expected {expected}, got {got}{hint}"
