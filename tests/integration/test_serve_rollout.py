"""Issue 13: a real ``loopml serve`` routes by the rollout state it reads.

The rollout state is written directly with :class:`RolloutStore` (the controller is tested
elsewhere) and ``POST /admin/reload`` makes the server follow it at once. One server runs
the whole module (a server start costs seconds); each test writes the rollout it needs,
ending the one before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopml.ledger import LedgerQuery, LedgerRecord
from loopml.ledger.sqlite import SqliteBackend
from loopml.rollout.plan import RolloutState, Stage, TrafficPlan
from loopml.rollout.router import route
from loopml.rollout.state import RolloutStore
from tests.integration.serving import MODEL, Project, Server, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STATE_FILE = ".loopml/loop-rollout-test.db"
STICKY = "session"
"""The sticky key: a column the requests carry that the model does not read."""


@pytest.fixture(scope="module")
def server(served_project: Project) -> Iterator[Server]:
    env = {"LOOPML_ROLLOUT__STATE": f"sqlite:///{STATE_FILE}",
           "LOOPML_ROLLOUT__STICKY_KEY": STICKY}  # fmt: skip
    with running(served_project, "rollout", **env) as started:
        yield started


@pytest.fixture
def store(served_project: Project) -> Iterator[RolloutStore]:
    with RolloutStore.open(f"sqlite:///{STATE_FILE}", served_project.folder) as opened:
        yield opened


def begin(store: RolloutStore, rollout_id: str, strategy: str, *stages: Stage) -> RolloutState:
    """End any active rollout, and store a new one of version 2 against champion 1."""
    running_now = store.active(MODEL)
    if running_now is not None:
        store.update(running_now.at(status="aborted"), expect=running_now)
    now = time.time()
    state = RolloutState(
        rollout_id, MODEL, "1", "2", strategy, tuple(stages),  # type: ignore[arg-type]
        started_at=now, stage_started_at=now, updated_at=now,
    )  # fmt: skip
    store.insert(state)
    return state


def advance(store: RolloutStore, state: RolloutState, **changes: Any) -> RolloutState:
    new = state.at(**changes)
    assert store.update(new, expect=state)
    return new


def reload(server: Server) -> dict[str, Any]:
    status, _, body = server.request("POST", "/admin/reload", headers=server.bearer())
    assert status == 200, body
    return dict(json.loads(body))


def predict(server: Server, record: dict[str, Any], rid: str) -> tuple[str, str]:
    """(arm, version) of one ``/predict`` answer, its headers and body agreeing."""
    status, headers, raw = server.request(
        "POST", "/predict", json.dumps({"records": [record], "request_id": rid}).encode(),
        {"content-type": "application/json"},
    )  # fmt: skip
    assert status == 200, raw
    body = json.loads(raw)
    assert (headers["x-loopml-arm"], headers["x-loopml-version"]) == (body["arm"], body["version"])
    return body["arm"], body["version"]


def with_session(project: Project, n: int, prefix: str) -> list[dict[str, Any]]:
    return [r | {STICKY: f"{prefix}-{i}"} for i, r in enumerate(project.records(n))]


def ledger_rows(server: Server, arm: str) -> list[LedgerRecord]:
    backend = SqliteBackend(server.ledger_path)
    try:
        with backend.reader() as reader:
            return [r for chunk in reader.chunks(LedgerQuery(arm=arm), 10_000) for r in chunk]
    finally:
        backend.close()


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_shadow_the_champion_answers_and_the_challenger_scores_the_same_requests(
    server: Server, store: RolloutStore, served_project: Project, tmp_path: Path
) -> None:
    begin(store, "it-shadow", "shadow", Stage("shadow", 0.0))
    answer = reload(server)
    assert (answer["champion"], answer["challenger"]) == ("1", "2")
    assert answer["plan"]["shadow"] is True
    records = with_session(served_project, 20, "shadow")
    ids = [f"shadow-{i}" for i in range(len(records))]
    assert {predict(server, r, rid) for r, rid in zip(records, ids, strict=True)} == {
        ("champion", "1")
    }
    counted = wait_for(lambda: store.counts("it-shadow", 0).get("shadow"))
    assert counted is not None and counted.requests + counted.dropped == len(ids), counted
    assert store.counts("it-shadow", 0)["champion"].requests == len(ids)
    shadowed = wait_for(lambda: {r.request_id for r in ledger_rows(server, "shadow")} >= set(ids))
    assert shadowed, "the shadow rows did not reach the ledger"
    assert all(r.version == "2" for r in ledger_rows(server, "shadow"))
    assert set(ids) <= {r.request_id for r in ledger_rows(server, "champion")}


def test_canary_keys_keep_their_arm_as_the_share_grows(
    server: Server, store: RolloutStore, served_project: Project
) -> None:
    stages = (Stage("shadow", 0.0), Stage("traffic", 0.25), Stage("traffic", 0.5))
    state = advance(store, begin(store, "it-canary", "canary", *stages), stage=1)
    assert reload(server)["plan"]["share"] == 0.25
    records = with_session(served_project, 80, "user")
    plan = TrafficPlan("1", "2", share=0.25, rollout_id="it-canary")
    first: dict[str, str] = {}
    for i, record in enumerate(records):
        arm, version = predict(server, record, f"canary-a-{i}")
        assert predict(server, record, f"canary-b-{i}") == (arm, version)  # sticky
        assert version == ("2" if arm == "challenger" else "1")
        assert arm == route(plan, record[STICKY])  # the same router in every replica
        first[record[STICKY]] = arm
    on_challenger = sum(arm == "challenger" for arm in first.values())
    assert 8 <= on_challenger <= 35, on_challenger  # ~25% of 80 keys
    advance(store, state, stage=2)
    assert reload(server)["plan"]["share"] == 0.5
    grown = {r[STICKY]: predict(server, r, f"canary-c-{i}")[0] for i, r in enumerate(records)}
    assert all(grown[k] == "challenger" for k, arm in first.items() if arm == "challenger")
    assert sum(arm == "challenger" for arm in grown.values()) > on_challenger
    counted = wait_for(lambda: store.counts("it-canary", 1).get("challenger"))
    assert counted is not None and counted.version == "2"
    assert wait_for(
        lambda: store.counts("it-canary", 1)["challenger"].requests == 2 * on_challenger
    )


def test_every_dialect_names_the_version_and_arm(server: Server, store: RolloutStore,
                                                 served_project: Project) -> None:  # fmt: skip
    begin(store, "it-dialects", "blue_green", Stage("traffic", 1.0))
    reload(server)
    record = served_project.records(1)[0]
    status, headers, raw = server.request(
        "POST", "/invocations", json.dumps({"dataframe_records": [record]}).encode(),
        {"content-type": "application/json"},
    )  # fmt: skip
    assert status == 200, raw
    assert (headers["x-loopml-arm"], headers["x-loopml-version"]) == ("challenger", "2")
    metadata = json.loads(server.get(f"/v2/models/{MODEL}")[1])
    inputs = [
        {"name": spec["name"], "shape": [1, 1], "datatype": spec["datatype"],
         "data": [record[spec["name"]]]}
        for spec in metadata["inputs"]
    ]  # fmt: skip
    status, headers, raw = server.request(
        "POST", f"/v2/models/{MODEL}/infer", json.dumps({"inputs": inputs}).encode(),
        {"content-type": "application/json"},
    )  # fmt: skip
    assert status == 200, raw
    assert (headers["x-loopml-arm"], headers["x-loopml-version"]) == ("challenger", "2")
    assert json.loads(raw)["model_version"] == "2"


def test_blue_green_takes_everything_and_the_way_back_is_at_once(
    server: Server, store: RolloutStore, served_project: Project
) -> None:
    state = begin(store, "it-blue-green", "blue_green", Stage("traffic", 1.0))
    reload(server)
    records = with_session(served_project, 10, "bg")
    assert {predict(server, r, f"bg-a-{i}") for i, r in enumerate(records)} == {("challenger", "2")}
    advance(store, state, status="aborted")
    answer = reload(server)
    assert (answer["outcome"], answer["challenger"]) == ("swapped", None)
    assert {predict(server, r, f"bg-b-{i}") for i, r in enumerate(records)} == {("champion", "1")}
    status, _, raw = server.request("GET", "/admin/rollout", headers=server.bearer())
    shown = json.loads(raw)
    assert status == 200 and shown["rollout"]["status"] == "aborted", shown
    assert shown["serving"]["challenger"] is None


def test_the_rollout_admin_api_needs_the_token_and_a_known_action(server: Server) -> None:
    assert server.request("POST", "/admin/rollout/abort")[0] == 401
    status, _, raw = server.request("POST", "/admin/rollout/explode", headers=server.bearer())
    assert status == 404 and json.loads(raw)["error"] == "unknown_action", raw
    status, _, raw = server.request(
        "POST", "/admin/rollout/abort", b'{"reason": 3}',
        {"content-type": "application/json", **server.bearer()},
    )  # fmt: skip
    assert status == 422, raw
