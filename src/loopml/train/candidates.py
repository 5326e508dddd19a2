"""The registry of model candidates: baselines to beat and tuned candidates.

Each entry is a :class:`CandidateSpec`: a name, which tasks it supports, how to build the
estimator from parameters, its Optuna search space and its default parameters. Entries
are registered explicitly at import time; registering a name twice is an error.

Labels given to :func:`fit_candidate` are class indices ``0..n_classes-1`` into
``contract.classes`` for classification (see :func:`loopml.train.split.encode_target`)
and floats for regression.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import lightgbm
import numpy as np
import pandas as pd
import xgboost
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_sample_weight
from threadpoolctl import threadpool_limits

from loopml.data.contract import Contract
from loopml.errors import ConfigError, TrainingError
from loopml.features.pipeline import build_pipeline, category_levels, feature_frame

if TYPE_CHECKING:
    import optuna

ALL_TASKS: frozenset[str] = frozenset({"binary", "multiclass", "regression"})
# scikit-learn, LightGBM and XGBoost estimators share no typed base class.
Estimator: TypeAlias = Any
Params: TypeAlias = dict[str, Any]
Weights: TypeAlias = np.ndarray[Any, Any]


@dataclass(frozen=True)
class BuildContext:
    """What a candidate needs to know besides its parameters."""

    task: str
    n_classes: int
    seed: int
    class_weight: Literal["balanced"] | None = None
    n_jobs: int = 1

    @classmethod
    def for_contract(
        cls,
        contract: Contract,
        *,
        seed: int,
        class_weight: Literal["balanced"] | None,
        n_jobs: int = 1,
    ) -> BuildContext:
        """The context for a contract's task (``n_classes`` is 0 for regression)."""
        n_classes = 0 if contract.task == "regression" else len(contract.classes)
        return cls(contract.task, n_classes, seed, class_weight, n_jobs)


Balance: TypeAlias = Callable[[BuildContext, np.ndarray[Any, Any]], tuple[Params, Weights | None]]


@dataclass(frozen=True)
class CandidateSpec:
    """One registered model.

    ``balance`` is for estimators without a ``class_weight`` parameter: given the context
    and the labels it returns extra estimator parameters and/or sample weights that make
    ``class_weight="balanced"`` take effect.
    """

    name: str
    kind: Literal["baseline", "candidate"]
    tasks: frozenset[str]
    needs_scaling: bool
    build: Callable[[BuildContext, Params], Estimator]
    search_space: Callable[[optuna.Trial, str], Params] | None
    defaults: Callable[[str], Params]
    balance: Balance | None = None
    complexity: int = 2
    """0: the trivial baseline (the floor), 1: linear, 2: boosted trees. Model selection
    keeps a simpler model unless a more complex one beats it by the margin."""


_REGISTRY: dict[str, CandidateSpec] = {}


