"""``loopml validate`` and serving agree, case by case: what validate calls a warning is
served (and counted), what it calls an error is refused, in the same words.

Each case is one table read from CSV, as ``loopml validate`` and ``loopml score`` read it,
checked by :func:`~loopml.data.validate.validate_table` and by the server's validation,
on a frame (``loopml score``) and on JSON records (``/predict``, OIP, ``/invocations``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.data import severity
from loopml.data.contract import Contract
from loopml.data.infer import infer_contract
from loopml.data.sources import read_table
from loopml.data.validate import ValidationReport, validate_table
from loopml.errors import InputError
from loopml.serve.schema import InputSchema
from loopml.serve.table import Table
from loopml.serve.validation import ModelInput, validate

pytestmark = pytest.mark.unit

TRAIN = pd.DataFrame(
    {
        "id": [f"k{i}" for i in range(8)],
        "amount": [1.5, 2.0, 3.25, 4.0, 5.5, 6.0, 7.75, 8.0],
        "visits": [1, 2, 3, 4, 5, 6, 7, 8],
        "plan": ["a", "b", "a", "b", "a", "b", "a", "b"],
        "member": [True, False] * 4,
        "y": [0, 1] * 4,
    }
)


@pytest.fixture(scope="module")
def contract() -> Contract:
    made = infer_contract(TRAIN, target="y", task="binary", entity_key="id", time_column=None)
    assert not any(spec.nullable for spec in made.features)  # no feature had a null
    return made


def _csv(tmp_path: Path, text: str) -> pd.DataFrame:
    path = tmp_path / "new.csv"
    path.write_text(text, encoding="utf-8")
    return read_table(path)


def _both(frame: pd.DataFrame, contract: Contract) -> tuple[ValidationReport, ModelInput]:
    """validate's report and the batch scorer's reading of the same table."""
    report = validate_table(frame, contract, source="new.csv")
    scored = validate(
        Table.from_frame(frame), InputSchema.from_contract(contract), reject_rows=True
    )
    return report, scored


def _records(frame: pd.DataFrame) -> Table:
    """The table's rows as a JSON client sends them (null for a missing value)."""
    rows = frame.astype(object).to_dict("records")
    return Table.from_records([{k: None if pd.isna(v) else v for k, v in r.items()} for r in rows])


HEADER = "id,amount,visits,plan,member,y\n"


def test_n_a_in_a_never_null_number_is_a_warning_and_is_served(
    tmp_path: Path, contract: Contract
) -> None:
    rows = "".join(f"n{i},{i}.5,{i},a,true,0\n" for i in range(9))
    frame = _csv(tmp_path, HEADER + rows + "n9,n/a,3,b,false,1\n")
    report, scored = _both(frame, contract)
    found = [v for v in report.violations if v.kind == "unexpected_null"]
    assert [(v.column, v.severity, v.rows) for v in found] == [("amount", "warning", (9,))]
    assert report.ok
    assert severity.UNEXPECTED_NULL in found[0].message
    assert scored.rejected == [] and scored.n_rows == 10 and scored.nulls == {"amount": 1}
    for method in ("loop", "vector"):
        served = validate(_records(frame), InputSchema.from_contract(contract), method=method)
        assert served.nulls == {"amount": 1} and np.isnan(served.features["amount"][9])


def test_an_unknown_column_is_a_warning_and_is_ignored(tmp_path: Path, contract: Contract) -> None:
    frame = _csv(tmp_path, "id,amount,visits,plan,member,y,bonus\nk1,1.5,2,a,true,0,7\n")
    report, scored = _both(frame, contract)
    assert [(v.kind, v.column, v.severity) for v in report.violations] == [
        ("extra_column", "bonus", "warning")
    ]
    assert severity.EXTRA_COLUMN in report.violations[0].message
    assert scored.ignored == ("bonus",) and scored.rejected == []
    served = validate(_records(frame), InputSchema.from_contract(contract))
    assert served.ignored == ("bonus",) and served.n_rows == 1


ERRORS: list[tuple[str, str, str, str, str]] = [
    # (column, bad CSV cell, validate kind, server error, the words both say)
    ("amount", "lots", "type_mismatch", "wrong_type", severity.wrong_type("float")),
    ("visits", "2.5", "type_mismatch", "wrong_type", severity.wrong_type("integer")),
    ("member", "maybe", "type_mismatch", "wrong_type", severity.wrong_type("boolean")),
    ("amount", "inf", "non_finite", "non_finite", severity.NON_FINITE),
]


@pytest.mark.parametrize(("column", "cell", "kind", "error", "words"), ERRORS)
def test_an_error_is_refused_everywhere_in_the_same_words(
    tmp_path: Path, contract: Contract, column: str, cell: str, kind: str, error: str, words: str
) -> None:
    values: dict[str, Any] = {"id": "k1", "amount": "1.5", "visits": "2", "plan": "a",
                              "member": "true", "y": "0"}  # fmt: skip
    good = ",".join(values.values())
    values[column] = cell
    frame = _csv(tmp_path, HEADER + f"{good}\n" + ",".join(values.values()) + "\n")
    report, scored = _both(frame, contract)
    found = [v for v in report.violations if v.kind == kind]
    assert [(v.column, v.severity, v.rows) for v in found] == [(column, "error", (1,))]
    assert [(e.row, e.field, e.error) for e in scored.rejected] == [(1, column, error)]
    assert words in found[0].message and words in scored.rejected[0].reason
    # a JSON client sending the same value (as text for a number: a JSON number can't be
    # "lots"; 2.5 and inf as numbers) is refused with the same code and words
    value: Any = {"2.5": 2.5, "inf": float("inf")}.get(cell, cell)
    record = {**frame.iloc[0].to_dict(), column: value}
    with pytest.raises(InputError) as refused:
        validate(Table.from_records([record]), InputSchema.from_contract(contract))
    assert (refused.value.error, refused.value.field) == (error, column)
    assert words in refused.value.reason


def test_a_missing_feature_is_an_error_everywhere_in_the_same_words(
    tmp_path: Path, contract: Contract
) -> None:
    frame = _csv(tmp_path, "id,amount,plan,member,y\nk1,1.5,a,true,0\n")
    report = validate_table(frame, contract, source="new.csv")
    found = [v for v in report.violations if v.kind == "missing_column"]
    assert [(v.column, v.severity) for v in found] == [("visits", "error")]
    words = severity.missing_input("integer")
    assert words in found[0].message
    for table in (Table.from_frame(frame), _records(frame)):
        with pytest.raises(InputError) as refused:
            validate(table, InputSchema.from_contract(contract), reject_rows=True)
        assert (refused.value.error, refused.value.field) == ("missing_field", "visits")
        assert words in refused.value.reason


def test_every_refused_cell_is_an_error_of_the_table() -> None:
    """The server refuses exactly the kinds validate calls errors, and serves the others."""
    served = {"extra_column", "unexpected_null", "unseen_category", "out_of_range"}
    for kind in served:
        assert severity.severity_of(kind) == "warning", kind
    refused = {rule.kind for rule in severity.RULES.values() if rule.code is not None}
    assert refused == {"empty", "missing_column", "type_mismatch", "non_finite"}
    assert all(severity.severity_of(kind) == "error" for kind in refused)
