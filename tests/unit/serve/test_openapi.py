"""The served OpenAPI document, over a real ONNX runtime of a small fitted pipeline: its
bodies name the model's features (checked with a JSON Schema validator against real
payloads the codecs accept or refuse), and it follows the served version."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pandas as pd
import pytest
from fastapi import FastAPI

from loopml.data.contract import ColumnSpec, Contract
from loopml.errors import InputError
from loopml.registry.artifact import build_serving_artifact
from loopml.registry.runtime import load_runtime
from loopml.serve import bodies, codecs
from loopml.serve.openapi import ServedDocument
from loopml.serve.schema import InputSchema
from loopml.serve.service import Deployment, PredictionService, parse_feedback
from tests.unit.registry.models import package

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Deployment, pd.DataFrame]:
    folder: Path = tmp_path_factory.mktemp("openapi")
    pkg, holdout = package("linear", "binary", seed=0)
    build_serving_artifact(pkg, holdout, folder / "1")
    return Deployment.of("toy", "1", load_runtime(folder / "1")), holdout.drop(columns="y")


def validator(document: dict[str, Any], name: str) -> Any:
    """A validator of one component, its references resolved inside the document."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema_rs.validator_for(schema)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return list(json.loads(frame.to_json(orient="records")))


def test_the_bodies_name_every_feature_with_its_type(served: tuple[Deployment, Any]) -> None:
    deployment, holdout = served
    document = ServedDocument(FastAPI(), PredictionService(deployment, None), 100)()
    record = document["components"]["schemas"]["Record"]
    names = [rule.name for rule in deployment.schema.features]
    assert record["required"] == names and set(names) <= set(record["properties"])
    rows = records(holdout.head(3))
    predict = validator(document, "PredictBody")
    assert predict.is_valid({"records": rows, "request_id": "r-1"}) and predict.is_valid(rows)
    codecs.decode_predict(json.dumps({"records": rows}).encode(), "application/json")
    for bad in ({"records": []}, {"records": rows, "extra": 1}, {"records": [{}]}):
        assert not predict.is_valid(bad), bad
    wrong = dict(rows[0], **{names[0]: "text" if deployment.schema.features[0].numeric else 1})
    assert not predict.is_valid({"records": [wrong]})
    invocations = validator(document, "InvocationsBody")
    split = json.loads(holdout.head(2)[names].to_json(orient="split", index=False))
    assert invocations.is_valid({"dataframe_split": split})
    assert invocations.is_valid({"instances": rows[0], "params": {"x": 1}})
    assert not invocations.is_valid({"dataframe_records": rows, "inputs": rows})


def test_the_csv_pattern_matches_what_pandas_reads(served: tuple[Deployment, Any]) -> None:
    deployment, _ = served
    pattern = bodies.csv_body(deployment.schema)["pattern"]
    rules = deployment.schema.features
    sample = {"float": "1.5", "integer": "-3", "string": "abc", "boolean": "true"}
    header = ",".join(rule.name for rule in rules)
    line = ",".join(sample[rule.type if rule.numeric else rule.kind] for rule in rules)
    text = f"{header}\n{line}\n{line}\n"
    assert re.search(pattern, text)
    assert len(pd.read_csv(io.StringIO(text))) == 2
    assert not re.search(pattern, f"{header}\n")  # no rows: refused as empty


def test_labels_take_every_spelling_of_a_class() -> None:
    assert bodies.target_schema("binary", ["0", "1"])["enum"] == ["0", "1", 0, 1, True, False]
    assert bodies.target_schema("multiclass", ["a", "b"])["enum"] == ["a", "b"]
    assert bodies.target_schema("regression", [])["type"] == "number"


def test_the_document_follows_the_served_version_and_its_features(
    served: tuple[Deployment, Any],
) -> None:
    v1, _ = served
    service = PredictionService(v1, None)
    document = ServedDocument(FastAPI(), service, 100)
    first = document()
    assert document() is first  # built once per version
    other = Contract(rows=2, target="y", task="binary", columns=(
        ColumnSpec(name="only", type="float", nullable=False, null_rate=0.0, n_unique=2),
        ColumnSpec(name="y", type="integer", role="target", nullable=False, null_rate=0.0,
                   n_unique=2),
    ))  # fmt: skip
    service.swap(dataclasses.replace(v1, version="2", schema=InputSchema.from_contract(other)))
    second = document()
    assert second["components"]["schemas"]["Record"]["required"] == ["only"]
    assert "version 2" in second["info"]["description"]
    assert first["components"]["schemas"]["Record"]["required"] != ["only"]


def test_a_whole_float_row_is_the_row_the_schema_says_it_is(
    served: tuple[Deployment, Any],
) -> None:
    """JSON Schema's ``integer`` holds 3.0, so /feedback takes it (schemathesis sent it)."""
    deployment, _ = served
    label = parse_feedback({"request_id": "r-1", "row": 3.0, "label": 1}, 0, deployment)
    assert label.row == 3 and isinstance(label.row, int)
    with pytest.raises(InputError, match="'row' must be an integer"):
        parse_feedback({"request_id": "r-1", "row": 3.5, "label": 1}, 0, deployment)
