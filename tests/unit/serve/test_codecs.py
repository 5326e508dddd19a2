from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.data.contract import ColumnSpec, Contract
from loopml.errors import InputError
from loopml.serve.codecs import (
    decode_feedback,
    decode_invocations,
    decode_predict,
    encode_invocations,
    encode_predict,
    media_type,
)
from loopml.serve.schema import InputSchema
from loopml.serve.table import ABSENT, Table
from loopml.serve.validation import validate

pytestmark = pytest.mark.unit

JSON = "application/json"


@dataclass(frozen=True)
class Outputs:
    labels: list[Any]
    probabilities: np.ndarray | None = None
    values: np.ndarray | None = None


def refusal(decode: Any, body: bytes, content_type: str | None = JSON) -> InputError:
    with pytest.raises(InputError) as caught:
        decode(body, content_type)
    return caught.value


def columns(table: Table) -> dict[str, list[Any]]:
    return {name: list(values) for name, values in table.columns.items()}


# -- /predict --------------------------------------------------------------------------


def test_predict_takes_records_with_an_optional_request_id() -> None:
    body = b'{"records": [{"a": 1, "b": "x"}, {"a": null}], "request_id": "r-1"}'
    decoded = decode_predict(body, "application/json; charset=UTF-8")
    assert decoded.request_id == "r-1"
    assert decoded.table.n_rows == 2 and decoded.table.origin == "json"
    assert columns(decoded.table) == {"a": [1, None], "b": ["x", ABSENT]}


def test_records_with_different_fields_mark_the_absent_ones() -> None:
    decoded = decode_predict(b'[{"a": 1, "b": 2}, {"a": 3, "c": 4}, {"c": 5, "b": 6}]', JSON)
    assert columns(decoded.table) == {
        "a": [1, 3, ABSENT],
        "b": [2, ABSENT, 6],
        "c": [ABSENT, 4, 5],
    }
    decoded = decode_predict(b'[{"a": 1, "b": 2}, {"b": 3, "a": 4}]', JSON)
    assert columns(decoded.table) == {"a": [1, 4], "b": [2, 3]}


def test_predict_takes_a_bare_list_and_a_byte_order_mark() -> None:
    decoded = decode_predict(b'\xef\xbb\xbf[{"a": 1.5}]', JSON)
    assert decoded.request_id is None and columns(decoded.table) == {"a": [1.5]}


@pytest.mark.parametrize(
    ("body", "error", "status", "words"),
    [
        (b'{"records": [{"a": 1}', "malformed_json", 400, "line 1 column"),
        (b'{"records": [{"a": "\xff"}]}', "invalid_encoding", 400, "byte 0xff at offset 20"),
        (b"", "empty", 422, "empty"),
        (b"  \n", "empty", 422, "empty"),
        (b'{"records": []}', "empty", 422, "at least one"),
        (b"[]", "empty", 422, "at least one"),
        (b'{"records": {"a": 1}}', "malformed_request", 422, "must be a list"),
        (b'{"a": 1, "b": 2}', "malformed_request", 422, "must be wrapped"),
        (b'{"dataframe_records": []}', "malformed_request", 422, "/invocations"),
        (b'{"records": [], "extra": 1}', "malformed_request", 422, "unknown key 'extra'"),
        (b'{"records": [1, 2]}', "malformed_request", 422, "the number 1"),
        (b"{}", "malformed_request", 422, "no 'records'"),
        (b'{"records": [{"a": 1}], "request_id": 5}', "bad_request_id", 422, "string"),
        (b"Nope", "malformed_json", 400, "line 1"),
        (b'{"records": [{"a": NaN, "b": "\\ud800"}]}', "malformed_json", 400, "column 20"),
    ],
)
def test_predict_refuses_bad_bodies(body: bytes, error: str, status: int, words: str) -> None:
    caught = refusal(decode_predict, body)
    assert (caught.error, caught.status) == (error, status)
    assert words in caught.reason


