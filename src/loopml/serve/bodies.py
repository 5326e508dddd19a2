"""The request bodies the served model accepts, as JSON Schema: one set per deployment.

Every route reads its body with the codecs, not pydantic, so the OpenAPI document cannot
learn the bodies from type hints; these functions write them from the model's
:class:`~loopml.serve.schema.InputSchema` and say exactly what validation accepts: each
feature by name with its type (every feature is required; a null is served, as the
pipeline imputes it), the entity key, and any other field (ignored). ``/invocations``
gets MLflow's payloads and a CSV pattern naming the features; the Open Inference
Protocol gets one tensor per feature.

>>> from loopml.serve.schema import FeatureRule
>>> value_schema(FeatureRule("age", "numeric", "integer", True))
{'type': ['integer', 'null']}
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from loopml.data.cells import BOOL_TEXT
from loopml.serve.schema import FeatureRule, InputSchema

Schema = dict[str, Any]
REQUEST_ID: Schema = {"$ref": "#/components/schemas/RequestId"}
_CSV_VALUES = {
    "float": r"-?[0-9]{1,6}(\.[0-9]{1,4})?",
    "integer": r"-?[0-9]{1,6}",
    "string": r"[a-z][a-z0-9_]{0,11}",
    "boolean": r"(true|false|0|1)",
}
_CSV_ROWS = 20
"""Rows in a CSV the pattern describes (any number up to ``serve.max_rows`` is read)."""


def request_id_schema() -> Schema:
    """What :func:`~loopml.serve.service.check_request_id` accepts."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": 128,
        "pattern": "^[ -~]+$",
        "description": "printable ASCII (space to '~'), 1 to 128 characters: the id comes "
        "back in the x-request-id header, which holds no other text",
    }


def value_schema(rule: FeatureRule, max_chars: int | None = None) -> Schema:
    """One feature's JSON value: its type, or null (served: the pipeline imputes it)."""
    if rule.kind == "numeric":
        return {"type": ["integer" if rule.integer else "number", "null"]}
    if rule.kind == "boolean":
        spellings = sorted({s for text in BOOL_TEXT for s in (text, text.upper(), text.title())})
        return {"anyOf": [{"type": ["boolean", "null"]}, {"enum": [*spellings, 0, 1]}]}
    text: Schema = {"type": ["string", "null"]}
    if max_chars is not None:  # a longer known category raises the field's limit
        text["maxLength"] = max(max_chars, rule.longest)
    return text


def _described(rule: FeatureRule, max_chars: int | None) -> Schema:
    schema = value_schema(rule, max_chars)
    schema["description"] = f"{rule.type} feature" + (
        f"; known categories: {', '.join(sorted(rule.categories)[:20])}" if rule.categories else ""
    )
    return schema


def record_schema(schema: InputSchema, max_chars: int | None = None) -> Schema:
    """One row as a JSON object: every feature by name (required), the entity key, and
    any other field, which is ignored."""
    properties = {rule.name: _described(rule, max_chars) for rule in schema.features}
    if schema.entity_key is not None:
        properties[schema.entity_key] = {
            "anyOf": [{"type": ["string", "integer", "null"]}],
            "description": "the entity key: text, a whole number or null (optional)",
        }
    return {
        "type": "object",
        "properties": properties,
        "required": [rule.name for rule in schema.features],
        "additionalProperties": True,
        "description": "one row: feature -> value; other fields are accepted and ignored",
    }


def rows_of(item: Schema, max_rows: int) -> Schema:
    return {"type": "array", "items": item, "minItems": 1, "maxItems": max_rows}


def predict_body(max_rows: int) -> Schema:
    """``/predict``: ``{"records": [...], "request_id"?}`` or a bare list of records."""
    records = rows_of({"$ref": "#/components/schemas/Record"}, max_rows)
    envelope = {
        "type": "object",
        "properties": {
            "records": records,
            "request_id": {
                "anyOf": [REQUEST_ID, {"const": ""}, {"type": "null"}],
                "description": "your id for this request ('' or null: one is generated)",
            },
        },
        "required": ["records"],
        "additionalProperties": False,
    }
    return {"anyOf": [envelope, records]}


def invocations_body(schema: InputSchema, max_rows: int, max_chars: int | None = None) -> Schema:
    """``/invocations`` JSON: exactly one of MLflow's four input fields."""
    record = {"$ref": "#/components/schemas/Record"}
    records = rows_of(record, max_rows)
    names = [rule.name for rule in schema.features]
    width = len(names)
    row = {
        "type": "array",
        "prefixItems": [value_schema(rule, max_chars) for rule in schema.features],
        "minItems": width,
        "maxItems": width,
    }
    split = {
        "type": "object",
        "properties": {
            "columns": {
                "type": "array",
                "prefixItems": [{"const": name} for name in names],
                "minItems": width,
                "maxItems": width,
            },
            "data": rows_of(row, max_rows),
            "index": {"description": "ignored"},
        },
        "required": ["columns", "data"],
        "additionalProperties": False,
    }
    one_row = {
        "type": "object",
        "properties": {rule.name: value_schema(rule, max_chars) for rule in schema.features},
        "required": names,
        "additionalProperties": {"not": {"type": "array"}},
        "description": "one row: field -> value",
    }
    forms = {
        "dataframe_split": split,
        "dataframe_records": records,
        "inputs": {"anyOf": [records, one_row]},
        "instances": {"anyOf": [records, one_row]},
    }
    return {"anyOf": [_exactly(key, forms) for key in forms]}


