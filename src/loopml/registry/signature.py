"""The MLflow model signature of a loopml version, derived from its data contract.

Every feature is declared optional (``required=False``) and numerics as doubles, so
tables with missing values and integer columns pass MLflow's schema enforcement the way
they pass loopml's own validation.
"""

from __future__ import annotations

from typing import Any

from loopml.data.contract import Contract


def signature_for(contract: Contract) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs: list[ColSpec | TensorSpec] = [
        ColSpec("double" if spec.is_numeric else "string", spec.name, required=False)
        for spec in contract.features
    ]
    outputs: list[ColSpec | TensorSpec] = [ColSpec(_prediction_type(contract), "prediction")]
    if contract.task != "regression":
        outputs += [ColSpec("double", f"proba_{c}") for c in contract.classes]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def _prediction_type(contract: Contract) -> str:
    if contract.task == "regression":
        return "double"
    return {"integer": "long", "float": "double", "boolean": "boolean"}.get(
        contract.target_spec.type, "string"
    )
