from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.data.contract import ColumnSpec, Contract
from loopml.data.feed import FEED_KEY, FEED_TARGET, FEED_TIME, generate_feed
from loopml.data.infer import infer_contract
from loopml.errors import InputError
from loopml.features.pipeline import MISSING, feature_frame
from loopml.serve.schema import InputSchema
from loopml.serve.table import ABSENT, Table
from loopml.serve.validation import ModelInput, validate

pytestmark = pytest.mark.unit


def spec(name: str, kind: str, **extra: Any) -> ColumnSpec:
    fields: dict[str, Any] = {"nullable": False, "null_rate": 0.0, "n_unique": 2}
    fields.update(extra)
    return ColumnSpec(name=name, type=kind, **fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def contract() -> Contract:
    """Every kind of column: the features a..f, the key, the time column, a dropped one."""
    return Contract(
        rows=10,
        target="y",
        task="binary",
        entity_key="id",
        time_column="ts",
        columns=(
            spec("id", "string", role="key", n_unique=10, unique=True),
            spec("ts", "datetime", role="time", n_unique=10),
            spec("age", "integer", nullable=True, null_rate=0.1, n_unique=5),
            spec("score", "float", n_unique=9),
            spec("country", "string", categories={"FR": 0.5, "US": 0.5}),
            spec("user", "string", categories={"u1": 0.5, "u2": 0.5}, n_unique=7),
            spec("active", "boolean", categories={"True": 0.6, "False": 0.4}),
            spec(
                "device",
                "string",
                nullable=True,
                null_rate=0.2,
                categories={"ios": 1.0},
                n_unique=1,
            ),
            spec("note", "string", role="dropped", n_unique=10),
            spec("y", "integer", role="target", categories={"0": 0.5, "1": 0.5}),
        ),
    )


@pytest.fixture(scope="module")
def schema(contract: Contract) -> InputSchema:
    return InputSchema.from_contract(contract)


GOOD = {
    "age": 31,
    "score": 0.5,
    "country": "FR",
    "user": "u1",
    "active": True,
    "device": "ios",
}


def record(**changes: Any) -> dict[str, Any]:
    row = dict(GOOD)
    for key, value in changes.items():
        if value is ABSENT:
            row.pop(key, None)
        else:
            row[key] = value
    return row


def refusal(table: Table, schema: InputSchema, **kwargs: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        validate(table, schema, **kwargs)
    return caught.value


# -- good input ------------------------------------------------------------------------


def test_good_records_become_model_ready_arrays_in_contract_order(schema: InputSchema) -> None:
    rows = [
        record(id="a", ts="2026-01-01"),
        record(id=7, age=None, score=2, active="false", device=None),
    ]
    checked = validate(Table.from_records(rows), schema)
    assert list(checked.features) == ["age", "score", "country", "user", "active", "device"]
    np.testing.assert_array_equal(checked.features["age"], [31.0, np.nan])
    assert checked.features["score"].dtype == np.float64
    assert checked.features["score"].tolist() == [0.5, 2.0]
    assert checked.features["active"].tolist() == ["True", "False"]
    assert checked.features["device"].dtype == object
    assert checked.features["device"].tolist() == ["ios", MISSING]
    assert checked.entity_keys == ["a", "7"]
    assert checked.n_rows == 2 and checked.unseen == {} and checked.kept is None


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (True, "True"),
        ("true", "True"),
        (" TRUE ", "True"),
        ("0", "False"),
        (1, "True"),
        (0.0, "False"),
        ("1.0", "True"),
        (np.bool_(False), "False"),
    ],
)
def test_booleans_take_the_bool_text_spellings(schema: InputSchema, value: Any, key: str) -> None:
    checked = validate(Table.from_records([record(active=value)]), schema)
    assert checked.features["active"].tolist() == [key]


def test_unseen_categories_are_served_and_counted(schema: InputSchema) -> None:
    rows = [record(country="JP"), record(country="JP", user="u9"), record(device=None)]
    checked = validate(Table.from_records(rows), schema)
    assert checked.features["country"].tolist() == ["JP", "JP", "FR"]
    # 'user' kept only the top categories of 7: a value outside them is not "unseen"
    assert checked.unseen == {"country": 2}


def test_key_time_and_dropped_columns_are_accepted_and_ignored(schema: InputSchema) -> None:
    checked = validate(Table.from_records([record(ts="x", note={"any": "thing"})]), schema)
    assert checked.entity_keys is None
    assert "note" not in checked.features
    assert checked.ignored == ()  # contract columns are not unknown


