"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from tests.pg import postgres_schema_url, postgres_url

__all__ = ["forget_mlflow_stores", "postgres_schema_url", "postgres_url"]
MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def forget_mlflow_stores() -> Iterator[None]:
    """Each test starts with no MLflow store chosen.

    ``loopml.train.tracking.connect`` (called in-process by some tests) sets MLflow's
    tracking *and* registry URIs, and MLflow keeps the registry URI in the environment; a
    later test that only calls ``mlflow.set_tracking_uri`` would read another project's
    registry.
    """
    saved = {name: os.environ.get(name) for name in MLFLOW_ENV}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])  # type: ignore[arg-type]
        mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])  # type: ignore[arg-type]
