from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.config import SplitConfig
from loopml.data.contract import ColumnSpec, Contract
from loopml.errors import ConfigError, ContractError
from loopml.train.split import encode_target, sample_rows, split_holdout, split_validation

pytestmark = pytest.mark.unit


def _contract(
    task: str = "binary", classes: dict[str, float] | None = None, time_column: str | None = "ts"
) -> Contract:
    target_type = "float" if task == "regression" else "string"
    cats = None if task == "regression" else (classes or {"no": 0.7, "yes": 0.3})
    columns = [
        ColumnSpec(name="x", type="float", nullable=False, null_rate=0.0, n_unique=10),
        ColumnSpec(
            name="y",
            type=target_type,
            role="target",
            nullable=True,
            null_rate=0.0,
            n_unique=2,
            categories=cats,
        ),
    ]
    if time_column:
        columns.append(
            ColumnSpec(
                name=time_column,
                type="datetime",
                role="time",
                nullable=False,
                null_rate=0.0,
                n_unique=10,
            )
        )
    return Contract(
        rows=10,
        target="y",
        task=task,
        time_column=time_column,
        columns=tuple(columns),
    )


def _frame(labels: Sequence[object], seed: int = 0) -> pd.DataFrame:
    n = len(labels)
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=n, freq="min")
    return pd.DataFrame(
        {"x": rng.normal(size=n), "y": labels, "ts": times[rng.permutation(n)]},
        index=pd.RangeIndex(100, 100 + n),
    )


def test_encode_target_classification_and_regression() -> None:
    contract = _contract(classes={"a": 0.5, "b": 0.3, "c": 0.2})
    codes = encode_target(pd.Series(["c", "a", "b", "a"]), contract)
    assert codes.tolist() == [2, 0, 1, 0]
    assert codes.dtype == np.int64
    values = encode_target(pd.Series([1, 2.5]), _contract("regression"))
    assert values.dtype == np.float64
    assert values.tolist() == [1.0, 2.5]


def test_encode_target_matches_integral_floats_and_bools() -> None:
    numeric = _contract(classes={"0": 0.5, "1": 0.5})
    assert encode_target(pd.Series([1.0, 0.0, 1.0]), numeric).tolist() == [1, 0, 1]
    booleans = _contract(classes={"False": 0.5, "True": 0.5})
    assert encode_target(pd.Series([True, False]), booleans).tolist() == [1, 0]


def test_encode_target_names_unknown_labels() -> None:
    with pytest.raises(ContractError, match="1 label") as info:
        encode_target(pd.Series(["yes", "maybe", "no"]), _contract())
    assert "unknown: maybe" in info.value.detail
    assert "contract update" in info.value.fix


def test_encode_target_rejects_nulls_and_text_in_regression() -> None:
    with pytest.raises(ContractError, match="null"):
        encode_target(pd.Series(["yes", None]), _contract())
    with pytest.raises(ContractError, match="not numbers") as info:
        encode_target(pd.Series(["1.5", "high"]), _contract("regression"))
    assert "'high'" in info.value.detail


def test_random_split_is_stratified_seeded_and_drops_null_targets() -> None:
    labels: list[object] = ["no"] * 700 + ["yes"] * 290 + [None] * 10
    frame = _frame(labels)
    config = SplitConfig(strategy="random", holdout=0.2, seed=3)
    train, holdout = split_holdout(frame, _contract(), config)
    assert len(train) + len(holdout) == 990
    assert train["y"].notna().all() and holdout["y"].notna().all()
    assert set(train.index).isdisjoint(holdout.index)
    assert len(holdout) == pytest.approx(198, abs=2)
    assert (holdout["y"] == "yes").mean() == pytest.approx(290 / 990, abs=0.01)
    assert (train["y"] == "yes").mean() == pytest.approx(290 / 990, abs=0.01)
    again_train, _ = split_holdout(frame, _contract(), config)
    assert again_train.index.equals(train.index)
    other_train, _ = split_holdout(frame, _contract(), SplitConfig(seed=4))
    assert not other_train.index.equals(train.index)


def test_random_split_keeps_a_two_row_class_on_both_sides() -> None:
    labels = ["a"] * 50 + ["b"] * 48 + ["c"] * 2
    contract = _contract(classes={"a": 0.5, "b": 0.48, "c": 0.02})
    train, holdout = split_holdout(_frame(labels), contract, SplitConfig())
    assert (train["y"] == "c").sum() == 1
    assert (holdout["y"] == "c").sum() == 1


def test_random_split_regression() -> None:
    frame = _frame(list(np.arange(50.0)))
    train, holdout = split_holdout(frame, _contract("regression"), SplitConfig(holdout=0.3))
    assert (len(train), len(holdout)) == (35, 15)


def test_single_row_class_cannot_be_stratified() -> None:
    labels: list[object] = [*(["a"] * 20), *(["b"] * 19), "c"]
    contract = _contract(classes={"a": 0.5, "b": 0.45, "c": 0.05})
    with pytest.raises(ContractError, match="class 'c' has 1 labelled row") as info:
        split_holdout(_frame(labels), contract, SplitConfig())
    assert "merge" in info.value.fix


