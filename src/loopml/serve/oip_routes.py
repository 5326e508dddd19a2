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
from loopml.serve.responses import JSONBody
from loopml.serve.routes import REFUSALS, record
from loopml.serve.schemas import InferRequest, InferResponse, body_schema
from loopml.serve.service import Deployment

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])
HEADER_LENGTH = "inference-header-content-length"


@router.get("")
async def server_metadata() -> Response:
    return JSONBody(oip.server_metadata())


@router.get("/health/live")
async def server_live() -> Response:
    return JSONBody({"live": True})


@router.get("/health/ready")
async def server_ready(request: Request) -> Response:
    ready = request.app.state.parts.service.ready
    return JSONBody({"ready": ready}, status_code=200 if ready else 503)


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(request: Request, name: str, version: str | None = None) -> Response:
    d = served(request, name, version)
    return JSONBody(oip.model_metadata(d.model, [d.version], d.runtime.contract, d.task, d.classes))


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(request: Request, name: str, version: str | None = None) -> Response:
    served(request, name, version)
    ready = request.app.state.parts.service.ready
    return JSONBody({"name": name, "ready": ready}, status_code=200 if ready else 503)


INFER = {
    "response_model": InferResponse,
    "responses": REFUSALS,
    "openapi_extra": body_schema(InferRequest, "application/json", "application/octet-stream"),
}


@router.post("/models/{name}/infer", **INFER)  # type: ignore[arg-type]
@router.post("/models/{name}/versions/{version}/infer", **INFER)  # type: ignore[arg-type]
async def infer(request: Request, name: str, version: str | None = None) -> Response:
    """JSON tensors, or the binary tensor extension (``Inference-Header-Content-Length``)."""
    started = time.perf_counter()
    parts = request.app.state.parts
    deployment = served(request, name, version)
    decoded = oip.decode_infer(await request.body(), header_length(request))
    oip.check_outputs(decoded, deployment.task)
    prediction = parts.service.predict(decoded.table, decoded.id, durable=parts.durable)
    if prediction.committed is not None:
        await prediction.committed
    d = prediction.deployment
    body, headers = oip.encode_infer(
        d.model, d.version, prediction.request_id, prediction.outputs, d.classes, decoded
    )
    record(parts, "/v2/infer", prediction, started)
    media = "application/octet-stream" if HEADER_LENGTH in {h.lower() for h in headers} else None
    return Response(body, media_type=media or "application/json", headers=headers)


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


def served(request: Request, name: str, version: str | None) -> Deployment:
    deployment: Deployment = request.app.state.parts.service.deployment
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
