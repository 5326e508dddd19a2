from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.data.contract import Contract
from loopml.data.infer import (
    MAX_CATEGORIES,
    check_trainable,
    column_type,
    count_null_targets,
    guess_entity_key,
    guess_task,
    guess_time_column,
    infer_contract,
    looks_like_datetime,
    parse_datetime,
)
from loopml.errors import ConfigError, ContractError

pytestmark = pytest.mark.unit


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(8)],
            "signup": [f"2024-01-0{i + 1}T10:00:00" for i in range(8)],
            "age": [20, 30, 40, 50, 60, 70, 80, 90],
            "income": [1.5, 2.5, None, 4.0, 5.0, np.inf, 7.0, -np.inf],
            "plan": ["a", "b", "a", None, "a", "b", "c", "a"],
            "flag": [True, False, True, None, True, True, False, True],
            "notes": ["x"] * 8,
            "churn": [0, 1, 0, 1, 0, 0, 1, 0],
        }
    )


def _contract(df: pd.DataFrame | None = None, **kwargs: object) -> Contract:
    args: dict[str, object] = {
        "target": "churn",
        "task": "binary",
        "entity_key": "customer_id",
        "time_column": "signup",
        "drop": ("notes",),
    }
    args.update(kwargs)
    return infer_contract(_table() if df is None else df, **args)  # type: ignore[arg-type]


def test_types_and_roles() -> None:
    contract = _contract()
    got = {s.name: (s.type, s.role) for s in contract.columns}
    assert got == {
        "customer_id": ("string", "key"),
        "signup": ("datetime", "time"),
        "age": ("integer", "feature"),
        "income": ("float", "feature"),
        "plan": ("string", "feature"),
        "flag": ("boolean", "feature"),
        "notes": ("string", "dropped"),
        "churn": ("integer", "target"),
    }
    assert contract.names == list(_table().columns)
    assert contract.rows == 8
    assert contract.numeric_features == ["age", "income"]
    assert contract.categorical_features == ["plan", "flag"]


def test_statistics() -> None:
    contract = _contract()
    income = contract.column("income")
    assert (income.min, income.max) == (1.5, 7.0)  # infinities are not part of the range
    assert income.nullable and income.null_rate == pytest.approx(1 / 8)
    assert income.n_unique == 7
    age = contract.column("age")
    assert (age.min, age.max, age.nullable, age.null_rate) == (20.0, 90.0, False, 0.0)
    assert age.unique and age.categories is None
    plan = contract.column("plan")
    assert plan.categories == {"a": 4 / 7, "b": 2 / 7, "c": 1 / 7}
    assert list(plan.categories) == ["a", "b", "c"]  # most frequent first
    assert (plan.n_unique, plan.unique) == (3, False)
    assert contract.column("flag").categories == {"True": 5 / 7, "False": 2 / 7}
    assert contract.column("customer_id").categories is None  # keys are always new
    assert contract.column("customer_id").unique


def test_classification_target_always_has_categories() -> None:
    contract = _contract()
    assert contract.target_spec.categories == {"0": 5 / 8, "1": 3 / 8}
    assert contract.classes == ["0", "1"]
    # a float target (the CSV had gaps) gives the same class names as an integer one
    df = _table().assign(churn=[0.0, 1.0, None, 1.0, 0.0, 0.0, 1.0, 0.0])
    assert _contract(df).classes == ["0", "1"]
    regression = _contract(_table().assign(churn=np.linspace(0, 1, 8)), task="regression")
    assert regression.target_spec.categories is None


def test_multiclass_target_keeps_every_class() -> None:
    n = MAX_CATEGORIES + 50
    df = pd.DataFrame({"x": range(n), "y": [f"k{i}" for i in range(n)]})
    contract = infer_contract(df, target="y", task="multiclass", entity_key=None, time_column=None)
    assert len(contract.classes) == n