def register(spec: CandidateSpec) -> CandidateSpec:
    """Add a candidate to the registry; a name may be registered once."""
    if spec.name in _REGISTRY:
        raise ValueError(f"a candidate named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def available() -> tuple[str, ...]:
    """Registered candidate names, in registration order."""
    return tuple(_REGISTRY)


def get_candidate(name: str) -> CandidateSpec:
    """The registered candidate called ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"unknown model {name!r}",
            detail=f"available: {', '.join(_REGISTRY)}",
            fix=f"{hint}change train.baselines / train.candidates in loopml.yaml",
        ) from None


AUTO_BALANCE_BELOW = 0.05


def class_weight_for(
    y: np.ndarray[Any, Any], task: str, setting: str
) -> Literal["balanced"] | None:
    """``"balanced"`` or ``None`` from ``train.class_weight`` (``auto`` | ``balanced`` | ``none``).

    ``auto`` weighs classes only when the rarest holds under 5% of the rows: reweighting
    trades calibrated probabilities (log loss, Brier, and the confidence-based estimates
    monitoring relies on) for recall, which is only worth it under severe imbalance.
    Regression never weighs classes; neither do already balanced labels.
    """
    if setting not in {"auto", "balanced", "none"}:
        raise ConfigError(
            f"bad value for 'train.class_weight': {setting!r}",
            fix="use 'auto', 'balanced' or 'none'",
        )
    if task == "regression" or setting == "none":
        return None
    _, counts = np.unique(np.asarray(y), return_counts=True)
    if len(counts) == 0 or counts.min() == counts.max():
        return None
    if setting == "auto" and counts.min() / counts.sum() >= AUTO_BALANCE_BELOW:
        return None
    return "balanced"


def fit_candidate(
    spec: CandidateSpec,
    params: Params,
    ctx: BuildContext,
    contract: Contract,
    X: pd.DataFrame,
    y: np.ndarray[Any, Any],
    sample_weight: Weights | None = None,
) -> Pipeline:
    """Build the feature pipeline around ``spec``'s estimator and fit it on ``(X, y)``."""
    if ctx.task not in spec.tasks:
        raise ConfigError(
            f"model {spec.name!r} does not support the task {ctx.task!r}",
            detail=f"it supports: {', '.join(sorted(spec.tasks))}",
            fix=f"remove {spec.name!r} from train.candidates / train.baselines",
        )
    labels = np.asarray(y)
    if ctx.task != "regression":
        _check_classes(labels, ctx, contract)
    extra: Params = {}
    weights = sample_weight
    if spec.balance is not None:
        extra, balance_weights = spec.balance(ctx, labels)
        if balance_weights is not None:
            weights = balance_weights if weights is None else weights * balance_weights
    frame = feature_frame(X, contract)
    estimator = spec.build(ctx, {**spec.defaults(ctx.task), **params, **extra})
    pipeline = build_pipeline(
        contract, estimator, scale=spec.needs_scaling, levels=category_levels(frame, contract)
    )
    fit_params = {} if weights is None else {"model__sample_weight": weights}
    # OpenMP and BLAS pools (HistGradientBoosting, lbfgs) get the same thread budget as
    # LightGBM's and XGBoost's n_jobs: on a busy machine an unpinned pool is 100x slower.
    with threadpool_limits(limits=ctx.n_jobs):
        return pipeline.fit(frame, labels, **fit_params)


def _check_classes(labels: np.ndarray[Any, Any], ctx: BuildContext, contract: Contract) -> None:
    present = set(np.unique(labels).tolist())
    expected = set(range(ctx.n_classes))
    if present - expected:
        raise ValueError(f"labels must be class indices 0..{ctx.n_classes - 1}")
    missing = sorted(expected - present)
    if missing:
        names = [contract.classes[i] if i < len(contract.classes) else str(i) for i in missing]
        raise TrainingError(
            f"the training rows lack {len(missing)} of {ctx.n_classes} classes",
            detail=f"missing: {', '.join(names)}",
            fix="add labelled rows of these classes, or drop the classes from the table",
        )


def _classification(ctx: BuildContext) -> bool:
    return ctx.task != "regression"


# --- baselines -----------------------------------------------------------------------


def _build_dummy(ctx: BuildContext, params: Params) -> Estimator:
    # "prior": predicts the most frequent class, with the class priors as probabilities.
    if _classification(ctx):
        return DummyClassifier(strategy="prior", **params)
    return DummyRegressor(strategy="mean", **params)


def _build_linear(ctx: BuildContext, params: Params) -> Estimator:
    if _classification(ctx):
        return LogisticRegression(
            solver="lbfgs", class_weight=ctx.class_weight, random_state=ctx.seed, **params
        )
    return Ridge(**params)


def _linear_space(trial: optuna.Trial, task: str) -> Params:
    if task == "regression":
        return {"alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True)}
    return {"C": trial.suggest_float("C", 1e-3, 1e3, log=True), "max_iter": 1000}


def _linear_defaults(task: str) -> Params:
    return {"alpha": 1.0} if task == "regression" else {"C": 1.0, "max_iter": 1000}


# --- LightGBM ------------------------------------------------------------------------


def _build_lightgbm(ctx: BuildContext, params: Params) -> Estimator:
    common: Params = {
        "random_state": ctx.seed,
        "n_jobs": ctx.n_jobs,
        "verbose": -1,
        "importance_type": "gain",
        "subsample_freq": 1,  # LightGBM ignores `subsample` unless bagging is switched on
    }
    if _classification(ctx):
        return lightgbm.LGBMClassifier(class_weight=ctx.class_weight, **common, **params)
    return lightgbm.LGBMRegressor(**common, **params)


def _lightgbm_space(trial: optuna.Trial, task: str) -> Params:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 500),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }


