from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

from loopml.data.contract import ColumnSpec, Contract
from loopml.errors import InputError
from loopml.features.pipeline import MISSING
from loopml.serve.oip import (
    DATATYPES,
    HEADER,
    InferRequest,
    RequestedOutput,
    check_outputs,
    decode_infer,
    encode_infer,
    model_metadata,
    server_metadata,
)
from loopml.serve.schema import InputSchema
from loopml.serve.table import Table
from loopml.serve.validation import validate

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Outputs:
    labels: list[Any]
    probabilities: np.ndarray | None = None
    values: np.ndarray | None = None


def spec(name: str, kind: str, **extra: Any) -> ColumnSpec:
    fields: dict[str, Any] = {"nullable": False, "null_rate": 0.0, "n_unique": 2}
    fields.update(extra)
    return ColumnSpec(name=name, type=kind, **fields)  # type: ignore[arg-type]


CONTRACT = Contract(
    rows=10,
    target="y",
    task="binary",
    columns=(
        spec("age", "integer", nullable=True, null_rate=0.1),
        spec("score", "float"),
        spec("country", "string", categories={"FR": 0.5, "US": 0.5}),
        spec("active", "boolean", categories={"True": 0.5, "False": 0.5}),
        spec("count", "integer"),
        spec("y", "integer", role="target", categories={"0": 0.5, "1": 0.5}),
    ),
)


def tensor(name: str, array: np.ndarray, datatype: str, binary: bool) -> InferInput:
    item = InferInput(name, list(array.shape), datatype)
    item.set_data_from_numpy(array, binary_data=binary)
    return item


def triton_inputs(binary: bool | list[bool]) -> list[InferInput]:
    flags = binary if isinstance(binary, list) else [binary] * 5
    return [
        tensor("age", np.array([[31.0], [np.nan]]), "FP64", flags[0]),
        tensor("score", np.array([0.5, 1.25], dtype=np.float32), "FP32", flags[1]),
        tensor("country", np.array([["FR"], ["JP"]], dtype=object), "BYTES", flags[2]),
        tensor("active", np.array([True, False]), "BOOL", flags[3]),
        tensor("count", np.array([3, 4], dtype=np.int64), "INT64", flags[4]),
    ]


@pytest.mark.parametrize("binary", [True, False, [True, False, True, False, True]])
def test_tritonclient_requests_decode_to_model_ready_arrays(binary: bool | list[bool]) -> None:
    body, length = InferenceServerClient.generate_request_body(
        triton_inputs(binary), request_id="req-7"
    )
    request = decode_infer(body, length)
    assert request.id == "req-7" and request.table.n_rows == 2
    assert request.binary_output is True  # tritonclient's default with no outputs named
    checked = validate(request.table, InputSchema.from_contract(CONTRACT))
    np.testing.assert_array_equal(checked.features["age"], [31.0, np.nan])
    assert checked.features["score"].tolist() == [0.5, 1.25]
    assert checked.features["country"].tolist() == ["FR", "JP"]
    assert checked.features["active"].tolist() == ["True", "False"]
    assert checked.features["count"].tolist() == [3.0, 4.0]
    assert checked.unseen == {"country": 1}


def test_requested_outputs_and_their_binary_flags_are_decoded() -> None:
    outputs = [
        InferRequestedOutput("label", binary_data=False),
        InferRequestedOutput("probabilities"),
    ]
    body, length = InferenceServerClient.generate_request_body(triton_inputs(True), outputs)
    request = decode_infer(body, length)
    assert request.outputs == (
        RequestedOutput("label", False),
        RequestedOutput("probabilities", True),
    )
    assert request.binary_output is False


def test_json_tensors_may_be_flat_or_nested_with_nulls() -> None:
    document = {
        "id": "j",
        "parameters": {"binary_data_output": True},
        "inputs": [
            {"name": "age", "shape": [2, 1], "datatype": "INT64", "data": [[31], [None]]},
            {"name": "score", "shape": [2], "datatype": "FP64", "data": [1, 2.5]},
            {"name": "country", "shape": [2, 1], "datatype": "BYTES", "data": ["FR", None]},
        ],
    }
    request = decode_infer(orjson.dumps(document), None)
    assert request.table.columns == {
        "age": [31, None],
        "score": [1, 2.5],
        "country": ["FR", None],
    }
    assert request.binary_output is True and request.outputs is None