def test_nan_and_infinity_as_python_writes_them_are_read_as_floats() -> None:
    body = b'{"records": [{"a": NaN, "b": -Infinity, "c": 1e999}]}'
    values = columns(decode_predict(body, JSON).table)
    assert np.isnan(values["a"][0]) and values["b"] == [-np.inf] and values["c"] == [np.inf]


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
    ],
)
def test_only_utf8_json_is_accepted(content_type: str | None) -> None:
    caught = refusal(decode_predict, b'{"records": [{"a": 1}]}', content_type)
    assert (caught.error, caught.status) == ("unsupported_media_type", 415)


def test_media_type_is_case_insensitive_and_ignores_other_parameters() -> None:
    assert media_type('APPLICATION/json; boundary=x; charset="utf-8"', [JSON]) == JSON


def test_encode_predict_classification_and_regression() -> None:
    outputs = Outputs([1, 0], probabilities=np.array([[0.25, 0.75], [0.9, 0.1]]))
    body = orjson.loads(encode_predict("r-1", "feed", "3", outputs, ("0", "1"), "challenger"))
    assert body == {
        "request_id": "r-1",
        "model": "feed",
        "version": "3",
        "arm": "challenger",
        "predictions": [
            {"label": 1, "probabilities": {"0": 0.25, "1": 0.75}},
            {"label": 0, "probabilities": {"0": 0.9, "1": 0.1}},
        ],
    }
    outputs = Outputs([2.5, np.nan], values=np.array([2.5, np.nan]))
    body = orjson.loads(encode_predict("r-2", "m", "1", outputs, ()))
    assert body["predictions"] == [{"value": 2.5}, {"value": None}]


# -- /invocations ----------------------------------------------------------------------

PAYLOADS = [
    {"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]}},
    {"dataframe_split": {"columns": ["a", "b"], "index": [7, 8], "data": [[1, "x"], [2, "y"]]}},
    {"dataframe_records": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]},
    {"inputs": {"a": [1, 2], "b": ["x", "y"]}},
    {"inputs": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]},
    {"instances": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], "params": {"k": 1}},
    {"instances": {"a": [1, 2], "b": ["x", "y"]}},
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_invocations_reads_mlflow_payloads_as_mlflow_does(payload: dict[str, Any]) -> None:
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    decoded = decode_invocations(orjson.dumps(payload), JSON)
    assert columns(decoded.table) == {"a": [1, 2], "b": ["x", "y"]}
    data = {k: v for k, v in payload.items() if k != "params"}
    theirs = pd.DataFrame(infer_and_parse_data(data)).reset_index(drop=True)
    assert theirs.astype(object).to_dict("list") == columns(decoded.table)


def test_invocations_reads_one_row_of_scalars_and_a_single_column_split() -> None:
    decoded = decode_invocations(b'{"inputs": {"a": 1, "b": "x"}}', JSON)
    assert decoded.table.n_rows == 1 and columns(decoded.table) == {"a": [1], "b": ["x"]}
    decoded = decode_invocations(b'{"dataframe_split": {"columns": ["a"], "data": [1, 2]}}', JSON)
    assert columns(decoded.table) == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"[]", "a list"),
        (b'{"params": {}}', "exactly one of"),
        (b'{"inputs": {"a": [1]}, "instances": [{"a": 1}]}', "exactly one of"),
        (b'{"dataframe_split": {"data": [[1]]}}', "needs 'columns'"),
        (b'{"dataframe_split": {"columns": ["a"], "data": [[1]], "x": 1}}', "'data' field"),
        (b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3]]}}', "2 values"),
        (b'{"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}', "twice"),
        (b'{"dataframe_records": [[1, 2]]}', "positional"),
        (b'{"dataframe_records": {"a": 1}}', "list of records"),
        (b'{"inputs": {"a": [1, 2], "b": [3]}}', "same number of values"),
        (b'{"inputs": {"a": [1, 2], "b": 3}}', "every field"),
        (b'{"inputs": [[1, 2]]}', "positional"),
    ],
)
def test_invocations_refuses_payloads_of_the_wrong_shape(payload: bytes, words: str) -> None:
    caught = refusal(decode_invocations, payload)
    assert (caught.error, caught.status) == ("malformed_request", 422)
    assert words in caught.reason


