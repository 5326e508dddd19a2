"""The Open Inference Protocol v2 (KServe / Triton REST), so ``tritonclient.http`` works.

One model is served: the project's registered model, under its registry name, at the
version behind the served alias. Asking for another name or version is a 404, as in the
protocol. Inference goes through the same service as ``/predict``.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loopml.errors import InputError
from loopml.serve import oip
from loopml.serve.parts import ServerParts
from loopml.serve.responses import JSONBody
from loopml.serve.routes import REFUSALS, served_headers, shadow_task
from loopml.serve.schemas import InferRequest, InferResponse, body_schema
from loopml.serve.service import Deployment, Prediction

HEADER_LENGTH = "inference-header-content-length"


class OipRoutes:
    """The Open Inference Protocol v2 routes of one server (its :class:`ServerParts`)."""

    def __init__(self, parts: ServerParts) -> None:
        self.parts = parts

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])
        get = router.add_api_route
        get("", self.server_metadata, methods=["GET"])
        get("/health/live", self.server_live, methods=["GET"])
        get("/health/ready", self.server_ready, methods=["GET"])
        for path in ("/models/{name}", "/models/{name}/versions/{version}"):
            get(path, self.model_metadata, methods=["GET"])
            get(f"{path}/ready", self.model_ready, methods=["GET"])
        for path in ("/models/{name}/infer", "/models/{name}/versions/{version}/infer"):
            router.add_api_route(
                path, self.infer, methods=["POST"], response_model=InferResponse,
                responses=REFUSALS,
                openapi_extra=body_schema(
                    InferRequest, "application/json", "application/octet-stream"
                ),
            )  # fmt: skip
        return router

    async def server_metadata(self) -> Response:
        return JSONBody(oip.server_metadata())

    async def server_live(self) -> Response:
        return JSONBody({"live": True})

    async def server_ready(self) -> Response:
        ready = self.parts.service.ready
        return JSONBody({"ready": ready}, status_code=200 if ready else 503)

    async def model_metadata(self, name: str, version: str | None = None) -> Response:
        d = self.served(name, version)
        return JSONBody(
            oip.model_metadata(d.model, [d.version], d.runtime.contract, d.task, d.classes)
        )

    async def model_ready(self, name: str, version: str | None = None) -> Response:
        self.served(name, version)
        ready = self.parts.service.ready
        return JSONBody({"name": name, "ready": ready}, status_code=200 if ready else 503)

    async def infer(self, request: Request, name: str, version: str | None = None) -> Response:
        """JSON tensors, or the binary tensor extension (``Inference-Header-Content-Length``)."""
        started = time.perf_counter()
        parts, service = self.parts, self.parts.service
        parts.tokens.predict_grant(request)  # raises the 401 / 403
        deployment = self.served(name, version)
        pinned = version is not None  # the client named the champion's version: no routing
        raw, length = await request.body(), header_length(request)

        def work() -> tuple[Prediction, bytes, dict[str, str]]:
            decoded = oip.decode_infer(raw, length, service.max_rows)
            oip.check_outputs(decoded, deployment.task)
            scored = service.score(decoded.table, decoded.id, pinned=pinned)
            d = scored.deployment
            body, headers = oip.encode_infer(
                d.model, d.version, scored.request_id, scored.outputs, d.classes, decoded
            )
            return scored, body, headers

        scored, body, headers = await parts.offload.run(len(raw), work)
        prediction = service.record(scored, durable=parts.durable)
        if prediction.committed is not None:
            await prediction.committed
        parts.record("/v2/infer", prediction, started)
        binary = HEADER_LENGTH in {h.lower() for h in headers}
        media = "application/octet-stream" if binary else "application/json"
        headers = headers | served_headers(prediction)
        return Response(
            body, media_type=media, headers=headers, background=shadow_task(service, prediction)
        )

    def served(self, name: str, version: str | None) -> Deployment:
        deployment = self.parts.service.deployment
        if name != deployment.model:
            raise InputError(
                f"no model named {name!r} here; this server serves {deployment.model!r}",
                error="unknown_model",
                field="name",
                status=404,
            )
        if version is not None and version != deployment.version:
            raise InputError(
                f"version {version} of {name!r} is not loaded; version {deployment.version} is",
                error="unknown_version",
                field="version",
                status=404,
            )
        return deployment


def header_length(request: Request) -> int | None:
    raw = request.headers.get(HEADER_LENGTH)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InputError(
            f"{HEADER_LENGTH} must be an integer, got {raw[:40]!r}",
            error="bad_header",
            field=HEADER_LENGTH,
            status=400,
        ) from None
