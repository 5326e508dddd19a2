"""The prediction service: validate, predict, record. No HTTP here (routes are adapters).

A :class:`Deployment` is one loaded, checked version; the service holds exactly one and
replaces it with a single reference assignment, so a request sees either the old version
or the new one, never a mix. Every prediction becomes one ledger row per input row; the
caller decides whether to wait for the commit (``durable`` mode) or not (``async``).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson

from loopml.errors import InputError
from loopml.ledger import Feedback, FeedbackResult, Ledger, PredictionRow
from loopml.registry.runtime import Outputs, Runtime
from loopml.serve.refusals import too_many_rows
from loopml.serve.schema import InputSchema
from loopml.serve.table import Table
from loopml.serve.validation import ModelInput, validate

MAX_REQUEST_ID = 128


@dataclass(frozen=True)
class Deployment:
    """One loaded, warmed and parity-checked version, ready to answer."""

    model: str
    version: str
    runtime: Runtime
    schema: InputSchema
    loaded_at: float = field(default_factory=time.time)

    @classmethod
    def of(cls, model: str, version: str, runtime: Runtime) -> Deployment:
        return cls(model, version, runtime, InputSchema.from_contract(runtime.contract))

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.runtime.meta.classes)

    @property
    def task(self) -> str:
        return str(self.runtime.meta.task)


@dataclass(frozen=True)
class Prediction:
    request_id: str
    deployment: Deployment
    outputs: Outputs
    n_rows: int
    unseen: Mapping[str, int]
    committed: Awaitable[None] | None
    """Resolves when the ledger has committed every row (None: ledger off or not awaited)."""
    nulls: Mapping[str, int] = field(default_factory=dict)
    """feature -> rows with a null where training had none (served, imputed)."""
    ignored: tuple[str, ...] = ()
    """Fields of the request the contract does not know (served, ignored)."""
    rows: Sequence[PredictionRow] = field(default=(), repr=False)
    """The ledger rows of a scored request, until :meth:`PredictionService.record`."""


class PredictionService:
    """Validate → predict → record, for whichever version is deployed right now."""

    def __init__(
        self,
        deployment: Deployment,
        ledger: Ledger | None,
        *,
        max_rows: int = 10_000,
        max_chars: int | None = None,
        arm: str = "champion",
    ) -> None:
        self._deployment = deployment
        self.ledger = ledger
        self.max_rows = max_rows
        self.max_chars = max_chars
        self.arm = arm
        self.draining = False

    @property
    def deployment(self) -> Deployment:
        return self._deployment

    def swap(self, new: Deployment) -> Deployment:
        """Serve ``new`` from the next request on; returns the version it replaced."""
        old, self._deployment = self._deployment, new
        return old

    @property
    def ready(self) -> bool:
        return not self.draining

    def predict(
        self, table: Table, request_id: str | None = None, *, durable: bool = False
    ) -> Prediction:
        """Score one request and record it: :meth:`score`, then :meth:`record`."""
        return self.record(self.score(table, request_id), durable=durable)

    def score(self, table: Table, request_id: str | None = None) -> Prediction:
        """Validate and predict, and build the ledger rows; records nothing. Raises
        :class:`InputError` for bad input. Safe in a worker thread (a large request is
        scored off the event loop)."""
        started = time.perf_counter()
        deployment = self._deployment
        rid = check_request_id(request_id) if request_id is not None else uuid.uuid4().hex
        checked = validate(
            table, deployment.schema, max_rows=self.max_rows, max_chars=self.max_chars
        )
        outputs = deployment.runtime.predict(checked.features)
        latency_ms = (time.perf_counter() - started) * 1000.0
        rows: Sequence[PredictionRow] = ()
        if self.ledger is not None:
            rows = ledger_rows(rid, deployment, self.arm, checked, outputs, latency_ms)
        return Prediction(
            rid,
            deployment,
            outputs,
            checked.n_rows,
            checked.unseen,
            None,
            checked.nulls,
            checked.ignored,
            rows,
        )

    def record(self, prediction: Prediction, *, durable: bool = False) -> Prediction:
        """Hand a scored request's rows to the ledger. Raises the ledger's ``LedgerFull``
        when it cannot take them (the caller answers 503).

        ``durable``: the result's ``committed`` resolves once the rows are committed (call
        from the event loop's thread); otherwise the rows are queued and not waited for.
        """
        if self.ledger is None or not prediction.rows:
            return prediction
        if durable:
            committed = self.ledger.submit_async(prediction.rows)
            return replace(prediction, committed=committed, rows=())
        self.ledger.submit(prediction.rows)
        return replace(prediction, rows=())

    def feedback(
        self, items: Sequence[Mapping[str, Any]], scope: str = "unknown", client: str | None = None
    ) -> Awaitable[FeedbackResult]:
        """Record labels for earlier predictions (joined by request id and row), each a new
        version of its label kept with ``scope`` (the token it came with) and ``client``."""
        if self.ledger is None:
            raise InputError(
                "this server runs without a ledger, so labels cannot be recorded",
                error="no_ledger",
                status=409,
            )
        if len(items) > self.max_rows:  # it could never fit: a retry would not help
            raise too_many_rows(len(items), self.max_rows)
        deployment = self._deployment
        parsed = [
            replace(parse_feedback(item, i, deployment), scope=scope, client=client)
            for i, item in enumerate(items)
        ]
        return self.ledger.submit_feedback_async(parsed)


def check_request_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_REQUEST_ID:
        raise InputError(
            f"a request id must be a non-empty string of at most {MAX_REQUEST_ID} characters",
            error="bad_request_id",
            field="request_id",
        )
    if not (value.isascii() and value.isprintable()):
        raise InputError(
            "a request id must be printable ASCII (space to '~'): it comes back in the "
            "x-request-id header; drop control and non-ASCII characters from it",
            error="bad_request_id",
            field="request_id",
        )
    return value


def output_records(outputs: Outputs, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Per-row outputs as the ledger stores them: label + ``proba_<class>``, or value."""
    if outputs.probabilities is None:
        values = outputs.values if outputs.values is not None else np.asarray(outputs.labels)
        return [{"value": float(v)} for v in values.tolist()]
    keys = [f"proba_{c}" for c in classes]
    return [
        {"label": label, **dict(zip(keys, probs, strict=True))}
        for label, probs in zip(outputs.labels, outputs.probabilities.tolist(), strict=True)
    ]


def ledger_rows(
    request_id: str,
    deployment: Deployment,
    arm: str,
    checked: ModelInput,
    outputs: Outputs,
    latency_ms: float,
) -> list[PredictionRow]:
    names = list(checked.features)
    columns = [checked.features[name].tolist() for name in names]
    keys = checked.entity_keys or [None] * checked.n_rows
    now = time.time()
    return [
        PredictionRow(
            request_id=request_id,
            row=i,
            ts=now,
            model=deployment.model,
            version=deployment.version,
            arm=arm,
            entity_key=keys[i],
            # orjson writes NaN as null: a null numeric feature round-trips as null.
            features=orjson.dumps(dict(zip(names, (c[i] for c in columns), strict=True))).decode(),
            outputs=orjson.dumps(out).decode(),
            latency_ms=latency_ms,
        )
        for i, out in enumerate(output_records(outputs, deployment.classes))
    ]


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