def _lightgbm_defaults(task: str) -> Params:
    return {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
    }


# --- XGBoost -------------------------------------------------------------------------


def _build_xgboost(ctx: BuildContext, params: Params) -> Estimator:
    common: Params = {"tree_method": "hist", "n_jobs": ctx.n_jobs, "random_state": ctx.seed}
    if _classification(ctx):
        return xgboost.XGBClassifier(**common, **params)
    return xgboost.XGBRegressor(**common, **params)


def _xgboost_balance(ctx: BuildContext, y: np.ndarray[Any, Any]) -> tuple[Params, Weights | None]:
    """XGBoost has no ``class_weight``: binary uses ``scale_pos_weight`` (negatives over
    positives, XGBoost's documented idiom), multiclass uses balanced sample weights."""
    if ctx.class_weight != "balanced" or not _classification(ctx):
        return {}, None
    if ctx.task == "binary":
        positives = int(np.sum(y == 1))
        return {"scale_pos_weight": (len(y) - positives) / max(positives, 1)}, None
    return {}, compute_sample_weight("balanced", y)


def _xgboost_space(trial: optuna.Trial, task: str) -> Params:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 500),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_depth": trial.suggest_int("max_depth", 3, 10),
        "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }


def _xgboost_defaults(task: str) -> Params:
    return {
        "n_estimators": 200,
        "learning_rate": 0.1,
        "max_depth": 6,
        "min_child_weight": 1.0,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
    }


# --- scikit-learn HistGradientBoosting -----------------------------------------------


def _build_hist_gb(ctx: BuildContext, params: Params) -> Estimator:
    # early_stopping="auto" holds out 10% and stops early on tables over 10,000 rows.
    common: Params = {"random_state": ctx.seed, "early_stopping": "auto"}
    if _classification(ctx):
        return HistGradientBoostingClassifier(class_weight=ctx.class_weight, **common, **params)
    return HistGradientBoostingRegressor(**common, **params)


def _hist_gb_space(trial: optuna.Trial, task: str) -> Params:
    return {
        "max_iter": trial.suggest_int("max_iter", 50, 500),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 128, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 100, log=True),
        "max_features": trial.suggest_float("max_features", 0.5, 1.0),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-3, 10.0, log=True),
    }


def _hist_gb_defaults(task: str) -> Params:
    return {
        "max_iter": 200,
        "learning_rate": 0.1,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 20,
        "max_features": 1.0,
        "l2_regularization": 1e-3,
    }


def _no_params(task: str) -> Params:
    return {}


register(
    CandidateSpec(
        "dummy", "baseline", ALL_TASKS, False, _build_dummy, None, _no_params, complexity=0
    )
)
register(
    CandidateSpec(
        "linear", "baseline", ALL_TASKS, True, _build_linear, _linear_space, _linear_defaults,
        complexity=1,
    )
)  # fmt: skip
register(
    CandidateSpec(
        "lightgbm",
        "candidate",
        ALL_TASKS,
        False,
        _build_lightgbm,
        _lightgbm_space,
        _lightgbm_defaults,
    )
)
register(
    CandidateSpec(
        "xgboost",
        "candidate",
        ALL_TASKS,
        False,
        _build_xgboost,
        _xgboost_space,
        _xgboost_defaults,
        balance=_xgboost_balance,
    )
)
register(
    CandidateSpec(
        "hist_gradient_boosting",
        "candidate",
        ALL_TASKS,
        False,
        _build_hist_gb,
        _hist_gb_space,
        _hist_gb_defaults,
    )
)