def _document(*inputs: dict[str, Any]) -> bytes:
    return orjson.dumps({"inputs": list(inputs)})


def _binary(header: dict[str, Any], data: bytes) -> tuple[bytes, int]:
    raw = orjson.dumps(header)
    return raw + data, len(raw)


X = {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}


@pytest.mark.parametrize(
    ("body", "length", "words"),
    [
        (b"[]", None, "JSON object"),
        (b"{}", None, "'inputs'"),
        (b'{"inputs": {}}', None, "'inputs'"),
        (_document({**X, "shape": [1, 2], "data": [1.0, 2.0]}), None, "[n] or [n, 1]"),
        (_document({**X, "datatype": "BF16"}), None, "datatype 'BF16'"),
        (_document({**X, "data": ["a"]}), None, "holds the string 'a'"),
        (_document({**X, "datatype": "INT32", "data": [1.5]}), None, "INT32"),
        (_document({**X, "datatype": "INT8", "data": [True]}), None, "boolean"),
        (_document({**X, "data": [1.0, 2.0]}), None, "2 values for shape [1]"),
        (_document({**X, "data": None}), None, "no 'data'"),
        (_document(X, X), None, "twice"),
        (_document(X, {**X, "name": "y", "shape": [2], "data": [1, 2]}), None, "same first"),
        (_document({**X, "parameters": {"shared_memory_region": "r"}}), None, "shared memory"),
        (orjson.dumps({"inputs": [X], "parameters": 1}), None, "'parameters' must be"),
        (
            orjson.dumps(
                {"inputs": [X], "outputs": [{"name": "label", "parameters": {"classification": 2}}]}
            ),
            None,
            "classification",
        ),
        (
            orjson.dumps({"inputs": [X], "parameters": {"binary_data_output": "yes"}}),
            None,
            "true or false",
        ),
        (
            *_binary(
                {"inputs": [{**X, "data": None, "parameters": {"binary_data_size": 8}}]}, b"\0" * 4
            ),
            "4 bytes remain",
        ),
        (
            *_binary(
                {"inputs": [{**X, "data": None, "parameters": {"binary_data_size": 4}}]}, b"\0" * 4
            ),
            "expected 8",
        ),
        (*_binary({"inputs": [X]}, b"\0" * 3), "3 bytes of binary data"),
        (_document(X), 10_000, HEADER),
    ],
)
def test_protocol_breaks_are_400(body: bytes, length: int | None, words: str) -> None:
    with pytest.raises(InputError) as caught:
        decode_infer(body, length)
    assert (caught.value.error, caught.value.status) == ("malformed_request", 400)
    assert words in caught.value.reason


def _bytes_input(payload: bytes, rows: int) -> tuple[bytes, int]:
    header = {
        "inputs": [
            {
                "name": "c",
                "shape": [rows],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(payload)},
            }
        ]
    }
    return _binary(header, payload)


def test_binary_bytes_tensors_are_length_prefixed_utf8() -> None:
    payload = (
        struct.pack("<I", 2) + b"FR" + struct.pack("<I", 0) + struct.pack("<I", 3) + "é!".encode()
    )
    request = decode_infer(*_bytes_input(payload, 3))
    assert request.table.columns["c"] == ["FR", "", "é!"]
    with pytest.raises(InputError, match="runs past"):
        decode_infer(*_bytes_input(struct.pack("<I", 9) + b"FR", 1))
    with pytest.raises(InputError, match="length prefix"):
        decode_infer(*_bytes_input(b"\x02\x00", 1))
    with pytest.raises(InputError) as caught:
        decode_infer(*_bytes_input(struct.pack("<I", 1) + b"\xff", 1))
    assert caught.value.error == "invalid_encoding"


