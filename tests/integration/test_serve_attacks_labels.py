"""Issue 12, problem 2, against a real server: labels are trusted input.

An anonymous client that reaches the port tried to rewrite a label (``order-1001``: 1
-> 0) with one ``POST /feedback``; it now gets 401 and the label stays. A client with the
feedback token corrects it, and the correction is a new version beside the old one:
``loopml ledger export`` shows the latest, ``--label-history`` both. ``feedback_auth:
none`` (a closed network) takes anonymous labels, says so at start, and records them as
anonymous. ``predict_auth: token`` refuses anonymous predictions, so no client can take
another's request id first.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.integration.serving import MODEL, Project, loopml, running

pytestmark = pytest.mark.integration

ATTACKS = 20


def labels_of(ledger: Path, request_id: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(current labels, history as (label, scope) in order) of one request's row 0."""
    with sqlite3.connect(ledger) as conn:
        current = [
            r[0]
            for r in conn.execute("SELECT label FROM labels WHERE request_id = ?", (request_id,))
        ]
        history = list(
            conn.execute(
                "SELECT label, scope FROM label_history WHERE request_id = ? ORDER BY id",
                (request_id,),
            )
        )
    return [json.loads(v) for v in current], [(json.loads(v), s) for v, s in history]  # fmt: skip


def test_anonymous_labels_are_refused_and_corrections_are_kept(
    served_project: Project, tmp_path: Path
) -> None:
    record = served_project.records(1)[0]
    feedback_token = served_project.folder / ".loopml" / "feedback.token"  # by 'loopml init'
    assert feedback_token.stat().st_mode & 0o777 == 0o600
    with running(served_project, "labels-token") as server:
        assert server.post_json("/predict", {"records": [record], "request_id": "order-1001"})[0]
        assert server.post_feedback({"request_id": "order-1001", "label": 1})[0] == 200

        answers = []
        for i in range(ATTACKS):  # the attack of the issue, anonymous and with a wrong token
            headers = {} if i % 2 == 0 else {"authorization": "Bearer guessed-token-value"}
            answers.append(server.post_json(
                "/feedback", {"request_id": "order-1001", "label": 0}, headers))  # fmt: skip
        statuses = [status for status, _ in answers]
        assert statuses == [401, 403] * (ATTACKS // 2)
        refusal = answers[0][1]
        assert refusal["error"] == "unauthorized" and set(refusal) == {
            "error", "field", "row", "reason"}  # fmt: skip
        assert ".loopml/feedback.token" in refusal["reason"]
        assert labels_of(server.ledger_path, "order-1001") == (["1"], [("1", "feedback")])
        counted = server.get("/metrics")[1].decode()  # an attack shows up on the dashboards
        for error in ("unauthorized", "forbidden"):
            line = f'loopml_request_errors_total{{error="{error}",route="/feedback"}} '
            assert f"{line}{float(ATTACKS // 2)}" in counted, (error, counted[-2000:])

        # A correction by the labelling team (feedback token), then one by an admin.
        correction = {"request_id": "order-1001", "label": 0, "source": "review-42"}
        assert server.post_feedback(correction)[0] == 200
        admin = server.post_json("/feedback", {"request_id": "order-1001", "label": 1},
                                 server.bearer("admin"))  # fmt: skip
        assert admin[0] == 200 and admin[1]["recorded"] == 1
        assert server.stop() == 0

    assert labels_of(server.ledger_path, "order-1001") == (
        ["1"], [("1", "feedback"), ("0", "feedback"), ("1", "admin")])  # fmt: skip
    env = {"LOOPML_SERVE__LEDGER__URL": f"sqlite:///{server.ledger_path}"}
    out = tmp_path / "current.parquet"
    loopml(served_project.folder, "ledger", "export", "--out", str(out), env=env)
    current = pq.read_table(out).to_pydict()
    assert current["request_id"] == ["order-1001"] and current["label"] == ["1"]
    history_file = tmp_path / "history.parquet"
    printed = loopml(served_project.folder, "ledger", "export", "--label-history", "--json",
                     "--out", str(history_file), env=env)  # fmt: skip
    assert json.loads(printed)["rows"] == 3
    history = pq.read_table(history_file).to_pydict()
    assert history["label"] == ["1", "0", "1"]
    assert history["current"] == [False, False, True]
    assert history["scope"] == ["feedback", "feedback", "admin"]
    assert history["source"] == [None, "review-42", None]
    assert history["client"] == ["127.0.0.1"] * 3
    print(f"\nproblem 2: {ATTACKS} hostile label requests, {ATTACKS} refused "
          f"({statuses.count(401)} x 401, {statuses.count(403)} x 403), 0 labels changed; "
          "3 label versions kept, export shows the latest")  # fmt: skip


def test_feedback_auth_none_takes_anonymous_labels_and_warns(served_project: Project) -> None:
    record = served_project.records(1)[0]
    with running(served_project, "labels-open", LOOPML_SERVE__FEEDBACK_AUTH="none") as server:
        server.post_json("/predict", {"records": [record], "request_id": "open-1"})
        status, body = server.post_json("/feedback", {"request_id": "open-1", "label": 1})
        assert (status, body["recorded"]) == (200, 1)
        assert server.stop() == 0
        output = server.output()
    assert "serve.feedback_auth is 'none'" in output
    assert labels_of(server.ledger_path, "open-1") == (["1"], [("1", "anonymous")])


def test_predict_auth_token_refuses_anonymous_predictions(served_project: Project) -> None:
    record = served_project.records(1)[0]
    payload = {"records": [record], "request_id": "squat-1"}
    with running(served_project, "predict-token", LOOPML_SERVE__PREDICT_AUTH="token") as server:
        status, body = server.post_json("/predict", payload)
        assert status == 401 and ".loopml/predict.token" in body["reason"]
        invocations = server.post_json("/invocations", {"dataframe_records": [record]})
        assert invocations[0] == 401
        infer = server.post_json(f"/v2/models/{MODEL}/infer", {"inputs": []})
        assert infer[0] == 401
        assert server.ledger_ids() == []  # the squatter took no id
        token_file = served_project.folder / ".loopml" / "predict.token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert server.post_json("/predict", payload, server.bearer("predict"))[0] == 200
        other = {**payload, "request_id": "squat-2"}
        assert server.post_json("/predict", other, server.bearer("admin"))[0] == 200
        assert server.get("/health/ready")[0] == 200  # probes stay open
        assert sorted(r for r, _ in server.ledger_ids()) == ["squat-1", "squat-2"]
