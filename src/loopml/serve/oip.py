"""The Open Inference Protocol v2 (KServe / Triton REST), with the binary tensor extension.

Pure functions over bytes, so ``tritonclient.http`` works unmodified against the routes.

Inputs are one tensor per field, named by the field, shaped ``[n]`` or ``[n, 1]``, of any
datatype in :data:`DATATYPES`; ``data`` may be flat or nested (row-major). A tensor whose
``parameters.binary_data_size`` is set takes its bytes from the body after the JSON header
(``Inference-Header-Content-Length`` bytes long), in input order: little-endian, BOOL one
byte each, BYTES a 4-byte little-endian length before each element. The tensors become a
JSON table: their datatype is the type the value has (a BYTES tensor for a numeric field
is a ``wrong_type``), and a NaN in a floating-point tensor is null (the only way to send a
null in binary; JSON ``null`` works in JSON data).

Outputs: classifiers answer ``label`` (``[n]``: INT64, BOOL, FP64 or BYTES as the target's
type) and ``probabilities`` (FP64 ``[n, k]``, classes in model order; its
``parameters.classes`` holds the class names as a JSON-encoded list in a string, since
protocol parameters are scalars); regressors answer ``value`` (FP64 ``[n]``). Outputs come
back binary when the request's ``parameters.binary_data_output`` is true or the output's
``parameters.binary_data`` is (the latter wins), with ``Inference-Header-Content-Length``.
Triton's ``classification`` output parameter and shared memory are refused.

``Content-Type`` is not checked (``tritonclient`` sends none); the JSON header is read as
``/predict`` bodies are (``NaN``, which ``tritonclient`` writes for FP data, is null).

Refusals are :class:`~loopml.errors.InputError` (body ``{error, field, row, reason}``; the
protocol's ``error`` key is a string there too): ``malformed_request`` (400, as Triton
answers) for a body that breaks the protocol, ``empty`` (422) for no inputs or no rows,
``unknown_output`` (400), and the codes of
:mod:`loopml.serve.codecs` and :mod:`loopml.serve.validation`.

>>> request = decode_infer(
...     b'{"inputs": [{"name": "x", "shape": [2, 1], "datatype": "FP64", "data": [[1.5], [2]]}]}',
...     None,
... )
>>> request.table.columns["x"], request.table.n_rows
([1.5, 2], 2)
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from loopml.data.contract import Contract
from loopml.errors import InputError
from loopml.serve.codecs import OutputsLike, check_rows, check_utf8, load_json, malformed
from loopml.serve.table import Column, Table, field_name, json_kind, truncate
from loopml.version import __version__

HEADER = "Inference-Header-Content-Length"
DATATYPES: dict[str, str | None] = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BYTES": None,
}
"""Protocol datatype -> NumPy little-endian dtype (None: length-prefixed bytes)."""
_INPUT_TYPES = {"float": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for; ``binary`` None follows ``binary_data_output``."""

    name: str
    binary: bool | None = None


@dataclass(frozen=True)
class InferRequest:
    """A decoded inference request."""

    id: str | None
    table: Table
    outputs: tuple[RequestedOutput, ...] | None = None
    """None: every output the model has."""
    binary_output: bool = False


def server_metadata() -> dict[str, Any]:
    """``GET /v2``."""
    return {"name": "loopml", "version": __version__, "extensions": ["binary_tensor_data"]}


def output_names(task: str) -> tuple[str, ...]:
    """The outputs a model of ``task`` answers."""
    return ("value",) if task == "regression" else ("label", "probabilities")


