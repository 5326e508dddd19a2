"""Issue 13 as a user drives it: ``loopml rollout`` and ``POST /admin/rollout/{action}``
against a real ``loopml serve``, its own rollout job deciding.

Each test copies the session's trained project (versions 1 champion, 2 and 3) into its own
folder — a rollout moves aliases and tags versions — and starts one server on it, with its
own ledger, cache and rollout state. The CLI runs in a subprocess with the server's
environment, so both read the same policy, ledger and state. Policies are made fast from the
environment (``LOOPML_ROLLOUT__*``): 100 predictions per arm, a 1 s bake, a step a second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopml.rollout.router import bucket
from tests.integration.conftest import Result
from tests.integration.serving import Project, Server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = {
    "LOOPML_ROLLOUT__MIN_PREDICTIONS": "100",
    "LOOPML_ROLLOUT__BAKE_SECONDS": "1",
    "LOOPML_ROLLOUT__INTERVAL_SECONDS": "1",
    "LOOPML_ROLLOUT__GUARDS__REALIZED_DROP__MIN_LABELS": "50",
}
"""A policy a test can walk through in seconds (the guards' limits stay the defaults)."""
NO_DIVERGENCE = {"LOOPML_ROLLOUT__GUARDS__PREDICTION_DIVERGENCE__ENABLED": "false"}
"""For the tests of other mechanisms that need a healthy challenger to pass at FAST's 100
predictions per arm: there the distance between two samples of the *same* model's
predictions is about 0.1 by chance alone, and the guard's chance level (from 20 random
splits) is itself noisy at that size; every look is one more chance of a rare breach."""
MANUAL = {"LOOPML_ROLLOUT__INTERVAL_SECONDS": "0"}
"""No rollout job in the server: only the operator's ``rollout step`` decides."""
KEY = "impression_id"
"""The feed's entity key: the router's sticky key."""


@dataclass
class Loop:
    """One project copy, its server and the CLI with the server's environment."""

    project: Project
    server: Server
    env: dict[str, str]
    labels: dict[str, int]

    def cli(self, *args: str, check: int | None = 0) -> Result:
        full = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")} | self.env
        proc = subprocess.run(
            [sys.executable, "-c", "from loopml.cli.main import run; run()", *args],
            cwd=self.project.folder, env=full, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check is not None:
            assert result.code == check, (
                f"loopml {' '.join(args)} exited {result.code}, expected {check}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def status(self) -> dict[str, Any]:
        """``loopml rollout status --json``."""
        return dict(self.cli("rollout", "status", "--json").json())

    def rollout(self) -> dict[str, Any] | None:
        """The rollout as the server's admin API shows it (cheaper than a CLI run)."""
        status, _, raw = self.server.request("GET", "/admin/rollout", headers=self.server.bearer())
        assert status == 200, raw
        shown: dict[str, Any] | None = json.loads(raw)["rollout"]
        return shown

    def admin(self, action: str, reason: str | None = None, **extra: Any) -> dict[str, Any]:
        body = ({"reason": reason} if reason is not None else {}) | extra
        status, answer = self.server.post_json(
            f"/admin/rollout/{action}", body, self.server.bearer()
        )
        assert status == 200, answer
        return answer

    def reload(self) -> dict[str, Any]:
        status, _, raw = self.server.request("POST", "/admin/reload", headers=self.server.bearer())
        assert status == 200, raw
        return dict(json.loads(raw))

    def predict(self, record: dict[str, Any], rid: str) -> tuple[str, str]:
        """(arm, version) of one single-row ``/predict``; headers and body agree."""
        status, headers, raw = self.server.request(
            "POST", "/predict", json.dumps({"records": [record], "request_id": rid}).encode(),
            {"content-type": "application/json"},
        )  # fmt: skip
        assert status == 200, raw
        body = json.loads(raw)
        assert (headers["x-loopml-arm"], headers["x-loopml-version"]) == (
            body["arm"],
            body["version"],
        )
        return str(body["arm"]), str(body["version"])

    def traffic(self, records: list[dict[str, Any]], tag: str, label: bool = True) -> list[str]:
        """Each record through ``/predict`` (one request each), then every label in one
        ``/feedback``; the versions that answered."""
        answered = [self.predict(r, f"{tag}-{i}")[1] for i, r in enumerate(records)]
        if label:
            labels = [{"request_id": f"{tag}-{i}", "row": 0, "label": self.labels[str(r[KEY])]}
                      for i, r in enumerate(records)]  # fmt: skip
            status, answer = self.server.post_feedback({"labels": labels})
            assert status == 200 and answer["recorded"] == len(labels), answer
        return answered

    def champion_only(self, records: list[dict[str, Any]], tag: str, version: str = "1") -> None:
        got = {self.predict(r, f"{tag}-{i}") for i, r in enumerate(records)}
        assert got == {("champion", version)}, got

    def models(self) -> dict[str, dict[str, Any]]:
        return {v["version"]: v for v in self.cli("models", "--json").json()}

    def audit(self) -> list[dict[str, Any]]:
        return list(self.cli("audit", "--json").json())


def copy_project(served: Project, folder: Path) -> Project:
    """The session's trained project in a folder of its own (its MLflow store follows)."""
    shutil.copytree(
        served.folder, folder,
        ignore=shutil.ignore_patterns("ledger-*", "cache-*", "loop*.db*", "monitor*"),
    )  # fmt: skip
    return Project(folder, folder / served.table.name)


def rows(project: Project, n: int, offset: int = 0) -> list[dict[str, Any]]:
    return project.records(n, offset)


@pytest.fixture
def labels(served_project: Project) -> dict[str, int]:
    frame = pd.read_parquet(served_project.table, columns=[KEY, "engaged"])
    return {str(k): int(v) for k, v in zip(frame[KEY], frame["engaged"], strict=True)}


@pytest.fixture
def make_loop(served_project: Project, tmp_path: Path, labels: dict[str, int]) -> Iterator[Any]:
    """``make_loop(**env)``: a project copy and a started server with ``env``."""
    servers: list[Server] = []

    def make(**env: str) -> Loop:
        project = copy_project(served_project, tmp_path / f"project-{len(servers)}")
        server = Server(project, "loop", env={"LOOPML_SERVE__POLL_SECONDS": "0.5", **env})
        servers.append(server)
        server.start()
        shared = {
            "LOOPML_SERVE__LEDGER__URL": f"sqlite:///{server.ledger_path}",
            "LOOPML_SERVE__CACHE_DIR": ".loopml/cache-loop",
        } | server.env
        return Loop(project, server, shared, labels)

    yield make
    for server in servers:
        server.kill()


def wait_until(check: Any, timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(every)


def events(audit: list[dict[str, Any]], rollout_id: str) -> list[dict[str, Any]]:
    """The rollout's own done entries (not intents, not alias moves), oldest first."""
    return [
        e for e in audit if e["rollout_id"] == rollout_id and e["event"] and e["phase"] == "done"
    ]


# -- 1. operator actions ---------------------------------------------------------------


def test_operator_actions_through_the_cli_and_the_admin_api_are_audited(make_loop: Any) -> None:
    loop = make_loop()  # the default policy: a shadow stage first, nothing decided soon
    started = loop.cli("rollout", "start", "--version", "2", "--reason", "retrained on May",
                       "--json").json()  # fmt: skip
    rid = started["state"]["rollout_id"]
    shown = loop.status()
    assert shown["state"]["status"] == "running", shown
    assert shown["state"]["stage_label"] == "shadow" and shown["state"]["shadow"] is True
    assert [s["kind"] for s in shown["state"]["stages"]] == ["shadow"] + ["traffic"] * 4
    guards = {r["guard"]: r for r in shown["would_decide"]["reasons"]}
    assert set(guards) == {"error_rate", "latency_p99_ratio", "prediction_divergence",
                           "agreement", "estimated_drop", "realized_drop"}  # fmt: skip
    assert guards["prediction_divergence"]["limit"] == 0.1
    assert shown["would_decide"]["kind"] == "hold", shown["would_decide"]

    paused = loop.cli("rollout", "pause", "--reason", "on-call is busy", "--json").json()
    assert paused["state"]["status"] == "paused"
    assert loop.server.request("POST", "/admin/rollout/resume")[0] == 401
    resumed = loop.admin("resume", "on-call is back")
    assert resumed["state"]["status"] == "running"
    assert resumed["serving"]["challenger"] == "2" and resumed["serving"]["plan"]["shadow"]
    assert loop.server.post_json("/admin/rollout/abort", {"reason": "x"})[0] == 401
    assert loop.rollout()["status"] == "running"  # type: ignore[index]
    aborted = loop.admin("abort", "wrong version")
    assert aborted["state"]["status"] == "aborted", aborted
    assert aborted["serving"]["challenger"] is None  # this replica reloaded at once
    loop.champion_only(rows(loop.project, 10), "after-abort")

    done = {e["event"]: e for e in events(loop.audit(), rid)}
    assert set(done) == {"start", "pause", "resume", "abort"}, done
    assert done["start"]["reason"] == "retrained on May"
    assert done["pause"]["reason"] == "on-call is busy"
    assert done["resume"]["reason"] == "on-call is back"
    assert done["abort"]["reason"] == "wrong version"
    assert done["resume"]["actor"].startswith("admin-api@127.0.0.1")
    assert done["abort"]["actor"].startswith("admin-api@")
    assert not done["pause"]["actor"].startswith("admin-api")  # the CLI's user
    assert done["abort"]["evidence"]["to"]["status"] == "aborted"


# -- 2. canary stepping ----------------------------------------------------------------


def test_canary_steps_up_on_its_own_with_sticky_keys_until_promoted(make_loop: Any) -> None:
    loop = make_loop(**(FAST | NO_DIVERGENCE), LOOPML_ROLLOUT__SHADOW_FIRST="false",
                     LOOPML_ROLLOUT__STEPS="[0.25,0.5,1.0]")  # fmt: skip
    started = loop.cli("rollout", "start", "--version", "2", "--reason", "canary", "--json").json()
    rid = started["state"]["rollout_id"]
    assert [s["share"] for s in started["state"]["stages"]] == [0.25, 0.5, 1.0]
    probes = rows(loop.project, 40, offset=5000)
    seen: dict[str, list[str]] = {str(r[KEY]): [] for r in probes}
    offset, stages = 0, set()
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        for record, version in zip(probes, loop.traffic(probes, f"p{offset}", label=False),
                                   strict=True):  # fmt: skip
            seen[str(record[KEY])].append(version)
        loop.traffic(rows(loop.project, 60, offset), f"t{offset}")
        offset = (offset + 60) % 4800
        state = loop.rollout()
        assert state is not None
        stages.add(state["stage"])
        if state["status"] != "running":
            break
    assert state["status"] == "promoted", (state["reason"], loop.status()["decisions"])
    assert stages >= {0, 1}, stages  # it was seen stepping, not only at its end
    for key, versions in seen.items():  # a key on the challenger stays there
        first = versions.index("2") if "2" in versions else len(versions)
        assert set(versions[first:]) <= {"2"}, (key, versions)
    early = [k for k, v in seen.items() if v[0] == "2"]
    assert all(bucket(rid, k) < 0.25 for k in early), early  # the first step's share
    assert loop.models()["2"]["aliases"] == ["champion"]
    assert loop.reload()["serving"] == "2"
    loop.champion_only(probes[:10], "after", version="2")
    done = [e["event"] for e in events(loop.audit(), rid)]
    assert done == ["start", "advance", "advance", "promote"], done


# -- 3. a bad challenger ---------------------------------------------------------------


def test_a_disagreeing_challenger_is_rolled_back_and_rejected(make_loop: Any) -> None:
    """In the shadow stage both versions score the same rows; two trained models never
    label every row alike, so an agreement limit of 'all rows' breaches for a real reason."""
    loop = make_loop(**FAST, LOOPML_ROLLOUT__GUARDS__AGREEMENT__MIN="0.999999")
    rid = loop.cli("rollout", "start", "--version", "3", "--json").json()["state"]["rollout_id"]
    offset = 0
    ended = None
    deadline = time.monotonic() + 90
    while ended is None and time.monotonic() < deadline:
        loop.traffic(rows(loop.project, 60, offset), f"t{offset}", label=False)
        offset += 60
        state = loop.rollout()
        ended = state if state is not None and not state["active"] else None
    assert ended is not None and ended["status"] == "rolled_back", loop.status()
    assert "agreement" in ended["reason"], ended
    versions = loop.models()
    assert "challenger" not in versions["3"]["aliases"], versions["3"]
    assert versions["1"]["aliases"] == ["champion"]
    assert "agreement" in versions["3"]["tags"]["loopml.rejected"]
    refused = loop.cli("rollout", "start", "--version", "3", check=None)
    said = " ".join((refused.stdout + refused.stderr).split())
    assert refused.code != 0 and "rejected" in said and "train a new version" in said, said
    loop.reload()
    loop.champion_only(rows(loop.project, 10), "after")
    rolled = [e for e in events(loop.audit(), rid) if e["event"] == "rollback"]
    assert rolled and rolled[0]["actor"].startswith("loopml serve"), rolled
    reasons = {r["guard"]: r for r in rolled[0]["evidence"]["decision"]["reasons"]}
    assert reasons["agreement"]["verdict"] == "breach"


# -- 4. A/B ----------------------------------------------------------------------------


def test_ab_decides_on_labels_with_an_always_valid_interval(make_loop: Any) -> None:
    loop = make_loop(**(FAST | MANUAL | NO_DIVERGENCE), LOOPML_ROLLOUT__SHADOW_FIRST="false")
    started = loop.cli("rollout", "start", "--version", "2", "--strategy", "ab", "--json").json()
    assert [(s["kind"], s["share"]) for s in started["state"]["stages"]] == [("traffic", 0.5)]
    loop.reload()
    answered = loop.traffic(rows(loop.project, 300), "ab")
    assert {"1", "2"} == set(answered)
    time.sleep(1.1)  # the bake
    stepped = loop.cli("rollout", "step", "--json").json()
    decision = stepped["decision"]
    summary = decision["summary"]
    breached = [r for r in decision["reasons"] if r["verdict"] == "breach"]
    if decision["kind"] == "rollback" and breached:
        # A guard rolled it back before the test on labels could: its reason says why,
        # with its value against its limit (e.g. the label-free estimate beyond chance).
        assert all(r["message"] in summary for r in breached), (summary, breached)
        assert all(r["value"] is not None and r["limit"] is not None for r in breached)
        assert stepped["state"]["status"] == "rolled_back"
        return
    assert decision["kind"] in ("hold", "promote", "rollback"), decision
    if decision["kind"] == "hold":
        assert summary.startswith("hold: the A/B test needs "), summary
        assert stepped["state"]["status"] == "running"
    assert "labelled rows per arm" in summary and " to " in summary, summary
    assert re.search(r"roc|log|brier|loss", summary), summary
    assert re.search(r"[+-]\d+\.\d% \([+-]\d+\.\d% to [+-]\d+\.\d%\)", summary), summary


# -- 5. blue-green ---------------------------------------------------------------------


def test_blue_green_switches_at_once_and_the_way_back_loads_nothing(make_loop: Any) -> None:
    # No poll in the way: each change reaches this replica by the reload the test asks for.
    loop = make_loop(
        **MANUAL, LOOPML_ROLLOUT__SHADOW_FIRST="false", LOOPML_SERVE__POLL_SECONDS="600"
    )
    loop.cli("rollout", "start", "--version", "2", "--strategy", "blue_green")
    switched = loop.reload()
    assert switched["plan"]["share"] == 1.0 and switched["challenger"] == "2", switched
    assert (switched["outcome"], switched["loaded"]) == ("swapped", ["2"]), switched
    records = rows(loop.project, 20)
    assert {loop.predict(r, f"bg-{i}") for i, r in enumerate(records)} == {("challenger", "2")}
    loop.cli("rollout", "abort", "--reason", "support tickets")
    back = loop.reload()
    assert (back["serving"], back["challenger"]) == ("1", None), back
    assert (back["outcome"], back["loaded"]) == ("swapped", []), back  # 1 stood by
    loop.champion_only(records, "back")


# -- 6. kill -9 mid-rollout ------------------------------------------------------------


def test_a_killed_server_resumes_the_same_stage_and_the_same_arms(make_loop: Any) -> None:
    loop = make_loop(**FAST, LOOPML_ROLLOUT__SHADOW_FIRST="false",
                     LOOPML_ROLLOUT__STEPS="[0.25,1.0]")  # fmt: skip
    rid = loop.cli("rollout", "start", "--version", "2", "--json").json()["state"]["rollout_id"]
    assert loop.reload()["plan"]["share"] == 0.25
    probes = rows(loop.project, 60)  # fewer than the step needs: it stays at 25 %
    arms = [loop.predict(r, f"before-{i}") for i, r in enumerate(probes)]
    assert {a for a, _ in arms} == {"champion", "challenger"}, arms
    assert all((a == "challenger") == (bucket(rid, str(r[KEY])) < 0.25)
               for (a, _), r in zip(arms, probes, strict=True))  # fmt: skip
    kept = ("rollout_id", "stage", "stage_label", "status", "share", "stage_started_at")
    shown = loop.status()["state"]
    before = {k: shown[k] for k in kept}
    assert before["stage_label"] == "25%" and before["status"] == "running", before
    assert loop.server.proc is not None
    loop.server.proc.kill()  # SIGKILL: no shutdown, no flush
    loop.server.proc.wait(10)
    loop.server.start()  # the same port, project, ledger and state
    shown = loop.status()["state"]
    assert {k: shown[k] for k in kept} == before
    assert [loop.predict(r, f"after-{i}") for i, r in enumerate(probes)] == arms
