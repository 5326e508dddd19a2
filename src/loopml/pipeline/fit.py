"""Fitting every model of a training run: tune, weigh, calibrate, decide, fit, evaluate.

For each baseline and candidate of the project (in the project file's order):

1. **tune** its parameters on a validation split of the training rows (the evaluation
   holdout is never seen), keeping the best trial's validation predictions;
2. **weigh** classes as ``train.class_weight`` says: ``none``; ``balanced`` — weighted
   training followed by a calibrator fitted on the validation rows, so the probabilities
   stay probabilities; ``auto`` — under severe imbalance (rarest class under 5 %) both,
   and the one with the better log loss on the validation rows (the calibrated variant
   judged out of fold) is kept, otherwise unweighted;
3. **decide**: a binary model's threshold is chosen on the same validation predictions
   (:mod:`loopml.train.threshold`); the trivial baseline keeps 0.5 (it is the floor: the
   majority class);
4. **fit** on all training rows and **evaluate** on the holdout, at the threshold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.pipeline import Pipeline

from loopml.config import ProjectConfig
from loopml.data.contract import Contract
from loopml.pipeline.prepare import TrainingData
from loopml.progress import Progress
from loopml.train.calibrate import Calibrated, Calibrator, cross_fitted, fit_calibrator
from loopml.train.candidates import (
    BuildContext,
    CandidateSpec,
    class_weight_for,
    fit_candidate,
    get_candidate,
)
from loopml.train.evaluate import Evaluation, evaluate, model_scores
from loopml.train.metrics import log_loss
from loopml.train.split import sample_rows, split_validation
from loopml.train.threshold import Threshold, choose_threshold
from loopml.train.tuning import TuningResult, tune

__all__ = ["ModelResult", "fit_models"]

Weighting = Literal["none", "balanced", "compare"]


@dataclass(frozen=True)
class ModelResult:
    """One fitted model of a run: its parameters, holdout evaluation and decisions."""

    name: str
    kind: str
    params: dict[str, Any]
    evaluation: Evaluation
    fit_seconds: float
    trials: int
    pipeline: Any = field(repr=False, compare=False)
    threshold: Threshold | None = None
    weighted: bool = False
    """Trained with balanced class weights (and then calibrated)."""

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.evaluation.metrics)


@dataclass(frozen=True)
class _Validation:
    """A variant of a model on the validation rows: its context, the probabilities it
    gives there (calibrated when weighted) and its calibrator."""

    ctx: BuildContext
    labels: np.ndarray[Any, Any] | None
    pred: np.ndarray[Any, Any] | None
    calibrator: Calibrator | None = None


@dataclass(frozen=True)
class _Run:
    project: ProjectConfig
    contract: Contract
    data: TrainingData
    progress: Progress
    split: tuple[Any, Any, Any, Any]  # x_tr, x_va, y_tr, y_va


def fit_models(
    project: ProjectConfig,
    contract: Contract,
    data: TrainingData,
    progress: Progress,
    on_model: Callable[[ModelResult], None] | None = None,
) -> list[ModelResult]:
    """Every baseline and candidate that applies to the task, fitted and evaluated."""
    train = project.train
    split = split_validation(
        data.x_train, data.y_train, contract.task, fraction=0.2,
        seed=train.seed, ordered=project.split.strategy == "time",
    )  # fmt: skip
    run = _Run(project, contract, data, progress, split)
    weighting = _weighting(run)
    results: list[ModelResult] = []
    roles = [(n, "baseline") for n in train.baselines]
    roles += [(n, "candidate") for n in train.candidates]
    for name, kind in roles:
        spec = get_candidate(name)
        if contract.task not in spec.tasks:
            continue
        result = _fit_one(run, spec, kind, weighting if spec.complexity > 0 else "none")
        if on_model is not None:
            on_model(result)
        results.append(result)
    return results


def _weighting(run: _Run) -> Weighting:
    setting = run.project.train.class_weight
    imbalanced = class_weight_for(run.data.y_train, run.contract.task, "auto") is not None
    if class_weight_for(run.data.y_train, run.contract.task, setting) is None:
        return "none"
    return "compare" if setting == "auto" and imbalanced else "balanced"


def _fit_one(run: _Run, spec: CandidateSpec, kind: str, weighting: Weighting) -> ModelResult:
    started = time.perf_counter()
    plain = _context(run, None)
    weighted = _context(run, "balanced")
    tuned = _tune(run, spec, weighted if weighting == "balanced" else plain)
    chosen = _variant(run, spec, tuned, weighting, plain, weighted)
    threshold = _threshold(run, spec, chosen)
    data = run.data
    run.progress.stage(f"fitting {spec.name} on {len(data.x_train):,} rows")
    pipeline = fit_candidate(
        spec, dict(tuned.params), chosen.ctx, run.contract, data.x_train, data.y_train
    )
    if chosen.calibrator is not None:
        pipeline = _calibrated(pipeline, chosen.calibrator)
    seconds = time.perf_counter() - started
    run.progress.stage(f"evaluating {spec.name} on {len(data.holdout):,} holdout rows")
    evaluation = _evaluate(run, pipeline, threshold)
    return ModelResult(
        spec.name, kind, dict(tuned.params), evaluation, seconds, tuned.n_trials, pipeline,
        threshold, weighted=chosen.calibrator is not None,
    )  # fmt: skip


def _context(run: _Run, class_weight: Literal["balanced"] | None) -> BuildContext:
    return BuildContext.for_contract(
        run.contract, seed=run.project.train.seed, class_weight=class_weight
    )


def _tune(run: _Run, spec: CandidateSpec, ctx: BuildContext) -> TuningResult:
    """The candidate's parameters (its defaults, scored once, if it has no search space),
    with the validation predictions its decisions are made on."""
    budget = run.project.train.tuning
    total = budget.trials if spec.search_space is not None else None
    run.progress.stage(f"tuning {spec.name}" if total else f"validating {spec.name}", total=total)
    x_tr, x_va, y_tr, y_va = run.split
    return tune(
        spec, ctx, run.contract, x_tr, y_tr, x_va, y_va, budget,
        on_trial=lambda _i, _score: run.progress.advance(),
    )  # fmt: skip


def _variant(
    run: _Run,
    spec: CandidateSpec,
    tuned: TuningResult,
    weighting: Weighting,
    plain: BuildContext,
    weighted: BuildContext,
) -> _Validation:
    """Which way of weighing classes the model is trained with (see the module doc)."""
    labels, pred = tuned.valid_labels, tuned.valid_pred
    if weighting == "none" or labels is None or pred is None:
        return _Validation(plain, labels, pred)
    n_classes = len(run.contract.classes)
    if weighting == "balanced":  # tuned with weights: calibrate what it predicted
        calibrator = fit_calibrator(pred, labels, n_classes)
        return _Validation(weighted, labels, calibrator.apply(pred), calibrator)
    run.progress.stage(f"weighing classes for {spec.name}")
    raw = _weighted_validation(run, spec, tuned, weighted)
    honest = cross_fitted(raw, labels, n_classes, run.project.train.seed)
    if log_loss(labels, honest) < log_loss(labels, pred):
        calibrator = fit_calibrator(raw, labels, n_classes)
        return _Validation(weighted, labels, calibrator.apply(raw), calibrator)
    return _Validation(plain, labels, pred)


def _weighted_validation(
    run: _Run, spec: CandidateSpec, tuned: TuningResult, ctx: BuildContext
) -> np.ndarray[Any, Any]:
    """The weighted variant's probabilities on the validation rows tuning scored."""
    x_tr, x_va, y_tr, y_va = run.split
    budget, task, seed = run.project.train.tuning, run.contract.task, run.project.train.seed
    x_fit, y_fit = sample_rows(x_tr, y_tr, task, budget.max_rows, seed)
    x_val, _ = sample_rows(x_va, y_va, task, budget.max_rows, seed)
    model = fit_candidate(spec, dict(tuned.params), ctx, run.contract, x_fit, y_fit)
    return model_scores(model, x_val, task)


