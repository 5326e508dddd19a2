"""Every kind of bad request gets a 4xx with {error, field, row, reason}; never a 5xx. What
``loopml validate`` only warns about (a null where training had none, an unknown field, an
unseen category) is served and counted instead."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.serving import Project, Server, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(served_project: Project) -> Iterator[Server]:
    with running(served_project, "bad-input", LOOPML_SERVE__MAX_BODY_BYTES="65536") as srv:
        yield srv


def good(project: Project, n: int = 2) -> list[dict[str, Any]]:
    return project.records(n, offset=200)


def post(
    server: Server, path: str, body: bytes, content_type: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    status, _, raw = server.request("POST", path, body, {"content-type": content_type})
    payload = json.loads(raw)
    assert set(payload) >= {"error", "field", "row", "reason"}, payload
    assert payload["reason"], payload
    return status, payload


def with_change(records: list[dict[str, Any]], row: int, **changes: Any) -> bytes:
    changed = [dict(r) for r in records]
    for key, value in changes.items():
        if value is ...:
            del changed[row][key]
        else:
            changed[row][key] = value
    return json.dumps({"records": changed}).encode()


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        ({"user_age": ...}, "missing_field", "user_age"),
        ({"user_age": "forty"}, "wrong_type", "user_age"),
        ({"user_age": 30.5}, "wrong_type", "user_age"),
        ({"user_country": {"nested": 1}}, "wrong_type", "user_country"),
    ],
)
def test_bad_field_names_field_and_row(
    server: Server, served_project: Project, change: dict[str, Any], error: str, field: str
) -> None:
    status, body = post(server, "/predict", with_change(good(served_project), 1, **change))
    assert status == 422, body
    assert body["error"] == error
    assert body["field"] == field
    assert body["row"] == 1


def test_infinity_is_refused(server: Server, served_project: Project) -> None:
    text = with_change(good(served_project), 0, user_activity=1.5).decode()
    text = text.replace('"user_activity": 1.5', '"user_activity": Infinity')
    status, body = post(server, "/predict", text.encode())
    # Python's json spells it Infinity; strict JSON parsers refuse it as malformed.
    assert status in (400, 422)
    assert body["error"] in ("non_finite", "malformed_json")


def counter(server: Server, line: str) -> float:
    text = server.get("/metrics")[1].decode()
    return float(text.split(line)[1].split()[0]) if line in text else 0.0


def test_unseen_category_is_served_and_counted(server: Server, served_project: Project) -> None:
    line = 'loopml_unseen_categories_total{feature="user_country"}'
    before = counter(server, line)
    status, _, raw = server.request(
        "POST", "/predict", with_change(good(served_project), 0, user_country="Atlantis"),
        {"content-type": "application/json"},
    )  # fmt: skip
    assert status == 200, raw
    assert counter(server, line) == before + 1


NULLS = 'loopml_unexpected_nulls_total{feature="user_activity"}'
IGNORED = 'loopml_ignored_fields_total{field="surprise"}'


def test_what_validate_warns_about_is_served_and_counted(
    server: Server, served_project: Project
) -> None:
    """A null in a never-null feature (imputed), an unknown field and the target (ignored)."""
    contract = (served_project.folder / "loopml.contract.yaml").read_text()
    assert "name: user_activity" in contract
    nulls, ignored = counter(server, NULLS), counter(server, IGNORED)
    body = with_change(good(served_project), 1, user_activity=None, surprise=1, engaged=1)
    status, _, raw = server.request("POST", "/predict", body, {"content-type": "application/json"})
    assert status == 200, raw
    assert len(json.loads(raw)["predictions"]) == 2
    assert counter(server, NULLS) == nulls + 1
    assert counter(server, IGNORED) == ignored + 1


def test_oip_and_invocations_serve_unexpected_nulls(
    server: Server, served_project: Project
) -> None:
    records = good(served_project)
    records[0]["user_activity"] = None
    nulls = counter(server, NULLS)
    status, _, raw = server.request(
        "POST", "/invocations", json.dumps({"dataframe_records": records}).encode(),
        {"content-type": "application/json"},
    )  # fmt: skip
    assert status == 200, raw
    metadata = json.loads(server.get("/v2/models/feed")[1])
    inputs = [
        {"name": spec["name"], "shape": [2], "datatype": spec["datatype"],
         "data": [r[spec["name"]] for r in records]}
        for spec in metadata["inputs"]
    ]  # fmt: skip
    status, _, raw = server.request(
        "POST", "/v2/models/feed/infer", json.dumps({"inputs": inputs}).encode(),
        {"content-type": "application/json"},
    )  # fmt: skip
    assert status == 200, raw
    assert counter(server, NULLS) == nulls + 2


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (b'{"records": [', "application/json", 400, "malformed_json"),
        (b"\xff\xfe not utf-8", "application/json", 400, None),
        (b'{"records": []}', "application/json", 422, "empty"),
        (b'{"records": [1, 2]}', "application/json", 422, None),
        (b"a,b\n1,2\n", "text/csv", 415, "unsupported_media_type"),
        (b"<x/>", "application/xml", 415, "unsupported_media_type"),
    ],
)
def test_malformed_bodies(
    server: Server, body: bytes, content_type: str, status: int, error: str | None
) -> None:
    got, payload = post(server, "/predict", body, content_type)
    assert got == status, payload
    if error:
        assert payload["error"] == error


def test_oversized_body_is_413(server: Server, served_project: Project) -> None:
    records = good(served_project, 1) * 400
    got, payload = post(server, "/predict", json.dumps({"records": records}).encode())
    assert got == 413
    assert payload["error"] == "body_too_large"


def test_wrong_host_header_is_refused(server: Server) -> None:
    status, _, _ = server.request("GET", "/health/live", headers={"host": "evil.example"})
    assert status == 400


def test_oip_and_invocations_bad_input(server: Server, served_project: Project) -> None:
    status, body = post(server, "/invocations", b'{"dataframe_split": {"columns": ["a"]}}')
    assert 400 <= status < 500, body
    status, body = post(server, "/invocations", b'{"unknown_format": []}')
    assert 400 <= status < 500, body
    status, body = post(
        server,
        "/v2/models/feed/infer",
        json.dumps(
            {"inputs": [{"name": "user_age", "shape": [1], "datatype": "FP64", "data": [1.0, 2.0]}]}
        ).encode(),
    )
    assert 400 <= status < 500, body


def test_server_still_healthy_after_abuse(server: Server) -> None:
    status, raw = server.get("/metrics")
    assert status == 200
    text = raw.decode()
    assert 'status="500"' not in text
    assert 'error="internal"' not in text
