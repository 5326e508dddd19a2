"""The ``/predict``, ``/invocations`` and ``/feedback`` bodies: bytes in, tables out, and back.

Pure functions over raw bytes and the request's ``Content-Type``; the routes call them and
send what they return. Every refusal is an :class:`~loopml.errors.InputError`:

====================== ==== ===========================================================
error                  HTTP when
====================== ==== ===========================================================
unsupported_media_type 415  no ``Content-Type``, another type, or a charset other than
                            UTF-8 (JSON only, so a browser form cannot post here)
invalid_encoding       400  the body is not UTF-8 (the offset and line are named)
malformed_json         400  not JSON (orjson's message names line and column); the
                            ``NaN`` / ``Infinity`` that Python's json writes are read
too_deep               400  JSON nested more than 254 levels (:mod:`loopml.serve.json_body`)
duplicate_key          400  a JSON object naming a key twice (the key is named)
malformed_csv          400  ``text/csv`` that pandas cannot read
too_many_rows          413  more rows than ``max_rows``, counted off the parsed lists
                            before any table is built (a CSV is read up to
                            ``max_rows + 1`` rows, not whole)
malformed_request      422  JSON of the wrong shape (``records`` not a list ...)
bad_request_id         422  a ``request_id`` that is not a string
empty                  422  an empty body or no rows
====================== ==== ===========================================================

``/predict`` takes ``{"records": [{field: value, ...}, ...], "request_id": "optional"}``
or a bare JSON list of records, and answers ``{"request_id", "model", "version",
"predictions": [{"label", "probabilities": {class: p}} | {"value"}]}``.

``/invocations`` takes what ``mlflow models serve`` takes for a pyfunc: a JSON object with
exactly one of ``dataframe_split`` (``columns`` required here: the model needs names),
``dataframe_records``, ``inputs`` or ``instances`` (a dict of field -> list, or a list of
records); ``params`` and other keys are ignored, as MLflow ignores them. ``text/csv`` is
read with pandas' type inference, as MLflow reads it; its table is a frame
(``origin="frame"``). Parquet bodies, which MLflow also takes, are refused (415): a
binary columnar format is more parser than a scoring endpoint needs to expose. The answer
is ``{"predictions": [{"prediction", "proba_<class>"...}]}``, the columns of loopml's
MLflow pyfunc, so an MLflow client sees the same output.

>>> decode_predict(b'{"records": [{"x": 1}], "request_id": "r1"}', "application/json").request_id
'r1'
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import orjson
import pandas as pd

from loopml.errors import InputError
from loopml.serve.json_body import check_utf8, load_json
from loopml.serve.refusals import too_many_rows
from loopml.serve.table import Column, DecodedRequest, Table, field_name, json_kind, truncate

JSON = "application/json"
CSV = "text/csv"
MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")
_BOM = b"\xef\xbb\xbf"
__all__ = ["check_utf8", "load_json"]
_DUMPS = orjson.OPT_SERIALIZE_NUMPY


class OutputsLike(Protocol):
    """What the encoders read from :class:`loopml.registry.runtime.Outputs`."""

    @property
    def labels(self) -> list[Any]: ...

    @property
    def probabilities(self) -> np.ndarray[Any, Any] | None: ...

    @property
    def values(self) -> np.ndarray[Any, Any] | None: ...


def dumps(document: object) -> bytes:
    """JSON bytes (orjson; NumPy arrays and scalars allowed, NaN written as null)."""
    return orjson.dumps(document, option=_DUMPS)


def media_type(content_type: str | None, accepted: Sequence[str]) -> str:
    """The media type of a ``Content-Type`` header, if accepted; else 415.

    >>> media_type("Application/JSON; charset=utf-8", [JSON])
    'application/json'
    """
    if content_type is not None and content_type in accepted:  # the usual header, exactly
        return content_type
    wanted = " or ".join(accepted)
    if not content_type:
        raise _unsupported(f"the request has no Content-Type; send Content-Type: {wanted}")
    main, _, parameters = content_type.partition(";")
    media = main.strip().lower()
    if media not in accepted:
        raise _unsupported(
            f"Content-Type {truncate(content_type, 80)} is not accepted here; send {wanted}"
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise _unsupported(
                f"charset {truncate(charset)} is not accepted; send the body as UTF-8"
            )
    return media


def _unsupported(reason: str) -> InputError:
    return InputError(reason, error="unsupported_media_type", status=415)


def malformed(
    reason: str, *, field: str | None = None, row: int | None = None, status: int = 422
) -> InputError:
    """``malformed_request``: valid JSON of the wrong structure (422, as FastAPI answers a
    body that breaks its schema; the Open Inference Protocol says 400)."""
    return InputError(reason, error="malformed_request", field=field, row=row, status=status)


# -- /predict ----------------------------------------------------------------------------


def check_rows(rows: int, max_rows: int | None) -> None:
    """413 ``too_many_rows`` as soon as a body's row count is known, before its table is
    built (``max_rows`` None: no limit)."""
    if max_rows is not None and rows > max_rows:
        raise too_many_rows(rows, max_rows)


def decode_predict(
    body: bytes, content_type: str | None, max_rows: int | None = None
) -> DecodedRequest:
    """``{"records": [...], "request_id"?}`` or a bare list of records -> a JSON table."""
    media_type(content_type, [JSON])
    document = load_json(body)
    request_id = None
    if isinstance(document, dict):
        _check_envelope(document)
        records, request_id = document["records"], document.get("request_id")
        if request_id is not None and not isinstance(request_id, str):
            raise InputError(
                f"request_id must be a string, got {json_kind(request_id)}",
                error="bad_request_id",
                field="request_id",
            )
    else:
        records = document
    if not isinstance(records, list):
        raise malformed(f"'records' must be a list of objects, got {json_kind(records)}")
    if not records:
        raise InputError("'records' is empty; send at least one record", error="empty")
    check_rows(len(records), max_rows)
    return DecodedRequest(Table.from_records(records), request_id)


def _check_envelope(document: dict[str, Any]) -> None:
    unknown = [key for key in document if key not in ("records", "request_id")]
    if "records" in document and not unknown:
        return
    if any(key in document for key in MLFLOW_FORMATS):
        hint = "this is MLflow's scoring format: POST it to /invocations, or send"
    elif "records" in document:
        hint = f"unknown key {truncate(unknown[0])}; send"
    elif unknown:
        hint = "a single record must be wrapped: send"
    else:
        hint = "no 'records' in the body; send"
    raise malformed(f'{hint} {{"records": [{{field: value, ...}}], "request_id": "optional"}}')


def encode_predict(
    request_id: str,
    model: str,
    version: str,
    outputs: OutputsLike,
    classes: Sequence[str],
    arm: str = "champion",
) -> bytes:
    """The ``/predict`` answer: per row ``label`` + ``probabilities``, or ``value``; the
    version and the arm (champion or challenger) that answered."""
    predictions: list[dict[str, Any]]
    if outputs.probabilities is None:
        values = outputs.values if outputs.values is not None else outputs.labels
        predictions = [{"value": v} for v in np.asarray(values, dtype=np.float64).tolist()]
    else:
        names = list(classes)
        predictions = [
            {"label": label, "probabilities": dict(zip(names, row, strict=True))}
            for label, row in zip(outputs.labels, outputs.probabilities.tolist(), strict=True)
        ]
    document = {
        "request_id": request_id,
        "model": model,
        "version": str(version),
        "arm": arm,
        "predictions": predictions,
    }
    return dumps(document)


# -- /invocations (MLflow) ---------------------------------------------------------------


def decode_invocations(
    body: bytes, content_type: str | None, max_rows: int | None = None
) -> DecodedRequest:
    """An MLflow scoring payload (JSON or CSV) -> a table. See the module docs."""
    if media_type(content_type, [JSON, CSV]) == CSV:
        return DecodedRequest(read_csv(body, max_rows))
    document = load_json(body)
    found = [key for key in MLFLOW_FORMATS if isinstance(document, dict) and key in document]
    if len(found) != 1:
        got = "a list" if isinstance(document, list) else json_kind(document)
        if isinstance(document, dict):
            got = f"keys {', '.join(truncate(key) for key in sorted(document)[:8])}"
        raise malformed(
            "the input must be a JSON object with exactly one of the input fields "
            f"{', '.join(MLFLOW_FORMATS)}; got {got}"
        )
    key = found[0]
    payload = document[key]
    check_rows(_declared_rows(payload, key), max_rows)
    if key == "dataframe_split":
        table = _split_table(payload)
    elif key == "dataframe_records":
        table = _records_table(payload, key)
    else:
        table = _tensor_table(payload, key)
    if table.n_rows == 0:
        raise InputError(f"'{key}' holds no rows; send at least one", error="empty")
    return DecodedRequest(table)


def _declared_rows(payload: object, key: str) -> int:
    """The rows an MLflow payload holds, read off its lists before any table is built."""
    if key == "dataframe_split" and isinstance(payload, dict):
        payload = payload.get("data")
    if isinstance(payload, list):
        return len(payload)
    if isinstance(payload, dict):
        return max((len(v) for v in payload.values() if isinstance(v, list)), default=1)
    return 0


def _split_table(payload: object) -> Table:
    if not isinstance(payload, dict):
        raise malformed(f"dataframe_split must be an object, got {json_kind(payload)}")
    extra = sorted(set(payload) - {"columns", "data", "index"})
    if "data" not in payload or extra:
        raise malformed(
            "dataframe_split must have a 'data' field and optionally 'columns' and 'index'; "
            f"got {sorted(payload)}"
        )
    columns, data = payload.get("columns"), payload["data"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise malformed(
            "dataframe_split needs 'columns': a list of field names (the model reads fields "
            "by name, not position)"
        )
    if len(set(columns)) != len(columns):
        raise malformed("dataframe_split 'columns' names a field twice")
    if not isinstance(data, list):
        raise malformed(f"dataframe_split 'data' must be a list of rows, got {json_kind(data)}")
    width = len(columns)
    rows = [row if isinstance(row, list) else [row] for row in data] if width == 1 else data
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else json_kind(row)
            raise malformed(f"each row of 'data' must hold {width} values, got {got}", row=i)
    values: list[Column] = [list(c) for c in zip(*rows, strict=True)] if rows else [[]] * width
    return Table(dict(zip(columns, values, strict=True)), len(rows))


def _records_table(payload: object, key: str) -> Table:
    if not isinstance(payload, list):
        raise malformed(f"{key} must be a list of records, got {json_kind(payload)}")
    if payload and not isinstance(payload[0], dict):
        raise malformed(
            f"{key} must hold records (objects of field -> value), got {json_kind(payload[0])}; "
            "positional rows have no field names",
            row=0,
        )
    return Table.from_records(payload)


def _tensor_table(payload: object, key: str) -> Table:
    """``inputs`` / ``instances``: a dict of field -> values (or scalars: one row), or
    a list of records."""
    if isinstance(payload, list):
        return _records_table(payload, key)
    if not isinstance(payload, dict):
        raise malformed(f"{key} must be an object or a list of records, got {json_kind(payload)}")
    if payload and not any(isinstance(v, list) for v in payload.values()):
        return Table({name: [value] for name, value in payload.items()}, 1)
    scalars = [name for name, v in payload.items() if not isinstance(v, list)]
    if scalars:
        raise malformed(f"every field of {key} must be a list of values, or none", field=scalars[0])
    try:
        return Table.from_columns(payload)
    except InputError as exc:
        raise malformed(f"{key}: {exc.reason}") from None


def read_csv(body: bytes, max_rows: int | None = None) -> Table:
    """A CSV body as a frame table (pandas' type inference, as ``mlflow models serve``).

    With ``max_rows``, pandas reads at most one row more than that: a body of a million
    rows is refused after reading ``max_rows + 1`` of them, not all."""
    text = check_utf8(body[3:] if body[:3] == _BOM else body)
    if not text.strip():
        raise InputError("the CSV body is empty; send a header line and rows", error="empty")
    try:
        limit = None if max_rows is None else max_rows + 1
        frame = pd.read_csv(io.StringIO(text), nrows=limit)
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(
            f"the body is not a readable CSV table: {str(exc).splitlines()[0][:200]}",
            error="malformed_csv",
            status=400,
        ) from None
    if len(frame) == 0:
        raise InputError("the CSV body has a header but no rows", error="empty")
    if max_rows is not None and len(frame) > max_rows:
        raise InputError(
            f"more than {max_rows:,} rows in one request; at most {max_rows:,} are accepted, "
            "so split it",
            error="too_many_rows",
            status=413,
        )
    return Table.from_frame(frame)


def encode_invocations(outputs: OutputsLike, classes: Sequence[str]) -> bytes:
    """``{"predictions": [{"prediction", "proba_<class>"...}]}``, as loopml's pyfunc
    through ``mlflow models serve``."""
    rows: list[dict[str, Any]]
    if outputs.probabilities is None:
        values = outputs.values if outputs.values is not None else outputs.labels
        rows = [{"prediction": v} for v in np.asarray(values, dtype=np.float64).tolist()]
    else:
        keys = ["prediction", *(f"proba_{c}" for c in classes)]
        rows = [
            dict(zip(keys, (label, *row), strict=True))
            for label, row in zip(outputs.labels, outputs.probabilities.tolist(), strict=True)
        ]
    return dumps({"predictions": rows})


# -- /feedback ---------------------------------------------------------------------------


def decode_feedback(
    body: bytes, content_type: str | None, max_rows: int | None = None
) -> list[dict[str, Any]]:
    """Labels: one ``{"request_id", "row"?, "label"}``, a list of them, or
    ``{"labels": [...]}``. Each item is checked by the service."""
    media_type(content_type, [JSON])
    document = load_json(body)
    if isinstance(document, dict) and "labels" in document:
        extra = [key for key in document if key != "labels"]
        if extra:
            raise malformed(
                f"unknown key {truncate(extra[0])} beside 'labels'", field=field_name(extra[0])
            )
        document = document["labels"]
    items = [document] if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise malformed(f"send a label object or a list of them, got {json_kind(items)}")
    if not items:
        raise InputError("no labels in the body; send at least one", error="empty")
    check_rows(len(items), max_rows)
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise malformed(f"each label must be an object, got {json_kind(item)}", row=i)
    return items