def test_categories_are_capped_keeping_the_most_frequent() -> None:
    values = [f"v{i:03d}" for i in range(250)] + ["common"] * 5 + ["v249"] * 2
    df = pd.DataFrame({"s": values, "y": [0, 1] * (len(values) // 2) + [0]})
    spec = infer_contract(df, target="y", task="binary", entity_key=None, time_column=None).column(
        "s"
    )
    assert spec.categories is not None
    assert len(spec.categories) == MAX_CATEGORIES
    assert list(spec.categories)[:3] == ["common", "v249", "v000"]  # ties broken by value
    assert "v198" not in spec.categories and "v197" in spec.categories
    assert spec.n_unique == 251


def test_datetime_detection() -> None:
    assert looks_like_datetime(pd.Series(["2024-01-31", "2024-02-01 12:30:00", None]))
    assert looks_like_datetime(pd.Series(["2024-01-31T00:00:00Z", "2024-02-01T10:00:00+02:00"]))
    assert looks_like_datetime(pd.Series(["01/31/2024", "02/01/2024"]))
    assert not looks_like_datetime(pd.Series(["2021", "2022"]))  # bare years are not dates
    assert not looks_like_datetime(pd.Series(["a", "b"]))
    assert not looks_like_datetime(pd.Series([1, 2]))
    mostly = [f"2024-01-{d:02d}" for d in range(1, 29)] * 2 + ["unknown"]  # 56 of 57 distinct
    assert looks_like_datetime(pd.Series(mostly))
    assert not looks_like_datetime(pd.Series(["2024-01-01", "2024-01-02", "n/a"]))


def test_parse_datetime() -> None:
    parsed = parse_datetime(pd.Series(["2024-01-31", "bad", None, "2024-02-01T10:00:00"]))
    assert parsed.isna().tolist() == [False, True, True, False]
    assert parsed.iloc[3] == pd.Timestamp("2024-02-01 10:00:00")
    day_first = parse_datetime(pd.Series(["31/01/2024", "02/01/2024"]))
    assert day_first.tolist() == [pd.Timestamp("2024-01-31"), pd.Timestamp("2024-01-02")]
    mixed_zones = parse_datetime(pd.Series(["2024-01-01T00:00:00Z", "2024-01-01T02:00:00+02:00"]))
    assert mixed_zones.iloc[0] == mixed_zones.iloc[1]
    assert parse_datetime(pd.Series([1.5, 2.0])).isna().all()


def test_column_type() -> None:
    assert column_type(pd.Series([True, None, False], dtype=object)) == "boolean"
    assert column_type(pd.Series(pd.to_datetime(["2024-01-01"]))) == "datetime"
    assert column_type(pd.Series([1, "a"], dtype=object)) == "string"
    assert column_type(pd.Series(["a", "b"], dtype="category")) == "string"
    assert column_type(pd.Series([1.0, 2.0])) == "float"  # whole floats stay float


@pytest.mark.parametrize(
    ("values", "task"),
    [
        ([0, 1] * 50, "binary"),
        (["yes", "no", None] * 10, "binary"),
        ([True, False] * 5, "binary"),
        ([0, 1, 2, 3] * 25, "multiclass"),
        (["a", "b", "c"] * 3, "multiclass"),
        ([0.0, 1.0, 2.0] * 20, "multiclass"),
        (list(range(100)), "regression"),
        ([0, 1, 2, 3], "regression"),  # too few rows for 4 classes
        ([0.5, 1.25, 3.0] * 20, "regression"),
    ],
)
def test_guess_task(values: list[object], task: str) -> None:
    got, reason = guess_task(pd.Series(values))
    assert got == task
    assert reason


def test_guess_task_reason_names_the_values() -> None:
    assert guess_task(pd.Series(["no", "yes", "no"])) == (
        "binary",
        "the target has 2 distinct values (no, yes)",
    )


def test_guess_entity_key() -> None:
    df = pd.DataFrame(
        {
            "paid": [10, 20, 30],  # unique ints, but 'paid' only ends in the letters 'id'
            "name": ["ann", "bob", "cy"],
            "userId": [1, 2, 3],
            "order_key": ["a", "b", None],
        }
    )
    assert guess_entity_key(df) == "userId"
    assert guess_entity_key(df, exclude=["userId"]) == "name"  # unique text fallback
    assert guess_entity_key(df[["paid"]]) is None
    assert guess_entity_key(pd.DataFrame({"id": [1, 1, 2]})) is None
    assert guess_entity_key(_table()) == "customer_id"


def test_guess_time_column() -> None:
    df = pd.DataFrame(
        {
            "birthday": pd.to_datetime(["2000-01-01", "2001-01-01"]),
            "updated_date": ["2024-01-01", "2024-01-02"],
            "created_at": ["2024-01-01T00:00:00", "2024-01-02T00:00:00"],
            "x": [1, 2],
        }
    )
    assert guess_time_column(df) == "created_at"
    assert guess_time_column(df, exclude=["created_at"]) == "updated_date"
    assert guess_time_column(df[["birthday", "x"]]) == "birthday"
    assert guess_time_column(df[["x"]]) is None


def test_infer_rejects_unknown_columns() -> None:
    with pytest.raises(ContractError, match=r"column 'chrun' \(data.target\)") as info:
        _contract(target="chrun")
    assert "close matches: churn" in info.value.detail
    with pytest.raises(ContractError, match=r"data\.drop"):
        _contract(drop=("nope",))


def test_infer_rejects_contradicting_roles() -> None:
    with pytest.raises(ConfigError, match=r"data\.drop lists the target"):
        _contract(drop=("churn",))
    with pytest.raises(ConfigError, match=r"data\.entity_key is the target"):
        _contract(entity_key="churn")


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    contract = _contract()
    path = tmp_path / "sub" / "loopml.contract.yaml"
    contract.save(path)
    assert Contract.load(path) == contract


def test_check_trainable_accepts_a_good_table() -> None:
    df = _table()
    df.loc[2, "churn"] = None
    check_trainable(df, _contract())
    assert count_null_targets(df, "churn") == 1
    assert count_null_targets(df, "absent") == 0


def test_check_trainable_missing_target() -> None:
    with pytest.raises(ContractError, match=r"'churn' .* is not in the table") as info:
        check_trainable(_table().rename(columns={"churn": "Churn"}), _contract())
    assert "close matches: Churn" in info.value.detail


def test_check_trainable_all_null_target() -> None:
    with pytest.raises(ContractError, match="target 'churn' is null in all 8 rows"):
        check_trainable(_table().assign(churn=np.nan), _contract())


def test_check_trainable_single_class() -> None:
    df = pd.DataFrame({"x": np.arange(4000.0), "y": np.ones(4000, dtype=int)})
    contract = infer_contract(df, target="y", task="binary", entity_key=None, time_column=None)
    with pytest.raises(ContractError) as info:
        check_trainable(df, contract)
    assert info.value.headline == (
        "target 'y' has a single class '1' in 4,000 rows; a classifier needs at least two"
    )
    assert info.value.fix


def test_check_trainable_binary_with_three_classes() -> None:
    df = _table().assign(churn=[0, 1, 2, 0, 1, 2, 0, 1])
    with pytest.raises(ContractError, match=r"3 classes but data\.task is binary"):
        check_trainable(df, _contract(df))


def test_check_trainable_regression_needs_numbers() -> None:
    df = _table().assign(churn=list("abababab"))
    with pytest.raises(ContractError, match="holds string values; regression needs numbers"):
        check_trainable(df, _contract(df, task="regression"))


def test_check_trainable_all_null_feature() -> None:
    df = _table().assign(plan=None)
    with pytest.raises(ContractError, match="feature column 'plan' is null in all 8") as info:
        check_trainable(df, _contract(df))
    assert "data.drop" in info.value.fix


def test_check_trainable_no_features_left() -> None:
    df = _table()[["customer_id", "signup", "notes", "churn"]]
    with pytest.raises(ContractError, match="no feature columns left"):
        check_trainable(df, _contract(df))


def test_positive_class_comes_last_and_must_be_a_class() -> None:
    from loopml.train.split import encode_target

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": ["churned", "retained"] * 2})
    default = infer_contract(frame, target="y", task="binary", entity_key=None, time_column=None)
    assert default.classes == ["churned", "retained"]
    chosen = infer_contract(
        frame, target="y", task="binary", entity_key=None, time_column=None,
        positive_class="churned",
    )  # fmt: skip
    assert chosen.classes == ["retained", "churned"]
    assert encode_target(frame["y"], chosen).tolist() == [1, 0, 1, 0]
    with pytest.raises(ContractError, match="not a class"):
        infer_contract(
            frame, target="y", task="binary", entity_key=None, time_column=None,
            positive_class="gone",
        )  # fmt: skip