def _threshold(run: _Run, spec: CandidateSpec, chosen: _Validation) -> Threshold | None:
    """A binary model's decision threshold, from its validation predictions; the trivial
    baseline keeps the plain 0.5 cut (the majority class, the floor)."""
    if run.contract.task != "binary" or spec.complexity == 0:
        return None
    if chosen.labels is None or chosen.pred is None:
        return None
    return choose_threshold(chosen.labels, chosen.pred[:, 1], run.project.train.threshold)


def _calibrated(pipeline: Pipeline, calibrator: Calibrator) -> Pipeline:
    model = Calibrated(pipeline.steps[-1][1], calibrator.coef, calibrator.intercept).fit()
    return Pipeline([*pipeline.steps[:-1], ("model", model)])


def _evaluate(run: _Run, pipeline: Any, threshold: Threshold | None) -> Evaluation:
    data, train = run.data, run.project.train
    return evaluate(
        run.contract.task,
        data.y_holdout,
        model_scores(pipeline, data.x_holdout, run.contract.task),
        classes=run.contract.classes,
        frame=data.holdout,
        slice_columns=run.contract.categorical_features,
        bootstrap=train.bootstrap,
        seed=train.seed,
        min_slice_rows=run.project.gate.min_slice_rows,
        threshold=None if threshold is None else threshold.value,
    )
