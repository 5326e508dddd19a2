from __future__ import annotations

import numpy as np
import pytest

from loopml.data.contract import ColumnSpec, Contract
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


def test_failure_codes_are_named_after_their_errors() -> None:
    failures = [code for code in CellCode if code > CellCode.OK]
    assert [code.error for code in failures] == [
        "wrong_type",
        "null_not_allowed",
        "non_finite",
        "missing_field",
    ]
    assert CellCode.null(nullable=True) < CellCode.OK < CellCode.null(nullable=False)


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
        "reason": "expected a number, got the string '2'; send numbers without quotes",
    }