@pytest.mark.parametrize("method", ["loop", "vector"])
def test_nulls_where_training_had_none_are_served_and_counted(
    schema: InputSchema, method: str
) -> None:
    rows = [record(score=None), record(score=float("nan"), country=None), record(active=None)]
    checked = validate(Table.from_records(rows), schema, method=method)  # type: ignore[arg-type]
    assert checked.n_rows == 3 and checked.rejected == []
    assert checked.nulls == {"score": 2, "country": 1, "active": 1}
    assert np.isnan(checked.features["score"][:2]).all()
    assert checked.features["country"].tolist() == ["FR", MISSING, "FR"]
    # a null where the contract allows one is not counted
    assert validate(Table.from_records([record(age=None, device=None)]), schema).nulls == {}


def test_unknown_fields_and_the_target_are_served_and_ignored(schema: InputSchema) -> None:
    rows = [record(), record(), record(scor=1.0, y=1)]
    checked = validate(Table.from_records(rows), schema)
    assert checked.n_rows == 3 and checked.ignored == ("scor",)
    assert "scor" not in checked.features and "y" not in checked.features


def test_nan_in_a_nullable_numeric_column_is_null(schema: InputSchema) -> None:
    checked = validate(Table.from_columns({**_columns(2), "age": np.array([np.nan, 3.0])}), schema)
    assert math.isnan(checked.features["age"][0])


def _columns(n: int) -> dict[str, Any]:
    return {name: [value] * n for name, value in GOOD.items()}


# -- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "field", "words"),
    [
        ({"age": "31"}, "wrong_type", "age", "without quotes"),
        ({"age": 31.5}, "wrong_type", "age", "whole number"),
        ({"score": True}, "wrong_type", "score", "the boolean true"),
        ({"country": 5}, "wrong_type", "country", 'e.g. "5"'),
        ({"country": {"a": 1}}, "wrong_type", "country", "an object"),
        ({"score": [1.0]}, "wrong_type", "score", "an array"),
        ({"active": "maybe"}, "wrong_type", "active", "'maybe'"),
        ({"active": 2}, "wrong_type", "active", "boolean"),
        ({"score": float("inf")}, "non_finite", "score", "finite number"),
        ({"age": 10**400}, "non_finite", "age", "finite"),
        ({"id": {"k": 1}}, "wrong_type", "id", "a string or an integer"),
        ({"id": 1.5}, "wrong_type", "id", "integer"),
    ],
)
def test_bad_values_name_field_row_and_reason(
    schema: InputSchema, changes: dict[str, Any], error: str, field: str, words: str
) -> None:
    rows = [record(), record(**changes)]
    for method in ("loop", "vector"):
        caught = refusal(Table.from_records(rows), schema, method=method)
        assert (caught.error, caught.field, caught.row, caught.status) == (error, field, 1, 422)
        assert words in caught.reason


def test_a_missing_feature_column_is_named(schema: InputSchema) -> None:
    caught = refusal(Table.from_records([record(age=ABSENT, score=ABSENT)]), schema)
    assert (caught.error, caught.field, caught.row) == ("missing_field", "age", None)
    assert "send null" in caught.reason and "also missing: score" in caught.reason


def test_a_record_lacking_a_field_is_named_with_its_row(schema: InputSchema) -> None:
    rows = [record(), record(), record(score=ABSENT)]
    caught = refusal(Table.from_records(rows), schema)
    assert (caught.error, caught.field, caught.row) == ("missing_field", "score", 2)


def test_a_misspelt_feature_is_missing_and_its_spelling_pointed_out(schema: InputSchema) -> None:
    caught = refusal(Table.from_records([record(score=ABSENT, scor=1.0)]), schema)
    assert (caught.error, caught.field, caught.row) == ("missing_field", "score", None)
    assert "is 'scor' meant to be this field?" in caught.reason


def test_empty_and_oversized_requests(schema: InputSchema) -> None:
    assert refusal(Table({}, 0), schema).error == "empty"
    caught = refusal(Table.from_records([record()] * 3), schema, max_rows=2)
    assert (caught.error, caught.status) == ("too_many_rows", 413)


def test_the_first_error_is_the_lowest_row_then_contract_order(schema: InputSchema) -> None:
    rows = [record(), record(device=5, age="x"), record(score=None)]
    caught = refusal(Table.from_records(rows), schema)
    assert (caught.field, caught.row) == ("age", 1)


# -- batch scoring: reject rows --------------------------------------------------------


def test_reject_rows_keeps_the_good_rows_and_explains_the_bad(schema: InputSchema) -> None:
    frame = pd.DataFrame(
        {
            **_columns(5),
            "score": [0.1, "oops", 0.3, np.inf, 0.5],
            "country": ["FR", "US", None, "JP", "FR"],
            "extra": [1, 2, 3, 4, 5],
            "y": [0, 1, 0, 1, 0],
        }
    )
    checked = validate(Table.from_frame(frame), schema, reject_rows=True)
    assert [(e.row, e.field, e.error) for e in checked.rejected] == [
        (1, "score", "wrong_type"),
        (3, "score", "non_finite"),
    ]
    assert checked.kept is not None and checked.kept.tolist() == [0, 2, 4]
    assert checked.n_rows == 3 and checked.features["score"].tolist() == [0.1, 0.3, 0.5]
    assert checked.ignored == ("extra",)  # the target is known: ignored, not listed
    assert checked.nulls == {"country": 1}  # served: the pipeline imputes it
    assert checked.unseen == {}  # the unseen 'JP' was in a rejected row


