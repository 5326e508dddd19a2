"""Batch peer: the scoring script a team writes by hand around the same fitted pipeline.

Reads a Parquet table, scores it with the pipeline in chunks, writes labels and
probabilities to Parquet. Runs in the FastAPI peer's environment:

    python batch_pipeline.py MODEL_PATH IN.parquet OUT.parquet
"""

from __future__ import annotations

import sys

import joblib
import numpy as np
import pandas as pd

CHUNK_ROWS = 100_000


def main() -> None:
    model_path, in_path, out_path = sys.argv[1:4]
    pipeline = joblib.load(model_path)
    pipeline.set_params(model__n_jobs=1)
    features = list(pipeline.feature_names_in_)
    frame = pd.read_parquet(in_path, columns=features)
    # Nullable integer columns (pd.NA) are what scikit-learn cannot take as they are.
    for name in frame.columns:
        if pd.api.types.is_integer_dtype(frame[name].dtype):
            frame[name] = frame[name].astype("float64")
    parts = [
        pipeline.predict_proba(frame.iloc[start : start + CHUNK_ROWS])
        for start in range(0, len(frame), CHUNK_ROWS)
    ]
    proba = np.vstack(parts)
    classes = pipeline.classes_
    out = pd.DataFrame({"prediction": classes[proba.argmax(axis=1)]})
    for i, cls in enumerate(classes):
        out[f"proba_{cls}"] = proba[:, i]
    out.to_parquet(out_path)


if __name__ == "__main__":
    main()
