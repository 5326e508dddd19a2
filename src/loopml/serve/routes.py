"""``/predict``, ``/invocations`` and ``/feedback``: parse, call the service, serialize.

Every prediction route goes through :meth:`PredictionRoutes.answer`: decode the body with
the dialect's codec, score, encode — in a worker thread when the body is large
(:mod:`loopml.serve.work`) — then hand the rows to the ledger and, in ``durable`` mode,
wait for the commit. Every answer names the version and the arm that answered
(``x-loopml-version``, ``x-loopml-arm``); in a rollout's shadow stage the request is handed
to the shadow queue after the answer is sent. Bad input raises
:class:`~loopml.errors.InputError`, which the app maps to a 4xx with a Problem body.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask

from loopml.serve import codecs
from loopml.serve.parts import ServerParts
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
from loopml.serve.service import Prediction, PredictionService
from loopml.serve.table import DecodedRequest

JSON = "application/json"
Encoder = Callable[[Prediction], bytes]
Decoder = Callable[[bytes, str | None, int | None], DecodedRequest]
VERSION_HEADER = "x-loopml-version"
ARM_HEADER = "x-loopml-arm"
REFUSALS = problem_responses(400, 401, 403, 409, 413, 415, 422, 503)


class PredictionRoutes:
    """The prediction dialects of one server (its :class:`ServerParts`)."""

    def __init__(self, parts: ServerParts) -> None:
        self.parts = parts

    def router(self) -> APIRouter:
        router = APIRouter(tags=["predict"])
        for path, endpoint, answers, body in (
            ("/predict", self.predict, PredictResponse, body_schema(PredictRequest)),
            ("/invocations", self.invocations, InvocationsResponse,
             body_schema(InvocationsRequest, JSON, "text/csv")),
            ("/feedback", self.feedback, FeedbackResponse, body_schema(FeedbackRequest)),
        ):  # fmt: skip
            router.add_api_route(
                path, endpoint, methods=["POST"], response_model=answers, responses=REFUSALS,
                openapi_extra=body,
            )  # fmt: skip
        return router

    async def predict(self, request: Request) -> Response:
        """JSON records in; label and probabilities (or value) per row out."""

        def encode(p: Prediction) -> bytes:
            d = p.deployment
            return codecs.encode_predict(
                p.request_id, d.model, d.version, p.outputs, d.classes, p.arm
            )

        return await self.answer(request, "/predict", codecs.decode_predict, encode)

    async def invocations(self, request: Request) -> Response:
        """MLflow's scoring protocol: a client of ``mlflow models serve`` only changes the
        URL."""

        def encode(p: Prediction) -> bytes:
            return codecs.encode_invocations(p.outputs, p.deployment.classes)

        return await self.answer(request, "/invocations", codecs.decode_invocations, encode)

    async def feedback(self, request: Request) -> Response:
        """Labels for earlier predictions, joined to them by request id (and row); each is
        a new version of its label, recorded with who sent it."""
        grant = self.parts.tokens.feedback_grant(request)
        body = await request.body()
        content_type, max_rows = request.headers.get("content-type"), self.parts.service.max_rows
        items = await self.parts.offload.run(
            len(body), lambda: codecs.decode_feedback(body, content_type, max_rows)
        )
        result = await self.parts.service.feedback(items, grant.scope, grant.client)
        unknown = [{"request_id": rid, "row": row} for rid, row in result.unknown]
        return Response(
            codecs.dumps({"recorded": result.recorded, "unknown": unknown}), media_type=JSON
        )

    async def answer(
        self, request: Request, route: str, decode: Decoder, encode: Encoder
    ) -> Response:
        """The shared path of every prediction dialect."""
        started = time.perf_counter()
        parts, service = self.parts, self.parts.service
        parts.tokens.predict_grant(request)  # raises the 401 / 403
        body = await request.body()
        content_type, header_id = (
            request.headers.get("content-type"),
            request.headers.get("x-request-id"),
        )

        def work() -> tuple[Prediction, bytes]:
            decoded = decode(body, content_type, service.max_rows)
            scored = service.score(decoded.table, decoded.request_id or header_id)
            return scored, encode(scored)

        scored, content = await parts.offload.run(len(body), work)
        prediction = service.record(scored, durable=parts.durable)
        if prediction.committed is not None:
            await prediction.committed
        parts.record(route, prediction, started)
        return Response(
            content, media_type=JSON, headers=served_headers(prediction),
            background=shadow_task(service, prediction),
        )  # fmt: skip


def served_headers(prediction: Prediction) -> dict[str, str]:
    """The headers of every prediction answer: the request id, and which version and arm
    (``champion`` or ``challenger``) answered."""
    return {
        "x-request-id": prediction.request_id,
        VERSION_HEADER: prediction.deployment.version,
        ARM_HEADER: prediction.arm,
    }


def shadow_task(service: PredictionService, prediction: Prediction) -> BackgroundTask | None:
    """In a shadow stage: offer the request to the shadow queue once the answer is sent."""
    if prediction.shadow is None:
        return None

    async def offer() -> None:  # cheap and non-blocking: no thread needed
        service.shadow(prediction)

    return BackgroundTask(offer)