def test_bad_ids_and_empty_inputs() -> None:
    with pytest.raises(InputError) as caught:
        decode_infer(orjson.dumps({"id": 5, "inputs": [X]}), None)
    assert caught.value.error == "bad_request_id"
    with pytest.raises(InputError) as caught:
        decode_infer(_document({**X, "shape": [0], "data": []}), None)
    assert caught.value.error == "empty"
    with pytest.raises(InputError) as caught:
        decode_infer(b'{"inputs": []}', None)
    assert (caught.value.error, caught.value.status) == ("empty", 422)
    with pytest.raises(InputError) as caught:
        decode_infer(b"{", None)
    assert caught.value.error == "malformed_json"


def test_a_bytes_tensor_for_a_numeric_field_is_a_wrong_type() -> None:
    document = {
        "inputs": [
            {"name": name, "shape": [1], "datatype": "BYTES", "data": ["31"]}
            for name in ("age", "score", "country", "active", "count")
        ]
    }
    table = decode_infer(orjson.dumps(document), None).table
    with pytest.raises(InputError) as caught:
        validate(table, InputSchema.from_contract(CONTRACT))
    assert (caught.value.error, caught.value.field, caught.value.row) == ("wrong_type", "age", 0)


# -- responses -------------------------------------------------------------------------

CLASSIFIED = Outputs([1, 0], probabilities=np.array([[0.25, 0.75], [0.875, 0.125]]))


def _request(
    outputs: tuple[RequestedOutput, ...] | None = None, binary: bool = False
) -> InferRequest:
    return InferRequest("r", Table({"x": [1.0]}, 1), outputs, binary)


def _parse(body: bytes, headers: dict[str, str]) -> Any:
    length = headers.get(HEADER)
    return InferenceServerClient.parse_response_body(
        body, header_length=None if length is None else int(length)
    )


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_parses_our_responses(binary: bool) -> None:
    body, headers = encode_infer("feed", "3", "r", CLASSIFIED, ("0", "1"), _request(None, binary))
    assert (HEADER in headers) is binary
    result = _parse(body, headers)
    np.testing.assert_array_equal(result.as_numpy("label"), np.array([1, 0], dtype=np.int64))
    assert result.as_numpy("label").dtype == np.int64
    np.testing.assert_array_equal(result.as_numpy("probabilities"), CLASSIFIED.probabilities)
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == ("feed", "3", "r")
    probabilities = result.get_output("probabilities")
    assert probabilities["shape"] == [2, 2]
    assert orjson.loads(probabilities["parameters"]["classes"]) == ["0", "1"]


def test_each_output_may_choose_binary_or_json() -> None:
    requested = (RequestedOutput("probabilities", True), RequestedOutput("label", False))
    body, headers = encode_infer("m", "1", None, CLASSIFIED, ("0", "1"), _request(requested))
    result = _parse(body, headers)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities", "label"]
    assert "data" in result.get_output("label") and "id" not in result.get_response()
    np.testing.assert_array_equal(result.as_numpy("probabilities"), CLASSIFIED.probabilities)


@pytest.mark.parametrize(
    ("labels", "datatype", "dtype"),
    [
        (["cat", "dog"], "BYTES", object),
        ([True, False], "BOOL", bool),
        ([1.5, 2.0], "FP64", np.float64),
    ],
)
@pytest.mark.parametrize("binary", [False, True])
def test_label_datatypes_follow_the_target_type(
    labels: list[Any], datatype: str, dtype: Any, binary: bool
) -> None:
    outputs = Outputs(labels, probabilities=np.array([[0.5, 0.5], [0.5, 0.5]]))
    body, headers = encode_infer("m", "1", "r", outputs, ("a", "b"), _request(None, binary))
    result = _parse(body, headers)
    assert result.get_output("label")["datatype"] == datatype
    got = result.as_numpy("label")
    if datatype == "BYTES":
        got = [v.decode() if isinstance(v, bytes) else v for v in got.tolist()]
        assert got == labels
    else:
        np.testing.assert_array_equal(got, np.array(labels, dtype=dtype))


def test_regression_answers_value_and_refuses_unknown_outputs() -> None:
    outputs = Outputs([1.5, -2.0], values=np.array([1.5, -2.0]))
    body, headers = encode_infer("m", "1", "r", outputs, (), _request(None, True))
    result = _parse(body, headers)
    np.testing.assert_array_equal(result.as_numpy("value"), [1.5, -2.0])
    with pytest.raises(InputError) as caught:
        encode_infer("m", "1", "r", outputs, (), _request((RequestedOutput("label"),)))
    assert (caught.value.error, caught.value.status) == ("unknown_output", 400)
    check_outputs(_request((RequestedOutput("label"),)), "binary")


