"""``/predict``, ``/invocations`` and ``/feedback``: parse, call the service, serialize.

Every prediction route goes through :func:`answer`: decode the body with the dialect's
codec, predict, wait for the ledger commit in ``durable`` mode, encode. Bad input raises
:class:`~loopml.errors.InputError`, which the app maps to a 4xx with a Problem body.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loopml.serve import codecs
from loopml.serve.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    InvocationsRequest,
    InvocationsResponse,
    PredictRequest,
    PredictResponse,
    body_schema,
    problem_responses,
)
from loopml.serve.service import Prediction
from loopml.serve.table import DecodedRequest

router = APIRouter()
JSON = "application/json"
Encoder = Callable[[Prediction], bytes]
Decoder = Callable[[bytes, str | None], DecodedRequest]
REFUSALS = problem_responses(400, 409, 413, 415, 422, 503)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=REFUSALS,
    openapi_extra=body_schema(PredictRequest),
    tags=["predict"],
)
async def predict(request: Request) -> Response:
    """JSON records in; label and probabilities (or value) per row out."""

    def encode(p: Prediction) -> bytes:
        d = p.deployment
        return codecs.encode_predict(p.request_id, d.model, d.version, p.outputs, d.classes)

    return await answer(request, "/predict", codecs.decode_predict, encode)


@router.post(
    "/invocations",
    response_model=InvocationsResponse,
    responses=REFUSALS,
    openapi_extra=body_schema(InvocationsRequest, JSON, "text/csv"),
    tags=["predict"],
)
async def invocations(request: Request) -> Response:
    """MLflow's scoring protocol: a client of ``mlflow models serve`` only changes the URL."""

    def encode(p: Prediction) -> bytes:
        return codecs.encode_invocations(p.outputs, p.deployment.classes)

    return await answer(request, "/invocations", codecs.decode_invocations, encode)


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    responses=REFUSALS,
    openapi_extra=body_schema(FeedbackRequest),
    tags=["predict"],
)
async def feedback(request: Request) -> Response:
    """Labels for earlier predictions, joined to them by request id (and row)."""
    parts = request.app.state.parts
    items = codecs.decode_feedback(await request.body(), request.headers.get("content-type"))
    result = await parts.service.feedback(items)
    unknown = [{"request_id": rid, "row": row} for rid, row in result.unknown]
    return Response(
        codecs.dumps({"recorded": result.recorded, "unknown": unknown}), media_type=JSON
    )


async def answer(request: Request, route: str, decode: Decoder, encode: Encoder) -> Response:
    """The shared path of every prediction dialect."""
    started = time.perf_counter()
    parts = request.app.state.parts
    decoded = decode(await request.body(), request.headers.get("content-type"))
    request_id = decoded.request_id or request.headers.get("x-request-id")
    prediction = parts.service.predict(decoded.table, request_id, durable=parts.durable)
    if prediction.committed is not None:
        await prediction.committed
    content = encode(prediction)
    record(parts, route, prediction, started)
    return Response(content, media_type=JSON, headers={"x-request-id": prediction.request_id})


def record(parts: object, route: str, prediction: Prediction, started: float) -> None:
    metrics = parts.metrics  # type: ignore[attr-defined]
    version = prediction.deployment.version
    arm = parts.service.arm  # type: ignore[attr-defined]
    metrics.observe(route, version, arm, 200, time.perf_counter() - started)
    metrics.rows.labels(version, arm).inc(prediction.n_rows)
    for feature, count in prediction.unseen.items():
        if count:
            metrics.unseen.labels(feature).inc(count)
