"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mlflow_uris import mlflow_uris_restored
from tests.pg import postgres_schema_url, postgres_url

__all__ = ["forget_mlflow_stores", "postgres_schema_url", "postgres_url"]


@pytest.fixture(autouse=True)
def forget_mlflow_stores() -> Iterator[None]:
    """Each test starts with no MLflow store chosen (see :func:`mlflow_uris_restored`)."""
    with mlflow_uris_restored():
        yield
