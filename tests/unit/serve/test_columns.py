"""The column-wise reader reads a frame by the cell rules ``loopml validate`` checks by."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.data.contract import ColumnSpec, Contract
from loopml.data.validate import validate_table
from loopml.serve.schema import InputSchema
from loopml.serve.table import Table
from loopml.serve.validation import validate

pytestmark = pytest.mark.unit

NUMBERS = [0, 3, -2.0, 2.5, 1e300, np.inf, 10**400, True, " 7 ", "1e2", "-inf", "2.5", "x", ""]
BOOLEANS = [True, False, 1, 0, 1.0, -0.0, 2, "true", " FALSE ", "1.0", "yes", "", "0"]
SPECIAL = [Decimal("4"), Decimal("1.5")]


def _contract(kind: str) -> Contract:
    return Contract(
        rows=10,
        target="y",
        task="regression",
        columns=(
            ColumnSpec(name="a", type=kind, nullable=True, null_rate=1.0, n_unique=2),  # type: ignore[arg-type]
            ColumnSpec(
                name="y", type="float", role="target", nullable=False, null_rate=0.0, n_unique=2
            ),
        ),
    )


def _refused(values: list[Any], kind: str, typed: bool = False) -> tuple[list[int], list[int]]:
    """(rows refused as wrong_type, as non_finite) by the server and by loopml validate;
    ``typed``: the column gets the dtype pandas infers, else ``object``."""
    contract = _contract(kind)
    column = pd.Series(values) if typed else pd.Series(values, dtype=object)
    frame = pd.DataFrame({"a": column})
    schema = InputSchema.from_contract(contract)
    checked = validate(Table.from_frame(frame), schema, reject_rows=True)
    served: dict[str, list[int]] = {}
    for error in checked.rejected:
        served.setdefault(error.error, []).append(error.row or 0)
    report = validate_table(frame, contract, source="t.csv", null_rate_tolerance=1.0)
    found = {v.kind: list(v.rows) for v in report.violations}
    assert served.get("wrong_type", []) == found.get("type_mismatch", []), (values, kind)
    assert served.get("non_finite", []) == found.get("non_finite", []), (values, kind)
    return served.get("wrong_type", []), served.get("non_finite", [])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from([*NUMBERS, *SPECIAL, None]), min_size=1, max_size=5),
    st.sampled_from(["integer", "float"]),
    st.booleans(),
)
def test_numbers_in_a_frame_are_refused_as_loopml_validate_refuses_them(
    values: list[Any], kind: str, typed: bool
) -> None:
    _refused(values, kind, typed)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from([*BOOLEANS, Decimal("2"), None]), min_size=1, max_size=5),
    st.booleans(),
)
def test_booleans_in_a_frame_are_refused_as_loopml_validate_refuses_them(
    values: list[Any], typed: bool
) -> None:
    _refused(values, "boolean", typed)


def test_numeric_text_decimals_and_booleans() -> None:
    values = [" 7 ", Decimal("1.5"), True, "1_000", "-inf", 10**400]
    assert _refused(values, "float") == ([2, 3], [4, 5])
