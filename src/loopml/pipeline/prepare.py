"""The steps every training-shaped job shares: split and encode a checked table, and
profile a fitted model's reference for monitoring.

``loopml train`` runs them before fitting and after choosing; ``loopml monitor profile``
runs the same steps for a version trained before profiles existed, so both store the same
profile for the same table and settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from loopml.config import ProjectConfig
from loopml.data.contract import Contract
from loopml.features.pipeline import feature_frame
from loopml.monitor.profile import ReferenceProfile
from loopml.monitor.reference import build_profile
from loopml.train.split import encode_target, split_holdout

__all__ = ["TrainingData", "prepare", "reference_profile"]


@dataclass(frozen=True)
class TrainingData:
    """A checked table split into training rows and the evaluation holdout, as features
    and encoded targets."""

    frame: pd.DataFrame
    train: pd.DataFrame
    holdout: pd.DataFrame
    x_train: pd.DataFrame
    y_train: np.ndarray
    x_holdout: pd.DataFrame
    y_holdout: np.ndarray


def prepare(frame: pd.DataFrame, contract: Contract, project: ProjectConfig) -> TrainingData:
    """Split ``frame`` as the project's ``split`` settings say (seeded: always the same
    holdout for the same table) and encode both sides."""
    train, holdout = split_holdout(frame, contract, project.split)
    return TrainingData(
        frame=frame,
        train=train,
        holdout=holdout,
        x_train=feature_frame(train, contract),
        y_train=encode_target(train[contract.target], contract),
        x_holdout=feature_frame(holdout, contract),
        y_holdout=encode_target(holdout[contract.target], contract),
    )


def reference_profile(
    contract: Contract,
    data: TrainingData,
    holdout_scores: np.ndarray,
    metrics: dict[str, float],
    *,
    model: str,
    threshold: float | None = None,
) -> ReferenceProfile:
    """What monitoring compares live traffic with (DESIGN.md decision 7): the training
    features, and the model's scores of the holdout (``holdout_scores``: probabilities
    (n, k), or values for regression) with their labels and metrics."""
    return build_profile(
        contract,
        data.x_train,
        holdout_scores,
        data.y_holdout,
        metrics,
        model=model,
        times=data.train[contract.time_column] if contract.time_column else None,
        holdout_features=data.x_holdout,
        threshold=threshold,
    )