def test_time_split_holds_out_the_latest_rows() -> None:
    labels: list[object] = ["no", "yes"] * 50
    frame = _frame(labels)
    train, holdout = split_holdout(frame, _contract(), SplitConfig(strategy="time", holdout=0.25))
    assert len(holdout) == 25
    assert train["ts"].max() < holdout["ts"].min()
    assert train["ts"].is_monotonic_increasing


def test_time_split_parses_text_times_and_keeps_null_times_in_training() -> None:
    frame = pd.DataFrame(
        {
            "x": np.arange(6.0),
            "y": ["no", "yes"] * 3,
            "ts": ["2024-01-05", None, "2024-01-01", "2024-01-03", "2024-01-02", "2024-01-04"],
        }
    )
    train, holdout = split_holdout(frame, _contract(), SplitConfig(strategy="time", holdout=0.3))
    assert holdout["ts"].tolist() == ["2024-01-04", "2024-01-05"]
    assert 1 in train.index


def test_time_split_without_time_column_is_a_config_error() -> None:
    frame = _frame(["no", "yes"] * 10)
    with pytest.raises(ConfigError, match="no time column") as info:
        split_holdout(frame, _contract(time_column=None), SplitConfig(strategy="time"))
    assert "time_column" in info.value.fix


def test_empty_part_is_a_contract_error() -> None:
    frame = _frame([None, None, 1.0])
    with pytest.raises(ContractError, match="would be empty"):
        split_holdout(frame, _contract("regression"), SplitConfig())


def test_split_validation_is_stratified_and_keeps_every_class() -> None:
    y = np.array([0] * 80 + [1] * 17 + [2] * 3)
    X = pd.DataFrame({"x": np.arange(100.0)})
    X_tr, X_va, y_tr, y_va = split_validation(X, y, "multiclass", fraction=0.2, seed=0)
    assert len(X_va) == len(y_va) == pytest.approx(20, abs=1)
    assert set(np.unique(y_tr)) == set(np.unique(y_va)) == {0, 1, 2}
    assert set(X_tr["x"]).isdisjoint(X_va["x"])
    np.testing.assert_array_equal(y[X_va["x"].astype(int)], y_va)


def test_sample_rows_caps_and_keeps_rare_classes() -> None:
    y = np.array([0] * 990 + [1] * 9 + [2])
    X = pd.DataFrame({"x": np.arange(1000.0)})
    X_s, y_s = sample_rows(X, y, "multiclass", max_rows=100, seed=0)
    assert len(X_s) == pytest.approx(100, abs=2)
    assert set(np.unique(y_s)) == {0, 1, 2}
    X_r, _ = sample_rows(X, y.astype(float), "regression", max_rows=100, seed=0)
    assert len(X_r) == 100
    X_all, _ = sample_rows(X, y, "multiclass", max_rows=5000)
    assert len(X_all) == 1000


def _copied_table(n: int = 1000, copies: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.integers(0, 50, n),
            "g": rng.choice(["a", "b"], n),
            "y": rng.choice(["p", "q"], n),
        }
    )
    return pd.concat([frame, frame.sample(copies, random_state=1)], ignore_index=True)


def test_copies_stay_on_one_side_of_the_holdout_split() -> None:
    from loopml.config import SplitConfig
    from loopml.data.infer import infer_contract
    from loopml.train.split import contract_copies, split_holdout

    frame = _copied_table()
    contract = infer_contract(frame, target="y", task="binary", entity_key=None, time_column=None)
    train, holdout = split_holdout(frame, contract, SplitConfig())
    groups = contract_copies(frame, contract)
    assert not set(groups[train.index]) & set(groups[holdout.index])
    assert len(train) + len(holdout) == len(frame)
    assert 0.15 < len(holdout) / len(frame) < 0.25


def test_copies_stay_on_one_side_of_the_validation_split() -> None:
    from loopml.train.split import copy_groups

    frame = _copied_table()
    x, y = frame[["x", "g"]], (frame["y"] == "q").to_numpy().astype(int)
    x_tr, x_va, y_tr, y_va = split_validation(x, y, "binary", fraction=0.2, seed=0)
    key = lambda f, t: set(map(tuple, f.assign(t=t).astype(str).to_numpy()))  # noqa: E731
    assert not key(x_tr, y_tr) & key(x_va, y_va)
    assert len(set(copy_groups(x.assign(t=y)).tolist())) < len(frame)  # there were copies


def test_row_hashes_are_the_same_for_the_same_example_in_any_file(tmp_path: Path) -> None:
    from loopml.data.infer import infer_contract
    from loopml.data.sources import read_table, write_table
    from loopml.train.split import row_hashes

    frame = pd.DataFrame({"n": [1, 2, 3], "f": [0.5, None, 2.0], "c": ["a", "b", None],
                          "y": ["p", "q", "p"]})  # fmt: skip
    contract = infer_contract(frame, target="y", task="binary", entity_key=None, time_column=None)
    write_table(frame, tmp_path / "t.csv")
    write_table(frame, tmp_path / "t.parquet")
    from_csv = row_hashes(read_table(tmp_path / "t.csv"), contract)
    from_parquet = row_hashes(read_table(tmp_path / "t.parquet"), contract)
    assert from_csv.tolist() == from_parquet.tolist() == row_hashes(frame, contract).tolist()
    assert len(set(from_csv.tolist())) == 3
