"""The OpenAPI document of one server: what it does, for the model it serves right now.

FastAPI writes the skeleton from the routes; :class:`ServedDocument` fills in what the
routes cannot declare, because they read their bodies with the codecs: every request body
with the served model's features (:mod:`loopml.serve.bodies`), every status code a route
answers with (each 4xx / 5xx a :class:`~loopml.serve.schemas.Problem`), the one model name
and version the Open Inference Protocol routes accept (another is a 404), and the admin
token. The document is rebuilt when the served version changes (a hot reload), so a new
version's features are in ``/openapi.json`` from its first request on.

``/docs`` (Swagger UI) and ``/redoc`` load their scripts from the package
(``fastapi-offline`` ships them), so they work on a machine without internet.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from loopml.rollout.controller import ACTIONS
from loopml.serve import bodies
from loopml.serve.oip import output_names
from loopml.serve.schemas import component_schemas
from loopml.serve.service import MAX_ROW, Deployment, PredictionService

__all__ = ["ServedDocument", "mount_docs"]

Document = dict[str, Any]
ASSETS = "/docs-assets"
_STATIC = Path(fastapi_offline.__file__).parent / "static"
_WHY = {
    400: "the body is not JSON / UTF-8 / CSV, or breaks the protocol",
    401: "no 'Authorization: Bearer <token>' header",
    403: "the bearer token does not match",
    404: "no such model or version here (this server serves one), or no such action",
    409: "the server cannot do this now (no ledger, no alias followed, job failed)",
    413: "the body is larger than serve.max_body_bytes, or more rows than serve.max_rows",
    415: "a Content-Type this route does not read",
    422: "valid JSON that breaks the schema: a missing or mistyped feature, no rows ...",
    503: "the ledger cannot take the rows now (retry after Retry-After seconds), or the "
    "server is shutting down",
}
_PREDICT = (400, 413, 415, 422, 503)
STATUSES: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/predict"): _PREDICT,
    ("post", "/invocations"): _PREDICT,
    ("post", "/feedback"): (400, 409, 413, 415, 422, 503),
    ("get", "/health/ready"): (503,),
    ("get", "/v2/health/ready"): (503,),
    ("get", "/v2/models/{name}"): (404,),
    ("get", "/v2/models/{name}/versions/{version}"): (404,),
    ("get", "/v2/models/{name}/ready"): (404, 503),
    ("get", "/v2/models/{name}/versions/{version}/ready"): (404, 503),
    ("post", "/v2/models/{name}/infer"): (400, 404, 413, 422, 503),
    ("post", "/v2/models/{name}/versions/{version}/infer"): (400, 404, 413, 422, 503),
    ("post", "/admin/reload"): (401, 403, 409),
    ("get", "/admin/jobs"): (401, 403),
    ("post", "/admin/jobs/{name}"): (401, 403, 409),
    ("post", "/admin/monitor"): (401, 403, 409),
    ("post", "/admin/rollout/{action}"): (400, 401, 403, 404, 409, 422),
    ("get", "/admin/rollout"): (401, 403, 409),
}
"""Every refusal each operation answers with (its 200 is FastAPI's)."""
ANSWER_HEADERS: Document = {
    "x-request-id": {"schema": {"type": "string"}, "description": "the request id"},
    "x-loopml-version": {"schema": {"type": "string"}, "description": "the version that answered"},
    "x-loopml-arm": {
        "schema": {"type": "string", "enum": ["champion", "challenger"]},
        "description": "the arm that answered: champion, or a rollout's challenger",
    },
}
"""The headers of every prediction answer (all dialects)."""


class ServedDocument:
    """``app.openapi``: the document for the deployment being served, rebuilt when it
    changes."""

    def __init__(
        self,
        app: FastAPI,
        service: PredictionService,
        max_rows: int,
        *,
        max_chars: int | None = None,
        token_paths: tuple[str, ...] = ("/admin/",),
    ) -> None:
        self.app = app
        self.service = service
        self.max_rows = max_rows
        self.max_chars = max_chars
        """The longest text a string feature takes (None: no limit)."""
        self.token_paths = token_paths
        """The paths (or path prefixes ending in /) that need the bearer token."""
        self._base: Document | None = None
        self._built: tuple[object, Document] | None = None

    def __call__(self) -> Document:
        deployment = self.service.deployment
        key = (deployment.model, deployment.version, deployment.schema.features)
        if self._built is None or self._built[0] != key:
            self._built = (key, self.build(deployment))
        self.app.openapi_schema = self._built[1]
        return self._built[1]

    def build(self, deployment: Deployment) -> Document:
        if self._base is None:
            app = self.app
            self._base = get_openapi(title=app.title, version=app.version, routes=app.routes)
        document = copy.deepcopy(self._base)
        components = document.setdefault("components", {})
        components.setdefault("schemas", {}).update(self.components(deployment))
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "the admin token"}
        }
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                self.operation(path, method, operation, deployment)
        document["info"]["description"] = (
            f"Serving {deployment.model} version {deployment.version}: "
            f"{len(deployment.schema.features)} features."
        )
        return document

    def components(self, deployment: Deployment) -> Document:
        schema, rows, chars = deployment.schema, self.max_rows, self.max_chars
        outputs = output_names(deployment.task)
        return component_schemas() | {
            "RequestId": bodies.request_id_schema(),
            "Record": bodies.record_schema(schema, chars),
            "Label": bodies.label_schema(deployment.task, deployment.classes, MAX_ROW),
            "PredictBody": bodies.predict_body(rows),
            "InvocationsBody": bodies.invocations_body(schema, rows, chars),
            "InvocationsCsv": bodies.csv_body(schema),
            "FeedbackBody": bodies.feedback_body({"$ref": "#/components/schemas/Label"}, rows),
            "InferBody": bodies.infer_body(schema, outputs, chars),
        }

    def operation(self, path: str, method: str, operation: Document, d: Deployment) -> None:
        responses: Document = operation.setdefault("responses", {})
        responses.pop("422", None)  # FastAPI's own validation error: never answered here
        for status in STATUSES.get((method, path), ()):
            responses[str(status)] = _problem(status)
        _bodies(path, operation)
        if path.startswith("/v2/models/"):
            _pin(operation, d)
        if path == "/admin/rollout/{action}":
            operation["parameters"][0]["schema"] = {"type": "string", "enum": list(ACTIONS)}
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in self.token_paths):
            operation["security"] = [{"bearer": []}]
            responses.update({str(s): _problem(s) for s in (401, 403)})
        if path in ("/predict", "/invocations") or path.endswith("/infer"):
            responses["200"]["headers"] = ANSWER_HEADERS
        if path.endswith("/infer"):
            responses["200"]["content"]["application/octet-stream"] = {
                "schema": {"type": "string", "format": "binary"}
            }


