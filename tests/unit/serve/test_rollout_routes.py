"""The rollout admin routes and the answer headers, over the real app with plain-object
runtimes and fake controller hooks (the controller is tested on its own)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from loopml.config import ServeConfig
from loopml.errors import GateFailed, LoopmlError, RegistryError, RolloutError
from loopml.rollout.plan import TrafficPlan
from loopml.serve.app import create_app
from loopml.serve.deployments import DeploymentSet
from loopml.serve.metrics import ServeMetrics
from loopml.serve.parts import RolloutHooks, ServerParts
from loopml.serve.rollout_routes import parse_action
from loopml.serve.service import PredictionService
from tests.unit.serve.test_service_rollout import FakeRuntime, deployment

pytestmark = pytest.mark.unit

TOKEN = "admin-token-for-tests"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


class Http:
    """A client of the app in this process (httpx over ASGI, each call on a fresh loop)."""

    def __init__(self, app: FastAPI) -> None:
        self.transport = httpx.ASGITransport(app=app, client=("testclient", 50000))

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            async with httpx.AsyncClient(
                transport=self.transport, base_url="http://localhost"
            ) as http:
                return await http.request(method, path, **options)

        return asyncio.run(send())

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)


class Controller:
    """What the hooks were asked, and what they raise."""

    def __init__(self, raises: LoopmlError | None = None) -> None:
        self.calls: list[tuple[str, str, Mapping[str, Any]]] = []
        self.raises = raises

    def act(self, action: str, actor: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls.append((action, actor, dict(params)))
        if self.raises is not None:
            raise self.raises
        return {"action": action, "message": "done"}

    def status(self) -> Mapping[str, Any] | None:
        return {"rollout_id": "r1", "status": "running"}


def client(plan: TrafficPlan, controller: Controller | None) -> tuple[Http, ServerParts]:
    deployments = DeploymentSet(
        deployment("1", FakeRuntime(0.0)), deployment("2", FakeRuntime(100.0)), plan
    )
    service = PredictionService(deployments, None)
    hooks = None if controller is None else RolloutHooks(controller.act, controller.status)
    settings = ServeConfig(feedback_auth="none")  # type: ignore[call-arg]
    parts = ServerParts(service, ServeMetrics(), settings, TOKEN, rollout=hooks)
    return Http(create_app(parts)), parts


def test_an_action_runs_the_controller_as_the_admin_api() -> None:
    controller = Controller()
    http, _ = client(TrafficPlan("1"), controller)
    answer = http.post("/admin/rollout/start", json={"version": "2", "reason": "r"},
                       headers=ADMIN)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["action"] == "start" and answer.json()["serving"]["champion"] == "1"
    assert controller.calls == [("start", "admin-api@testclient", {"version": "2", "reason": "r"})]
    assert http.post("/admin/rollout/abort", headers=ADMIN).status_code == 200  # no body
    assert controller.calls[-1] == ("abort", "admin-api@testclient", {})


@pytest.mark.parametrize(
    ("raised", "error"),
    [(RolloutError("no rollout is running"), "rollout"), (RegistryError("no version 9"),
     "registry"), (GateFailed("the gate refused"), "gate_failed")],
)  # fmt: skip
def test_refused_actions_are_409_with_the_reason(raised: LoopmlError, error: str) -> None:
    http, _ = client(TrafficPlan("1"), Controller(raised))
    answer = http.post("/admin/rollout/promote", headers=ADMIN)
    assert answer.status_code == 409 and answer.json()["error"] == error, answer.text
    assert raised.headline in answer.json()["reason"]


def test_bad_requests_are_refused_before_the_controller_runs() -> None:
    controller = Controller()
    http, _ = client(TrafficPlan("1"), controller)
    assert http.post("/admin/rollout/start").status_code == 401
    assert (
        http.post("/admin/rollout/start", headers={"authorization": "Bearer no"}).status_code == 403
    )
    assert http.post("/admin/rollout/explode", headers=ADMIN).status_code == 404
    bad = {"content-type": "application/json", **ADMIN}
    assert http.post("/admin/rollout/start", content=b"{", headers=bad).status_code == 400
    assert http.post("/admin/rollout/start", content=b"[]", headers=bad).status_code == 422
    assert http.post("/admin/rollout/start", json={"colour": 1}, headers=ADMIN).status_code == 422
    assert (
        http.post("/admin/rollout/start", json={"strategy": "big"}, headers=ADMIN).status_code
        == 422
    )
    assert controller.calls == []


def test_without_a_state_database_actions_are_refused() -> None:
    http, _ = client(TrafficPlan("1"), None)
    answer = http.post("/admin/rollout/step", headers=ADMIN)
    assert answer.status_code == 409 and answer.json()["error"] == "rollout_disabled"
    shown = http.get("/admin/rollout", headers=ADMIN).json()
    assert shown["rollout"] is None and shown["serving"]["challenger"] == "2"


def test_the_status_shows_the_state_and_the_plan() -> None:
    plan = TrafficPlan("1", "2", share=0.25, rollout_id="r1", strategy="canary", stage=1)
    http, _ = client(plan, Controller())
    shown = http.get("/admin/rollout", headers=ADMIN).json()
    assert shown["rollout"]["rollout_id"] == "r1"
    assert shown["serving"]["plan"]["share"] == 0.25 and shown["serving"]["challenger"] == "2"


def test_answers_name_the_arm_and_a_shadowed_request_is_queued_after_it() -> None:
    plan = TrafficPlan("1", "2", shadow=True, rollout_id="r1", strategy="shadow")
    http, parts = client(plan, Controller())
    answer = http.post("/predict", json={"records": [{"num": 1.0, "user": "u"}]})
    assert answer.status_code == 200, answer.text
    assert (answer.headers["x-loopml-arm"], answer.headers["x-loopml-version"]) == ("champion", "1")
    assert answer.json()["arm"] == "champion"
    assert parts.service.shadow_jobs.waiting == 1  # offered once the answer was sent
    blue_green = TrafficPlan("1", "2", share=1.0, rollout_id="r2", strategy="blue_green")
    current = parts.service.deployments
    parts.service.swap_set(DeploymentSet(current.champion, current.challenger, blue_green))
    answer = http.post("/invocations", json={"dataframe_records": [{"num": 1.0}]})
    assert (answer.headers["x-loopml-arm"], answer.headers["x-loopml-version"]) == (
        "challenger",
        "2",
    )
    metrics = http.get("/metrics").text
    assert (
        'loopml_requests_total{arm="challenger",route="/invocations",status="200",version="2"}'
        in metrics
    )


def test_parse_action_keeps_only_what_was_sent() -> None:
    assert parse_action(b"") == {} and parse_action(b" {} ") == {}
    assert parse_action(b'{"force": true}') == {"force": True}
