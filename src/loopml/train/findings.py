"""What a careful person would want pointed out about a training table.

- **Copies**: rows with the same features and target. A random split keeps copies on one
  side (:mod:`loopml.train.split`); a time split cannot, so the copies that cross it are
  counted — the holdout then scores rows a model trained on.
- **Possible leakage**: a feature that alone predicts the target almost perfectly on the
  holdout (a shallow tree on that one feature, fitted on training rows), which usually
  means it is known only after the target is.

>>> copies_finding(10, 4, crossing=None).split(";")[0]
'4 of 10 rows (40.0 %) are exact copies of other rows (same features and target)'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from loopml.data.contract import Contract

__all__ = ["LEAK_SCORE", "Leak", "copies_finding", "find_leaks", "leak_findings"]

LEAK_SCORE = 0.99
"""A feature whose one-feature score (ROC AUC, accuracy or R²) reaches this is flagged."""
MAX_ROWS = 20_000
MAX_FEATURES = 100


@dataclass(frozen=True)
class Leak:
    feature: str
    metric: str
    score: float

    def describe(self, importance: float | None = None) -> str:
        share = "" if importance is None else f"; importance {importance:.2f} in the chosen model"
        return (
            f"possible target leakage: {self.feature!r} alone predicts the target almost "
            f"perfectly ({self.metric} {self.score:.4f} on the holdout{share}); check that it "
            "is known before the target is, or drop it (data.drop, then 'loopml contract "
            "update')"
        )


def copies_finding(rows: int, copies: int, *, crossing: int | None) -> str | None:
    """One sentence about the table's exact copies (None when there are none)."""
    if copies == 0:
        return None
    head = (
        f"{copies:,} of {rows:,} rows ({copies / rows:.1%}) are exact copies of other rows "
        "(same features and target)"
    ).replace("%)", " %)")
    if crossing is None:
        return (
            f"{head}; the split kept each set of copies on one side, so the holdout scores "
            "no row a model trained on"
        )
    if crossing == 0:
        return f"{head}; none of them crosses the time split"
    return (
        f"{head}; {crossing:,} holdout rows copy a training row across the time split, so the "
        "holdout flatters the models: deduplicate the table, or use split.strategy: random"
    )


def find_leaks(
    contract: Contract,
    x_train: pd.DataFrame,
    y_train: np.ndarray[Any, Any],
    x_holdout: pd.DataFrame,
    y_holdout: np.ndarray[Any, Any],
    *,
    seed: int = 0,
) -> list[Leak]:
    """The features that alone reach :data:`LEAK_SCORE` on the holdout, best first."""
    rng = np.random.default_rng(seed)
    rows = np.arange(len(x_train))
    if len(rows) > MAX_ROWS:
        rows = np.sort(rng.choice(len(rows), MAX_ROWS, replace=False))
    leaks = []
    for spec in contract.features[:MAX_FEATURES]:
        column = x_train[spec.name]
        codes = None if spec.is_numeric else _categories(column)
        fit = _encode(column.iloc[rows], codes)
        test = _encode(x_holdout[spec.name], codes)
        metric, score = _score(contract.task, fit, y_train[rows], test, y_holdout, seed)
        if math.isfinite(score) and score >= LEAK_SCORE:
            leaks.append(Leak(spec.name, metric, score))
    return sorted(leaks, key=lambda leak: -leak.score)


def _categories(values: pd.Series[Any]) -> dict[str, int]:
    return {str(v): i for i, v in enumerate(pd.unique(values.astype(str)))}


def _encode(values: pd.Series[Any], codes: dict[str, int] | None) -> Any:
    """One feature as a tree's input: numbers (nulls lowest), or category codes (unseen -1;
    the null marker is a category of its own)."""
    if codes is None:  # trees read float32: keep values in its range, nulls below them all
        numbers = np.clip(values.to_numpy(dtype=np.float64), -1e37, 1e37)
        return np.nan_to_num(numbers, nan=-1e38).reshape(-1, 1)
    return values.astype(str).map(codes).fillna(-1).to_numpy(dtype=np.float64).reshape(-1, 1)


def _score(
    task: str, x: Any, y: np.ndarray[Any, Any], x_test: Any, y_test: np.ndarray[Any, Any], seed: int
) -> tuple[str, float]:
    if task == "regression":
        model = DecisionTreeRegressor(max_leaf_nodes=32, random_state=seed).fit(x, y)
        return "r2", float(r2_score(y_test, model.predict(x_test))) if len(y_test) > 1 else math.nan
    tree = DecisionTreeClassifier(max_leaf_nodes=32, random_state=seed).fit(x, y)
    if task == "binary":
        if len(np.unique(y_test)) < 2:
            return "roc_auc", math.nan
        proba = tree.predict_proba(x_test)
        positive = proba[:, list(tree.classes_).index(1)] if 1 in tree.classes_ else 0 * proba[:, 0]
        return "roc_auc", float(roc_auc_score(y_test, positive))
    return "accuracy", float(np.mean(tree.predict(x_test) == y_test))


def importance_of(importance: pd.Series[Any] | None, feature: str) -> float | None:
    if importance is None or feature not in importance.index:
        return None
    return float(importance[feature])


def leak_findings(leaks: Sequence[Leak], importance: pd.Series[Any] | None) -> list[str]:
    return [leak.describe(importance_of(importance, leak.feature)) for leak in leaks]