def test_invocations_refuses_empty_payloads() -> None:
    assert refusal(decode_invocations, b'{"dataframe_records": []}').error == "empty"
    assert refusal(decode_invocations, b'{"inputs": {"a": []}}').error == "empty"


def test_invocations_reads_csv_as_a_frame() -> None:
    decoded = decode_invocations(b"a,b,c\n1,x,true\n2,,false\n", "text/csv")
    table = decoded.table
    assert table.origin == "frame" and table.n_rows == 2
    assert columns(table)["a"] == [1, 2]
    assert columns(table)["b"][0] == "x" and pd.isna(columns(table)["b"][1])
    assert columns(table)["c"] == [True, False]


@pytest.mark.parametrize(
    ("body", "error", "status"),
    [
        (b"", "empty", 422),
        (b"a,b\n", "empty", 422),
        (b"a,b\n1,\xe9\n", "invalid_encoding", 400),
        (b'a,b\n1,"2\n', "malformed_csv", 400),
    ],
)
def test_invocations_refuses_bad_csv(body: bytes, error: str, status: int) -> None:
    caught = refusal(decode_invocations, body, "text/csv; charset=utf-8")
    assert (caught.error, caught.status) == (error, status)


def test_invocations_refuses_other_media_types() -> None:
    caught = refusal(decode_invocations, b"PAR1", "application/vnd.apache.parquet")
    assert caught.status == 415


def test_encode_invocations_matches_mlflow_serving_the_pyfunc() -> None:
    """loopml's pyfunc returns prediction + proba_<class>; MLflow's scoring server writes
    that frame as records. Our encoder must write the same document."""
    from mlflow.pyfunc.scoring_server import predictions_to_json

    probabilities = np.array([[0.2, 0.8], [0.9, 0.1]])
    frame = pd.DataFrame(
        {"prediction": [1, 0], "proba_0": probabilities[:, 0], "proba_1": probabilities[:, 1]}
    )
    theirs = io.StringIO()
    predictions_to_json(frame, theirs)
    ours = encode_invocations(Outputs([1, 0], probabilities=probabilities), ("0", "1"))
    assert orjson.loads(ours) == orjson.loads(theirs.getvalue())

    theirs = io.StringIO()
    predictions_to_json(pd.DataFrame({"prediction": [1.5, -2.0]}), theirs)
    ours = encode_invocations(Outputs([1.5, -2.0], values=np.array([1.5, -2.0])), ())
    assert orjson.loads(ours) == orjson.loads(theirs.getvalue())


# -- /feedback -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"request_id": "r", "label": 1}',
        b'[{"request_id": "r", "label": 1}]',
        b'{"labels": [{"request_id": "r", "label": 1}]}',
    ],
)
def test_feedback_takes_one_label_a_list_or_labels(body: bytes) -> None:
    assert decode_feedback(body, JSON) == [{"request_id": "r", "label": 1}]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"[]", "empty"),
        (b'{"labels": []}', "empty"),
        (b'{"labels": [1]}', "malformed_request"),
        (b'{"labels": [], "x": 1}', "malformed_request"),
        (b'"label"', "malformed_request"),
    ],
)
def test_feedback_refuses_bad_shapes(body: bytes, error: str) -> None:
    assert refusal(decode_feedback, body).error == error


# -- anything at all: an InputError or a table, never another exception ------------------