def test_metadata() -> None:
    assert server_metadata()["extensions"] == ["binary_tensor_data"]
    metadata = model_metadata("feed", ["3"], CONTRACT, "binary", ["0", "1"])
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
        ("age", "FP64", [-1, 1]),  # nullable integer: FP64 so NaN can say null
        ("score", "FP64", [-1, 1]),
        ("country", "BYTES", [-1, 1]),
        ("active", "BOOL", [-1, 1]),
        ("count", "INT64", [-1, 1]),
    ]
    assert metadata["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]},
    ]
    assert metadata["versions"] == ["3"]


def test_strings_sent_by_tritonclient_as_objects_keep_their_text() -> None:
    array = np.array(["a", MISSING, "é"], dtype=object)
    body, length = InferenceServerClient.generate_request_body([tensor("s", array, "BYTES", True)])
    assert decode_infer(body, length).table.columns["s"] == ["a", MISSING, "é"]


# -- anything shaped like a request: an InputError or a table ----------------------------

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4)
DATA = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
TENSOR = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["age", "score", "country", "active", "count", "x"]) | SCALARS,
        "shape": st.lists(st.integers(-1, 3), max_size=3),
        "datatype": st.sampled_from([*DATATYPES, "STRING"]) | DATA,
    },
    optional={
        "data": DATA,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_size": st.integers(-1, 24)}),
    },
)
REQUEST = st.fixed_dictionaries(
    {"inputs": st.lists(TENSOR, max_size=5)},
    optional={
        "id": SCALARS,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_output": SCALARS}),
        "outputs": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["label", "value", "probabilities"])}),
            max_size=2,
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(document=REQUEST, tail=st.binary(max_size=24), split=st.booleans())
def test_any_request_is_a_table_or_an_input_error(
    document: dict[str, Any], tail: bytes, split: bool
) -> None:
    header = json.dumps(document).encode()
    schema = InputSchema.from_contract(CONTRACT)
    try:
        request = decode_infer(header + tail, len(header) if split else None)
        validate(request.table, schema)
    except InputError as exc:
        assert exc.status in (400, 413, 415, 422)
        orjson.dumps(exc.to_body())


def _deep(depth: int, leaf: object = 1) -> Any:
    value: Any = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("data", _deep(3), "nested deeper than its shape"),
        ("data", _deep(200), "nested deeper than its shape"),
        ("shape", _deep(200), "has shape (an array of 1 item)"),
        ("shape", [1.5, 1], "has shape (an array of 2 items)"),
        ("datatype", _deep(200, "FP64"), "has datatype (an array of 1 item)"),
        ("parameters", {"binary_data_size": _deep(200)}, "binary_data_size (an array of 1 item)"),
    ],
)
def test_nested_or_huge_fields_are_400_with_a_bounded_reason(
    field: str, value: Any, words: str
) -> None:
    body = _document({**X, field: value})
    with pytest.raises(InputError) as caught:
        decode_infer(body, None)
    assert caught.value.status == 400 and words in caught.value.reason
    assert len(caught.value.reason) < 300
    assert caught.value.field is None or len(caught.value.field) <= 100


def test_a_shape_over_the_row_limit_is_413_before_its_data_is_read() -> None:
    body = _document({**X, "shape": [10_001], "data": "not even a list"})
    with pytest.raises(InputError) as caught:
        decode_infer(body, None, max_rows=10_000)
    assert (caught.value.error, caught.value.status) == ("too_many_rows", 413)


def test_a_huge_tensor_name_is_cut_in_the_reason_and_the_field() -> None:
    named = {**X, "name": "n" * 5_000_000}
    with pytest.raises(InputError) as caught:
        decode_infer(_document(named, named), None)
    assert "appears twice" in caught.value.reason and len(caught.value.reason) < 200
    assert caught.value.field is not None and len(caught.value.field) == 100
