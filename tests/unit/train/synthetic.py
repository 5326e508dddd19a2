"""The contract of the small synthetic tables the train tests fit on: one numeric column
``num``, one categorical column ``cat`` and an integer (classes) or float target ``y``."""

from __future__ import annotations

import numpy as np

from loopml.config import Task
from loopml.data.contract import ColumnSpec, Contract


def num_cat_contract(
    task: Task, y: np.ndarray, categories: tuple[str, ...], *, null_rate: float = 0.0
) -> Contract:
    n = len(y)
    if task == "regression":
        target = ColumnSpec(
            name="y", type="float", role="target", nullable=False, null_rate=0.0, n_unique=n
        )
    else:
        classes = {str(c): float(np.mean(y == c)) for c in np.unique(y)}
        target = ColumnSpec(
            name="y", type="integer", role="target", nullable=False, null_rate=0.0,
            n_unique=len(classes), categories=classes,
        )  # fmt: skip
    nullable = null_rate > 0
    share = round(1 / len(categories), 3)
    return Contract(
        rows=n,
        target="y",
        task=task,
        columns=(
            ColumnSpec(
                name="num", type="float", nullable=nullable, null_rate=null_rate, n_unique=n
            ),
            ColumnSpec(
                name="cat",
                type="string",
                nullable=nullable,
                null_rate=null_rate,
                n_unique=len(categories),
                categories=dict.fromkeys(categories, share),
            ),
            target,
        ),
    )