def _exactly(key: str, forms: dict[str, Schema]) -> Schema:
    properties: Schema = {other: False for other in forms if other != key}
    properties[key] = forms[key]
    properties["params"] = {"description": "ignored, as MLflow ignores it"}
    return {"type": "object", "properties": properties, "required": [key]}


def csv_body(schema: InputSchema) -> Schema:
    """``/invocations`` CSV: a header naming the features, then rows (pandas reads it)."""
    header = ",".join(re.escape(rule.name) for rule in schema.features)
    values = ",".join(_csv_value(rule) for rule in schema.features)
    pattern = rf"^{header}\n({values}\n){{1,{_CSV_ROWS}}}$"
    return {
        "type": "string",
        "pattern": pattern,
        "description": "CSV with a header line naming every feature, read with pandas' type "
        "inference as `mlflow models serve` reads it; other columns are ignored",
    }


def _csv_value(rule: FeatureRule) -> str:
    kind = rule.kind if rule.kind in ("boolean", "string") else rule.type
    return _CSV_VALUES.get(kind, _CSV_VALUES["float"])


def feedback_body(label: Schema, max_rows: int) -> Schema:
    """``/feedback``: one label, a list of them, or ``{"labels": [...]}``."""
    one = {"$ref": "#/components/schemas/Label"}
    many = rows_of(one, max_rows)
    wrapped = {
        "type": "object",
        "properties": {"labels": many},
        "required": ["labels"],
        "additionalProperties": False,
    }
    return {"anyOf": [one, many, wrapped]}


def label_schema(task: str, classes: Sequence[str], max_row: int) -> Schema:
    """One label: the request id and row of the prediction, and the target's value."""
    return {
        "type": "object",
        "properties": {
            "request_id": REQUEST_ID,
            "row": {"type": "integer", "minimum": 0, "maximum": max_row, "default": 0},
            "label": target_schema(task, classes),
        },
        "required": ["request_id", "label"],
    }


def target_schema(task: str, classes: Sequence[str]) -> Schema:
    """A label's value: a finite number (regression) or one of the model's classes, in
    any spelling :func:`~loopml.serve.service.class_spellings` maps to it."""
    if task == "regression":
        return {"type": "number", "description": "the observed value"}
    spelled: list[Any] = list(classes)
    spelled += [int(c) for c in classes if re.fullmatch(r"-?[0-9]+", c)]
    for flag in (True, False):
        if {str(flag), str(flag).lower(), str(int(flag))} & set(classes):
            spelled.append(flag)
    return {"enum": spelled, "description": f"one of the classes {list(classes)}"}


_TENSOR_TYPES = {"float": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}
_FALSY: list[Any] = [False, None, 0, "", [], {}]


def infer_body(schema: InputSchema, outputs: Sequence[str], max_chars: int | None = None) -> Schema:
    """An Open Inference Protocol request in JSON: one tensor per feature, in contract
    order. JSON Schema cannot tie ``shape`` to the length of ``data`` across tensors, so
    this describes one-row requests; any ``[n]`` / ``[n, 1]`` works (see the operation)."""
    tensors = [_tensor(rule, max_chars) for rule in schema.features]
    requested = {
        "type": "object",
        "properties": {
            "name": {"enum": list(outputs)},
            "parameters": _parameters(
                binary_data={"type": "boolean"},
                classification={"enum": _FALSY, "description": "not supported"},
            ),
        },
        "required": ["name"],
    }
    return {
        "type": "object",
        "properties": {
            "id": {"anyOf": [REQUEST_ID, {"type": "null"}]},
            "parameters": _parameters(binary_data_output={"type": "boolean"}),
            "inputs": {
                "type": "array",
                "prefixItems": tensors,
                "minItems": len(tensors),
                "maxItems": len(tensors),
            },
            "outputs": {
                "anyOf": [{"type": "array", "items": requested}, {"type": "null"}],
                "description": "the outputs to answer (none, empty or null: all)",
            },
        },
        "required": ["inputs"],
    }


def _parameters(**properties: Any) -> Schema:
    """Protocol parameters: an object, or a value that is false (read as none)."""
    return {"anyOf": [{"type": "object", "properties": properties}, {"enum": _FALSY}]}


def _tensor(rule: FeatureRule, max_chars: int | None) -> Schema:
    # FP64 for every numeric feature: JSON Schema's integer type holds 1.0, which an
    # INT64 tensor refuses and an FP64 one takes (an integer feature takes whole numbers).
    datatype = "FP64" if rule.numeric else _TENSOR_TYPES.get(rule.type, "BYTES")
    value = value_schema(rule, max_chars)
    if rule.kind == "boolean":
        value = {"type": ["boolean", "null"]}
    return {
        "type": "object",
        "properties": {
            "name": {"const": rule.name},
            "shape": {"enum": [[1], [1, 1]]},
            "datatype": {"const": datatype},
            "data": {"type": "array", "items": value, "minItems": 1, "maxItems": 1},
            "parameters": _parameters(binary_data_size=False, shared_memory_region=False),
        },
        "required": ["name", "shape", "datatype", "data"],
    }