def test_reject_rows_still_refuses_a_missing_column(schema: InputSchema) -> None:
    frame = pd.DataFrame(_columns(2)).drop(columns=["score"])
    caught = refusal(Table.from_frame(frame), schema, reject_rows=True)
    assert (caught.error, caught.field) == ("missing_field", "score")


def test_frames_are_read_as_feature_frame_reads_them(schema: InputSchema) -> None:
    frame = pd.DataFrame(
        {
            **_columns(3),
            "age": pd.Series(["31", " 2 ", None], dtype=object),  # numeric text in a CSV
            "country": [1, 2, 1],  # a numeric column read for a string feature
            "active": ["yes", "1", "FALSE"],
        }
    )
    checked = validate(Table.from_frame(frame), schema, reject_rows=True)
    assert [(e.row, e.field) for e in checked.rejected] == [(0, "active")]
    assert checked.features["age"].tolist()[0] == 2.0
    assert checked.features["country"].tolist() == ["2", "1"]
    assert checked.features["active"].tolist() == ["True", "False"]


def test_frames_are_read_column_wise_only(schema: InputSchema) -> None:
    with pytest.raises(ValueError, match="JSON tables"):
        validate(Table.from_frame(pd.DataFrame(_columns(2))), schema, method="loop")


# -- the feed: same arrays as feature_frame --------------------------------------------


@pytest.fixture(scope="module")
def feed() -> tuple[pd.DataFrame, Contract]:
    frame = generate_feed(3_000, seed=11)
    contract = infer_contract(
        frame, target=FEED_TARGET, task="binary", entity_key=FEED_KEY, time_column=FEED_TIME
    )
    return frame, contract


def _assert_same_as_feature_frame(checked: ModelInput, expected: pd.DataFrame) -> None:
    assert list(checked.features) == list(expected.columns)
    for name, values in checked.features.items():
        want = expected[name].to_numpy()
        assert values.dtype == want.dtype, name
        if values.dtype == object:
            assert values.tolist() == want.tolist(), name
            assert all(type(v) is str for v in values), name
        else:
            np.testing.assert_array_equal(values, want, err_msg=name)


def test_frames_give_exactly_the_feature_frame_arrays(feed: tuple[pd.DataFrame, Contract]) -> None:
    frame, contract = feed
    assert frame["user_age"].isna().any()  # nulls are part of the comparison
    checked = validate(
        Table.from_frame(frame.drop(columns=[FEED_TARGET])), InputSchema.from_contract(contract)
    )
    _assert_same_as_feature_frame(checked, feature_frame(frame, contract))
    assert checked.entity_keys == frame[FEED_KEY].tolist()
    assert checked.unseen == {}


@pytest.mark.parametrize("method", ["loop", "vector"])
def test_json_records_give_the_feature_frame_arrays(
    feed: tuple[pd.DataFrame, Contract], method: str
) -> None:
    frame, contract = feed
    part = frame.head(200).drop(columns=[FEED_TARGET, FEED_TIME])
    records = [
        {k: None if pd.isna(v) else v for k, v in row.items()}
        for row in part.astype(object).to_dict("records")
    ]
    checked = validate(
        Table.from_records(records),
        InputSchema.from_contract(contract),
        method=method,  # type: ignore[arg-type]
    )
    _assert_same_as_feature_frame(checked, feature_frame(part, contract))


# -- the loop and the column-wise path agree -------------------------------------------

BAD = [None, ABSENT, float("nan"), float("inf"), -math.inf, 10**400, "abc", "", {"a": 1}, [1]]
# Pools of one type each reach the typed fast paths of the column-wise reader; the last
# pool of a column mixes them (cell by cell there).
POOLS: dict[str, list[list[Any]]] = {
    "age": [[0, 31, -5], [2.0, 1e300, 7.5, -0.0], ["31", "x"]],
    "score": [[0.5, -1e-9, 2.0, 1e308], [3, 0, 10**30], [True, False]],
    "country": [["FR", "US", "JP", " FR", "1"], [1, 2.5], [True]],
    "user": [["u1", "u2", "u3"], [7, 8.0]],
    "active": [[True, False, np.bool_(True)], ["true", "0", " False ", "yes"], [1, 0.0, -0.0, 2]],
    "device": [["ios", "android", MISSING], [0.0, 1]],
    "id": [["k1", "k2"], [12, 10**20], [3.0, 2.5], [True]],
}


