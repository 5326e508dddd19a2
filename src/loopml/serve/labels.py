"""Labels sent to ``/feedback``, checked against the served model's target.

Each label names an earlier prediction by request id (and row) and carries the target's
value: a known class for a classifier (any spelling :func:`class_spellings` maps to one),
a finite number for a regression.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import orjson

from loopml.errors import InputError
from loopml.ledger import Feedback
from loopml.serve.deployments import Deployment
from loopml.serve.request_ids import check_request_id

MAX_ROW = 2**31 - 1
"""The largest row number a label may name (the ledger stores it as a 64-bit integer;
no request holds anywhere near as many rows)."""


def parse_feedback(item: Mapping[str, Any], index: int, deployment: Deployment) -> Feedback:
    """One label, checked against the served model's target (a known class, or a number)."""
    if not isinstance(item, Mapping):
        raise InputError("each label must be an object", error="wrong_type", row=index)
    request_id = check_request_id(item.get("request_id"))
    row = item.get("row", 0)
    if isinstance(row, float) and row.is_integer() and 0 <= row <= MAX_ROW:
        row = int(row)  # 3.0 is the integer 3 in JSON (and in the OpenAPI schema)
    if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row <= MAX_ROW:
        raise InputError(
            f"'row' must be an integer from 0 to {MAX_ROW:,} (the row's place in its request)",
            field="row",
            row=index,
        )
    if "label" not in item:
        raise InputError("missing 'label'", error="missing_field", field="label", row=index)
    label = normalize_label(item["label"], deployment, index)
    source = check_source(item.get("source"), index)
    return Feedback(request_id, row, orjson.dumps(label).decode(), time.time(), source=source)


MAX_SOURCE = 128


def check_source(value: object, index: int) -> str | None:
    """The optional ``source`` a client names for a label (a labelling tool, a reviewer),
    kept in the label history: printable text of at most :data:`MAX_SOURCE` characters."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_SOURCE:
        raise InputError(
            f"'source' must be a non-empty string of at most {MAX_SOURCE} characters "
            "(who or what gave the label), or left out",
            field="source",
            row=index,
        )
    if not value.isprintable():
        raise InputError("'source' must be printable text", field="source", row=index)
    return value


def normalize_label(value: object, deployment: Deployment, index: int) -> object:
    """The label in the target's type: a float for regression, the class's own name for a
    classifier (``1``, ``1.0`` and ``"1"`` are all stored as ``"1"``)."""
    if deployment.task == "regression":
        number = _finite_number(value)
        if number is None:
            raise InputError(
                "a regression label must be a finite number",
                error="wrong_type",
                field="label",
                row=index,
            )
        return number
    key = next((k for k in class_spellings(value) if k in deployment.classes), None)
    if key is None:
        raise InputError(
            f"label {_shown(value)} is not one of the model's classes {list(deployment.classes)}",
            error="unknown_class",
            field="label",
            row=index,
        )
    return key


def _finite_number(value: object) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        return None
    return number if math.isfinite(number) else None


def _shown(value: object, limit: int = 60) -> str:
    """A client's value in an error message, never longer than ``limit`` characters."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return "(an integer of more than 60 digits)"
    if isinstance(value, str | int | float | bool) or value is None:
        text = repr(value)
    else:
        text = f"(a JSON {type(value).__name__})"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def class_spellings(value: object) -> list[str]:
    """The class names a label may stand for, most literal first (``1.0`` -> ``"1"``;
    ``True`` -> ``"True"``, ``"true"``, ``"1"``), as monitoring reads labels back.

    >>> class_spellings(1.0), class_spellings(True)
    (['1.0', '1'], ['True', 'true', '1'])
    """
    if isinstance(value, bool):
        return [str(value), str(value).lower(), str(int(value))]
    if isinstance(value, float) and value.is_integer():
        return [str(value), str(int(value))]
    if isinstance(value, int) and value.bit_length() > 200:
        return []  # no class is named by a 60-digit number (and str() refuses 4,300)
    if isinstance(value, str | int):
        return [str(value)]
    return []