FIELDS = ["age", "score", "country", "active", "id", "y", "other"]
CONTRACT = Contract(
    rows=10,
    target="y",
    task="binary",
    entity_key="id",
    columns=(
        ColumnSpec(name="id", type="string", role="key", nullable=False, null_rate=0, n_unique=9),
        ColumnSpec(name="age", type="integer", nullable=True, null_rate=0.1, n_unique=5),
        ColumnSpec(name="score", type="float", nullable=False, null_rate=0, n_unique=9),
        ColumnSpec(
            name="country", type="string", nullable=False, null_rate=0, n_unique=2,
            categories={"FR": 0.5, "US": 0.5},
        ),
        ColumnSpec(
            name="active", type="boolean", nullable=False, null_rate=0, n_unique=2,
            categories={"True": 0.5, "False": 0.5},
        ),
        ColumnSpec(
            name="y", type="integer", role="target", nullable=False, null_rate=0, n_unique=2,
            categories={"0": 0.5, "1": 0.5},
        ),
    ),
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["FR", "true", "1", "1e999", " 2 "])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
RECORD = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=7)


def _documents() -> st.SearchStrategy[Any]:
    records = st.lists(RECORD, max_size=4)
    return st.one_of(
        VALUES,
        records,
        st.fixed_dictionaries({"records": records}, optional={"request_id": VALUES}),
        st.fixed_dictionaries(
            {}, optional={"dataframe_records": records, "inputs": VALUES, "instances": records}
        ),
        st.fixed_dictionaries(
            {"dataframe_split": st.fixed_dictionaries(
                {"columns": st.lists(st.sampled_from(FIELDS), max_size=7), "data": VALUES},
            )}
        ),
    )  # fmt: skip


def _survives(decode: Any, body: bytes, content_type: str) -> None:
    schema = InputSchema.from_contract(CONTRACT)
    try:
        table = decode(body, content_type).table
        validate(table, schema, max_rows=50)
        validate(table, schema, reject_rows=True, method="vector")
    except InputError as exc:
        assert exc.status in (400, 413, 415, 422)
        orjson.dumps(exc.to_body())  # the error body itself must serialise


@settings(max_examples=300, deadline=None)
@given(document=_documents())
def test_any_json_is_a_table_or_an_input_error(document: Any) -> None:
    body = json.dumps(document).encode()  # as Python writes it: NaN, Infinity, big ints
    _survives(decode_predict, body, JSON)
    _survives(decode_invocations, body, JSON)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=64))
def test_any_bytes_are_a_table_or_an_input_error(body: bytes) -> None:
    _survives(decode_predict, body, JSON)
    _survives(decode_invocations, body, "text/csv")


@pytest.mark.parametrize(
    ("decode", "body", "content_type"),
    [
        (decode_predict, orjson.dumps({"records": [{}] * 11}), JSON),
        (decode_invocations, orjson.dumps({"dataframe_split": {"data": [[1]] * 11}}), JSON),
        (decode_invocations, orjson.dumps({"dataframe_records": [{}] * 11}), JSON),
        (decode_invocations, orjson.dumps({"inputs": {"a": [1] * 11, "b": 2}}), JSON),
        (decode_invocations, b"a\n" + b"1\n" * 11, "text/csv"),
        (decode_feedback, orjson.dumps([{"request_id": "r"}] * 11), JSON),
    ],
)
def test_the_row_limit_is_checked_before_the_table_is_built(
    decode: Any, body: bytes, content_type: str
) -> None:
    with pytest.raises(InputError) as caught:
        decode(body, content_type, 10)
    assert (caught.value.error, caught.value.status) == ("too_many_rows", 413)
    try:  # at the limit, the rows are fine (whatever else is wrong with the body)
        decode(body, content_type, 11)
    except InputError as exc:
        assert exc.error != "too_many_rows"


def test_messages_never_repr_a_huge_key() -> None:
    body = orjson.dumps({"records": [{"a": 1}], "k" * 3_000_000: 1})
    caught = refusal(decode_predict, body)
    assert len(caught.reason) < 300
    caught = refusal(decode_feedback, orjson.dumps({"labels": [], "k" * 3_000_000: 1}))
    assert len(caught.reason) < 300 and len(caught.field or "") <= 100
