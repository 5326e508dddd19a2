"""The MLflow pyfunc face of a loopml version, so every MLflow tool can load what we register.

``mlflow.pyfunc.load_model("models:/NAME@champion").predict(frame)`` returns one row per
input row: ``prediction`` (the label in the target's own type, or the value for
regression) and, for classifiers, ``proba_<class>`` per class.
"""

# No ``from __future__ import annotations`` here: MLflow reads ``predict``'s type hints at
# class creation and cannot resolve them from strings.
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from loopml.features.pipeline import feature_frame
from loopml.registry.manifest import native_labels
from loopml.registry.package import ModelPackage, read_package
from loopml.train.evaluate import model_scores
from loopml.train.metrics import predicted_labels


class LoopmlPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        self.package_: ModelPackage = read_package(Path(context.artifacts["package"]))

    # No type hints here on purpose: MLflow reads them as an input schema and warns.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return predict_frame(self.package_, pd.DataFrame(model_input))


def predict_frame(package: ModelPackage, frame: pd.DataFrame) -> pd.DataFrame:
    """Score a frame with a package's pipeline, decoding labels back to the target's type."""
    features = feature_frame(frame, package.contract)
    meta = package.meta
    scores = model_scores(package.pipeline, features, meta.task)
    if meta.task == "regression":
        return pd.DataFrame({"prediction": scores}, index=frame.index)
    labels = np.asarray(native_labels(meta.classes, meta.target_type))
    decided = predicted_labels(scores, meta.threshold)
    out = pd.DataFrame({"prediction": labels[decided]}, index=frame.index)
    for i, cls in enumerate(meta.classes):
        out[f"proba_{cls}"] = scores[:, i]
    return out
