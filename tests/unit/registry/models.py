"""Small fitted model packages for the serving-artifact and runtime tests: one numeric
column ``num`` (with nulls), one categorical column ``cat`` (with nulls) and a target
``y`` of the requested type, fitted with loopml's own candidates on tiny budgets
(``nulls=False``: features that never held a null, as their contract says)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopml.config import Task
from loopml.data.contract import ColumnSpec, Contract
from loopml.registry.package import ModelMeta, ModelPackage
from loopml.train.candidates import BuildContext, fit_candidate, get_candidate
from loopml.train.split import encode_target

FAST: dict[str, dict[str, Any]] = {
    "lightgbm": {"n_estimators": 20},
    "xgboost": {"n_estimators": 20},
    "hist_gradient_boosting": {"max_iter": 20},
}
CATEGORIES = ("red", "green", "blue")


def table(
    task: Task, *, n: int = 400, seed: int = 0, target_type: str = "integer", nulls: bool = True
) -> tuple[Contract, pd.DataFrame]:
    """A seeded table and its contract; classification targets in ``target_type``."""
    rng = np.random.default_rng(seed)
    rate = 0.05 if nulls else 0.0
    num = rng.normal(size=n)
    num[rng.random(n) < rate] = np.nan
    cat = rng.choice(list(CATEGORIES), n).astype(object)
    cat[rng.random(n) < rate] = None
    signal = np.nan_to_num(num) + 1.5 * (cat == "red")
    if task == "regression":
        y: Any = signal + rng.normal(scale=0.1, size=n)
        target = ColumnSpec(
            name="y", type="float", role="target", nullable=False, null_rate=0.0, n_unique=n
        )
    else:
        codes = np.digitize(signal, [0.6] if task == "binary" else [-0.3, 0.9])
        y = _labels(codes, target_type)
        shares = {str(v): float(np.mean(y == v)) for v in pd.unique(y)}
        target = ColumnSpec(
            name="y", type=target_type, role="target", nullable=False,  # type: ignore[arg-type]
            null_rate=0.0, n_unique=len(shares), categories=shares,
        )  # fmt: skip
    contract = Contract(
        rows=n,
        target="y",
        task=task,
        columns=(
            ColumnSpec(name="num", type="float", nullable=nulls, null_rate=rate, n_unique=n),
            ColumnSpec(
                name="cat",
                type="string",
                nullable=nulls,
                null_rate=rate,
                n_unique=3,
                categories=dict.fromkeys(CATEGORIES, 0.33),
            ),
            target,
        ),
    )
    return contract, pd.DataFrame({"num": num, "cat": cat, "y": y})


def _labels(codes: np.ndarray, target_type: str) -> np.ndarray:
    if target_type == "boolean":
        return codes.astype(bool)
    if target_type == "string":
        return np.array(["low", "mid", "high"], dtype=object)[codes]
    return codes.astype(np.int64)


def package(
    name: str,
    task: Task,
    *,
    seed: int = 0,
    target_type: str = "integer",
    n: int = 400,
    nulls: bool = True,
) -> tuple[ModelPackage, pd.DataFrame]:
    """A fitted package trained on the first 3/4 of a table, and the last 1/4 (holdout)."""
    contract, frame = table(task, n=n, seed=seed, target_type=target_type, nulls=nulls)
    cut = n * 3 // 4
    train, holdout = frame.iloc[:cut], frame.iloc[cut:]
    y = encode_target(train["y"], contract)
    ctx = BuildContext.for_contract(contract, seed=seed, class_weight=None)
    pipeline = fit_candidate(get_candidate(name), FAST.get(name, {}), ctx, contract, train, y)
    meta = ModelMeta(
        name="toy",
        task=task,
        target="y",
        target_type=contract.target_spec.type,
        classes=tuple(contract.classes),
        candidate=name,
    )
    return ModelPackage(pipeline=pipeline, contract=contract, meta=meta), holdout.reset_index(
        drop=True
    )


def native_scores(pkg: ModelPackage, frame: pd.DataFrame) -> np.ndarray:
    """The native pipeline's probabilities (classification) or values (regression)."""
    from loopml.features.pipeline import feature_frame

    features = feature_frame(frame, pkg.contract)
    if pkg.meta.task == "regression":
        return np.asarray(pkg.pipeline.predict(features), dtype=np.float64)
    return np.asarray(pkg.pipeline.predict_proba(features), dtype=np.float64)
