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
from loopml.train.split import encode_target

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
    assert "expected a number (the contract says float), got e.g. 'abc' in 2" in v.message
    assert "rows 2, 7" in v.message and "loopml contract update" in v.message


def test_integer_column(contract: Contract) -> None:
    whole = _train().astype({"age": float})
    assert validate_table(whole, contract, source="new.csv").violations == ()
    df = whole.copy()
    df.loc[[1, 4], "age"] = [25.5, 40.25]
    v = _only(validate_table(df, contract, source="new.csv"), "type_mismatch")
    assert (v.column, v.count, v.rows) == ("age", 2, (1, 4))
    assert "expected a whole number (the contract says integer), got e.g. 25.5" in v.message


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
    report = validate_table(df, contract, source="new.csv")
    plan = next(v for v in report.violations if v.column == "plan")
    assert (plan.kind, plan.severity, plan.count, plan.rows) == (
        "unseen_category",
        "warning",
        3,
        (1, 3, 8),
    )
    assert "'z' (2), 'q' (1)" in plan.message
    assert report.ok


def test_an_unknown_target_class_is_an_error_in_the_words_of_training(
    contract: Contract,
) -> None:
    df = _train()
    df.loc[[0, 4], "y"] = 2
    report = validate_table(df, contract, source="new.csv")
    target = _only(report, "unknown_class")
    assert (target.column, target.severity, target.count, target.rows) == ("y", "error", 2, (0, 4))
    assert not report.ok and report.exit_code == 1
    with pytest.raises(ContractError) as refused:
        encode_target(df["y"], contract)  # what loopml train refuses the labels with
    assert refused.value.headline in target.message
    assert refused.value.fix in target.message
    assert "'2' (2)" in target.message and "known: 0, 1" in target.message


def test_float_labels_match_integer_classes(contract: Contract) -> None:
    df = _train().astype({"y": float})
    assert validate_table(df, contract, source="new.csv").violations == ()


def test_unseen_values_are_not_flagged_when_categories_were_capped() -> None:
    train = pd.DataFrame({"s": [f"v{i}" for i in range(300)], "y": [0, 1] * 150})
    contract = infer_contract(train, target="y", task="binary", entity_key=None, time_column=None)
    new = train.assign(s=[f"new {i}" for i in range(300)])
    assert validate_table(new, contract, source="new.csv").violations == ()


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


# -- duplicate rows --------------------------------------------------------------------


def test_duplicate_rows_name_each_copy_and_the_row_it_repeats(contract: Contract) -> None:
    df = _train()
    copies = df.iloc[[3, 3, 5]].assign(id=["c1", "c2", "c3"], ts="2025-01-01", notes="other")
    df = pd.concat([df, copies], ignore_index=True)  # the key, time and dropped columns differ
    report = validate_table(df, contract, source="new.csv")
    v = _only(report, "duplicate_rows")
    assert (v.column, v.severity, v.count, v.rows) == (None, "warning", 3, (10, 11, 12))
    assert v.pairs == ((10, 3), (11, 3), (12, 5))
    assert v.message.startswith("3 of 13 rows in new.csv (23.1%) repeat an earlier row")
    assert "row 10 repeats row 3, row 11 repeats row 3, row 12 repeats row 5);" in v.message
    assert report.ok
    assert json.loads(json.dumps(report.to_dict()))["violations"][0]["pairs"] == [
        [10, 3],
        [11, 3],
        [12, 5],
    ]


def test_rows_differing_in_one_feature_or_the_target_are_not_duplicates(
    contract: Contract,
) -> None:
    df = pd.concat([_train(), _train().iloc[[3]]], ignore_index=True)
    assert _only(validate_table(df, contract, source="n"), "duplicate_rows").pairs == ((10, 3),)
    for column, value in (("plan", "b"), ("y", 0), ("income", np.nan)):
        changed = df.copy()
        changed.loc[10, column] = value
        kinds = [v.kind for v in validate_table(changed, contract, source="n").violations]
        assert "duplicate_rows" not in kinds, column


def test_nulls_are_equal_when_rows_are_compared(contract: Contract) -> None:
    df = pd.concat([_train(), _train().iloc[[2]]], ignore_index=True)  # row 2's income is null
    assert _only(validate_table(df, contract, source="n"), "duplicate_rows").pairs == ((10, 2),)


def test_duplicate_rows_show_the_first_five_pairs(contract: Contract) -> None:
    df = pd.concat([_train()] * 3, ignore_index=True).assign(id=[f"k{i}" for i in range(3 * N)])
    v = _only(validate_table(df, contract, source="n"), "duplicate_rows")
    assert v.count == 2 * N and v.rows == (10, 11, 12, 13, 14)
    assert v.pairs == ((10, 0), (11, 1), (12, 2), (13, 3), (14, 4))
    assert "(66.7%)" in v.message and "row 14 repeats row 4, ...);" in v.message


def test_a_scoring_table_compares_the_features_only(contract: Contract) -> None:
    df = _train().drop(columns=["y"])
    df.loc[1, ["age", "income", "plan", "flag"]] = df.loc[0, ["age", "income", "plan", "flag"]]
    v = _only(validate_table(df, contract, source="n"), "duplicate_rows")
    assert v.pairs == ((1, 0),) and "in every feature (row 1" in v.message


def test_duplicate_rows_of_a_large_table(contract: Contract) -> None:
    rng = np.random.default_rng(3)
    n = 300_000
    df = pd.DataFrame(
        {
            "id": np.arange(n).astype(str),
            "ts": "2024-01-05T00:00:00",
            "age": rng.integers(20, 66, n),
            "income": rng.uniform(1, 10, n),
            "plan": rng.choice(["a", "b", "c"], n),
            "flag": rng.random(n) < 0.5,
            "notes": "n",
            "y": rng.integers(0, 2, n),
        }
    )
    df.loc[[250_000, 299_999], ["age", "income", "plan", "flag", "y"]] = df.loc[
        [17, 123_456], ["age", "income", "plan", "flag", "y"]
    ].to_numpy()
    v = _only(validate_table(df, contract, source="big.parquet"), "duplicate_rows")
    assert v.pairs == ((250_000, 17), (299_999, 123_456))
