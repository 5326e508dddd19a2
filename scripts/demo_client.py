"""The demo's client: sends predictions to a running `loopml serve` in all three dialects.

    python scripts/demo_client.py --port 8080 --table fresh.parquet --requests 200

Labels go to /feedback with the feedback token (--token-file, by default the project's
.loopml/feedback.token, read from the current folder).

Uses only the standard library (plus pandas to read the table), as a team's own client would.
"""

from __future__ import annotations

import argparse
import http.client
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd


def post(
    conn: http.client.HTTPConnection, path: str, payload: Any, token: str | None = None
) -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    if token is not None:  # /feedback needs the feedback token: labels are training data
        headers["authorization"] = f"Bearer {token}"
    conn.request("POST", path, json.dumps(payload), headers)
    response = conn.getresponse()
    body = json.loads(response.read())
    if response.status != 200:
        raise SystemExit(f"{path} answered {response.status}: {body}")
    return dict(body)


def records(table: str, n: int) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows as JSON records, and their true labels (which arrive later, as feedback)."""
    frame = pd.read_parquet(table).head(n)
    labels = frame.pop("engaged").astype(int).tolist()
    frame["ts"] = frame["ts"].astype(str)
    return list(json.loads(frame.to_json(orient="records"))), labels


def oip_inputs(metadata: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": spec["name"],
            "shape": [len(rows), 1],
            "datatype": spec["datatype"],
            "data": [row[spec["name"]] for row in rows],
        }
        for spec in metadata["inputs"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--table", required=True)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--model", default="feed-engagement")
    parser.add_argument(
        "--bulk", action="store_true",
        help="send the rows as /predict requests of 500 records, then every label",
    )  # fmt: skip
    parser.add_argument("--token-file", default=".loopml/feedback.token")
    args = parser.parse_args()
    token = Path(args.token_file).read_text(encoding="utf-8").strip()
    rows, truth = records(args.table, args.requests)
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
    if args.bulk:
        send_bulk(conn, rows, truth, args.table, token)
        return

    started = time.perf_counter()
    first = {}
    for i, row in enumerate(rows):
        answer = post(conn, "/predict", {"records": [row], "request_id": f"demo-predict-{i}"})
        first = first or answer
    print(f"/predict      {len(rows)} requests; first answer: {json.dumps(first)[:160]}...")

    for i in range(0, len(rows), 10):
        answer = post(conn, "/invocations", {"dataframe_records": rows[i : i + 10]})
    print(f"/invocations  {len(rows) // 10} MLflow-format requests of 10 rows; "
          f"last: {json.dumps(answer['predictions'][0])}")  # fmt: skip

    conn.request("GET", f"/v2/models/{args.model}")
    metadata = json.loads(conn.getresponse().read())
    for i in range(0, len(rows), 10):
        payload = {"id": f"demo-v2-{i}", "inputs": oip_inputs(metadata, rows[i : i + 10])}
        answer = post(conn, f"/v2/models/{args.model}/infer", payload)
    print(f"/v2 infer     {len(rows) // 10} Open Inference Protocol requests; outputs: "
          f"{[o['name'] for o in answer['outputs']]}")  # fmt: skip

    labels = [{"request_id": f"demo-predict-{i}", "label": truth[i]} for i in range(len(rows))]
    answer = post(conn, "/feedback", {"labels": labels}, token)
    print(f"/feedback     {answer['recorded']} labels recorded")
    print(f"all in {time.perf_counter() - started:.1f} s")


def send_bulk(
    conn: http.client.HTTPConnection,
    rows: list[dict[str, Any]],
    truth: list[int],
    name: str,
    token: str,
) -> None:
    """Traffic for monitoring: many rows, and their labels once they are known."""
    started = time.perf_counter()
    tag = name.rsplit("/", 1)[-1].split(".")[0]
    for start in range(0, len(rows), 500):
        request_id = f"demo-{tag}-{start}"
        post(conn, "/predict", {"records": rows[start : start + 500], "request_id": request_id})
        labels = [
            {"request_id": request_id, "row": i, "label": truth[start + i]}
            for i in range(len(rows[start : start + 500]))
        ]
        post(conn, "/feedback", {"labels": labels}, token)
    print(f"{len(rows):,} rows of {name} predicted and labelled "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