def model_metadata(
    name: str,
    versions: Sequence[str],
    contract: Contract,
    task: str,
    classes: Sequence[str],
    platform: str = "loopml_onnx",
) -> dict[str, Any]:
    """``GET /v2/models/{name}``: one ``[-1, 1]`` input per feature, in contract order.

    Integer features are INT64, or FP64 where the contract allows null (NaN is null).
    """
    inputs = [
        {
            "name": spec.name,
            "datatype": "FP64"
            if spec.type == "integer" and spec.nullable
            else _INPUT_TYPES[spec.type],
            "shape": [-1, 1],
        }
        for spec in contract.features
    ]
    if task == "regression":
        outputs = [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    else:
        label = _INPUT_TYPES.get(contract.target_spec.type, "BYTES")
        outputs = [
            {"name": "label", "datatype": label, "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(classes)]},
        ]
    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": platform,
        "inputs": inputs,
        "outputs": outputs,
    }


# -- requests ----------------------------------------------------------------------------


def _bad(reason: str, *, field: str | None = None, row: int | None = None) -> InputError:
    """A request that breaks the protocol: 400, as Triton and KServe answer it. ``field``
    is a client's tensor name: cut to 100 characters."""
    where = None if field is None else field_name(field)
    return malformed(reason, field=where, row=row, status=400)


def decode_infer(
    body: bytes, header_length: int | None, max_rows: int | None = None
) -> InferRequest:
    """An inference request (JSON, or JSON header + binary tensors) -> table and options.

    ``max_rows``: a tensor whose shape declares more rows is refused (413) before its data
    is read."""
    view = memoryview(body)
    if header_length is None:
        header, rest = view, view[:0]
    elif 0 <= header_length <= len(body):
        header, rest = view[:header_length], view[header_length:]
    else:
        raise _bad(
            f"{HEADER} is {header_length} but the body holds {len(body)} bytes", field=HEADER
        )
    document = load_json(header)
    if not isinstance(document, dict):
        raise _bad(f"the inference request must be a JSON object, got {json_kind(document)}")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputError(
            f"id must be a string, got {json_kind(request_id)}", error="bad_request_id", field="id"
        )
    table = _inputs(document.get("inputs"), rest, max_rows)
    binary = _flag(_parameters(document, "request"), "binary_data_output", "request")
    return InferRequest(request_id, table, _outputs(document.get("outputs")), binary)


def _inputs(inputs: object, rest: memoryview, max_rows: int | None) -> Table:
    if not isinstance(inputs, list):
        raise _bad("'inputs' must be a list of tensors, one per field")
    if not inputs:
        raise InputError("'inputs' is empty; send one tensor per field", error="empty")
    columns: dict[str, Column] = {}
    offset = 0
    for tensor in inputs:
        name, values, offset = _tensor(tensor, rest, offset, max_rows)
        if name in columns:
            raise _bad(f"input {truncate(name)} appears twice", field=name)
        columns[name] = values
    if offset != len(rest):
        raise _bad(
            f"{len(rest) - offset} bytes of binary data after the last tensor; each binary "
            "input's binary_data_size must count its bytes"
        )
    try:
        table = Table.from_columns(columns)
    except InputError as exc:
        raise _bad(f"every input needs the same first dimension: {exc.reason}") from None
    if table.n_rows == 0:
        raise InputError("the inputs hold no rows; send at least one", error="empty")
    return table


def _parameters(holder: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = holder.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _bad(f"the {what}'s 'parameters' must be an object")
    return parameters


def _flag(parameters: dict[str, Any], key: str, what: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise _bad(
            f"{what} parameter {truncate(key)} must be true or false, got {json_kind(value)}"
        )
    return value


def _tensor(
    tensor: object, rest: memoryview, offset: int, max_rows: int | None
) -> tuple[str, Column, int]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise _bad("each input must be an object with a string 'name'")
    name: str = tensor["name"]
    shown = truncate(name)
    rows = _rows(tensor.get("shape"), name)
    check_rows(rows, max_rows)
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        known = ", ".join(DATATYPES)
        raise _bad(
            f"input {shown} has datatype {truncate(datatype)}; use one of {known}", field=name
        )
    parameters = _parameters(tensor, f"input {shown}")
    if "shared_memory_region" in parameters:
        raise _bad("shared memory is not supported; send the data in the body", field=name)
    size = parameters.get("binary_data_size")
    if size is None:
        return name, _json_values(tensor.get("data"), datatype, rows, name), offset
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(rest):
        raise _bad(
            f"input {shown} has binary_data_size {truncate(size)} but {len(rest) - offset} "
            "bytes remain",
            field=name,
        )
    values = _binary_values(rest[offset : offset + size], datatype, rows, name)
    return name, values, offset + size


def _rows(shape: object, name: str) -> int:
    if (
        isinstance(shape, list)
        and len(shape) in (1, 2)
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        and (len(shape) == 1 or shape[1] == 1)
    ):
        return int(shape[0])
    raise _bad(
        f"input {truncate(name)} has shape {_shape(shape)}; send one tensor per field, shaped "
        "[n] or [n, 1]",
        field=name,
    )


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "BOOL": (bool,),
    "BYTES": (str,),
    "FP": (int, float),
    "INT": (int,),
}


def _shape(shape: object) -> str:
    """A client's shape in a message: its numbers, or what it is when it is not numbers."""
    if (
        isinstance(shape, list)
        and len(shape) <= 4
        and all(type(d) is int and d.bit_length() <= 64 for d in shape)
    ):
        return repr(shape)
    return truncate(shape)


def _json_values(data: object, datatype: str, rows: int, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise _bad(f"input {truncate(name)} has no 'data' and no binary_data_size", field=name)
    flat = _flatten(data, name) if any(type(v) is list for v in data) else data
    if len(flat) != rows:
        raise _bad(
            f"input {truncate(name)} holds {len(flat)} values for shape [{rows}]", field=name
        )
    kind = "INT" if "INT" in datatype else datatype[:2] if datatype.startswith("FP") else datatype
    allowed = _JSON_TYPES[kind]
    for row, v in enumerate(flat):
        if v is not None and (not isinstance(v, allowed) or (kind != "BOOL" and type(v) is bool)):
            raise _bad(
                f"input {truncate(name)} is {datatype} but holds {json_kind(v)}; make the datatype "
                "match the data",
                field=name,
                row=row,
            )
    return flat


def _flatten(data: list[Any], name: str) -> list[Any]:
    """Row-major data of a ``[n, 1]`` tensor, flat: at most two levels of lists (no
    recursion, so 1,000 levels of nesting are a 400, not a ``RecursionError``)."""
    flat: list[Any] = []
    for v in data:
        if type(v) is not list:
            flat.append(v)
            continue
        for w in v:
            if type(w) is list:
                raise _bad(
                    f"the data of input {truncate(name)} is nested deeper than its shape: a "
                    "tensor shaped [n] or [n, 1] holds a list of values or of one-value lists",
                    field=name,
                )
            flat.append(w)
    return flat


def _binary_values(raw: memoryview, datatype: str, rows: int, name: str) -> Column:
    dtype = DATATYPES[datatype]
    if dtype is None:
        return _decode_bytes(raw, rows, name)
    width = np.dtype(dtype).itemsize
    if len(raw) != rows * width:
        raise _bad(
            f"input {truncate(name)}: {len(raw)} bytes of {datatype} for shape [{rows}] "
            f"(expected {rows * width})",
            field=name,
        )
    values = np.frombuffer(raw, dtype=np.uint8 if datatype == "BOOL" else dtype)
    if datatype == "BOOL":
        flags: np.ndarray[Any, Any] = values != 0
        return flags
    return values.astype(values.dtype.newbyteorder("="))  # a writable, native-order copy


def _decode_bytes(raw: memoryview, rows: int, name: str) -> list[str]:
    items: list[str] = []
    position, end = 0, len(raw)
    while position < end:
        if position + 4 > end:
            raise _bad(f"input {truncate(name)}: BYTES data cut inside a length prefix", field=name)
        (length,) = _LENGTH.unpack_from(raw, position)
        position += 4
        if position + length > end:
            raise _bad(
                f"input {truncate(name)}: element {len(items)} runs past its data", field=name
            )
        chunk = bytes(raw[position : position + length])
        try:
            items.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            check_utf8(chunk)  # raises, naming the offset
        position += length
    if len(items) != rows:
        raise _bad(
            f"input {truncate(name)} holds {len(items)} values for shape [{rows}]", field=name
        )
    return items


def _outputs(outputs: object) -> tuple[RequestedOutput, ...] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        raise _bad("'outputs' must be a list of {\"name\": ...} objects")
    requested = []
    for item in outputs:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _bad("each requested output must be an object with a string 'name'")
        parameters = _parameters(item, f"output {truncate(item['name'])}")
        if parameters.get("classification"):
            raise _bad(
                "the classification extension is not supported; request 'label' and "
                "'probabilities'",
                field=item["name"],
            )
        binary = _flag(parameters, "binary_data", "output") if "binary_data" in parameters else None
        requested.append(RequestedOutput(item["name"], binary))
    return tuple(requested) or None


def check_outputs(request: InferRequest, task: str) -> None:
    """Refuse (400 ``unknown_output``) outputs the model does not have — before predicting."""
    known = output_names(task)
    for output in request.outputs or ():
        if output.name not in known:
            raise InputError(
                f"this model has no output {truncate(output.name)}; it answers {', '.join(known)}",
                error="unknown_output",
                field=field_name(output.name),
                status=400,
            )


# -- responses ---------------------------------------------------------------------------


def encode_infer(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: OutputsLike,
    classes: Sequence[str],
    requested: InferRequest,
) -> tuple[bytes, dict[str, str]]:
    """The inference response: (body, headers). ``headers`` holds ``HEADER`` when any
    output is binary (send it as ``application/octet-stream``), else nothing."""
    task = "regression" if outputs.probabilities is None else "classification"
    check_outputs(requested, task)
    tensors = _output_tensors(outputs, classes)
    wanted = requested.outputs or tuple(RequestedOutput(name) for name in tensors)
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for output in wanted:
        datatype, shape, array, parameters = tensors[output.name]
        entry: dict[str, Any] = {"name": output.name, "datatype": datatype, "shape": shape}
        parameters = dict(parameters)
        binary = requested.binary_output if output.binary is None else output.binary
        if binary:
            chunk = _to_binary(array, datatype)
            parameters["binary_data_size"] = len(chunk)
            chunks.append(chunk)
        else:
            entry["data"] = array.ravel().tolist()
        if parameters:
            entry["parameters"] = parameters
        entries.append(entry)
    document: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if request_id is not None:
        document["id"] = request_id
    document["outputs"] = entries
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, {}
    return header + b"".join(chunks), {HEADER: str(len(header))}


Tensor = tuple[str, list[int], np.ndarray[Any, Any], dict[str, Any]]


def _output_tensors(outputs: OutputsLike, classes: Sequence[str]) -> dict[str, Tensor]:
    if outputs.probabilities is None:
        values = outputs.values if outputs.values is not None else outputs.labels
        array = np.asarray(values, dtype=np.float64)
        return {"value": ("FP64", [int(array.size)], array, {})}
    labels = outputs.labels
    datatype, label_array = _label_array(labels)
    probabilities = np.asarray(outputs.probabilities, dtype=np.float64)
    class_list = orjson.dumps([str(c) for c in classes]).decode()
    return {
        "label": (datatype, [len(labels)], label_array, {}),
        "probabilities": (
            "FP64",
            list(probabilities.shape),
            probabilities,
            {"classes": class_list},
        ),
    }


def _label_array(labels: list[Any]) -> tuple[str, np.ndarray[Any, Any]]:
    if labels and all(isinstance(v, bool | np.bool_) for v in labels):
        return "BOOL", np.asarray(labels, dtype=bool)
    if labels and all(isinstance(v, int | np.integer) for v in labels):
        return "INT64", np.asarray(labels, dtype=np.int64)
    if labels and all(isinstance(v, float | int | np.number) for v in labels):
        return "FP64", np.asarray(labels, dtype=np.float64)
    array = np.empty(len(labels), dtype=object)
    array[:] = [str(v) for v in labels]
    return "BYTES", array


def _to_binary(array: np.ndarray[Any, Any], datatype: str) -> bytes:
    dtype = DATATYPES[datatype]
    if dtype is None:
        encoded = [str(v).encode("utf-8") for v in array.ravel().tolist()]
        return b"".join(_LENGTH.pack(len(item)) + item for item in encoded)
    return np.ascontiguousarray(array, dtype=dtype).tobytes()
