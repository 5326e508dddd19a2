"""Issue 12, problem 10: the OpenAPI document is what the server does, and /docs works
without internet. Schemathesis (``--checks all``) fuzzes a real ``loopml serve``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.serving import Project, promote, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_EXAMPLES = 15
REJECTED = [str(code) for code in (400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429)]
"""Statuses that reject schema-violating data: schemathesis 4's default, and 413."""
"""Per operation and phase: ~2,000 requests in about 40 s on the shared 2-core machine."""


def test_schemathesis_finds_no_failure_in_the_served_document(
    served_project: Project, tmp_path: Path
) -> None:
    """Every operation, every check, all of Unicode, no exclusion. A fixed seed (CI reruns
    the same requests; change it to explore). One setting, for a stated reason: 413 counts
    as a rejection of schema-violating data (schemathesis's default list lacks it; a body
    with more than ``serve.max_rows`` rows is "Content Too Large", as HTTP says)."""
    report = tmp_path / "report.json"
    (tmp_path / "schemathesis.toml").write_text(
        "[checks.negative_data_rejection]\nexpected-statuses = "
        + json.dumps([*REJECTED, "5xx"])
        + "\n"
    )
    # The fuzzer holds the admin token: rollout actions would start rollouts and move the
    # champion alias of the project every serving test shares. Its server cannot open a
    # rollout state database, so they are all refused (409 rollout_disabled), bodies
    # checked first.
    no_state = {"LOOPML_ROLLOUT__STATE": "sqlite:///feed.parquet/loop.db"}
    with running(served_project, "openapi", **no_state) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli",
             "--config-file", str(tmp_path / "schemathesis.toml"), "run",
             f"http://127.0.0.1:{server.port}/openapi.json",
             "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", "12",
             "--workers", "1", "--no-color",
             "--request-timeout", "60",
             "--header", f"Authorization: Bearer {server.token()}",
             "--report", "json", "--report-json-path", str(report)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
        assert server.get("/health/ready")[0] == 200  # the fuzzing broke nothing
    output = proc.stdout + proc.stderr
    summary = output[output.find("SUMMARY") :]
    print(summary)  # the figures for the note
    assert proc.returncode == 0, output[-6000:]
    assert re.search(r"Selected: 21/21\s+Tested: 21", summary), summary
    generated = int(re.search(r"(\d+) generated", summary).group(1))  # type: ignore[union-attr]
    assert generated > 1000, summary
    assert "No issues found" in summary, summary


def test_docs_load_only_assets_the_server_ships(served_project: Project) -> None:
    with running(served_project, "docs") as server:
        for page in ("/docs", "/redoc"):
            status, headers, body = server.request("GET", page)
            assert status == 200 and headers["content-type"].startswith("text/html")
            html = body.decode()
            links = re.findall(r"""(?:src|href)=["']([^"']+)""", html)
            assert links and all(link.startswith("/") for link in links), links
            assert "http://" not in html and "https://" not in html, html
            for link in links:
                got, answered, asset = server.request("GET", link)
                assert got == 200 and len(asset) > 1000, link
                wanted = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
                kind = wanted[Path(link).suffix]
                assert kind in answered["content-type"], (link, answered["content-type"])
        assert "validatorUrl" in server.get("/docs")[1].decode()  # no badge from a server


def test_the_document_names_the_features_and_follows_a_reload(served_project: Project) -> None:
    contract = (served_project.folder / "loopml.contract.yaml").read_text()
    features = re.findall(r"- name: (\S+)\n  type: (\S+)\n  role: feature", contract)
    with running(served_project, "doc-reload") as server:
        document = json.loads(server.get("/openapi.json")[1])
        record = document["components"]["schemas"]["Record"]
        assert record["required"] == [name for name, _ in features]
        kinds = {"integer": "integer", "float": "number", "string": "string"}
        for name, kind in features:
            assert record["properties"][name]["type"] == [kinds[kind], "null"], name
        pinned = document["paths"]["/v2/models/{name}/versions/{version}"]["get"]
        assert [p["schema"]["enum"] for p in pinned["parameters"]] == [["feed"], ["1"]]
        assert document["paths"]["/feedback"]["post"]["responses"]["401"]
        promote(served_project, "2")
        try:
            status, _, body = server.request(
                "POST", "/admin/reload", headers={"authorization": f"Bearer {server.token()}"}
            )
            assert status == 200 and json.loads(body)["serving"] == "2", body
            reloaded = json.loads(server.get("/openapi.json")[1])
            pinned = reloaded["paths"]["/v2/models/{name}/versions/{version}"]["get"]
            assert [p["schema"]["enum"] for p in pinned["parameters"]] == [["feed"], ["2"]]
            assert "version 2" in reloaded["info"]["description"]
        finally:
            promote(served_project, "1")


@pytest.mark.parametrize("request_id", ["id-\u012b", "caf\u00e9", "\U0002ad4f"])
def test_a_request_id_the_header_cannot_carry_is_refused_before_predicting(
    served_project: Project, request_id: str
) -> None:
    """Found by schemathesis over all of Unicode: a printable id outside Latin-1 was
    predicted and recorded, then the x-request-id header could not hold it (a 500 to a
    client whose prediction was in the ledger; its retry was a 409). Latin-1 ids came
    back in a header no client reads as UTF-8. Now a request id is printable ASCII."""
    record = served_project.records(1)[0]
    with running(served_project, f"request-id-{len(request_id)}-{ord(request_id[-1])}") as server:
        for attempt in range(2):
            status, body = server.post_json(
                "/predict", {"records": [record], "request_id": request_id}
            )
            assert status == 422 and body["error"] == "bad_request_id", (attempt, body)
            assert "ASCII" in body["reason"], body
        ascii_id = "plain-id 1~"
        status, headers, raw = server.request(
            "POST", "/predict", json.dumps({"records": [record], "request_id": ascii_id}).encode(),
            {"content-type": "application/json"},
        )  # fmt: skip
        assert status == 200 and headers["x-request-id"] == ascii_id, raw
        spec = json.loads(server.get("/openapi.json")[1])["components"]["schemas"]["RequestId"]
        assert re.fullmatch(spec["pattern"], ascii_id)
        assert not re.fullmatch(spec["pattern"], request_id)
    assert server.ledger_ids() == [(ascii_id, 0)]
