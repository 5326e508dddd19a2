"""MLflow's process-wide store choice, put back as it was found."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def mlflow_uris_restored() -> Iterator[None]:
    """Undo every ``mlflow.set_tracking_uri`` / ``set_registry_uri`` made inside.

    ``loopml.train.tracking.connect`` sets MLflow's tracking *and* registry URIs, and
    MLflow keeps the registry URI in the environment; a later test that only calls
    ``mlflow.set_tracking_uri`` would read another project's registry.
    """
    saved = {name: os.environ.get(name) for name in MLFLOW_ENV}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if "mlflow" in sys.modules:
            import mlflow

            mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])  # type: ignore[arg-type]
            mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])  # type: ignore[arg-type]
