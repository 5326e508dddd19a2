from __future__ import annotations

import numpy as np
import pytest

from loopml.data.contract import ColumnSpec, Contract
from loopml.data.severity import RULES
from loopml.serve.refusals import cell_error
from loopml.serve.schema import CellCode, InputSchema
from loopml.serve.table import Table

pytestmark = pytest.mark.unit

CONTRACT = Contract(
    rows=2,
    target="y",
    task="regression",
    columns=(
        ColumnSpec(name="a", type="integer", nullable=False, null_rate=0.0, n_unique=2),
        ColumnSpec(
            name="y", type="float", role="target", nullable=False, null_rate=0.0, n_unique=2
        ),
    ),
)


def test_failure_codes_are_the_errors_of_the_severity_table() -> None:
    failures = [code for code in CellCode if code > CellCode.OK]
    assert [(code.kind, code.error) for code in failures] == [
        ("type_mismatch", "wrong_type"),
        ("non_finite", "non_finite"),
        ("missing_column", "missing_field"),
    ]
    assert all(RULES[code.kind].severity == "error" for code in failures)
    # a null in a never-null feature is served, as loopml validate only warns about it
    assert CellCode.null(nullable=False) == CellCode.NULL_UNEXPECTED < CellCode.OK
    assert RULES[CellCode.NULL_UNEXPECTED.kind].severity == "warning"
    assert CellCode.null(nullable=True) == CellCode.NULL_OK < CellCode.OK


def test_numpy_code_arrays_hold_the_codes() -> None:
    codes = np.zeros(3, dtype=np.int8)
    codes[1] = CellCode.NON_FINITE
    assert [CellCode(int(c)) for c in codes] == [CellCode.OK, CellCode.NON_FINITE, CellCode.OK]


def test_a_cell_error_names_field_row_and_reason() -> None:
    schema = InputSchema.from_contract(CONTRACT)
    table = Table.from_records([{"a": 1}, {"a": "2"}])
    error = cell_error(table, schema, 1, 0, CellCode.WRONG_TYPE)
    assert error.to_body() == {
        "error": "wrong_type",
        "field": "a",
        "row": 1,
        "reason": "expected a whole number (the contract says integer), got the string '2'; "
        "send numbers without quotes",
    }
