"""Peer c: the FastAPI endpoint a team writes by hand around the same fitted pipeline.

JSON records in (``{"records": [{...}, ...]}``), labels and probabilities out. Runs in its
own virtual environment (bench/serve/requirements-fastapi.txt):

    MODEL_PATH=.../pipeline.joblib uvicorn fastapi_app:app --app-dir bench/serve \
        --port 8000 --no-access-log
"""

from __future__ import annotations

import os

import joblib
import orjson
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import Response

pipeline = joblib.load(os.environ["MODEL_PATH"])
pipeline.set_params(model__n_jobs=1)
classes = pipeline.classes_.tolist()
app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
async def predict(request: Request) -> Response:
    records = orjson.loads(await request.body())["records"]
    frame = pd.DataFrame.from_records(records)
    proba = pipeline.predict_proba(frame)
    labels = [classes[i] for i in proba.argmax(axis=1)]
    body = {"predictions": labels, "probabilities": proba.tolist(), "classes": classes}
    return Response(orjson.dumps(body), media_type="application/json")
