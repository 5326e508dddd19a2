"""A real ``loopml serve`` on a free port, spoken to in all three dialects and by the
clients users already have: ``tritonclient.http`` (binary tensors) and MLflow payloads."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import numpy as np
import pytest

from tests.integration.serving import MODEL, Project, Server, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(served_project: Project) -> Iterator[Server]:
    with running(served_project, "dialects") as srv:
        yield srv


def test_predict_records_with_client_request_id(server: Server, served_project: Project) -> None:
    records = served_project.records(3)
    status, body = server.post_json("/predict", {"records": records, "request_id": "req-1"})
    assert status == 200, body
    assert body["request_id"] == "req-1"
    assert body["model"] == MODEL
    assert body["version"] == "1"
    assert len(body["predictions"]) == 3
    for row in body["predictions"]:
        assert row["label"] in (0, 1)
        probs = row["probabilities"]
        assert set(probs) == {"0", "1"}
        assert abs(probs["0"] + probs["1"] - 1.0) < 1e-6
    generated = server.post_json("/predict", {"records": records[:1]})[1]
    assert len(generated["request_id"]) >= 16


def test_predictions_match_the_mlflow_pyfunc(server: Server, served_project: Project) -> None:
    """The ONNX graph the server runs and the registered MLflow model agree."""
    import mlflow
    import pandas as pd

    records = served_project.records(50, offset=100)
    served = server.post_json("/invocations", {"dataframe_records": records})[1]["predictions"]
    mlflow.set_tracking_uri(f"sqlite:///{served_project.folder / '.loopml' / 'mlflow.db'}")
    native = mlflow.pyfunc.load_model(f"models:/{MODEL}/1").predict(pd.DataFrame(records))
    assert [row["prediction"] for row in served] == native["prediction"].tolist()
    np.testing.assert_allclose([row["proba_1"] for row in served], native["proba_1"], atol=1e-5)


@pytest.mark.parametrize("payload_kind", ["dataframe_split", "dataframe_records", "inputs"])
def test_invocations_accepts_mlflow_payloads(
    server: Server, served_project: Project, payload_kind: str
) -> None:
    records = served_project.records(4, offset=10)
    columns = list(records[0])
    payload = {
        "dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in records]},
        "dataframe_records": records,
        "inputs": {c: [r[c] for r in records] for c in columns},
    }[payload_kind]
    status, body = server.post_json("/invocations", {payload_kind: payload})
    assert status == 200, body
    assert [set(row) for row in body["predictions"]] == [{"prediction", "proba_0", "proba_1"}] * 4
    reference = server.post_json("/invocations", {"dataframe_records": records})[1]
    assert body == reference


def test_invocations_accepts_csv(server: Server, served_project: Project) -> None:
    import pandas as pd

    frame = pd.DataFrame(served_project.records(5, offset=20))
    status, _, raw = server.request(
        "POST", "/invocations", frame.to_csv(index=False).encode(), {"content-type": "text/csv"}
    )
    assert status == 200, raw
    assert len(json.loads(raw)["predictions"]) == 5


def test_tritonclient_round_trip_with_binary_tensors(
    server: Server, served_project: Project
) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(MODEL)
    meta = client.get_model_metadata(MODEL)
    inputs_meta = {i["name"]: i["datatype"] for i in meta["inputs"]}
    records = served_project.records(6, offset=30)
    inputs = []
    for name, datatype in inputs_meta.items():
        values = [r[name] for r in records]
        dtype = {"BYTES": object, "FP64": np.float64, "FP32": np.float32, "INT64": np.int64,
                 "BOOL": np.bool_}[datatype]  # fmt: skip
        array = np.array(
            [v.encode() if datatype == "BYTES" else v for v in values], dtype=dtype
        ).reshape(-1, 1)
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=True)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(n, binary_data=True) for n in ("label", "probabilities")]
    result = client.infer(MODEL, inputs, outputs=outputs, request_id="triton-1")
    labels = result.as_numpy("label").reshape(-1)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (6, 2)
    expected = server.post_json("/predict", {"records": records})[1]["predictions"]
    assert labels.tolist() == [row["label"] for row in expected]
    np.testing.assert_allclose(probabilities[:, 1], [r["probabilities"]["1"] for r in expected])


def test_oip_json_tensors_and_metadata(server: Server, served_project: Project) -> None:
    records = served_project.records(2, offset=40)
    status, _ = server.post_json("/v2/models/feed/infer", {"inputs": []})
    assert status == 422
    _, raw = server.get(f"/v2/models/{MODEL}")
    metadata = json.loads(raw)
    inputs = []
    for spec in metadata["inputs"]:
        inputs.append(
            {
                "name": spec["name"],
                "shape": [2, 1],
                "datatype": spec["datatype"],
                "data": [r[spec["name"]] for r in records],
            }
        )
    status, body = server.post_json(
        f"/v2/models/{MODEL}/versions/1/infer", {"id": "x", "inputs": inputs}
    )
    assert status == 200, body
    assert body["model_name"] == MODEL
    assert body["id"] == "x"
    names = {o["name"] for o in body["outputs"]}
    assert {"label", "probabilities"} <= names
    assert server.get(f"/v2/models/{MODEL}/versions/99")[0] == 404
    assert server.get("/v2/models/other")[0] == 404
    assert json.loads(server.get("/v2")[1])["extensions"] is not None


def test_feedback_joins_labels_by_request_id(server: Server, served_project: Project) -> None:
    records = served_project.records(2, offset=50)
    server.post_json("/predict", {"records": records, "request_id": "fb-1"})
    status, body = server.post_feedback(
        {"labels": [{"request_id": "fb-1", "row": 0, "label": 1},
                    {"request_id": "fb-1", "row": 1, "label": 0},
                    {"request_id": "nope", "label": 1}]},
    )  # fmt: skip
    assert status == 200, body
    assert body["recorded"] == 2
    assert body["unknown"] == [{"request_id": "nope", "row": 0}]
    single = server.post_feedback({"request_id": "fb-1", "row": 0, "label": 0})[1]
    assert single["recorded"] == 1
    bad = server.post_feedback({"request_id": "fb-1", "label": "maybe"})
    assert bad[0] == 422 and bad[1]["field"] == "label"
    with sqlite3.connect(server.ledger_path) as conn:
        labels = dict(conn.execute("SELECT row, label FROM labels WHERE request_id = 'fb-1'"))
    # Stored as the class's own name, whatever JSON type the client sent.
    assert {int(k): json.loads(v) for k, v in labels.items()} == {0: "0", 1: "0"}


def test_every_prediction_is_in_the_ledger(server: Server, served_project: Project) -> None:
    records = served_project.records(3, offset=60)
    server.post_json("/predict", {"records": records, "request_id": "led-1"})
    with sqlite3.connect(server.ledger_path) as conn:
        rows = conn.execute(
            "SELECT row, version, arm, entity_key, features, outputs FROM predictions "
            "WHERE request_id = 'led-1' ORDER BY row"
        ).fetchall()
    assert [r[0] for r in rows] == [0, 1, 2]
    assert {r[1] for r in rows} == {"1"} and {r[2] for r in rows} == {"champion"}
    assert [r[3] for r in rows] == [r["impression_id"] for r in records]
    features = json.loads(rows[0][4])
    assert features["user_country"] == records[0]["user_country"]
    assert set(json.loads(rows[0][5])) == {"label", "proba_0", "proba_1"}


def test_health_metrics_and_docs(server: Server) -> None:
    assert server.get("/health/live")[0] == 200
    status, raw = server.get("/health/ready")
    assert status == 200 and json.loads(raw)["version"] == "1"
    status, raw = server.get("/metrics")
    text = raw.decode()
    assert status == 200
    for name in ("loopml_requests_total", "loopml_request_latency_seconds_bucket",
                 "loopml_ledger_queue_rows", "loopml_ledger_write_lag_seconds"):  # fmt: skip
        assert name in text, name
    assert 'version="1"' in text and 'arm="champion"' in text
    status, raw = server.get("/openapi.json")
    paths = json.loads(raw)["paths"]
    assert {"/predict", "/invocations", "/feedback", "/v2/models/{name}/infer"} <= set(paths)
    assert server.get("/docs")[0] == 200