def _problem(status: int) -> Document:
    answer: Document = {
        "description": _WHY[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status == 503:
        answer["headers"] = {
            "Retry-After": {"schema": {"type": "string"}, "description": "seconds to wait"}
        }
    if status == 401:
        answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return answer


_BODIES = {
    "/predict": {"application/json": "PredictBody"},
    "/invocations": {"application/json": "InvocationsBody", "text/csv": "InvocationsCsv"},
    "/feedback": {"application/json": "FeedbackBody"},
}


def _bodies(path: str, operation: Document) -> None:
    media = _BODIES.get(path)
    if path.endswith("/infer"):
        media = {"application/json": "InferBody"}
    if media is None:
        return
    content = {m: {"schema": {"$ref": f"#/components/schemas/{name}"}} for m, name in media.items()}
    operation["requestBody"] = {"required": True, "content": content}


def _pin(operation: Document, d: Deployment) -> None:
    """The model name and version path parameters: the served ones (others are 404);
    the optional ``version`` query parameter of the unversioned routes, likewise."""
    for parameter in operation.get("parameters", []):
        if parameter["name"] == "name":
            parameter["schema"] = {"type": "string", "enum": [d.model]}
        elif parameter["name"] == "version":
            parameter["schema"] = {"type": "string", "enum": [str(d.version)]}


def mount_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """``/docs`` and ``/redoc`` with their assets served from the package, not a CDN."""
    app.mount(ASSETS, StaticFiles(directory=_STATIC), name="docs-assets")

    swagger = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},
    ).body
    redoc = get_redoc_html(
        openapi_url=openapi_url,
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS}/favicon.png",
        with_google_fonts=False,
    ).body
    # Both pages are fixed once the app exists: rendered here, once, not per request.
    for path, html in (("/docs", bytes(swagger)), ("/redoc", bytes(redoc))):
        app.add_api_route(path, _page(html), methods=["GET"], include_in_schema=False)


def _page(html: bytes) -> Callable[[Request], Any]:
    async def endpoint(_: Request) -> HTMLResponse:
        return HTMLResponse(html)

    return endpoint