@st.composite
def tables(draw: st.DrawFn) -> Table:
    n = draw(st.integers(1, 12))
    columns: dict[str, list[Any]] = {}
    for name, pools in POOLS.items():
        pool = draw(st.sampled_from([*pools, [v for p in pools for v in p]]))
        cells = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
        for row in draw(st.lists(st.integers(0, n - 1), max_size=2)):
            cells[row] = draw(st.sampled_from(BAD))
        columns[name] = cells
    return Table(dict(columns), n)


def _outcome(table: Table, schema: InputSchema, method: str, reject: bool) -> Any:
    try:
        checked = validate(table, schema, method=method, reject_rows=reject)  # type: ignore[arg-type]
    except InputError as exc:
        return ("error", exc.to_body())
    features = {name: values.tolist() for name, values in checked.features.items()}
    rejected = [e.to_body() for e in checked.rejected]
    kept = None if checked.kept is None else checked.kept.tolist()
    counted = (checked.unseen, checked.nulls, checked.ignored)
    return (repr(features), checked.entity_keys, counted, rejected, kept)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), reject=st.booleans())
def test_the_loop_and_the_columnwise_path_agree(table: Table, reject: bool) -> None:
    schema = InputSchema.from_contract(_CONTRACT)
    assert _outcome(table, schema, "loop", reject) == _outcome(table, schema, "vector", reject)


@st.composite
def records(draw: st.DrawFn) -> Table:
    """One record of mostly good values: the one-pass reader or its fallback."""
    row = {
        name: draw(st.sampled_from([v for pool in pools for v in pool]))
        for name, pools in POOLS.items()
    }
    if draw(st.booleans()):
        row[draw(st.sampled_from(sorted(POOLS)))] = draw(st.sampled_from(BAD))
    return Table.from_records([row])


@settings(max_examples=300, deadline=None)
@given(table=records())
def test_one_record_reads_the_same_on_every_path(table: Table) -> None:
    schema = InputSchema.from_contract(_CONTRACT)
    assert _outcome(table, schema, "loop", False) == _outcome(table, schema, "vector", False)


_CONTRACT = Contract(
    rows=10,
    target="y",
    task="binary",
    entity_key="id",
    columns=(
        spec("id", "string", role="key", n_unique=10, unique=True),
        spec("age", "integer", nullable=True, null_rate=0.1, n_unique=5),
        spec("score", "float", n_unique=9),
        spec("country", "string", categories={"FR": 0.5, "US": 0.5}),
        spec("user", "string", nullable=True, null_rate=0.1, categories={"u1": 1.0}, n_unique=7),
        spec(
            "active", "boolean", nullable=True, null_rate=0.1, categories={"True": 1.0}, n_unique=1
        ),
        spec("device", "string", nullable=True, null_rate=0.2, categories={"ios": 1.0}, n_unique=1),
        spec("y", "integer", role="target", categories={"0": 0.5, "1": 0.5}),
    ),
)


def test_a_text_longer_than_the_limit_is_too_long_naming_field_and_row(
    schema: InputSchema,
) -> None:
    records = [record(), record(country="F" * 1_025)]
    caught = refusal(Table.from_records(records), schema, max_chars=1_024)
    assert (caught.error, caught.status, caught.field, caught.row) == (
        "too_long",
        422,
        "country",
        1,
    )
    assert "1,025 characters" in caught.reason and "serve.max_string_chars" in caught.reason
    assert validate(Table.from_records(records), schema).n_rows == 2  # no limit: served
    many = [record(device=None)] * 300 + [record(device="d" * 2_000)]  # the column-wise path
    assert refusal(Table.from_records(many), schema, max_chars=1_024).row == 300
    frame = pd.DataFrame([record(), record(user="u" * 5_000)])
    assert refusal(Table.from_frame(frame), schema, max_chars=1_024).field == "user"
    keyed = [record(id="k" * 2_000)]
    assert refusal(Table.from_records(keyed), schema, max_chars=1_024).field == "id"


def test_a_known_category_longer_than_the_limit_is_served(contract: Contract) -> None:
    long = "L" * 50
    specs = [
        s if s.name != "country" else s.model_copy(update={"categories": {long: 0.5, "US": 0.5}})
        for s in contract.columns
    ]
    schema = InputSchema.from_contract(contract.model_copy(update={"columns": tuple(specs)}))
    checked = validate(Table.from_records([record(country=long)]), schema, max_chars=10)
    assert checked.features["country"].tolist() == [long]
    caught = refusal(Table.from_records([record(country=long + "x")]), schema, max_chars=10)
    assert "its longest known category has 50" in caught.reason
