from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.data.contract import Contract
from loopml.data.infer import infer_contract
from loopml.data.sources import read_table, write_table
from loopml.data.validate import ValidationReport, Violation, validate_table
from loopml.errors import ContractError

pytestmark = pytest.mark.unit

N = 10


def _train() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"k{i}" for i in range(N)],
            "ts": [f"2024-01-{i + 1:02d}T08:00:00" for i in range(N)],
            "age": list(range(20, 70, 5)),
            "income": [1.0, 2.5, None, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
            "plan": ["a", "b", "c", "a", "b", "c", "a", "b", "c", "a"],
            "flag": [True, False] * 5,
            "notes": ["n"] * N,
            "y": [0, 1] * 5,
        }
    )


@pytest.fixture(scope="module")
def contract() -> Contract:
    return infer_contract(
        _train(), target="y", task="binary", entity_key="id", time_column="ts", drop=("notes",)
    )


def _only(report: ValidationReport, kind: str) -> Violation:
    found = [v for v in report.violations if v.kind == kind]
    assert len(found) == 1, report.violations
    return found[0]


def _kinds(report: ValidationReport) -> list[tuple[str, str | None, str]]:
    return [(v.kind, v.column, v.severity) for v in report.violations]


def test_training_table_passes(contract: Contract) -> None:
    report = validate_table(_train(), contract, source="train.csv")
    assert report.violations == ()
    assert report.ok and report.exit_code == 0
    assert report.rows == N
    assert report.summary == "train.csv: 0 errors, 0 warnings in 10 rows"


def test_empty_table(contract: Contract) -> None:
    report = validate_table(_train().head(0), contract, source="new.csv")
    assert _kinds(report) == [("empty", None, "error")]
    assert report.rows == 0 and report.exit_code == 1


def test_missing_columns(contract: Contract) -> None:
    df = _train().drop(columns=["age", "y", "notes"])
    report = validate_table(df, contract, source="new.csv")
    assert _kinds(report) == [
        ("missing_column", "age", "error"),
        ("missing_column", "notes", "warning"),
        ("missing_column", "y", "warning"),
    ]
    assert report.violations[0].count == N
    assert "column 'age' (integer feature) is missing from new.csv" in report.violations[0].message


def test_scoring_table_without_label_is_ok(contract: Contract) -> None:
    report = validate_table(_train().drop(columns=["y"]), contract, source="score.csv")
    assert report.ok and len(report.warnings) == 1


def test_extra_column(contract: Contract) -> None:
    report = validate_table(_train().assign(bonus=1), contract, source="new.csv")
    assert _kinds(report) == [("extra_column", "bonus", "warning")]
    assert report.ok


def test_text_in_float_column(contract: Contract) -> None:
    df = _train().astype({"income": object})
    df.loc[[2, 7], "income"] = ["abc", "n/a?"]
    df.loc[3, "income"] = "4.5"  # text that reads as a number is fine
    v = _only(validate_table(df, contract, source="new.csv"), "type_mismatch")
    assert (v.column, v.severity, v.count, v.rows) == ("income", "error", 2, (2, 7))
    assert "e.g. 'abc'" in v.message and "cannot be read as float" in v.message
    assert "rows 2, 7" in v.message and "loopml contract update" in v.message


def test_integer_column(contract: Contract) -> None:
    whole = _train().astype({"age": float})
    assert validate_table(whole, contract, source="new.csv").violations == ()
    df = whole.copy()
    df.loc[[1, 4], "age"] = [25.5, 40.25]
    v = _only(validate_table(df, contract, source="new.csv"), "type_mismatch")
    assert (v.column, v.count, v.rows) == ("age", 2, (1, 4))
    assert "e.g. 25.5;" in v.message


def test_integers_in_float_column_are_fine(contract: Contract) -> None:
    df = _train().assign(income=list(range(1, 11)))
    assert validate_table(df, contract, source="new.csv").violations == ()


def test_boolean_column(contract: Contract) -> None:
    df = _train().astype({"flag": object})
    df.loc[[0, 1, 2], "flag"] = ["true", "0", "maybe"]
    report = validate_table(df, contract, source="new.csv")
    v = _only(report, "type_mismatch")
    assert (v.column, v.count, v.rows) == ("flag", 1, (2,))


def test_datetime_column(contract: Contract) -> None:
    df = _train()
    df.loc[5, "ts"] = "yesterday"
    v = _only(validate_table(df, contract, source="new.csv"), "type_mismatch")
    assert (v.column, v.count, v.rows) == ("ts", 1, (5,))
    parsed = _train().assign(ts=pd.to_datetime(_train()["ts"]))
    assert validate_table(parsed, contract, source="new.parquet").violations == ()


def test_null_rate_jump(contract: Contract) -> None:
    df = _train()
    df.loc[[0, 1, 3, 5, 9], "income"] = np.nan  # with row 2: 60 % against 10 % in training
    v = _only(validate_table(df, contract, source="new.csv"), "null_rate")
    assert (v.column, v.severity, v.count, v.rows) == ("income", "error", 6, (0, 1, 2, 3, 5))
    assert "60.0%" in v.message and "10.0%" in v.message
    assert validate_table(df, contract, source="n", null_rate_tolerance=0.5).violations == ()


def test_unexpected_null_within_tolerance_warns(contract: Contract) -> None:
    df = _train()
    df.loc[6, "age"] = np.nan
    v = _only(validate_table(df, contract, source="new.csv"), "unexpected_null")
    assert (v.column, v.severity, v.count, v.rows) == ("age", "warning", 1, (6,))
    df.loc[7, "age"] = np.nan  # 20 % > 0 % + 10 %
    v = _only(validate_table(df, contract, source="new.csv"), "null_rate")
    assert (v.column, v.severity, v.count) == ("age", "error", 2)


