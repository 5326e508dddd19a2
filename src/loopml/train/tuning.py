"""Tuning a candidate's hyper-parameters with Optuna on a validation split.

The score each trial optimises depends on the task:

- binary: ROC-AUC on the validation rows (maximise);
- multiclass: log loss (minimise), weighted per class when ``class_weight`` is
  ``"balanced"`` so that tuning judges models by the same objective they are trained on;
  log loss rather than macro F1 because it is smooth and uses the probabilities, which
  makes it a much less noisy guide for a small number of trials;
- regression: RMSE (minimise).

The sampler is TPE seeded with the build context's seed, and the first trial is the
candidate's default parameters, so tuning never returns something worse on validation
than the defaults. With only a trial limit (no timeout hit) a seed gives the same result.
The time budget holds within one trial: tuning stops when the next trial, as long as the
longest so far, would end past it (every library's threads are pinned: see
:func:`~loopml.train.candidates.fit_candidate`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score, root_mean_squared_error
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_sample_weight

from loopml.config import TuningConfig
from loopml.data.contract import Contract
from loopml.errors import TrainingError
from loopml.features.pipeline import feature_frame
from loopml.train.candidates import BuildContext, CandidateSpec, Params, fit_candidate
from loopml.train.split import sample_rows

Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class TuningResult:
    """The best parameters found (merged over the defaults) and their validation score,
    with that trial's validation labels and predictions (probabilities, or values for
    regression): what the decision threshold is chosen on."""

    params: dict[str, Any]
    score: float
    n_trials: int
    direction: Direction
    metric: str
    valid_labels: np.ndarray[Any, Any] | None = field(default=None, repr=False, compare=False)
    valid_pred: np.ndarray[Any, Any] | None = field(default=None, repr=False, compare=False)


def validation_metric(task: str) -> tuple[str, Direction]:
    """(metric name, direction) tuning optimises for a task."""
    if task == "binary":
        return "roc_auc", "maximize"
    if task == "multiclass":
        return "log_loss", "minimize"
    return "rmse", "minimize"


def validation_score(
    pipeline: Pipeline, ctx: BuildContext, X: pd.DataFrame, y: np.ndarray[Any, Any]
) -> float:
    """The tuning metric of a fitted pipeline on ``(X, y)`` (see :func:`validation_metric`)."""
    return score_predictions(ctx, y, _predict(pipeline, ctx, X))


def _predict(pipeline: Pipeline, ctx: BuildContext, X: pd.DataFrame) -> np.ndarray[Any, Any]:
    if ctx.task == "regression":
        return np.asarray(pipeline.predict(X), dtype=np.float64)
    return np.asarray(pipeline.predict_proba(X), dtype=np.float64)


def score_predictions(
    ctx: BuildContext, y: np.ndarray[Any, Any], pred: np.ndarray[Any, Any]
) -> float:
    """The tuning metric of validation predictions (see :func:`validation_metric`)."""
    if ctx.task == "regression":
        return float(root_mean_squared_error(y, pred))
    if ctx.task == "binary":
        return float(roc_auc_score(y, pred[:, 1]))
    weights = compute_sample_weight("balanced", y) if ctx.class_weight == "balanced" else None
    return float(log_loss(y, pred, labels=list(range(ctx.n_classes)), sample_weight=weights))


def tune(
    spec: CandidateSpec,
    ctx: BuildContext,
    contract: Contract,
    X_train: pd.DataFrame,
    y_train: np.ndarray[Any, Any],
    X_valid: pd.DataFrame,
    y_valid: np.ndarray[Any, Any],
    budget: TuningConfig,
    *,
    on_trial: Callable[[int, float], None] | None = None,
) -> TuningResult:
    """Search ``spec``'s hyper-parameters within ``budget`` (trials and seconds).

    Both parts are subsampled to ``budget.max_rows`` rows (stratified for classification).
    ``on_trial(number, value)`` is called after each trial; ``value`` is NaN for a trial
    that failed. A spec without a search space returns its defaults, scored once, with
    ``n_trials=0``. Raises :class:`TrainingError` if every trial fails.
    """
    metric, direction = validation_metric(ctx.task)
    X_fit, y_fit = sample_rows(X_train, y_train, ctx.task, budget.max_rows, ctx.seed)
    X_val, y_val = sample_rows(X_valid, y_valid, ctx.task, budget.max_rows, ctx.seed)
    X_fit, X_val = feature_frame(X_fit, contract), feature_frame(X_val, contract)
    _check_validation(y_val, ctx)
    defaults = spec.defaults(ctx.task)
    best: dict[str, Any] = {}

    def evaluate(params: Params) -> float:
        pipeline = fit_candidate(spec, params, ctx, contract, X_fit, y_fit)
        pred = _predict(pipeline, ctx, X_val)
        score = score_predictions(ctx, y_val, pred)
        if "score" not in best or (
            score > best["score"] if direction == "maximize" else score < best["score"]
        ):  # only the best trial's predictions are kept
            best.update(score=score, pred=pred)
        return score

    if spec.search_space is None:
        score = evaluate(defaults)
        return TuningResult(dict(defaults), score, 0, direction, metric, y_val, best["pred"])
    objective = _objective(spec.search_space, ctx.task, evaluate)
    study = _run_study(
        objective, defaults, seed=ctx.seed, direction=direction, budget=budget, on_trial=on_trial
    )
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not completed:
        raise _all_failed(spec, study)
    trial = study.best_trial
    return TuningResult(
        {**defaults, **trial.params}, _value(trial), len(study.trials), direction, metric,
        y_val, best.get("pred"),
    )  # fmt: skip


def _objective(
    space: Callable[[optuna.Trial, str], Params], task: str, evaluate: Callable[[Params], float]
) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        try:
            return evaluate(space(trial, task))
        except Exception as exc:
            # Recorded on the trial, then re-raised for optuna to mark it failed.
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise

    return objective


def _run_study(
    objective: Callable[[optuna.Trial], float],
    defaults: Params,
    *,
    seed: int,
    direction: Direction,
    budget: TuningConfig,
    on_trial: Callable[[int, float], None] | None,
) -> optuna.Study:
    started = time.monotonic()

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial is not None:
            value = trial.value if trial.value is not None else math.nan
            on_trial(trial.number, float(value))
        # Optuna checks its timeout only before a trial starts; stop when the next trial,
        # as long as the longest so far, would end past it, so the budget holds even
        # when a busy machine makes every fit slow.
        elapsed = time.monotonic() - started
        longest = max(_seconds(t) for t in study.get_trials(deepcopy=False))
        if elapsed + longest > budget.timeout_seconds:
            study.stop()

    with _quiet_optuna():
        study = optuna.create_study(
            direction=direction, sampler=optuna.samplers.TPESampler(seed=seed)
        )
        study.enqueue_trial(defaults, skip_if_exists=True)
        study.optimize(
            objective,
            n_trials=budget.trials,
            timeout=budget.timeout_seconds,
            catch=(Exception,),
            callbacks=[report],
            gc_after_trial=False,
        )
    return study


def _seconds(trial: optuna.trial.FrozenTrial) -> float:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return 0.0
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def _check_validation(y_valid: np.ndarray[Any, Any], ctx: BuildContext) -> None:
    if len(y_valid) == 0:
        raise TrainingError(
            "no validation rows to tune on", fix="use a table with more labelled rows"
        )
    if ctx.task == "binary" and len(np.unique(y_valid)) < 2:
        raise TrainingError(
            "the validation rows hold a single class, so ROC-AUC is undefined",
            fix="use a table with more rows of the rarer class",
        )


def _all_failed(spec: CandidateSpec, study: optuna.Study) -> TrainingError:
    errors = [str(t.user_attrs.get("error", "unknown error")) for t in study.trials]
    distinct = list(dict.fromkeys(errors))
    return TrainingError(
        f"every tuning trial of {spec.name!r} failed ({len(study.trials)} trial(s))",
        detail="\n".join(distinct[:3]) or "the time budget ran out before the first trial",
        fix=f"fix the error shown, or remove {spec.name!r} from train.candidates",
    )


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Silence optuna's INFO logging for the duration, then restore the caller's level."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _value(trial: optuna.trial.FrozenTrial) -> float:
    return math.nan if trial.value is None else float(trial.value)
