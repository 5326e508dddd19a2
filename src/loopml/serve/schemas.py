"""Wire schemas, in one place: the OpenAPI document is generated from these.

Routes parse bodies with the codecs (faster than building pydantic objects per request);
these models describe the same shapes for ``/docs`` and for API clients.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from loopml.config import Strategy


class Problem(BaseModel):
    """Every 4xx / 5xx body: what went wrong, where, and how to fix it."""

    error: str = Field(description="a stable code, e.g. missing_field, wrong_type")
    field: str | None = Field(None, description="the input field at fault, if one is")
    row: int | None = Field(None, description="the 0-based row at fault, if one is")
    reason: str = Field(description="what is wrong and how to fix it")


class PredictRequest(BaseModel):
    records: list[dict[str, Any]] = Field(description="one object per row: feature -> value")
    request_id: str | None = Field(
        None, max_length=128, description="your id for this request (default: generated)"
    )


class RowPrediction(BaseModel):
    label: Any | None = Field(None, description="classification: the predicted class")
    probabilities: dict[str, float] | None = Field(None, description="class -> probability")
    value: float | None = Field(None, description="regression: the predicted value")


class PredictResponse(BaseModel):
    request_id: str
    model: str
    version: str = Field(description="the version that answered (also in x-loopml-version)")
    arm: str = Field(
        description="champion, or challenger when a rollout routed this request's key to it "
        "(also in x-loopml-arm)"
    )
    predictions: list[RowPrediction]


class InvocationsRequest(BaseModel):
    """MLflow's scoring payloads (one of the keys), as ``mlflow models serve`` takes them."""

    dataframe_split: dict[str, Any] | None = None
    dataframe_records: list[dict[str, Any]] | None = None
    inputs: Any | None = None
    instances: Any | None = None
    params: dict[str, Any] | None = None


class InvocationsResponse(BaseModel):
    predictions: list[dict[str, Any]] = Field(
        description="per row: prediction, and proba_<class> for classifiers"
    )


class LabelIn(BaseModel):
    request_id: str = Field(max_length=128)
    row: int = Field(0, ge=0, description="the row of a multi-row request")
    label: Any
    source: str | None = Field(
        None, max_length=128, description="who or what gave the label, kept in its history"
    )


class FeedbackRequest(BaseModel):
    """One label (request_id, row, label) or a batch under ``labels``."""

    labels: list[LabelIn] | None = None
    request_id: str | None = None
    row: int | None = None
    label: Any | None = None


class FeedbackResponse(BaseModel):
    recorded: int
    unknown: list[dict[str, Any]] = Field(description="labels whose request id is not recorded")


class InferTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferRequest(BaseModel):
    """Open Inference Protocol v2 request: one tensor per input column."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferTensor]
    outputs: list[dict[str, Any]] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[InferTensor]


class ReloadResponse(BaseModel):
    outcome: str = Field(description="unchanged, swapped, rerouted (the plan alone) or failed")
    serving: str = Field(description="the champion serving after the check")
    target: str | None = Field(description="the version the champion alias points at")
    error: str | None
    champion: str
    challenger: str | None = Field(description="the rollout's challenger, when loaded")
    plan: dict[str, Any] | None = Field(description="the traffic plan this server routes by")
    loaded: list[str] = Field(
        default_factory=list,
        description="the versions this check loaded; empty when it reused loaded ones (the "
        "way back of a blue-green or a rollback loads nothing)",
    )


class RolloutAction(BaseModel):
    """The optional body of ``POST /admin/rollout/{action}`` (each field as the CLI's)."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(None, max_length=64, description="start: the challenger")
    strategy: Strategy | None = Field(None, description="start: the rollout's strategy")
    reason: str | None = Field(None, max_length=2000, description="why (kept in the audit)")
    force: bool = Field(False, description="promote / step past the guards (audited)")


class Health(BaseModel):
    status: str
    model: str | None = None
    version: str | None = None


DOCUMENTED = (
    Problem, PredictRequest, PredictResponse, InvocationsRequest, InvocationsResponse,
    FeedbackRequest, FeedbackResponse, InferRequest, InferResponse, ReloadResponse, Health,
    RolloutAction,
)  # fmt: skip


def body_schema(model: type[BaseModel], *media: str) -> dict[str, Any]:
    """``openapi_extra`` documenting a body a route reads itself (the fast path)."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    types = media or ("application/json",)
    return {"requestBody": {"required": True, "content": {m: {"schema": ref} for m in types}}}


def component_schemas() -> dict[str, Any]:
    """Every documented model (and the models they nest) as OpenAPI components."""
    components: dict[str, Any] = {}
    for model in DOCUMENTED:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem} for code in codes}