def test_null_entity_key_is_an_error(contract: Contract) -> None:
    df = _train()
    df.loc[3, "id"] = None
    v = _only(validate_table(df, contract, source="new.csv"), "unexpected_null")
    assert (v.column, v.severity, v.rows) == ("id", "error", (3,))


def test_null_target_only_warns_on_a_jump(contract: Contract) -> None:
    df = _train().astype({"y": float})
    df.loc[0, "y"] = np.nan
    assert validate_table(df, contract, source="new.csv").violations == ()
    df["y"] = np.nan
    assert _kinds(validate_table(df, contract, source="new.csv")) == [("null_rate", "y", "warning")]


def test_out_of_range_and_infinite(contract: Contract) -> None:
    df = _train()
    df.loc[[2, 8], "age"] = [10, 99]
    df.loc[4, "income"] = np.inf
    df.loc[5, "income"] = -np.inf
    report = validate_table(df, contract, source="new.csv")
    v = _only(report, "out_of_range")
    assert (v.column, v.severity, v.count, v.rows) == ("age", "warning", 2, (2, 8))
    assert "[20, 65]" in v.message and "seen 10 to 99" in v.message
    v = _only(report, "non_finite")
    assert (v.column, v.severity, v.count, v.rows) == ("income", "error", 2, (4, 5))


def test_unseen_categories(contract: Contract) -> None:
    df = _train()
    df.loc[[1, 3, 8], "plan"] = ["z", "q", "z"]
    df.loc[0, "y"] = 2
    report = validate_table(df, contract, source="new.csv")
    plan = next(v for v in report.violations if v.column == "plan")
    assert (plan.kind, plan.severity, plan.count, plan.rows) == (
        "unseen_category",
        "warning",
        3,
        (1, 3, 8),
    )
    assert "'z' (2), 'q' (1)" in plan.message
    target = next(v for v in report.violations if v.column == "y")
    assert (target.kind, target.count, target.rows) == ("unseen_category", 1, (0,))
    assert report.ok


def test_float_labels_match_integer_classes(contract: Contract) -> None:
    df = _train().astype({"y": float})
    assert validate_table(df, contract, source="new.csv").violations == ()


def test_unseen_values_are_not_flagged_when_categories_were_capped() -> None:
    train = pd.DataFrame({"s": [f"v{i}" for i in range(300)], "y": [0, 1] * 150})
    contract = infer_contract(train, target="y", task="binary", entity_key=None, time_column=None)
    report = validate_table(train.assign(s="brand new"), contract, source="new.csv")
    assert report.violations == ()


def test_duplicate_keys(contract: Contract) -> None:
    df = _train()
    df.loc[4, "id"] = "k1"
    df.loc[[5, 6], "id"] = "k2"
    v = _only(validate_table(df, contract, source="new.csv"), "duplicate_key")
    assert (v.column, v.severity, v.count, v.rows) == ("id", "error", 5, (1, 2, 4, 5, 6))
    assert "2 value(s) shared by 5 rows" in v.message and "'k1', 'k2'" in v.message


def test_rows_are_positions_and_capped_at_five(contract: Contract) -> None:
    df = _train().set_axis(range(100, 100 + N))
    df["age"] = 1000
    v = _only(validate_table(df, contract, source="new.csv"), "out_of_range")
    assert v.count == N and v.rows == (0, 1, 2, 3, 4)
    assert v.message.endswith("(rows 0, 1, 2, 3, 4, ...)")


def test_report_serialises_and_raises(contract: Contract) -> None:
    df = _train().assign(extra=0)
    df.loc[1, "id"] = "k0"
    report = validate_table(df, contract, source="new.csv")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["errors"] == 1 and data["warnings"] == 1
    assert data["violations"][1]["rows"] == [0, 1]
    assert report.exit_code == 1
    with pytest.raises(ContractError, match=r"new\.csv: 1 error, 1 warning") as info:
        report.raise_for_errors()
    assert "entity key 'id'" in info.value.detail
    validate_table(_train(), contract, source="ok.csv").raise_for_errors()


def test_many_rows_find_exact_positions(contract: Contract) -> None:
    rng = np.random.default_rng(7)
    n = 200_000
    df = pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(n)],
            "ts": "2024-01-05T00:00:00",
            "age": rng.integers(20, 66, n),
            "income": rng.uniform(1, 10, n),
            "plan": rng.choice(["a", "b", "c"], n),
            "flag": rng.random(n) < 0.5,
            "notes": "n",
            "y": rng.integers(0, 2, n),
        }
    )
    df.loc[[17, 123_456, 199_999], "income"] = [11.0, 0.5, 42.0]
    v = _only(validate_table(df, contract, source="big.parquet"), "out_of_range")
    assert (v.count, v.rows) == (3, (17, 123_456, 199_999))


def test_a_table_read_back_from_csv_validates_clean(tmp_path: Path) -> None:
    train = _train().astype({"y": float, "flag": object})
    train.loc[[3, 6], "flag"] = None  # a boolean column with gaps reads back as object
    train.loc[4, "y"] = np.nan  # a target with gaps reads back as float
    path = tmp_path / "train.csv"
    write_table(train, path)
    df = read_table(path)
    contract = infer_contract(
        df, target="y", task="binary", entity_key="id", time_column="ts", drop=("notes",)
    )
    assert contract.column("ts").type == "datetime"
    assert contract.column("flag").type == "boolean"
    assert contract.classes == ["0", "1"]
    assert validate_table(df, contract, source=str(path)).violations == ()
    assert validate_table(_train(), contract, source="full.csv").ok
