"""``loopml train``: from the project's table to a gated, tracked, registered version.

The order matters for "nothing half-written": everything that can fail because of the
user's data or settings (project file, contract, table, trainability, tracking store) is
checked *before* an MLflow run is opened; a failure after that deletes the run.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from loopml.config import ProjectConfig
from loopml.data.contract import Contract
from loopml.data.infer import check_trainable
from loopml.data.sources import fingerprint, read_source
from loopml.data.validate import ValidationReport, validate_table
from loopml.errors import ContractError
from loopml.features.pipeline import feature_frame, feature_importance
from loopml.registry.audit import AuditLog
from loopml.registry.package import ModelMeta, ModelPackage
from loopml.registry.store import CHALLENGER, CHAMPION, TAG_PREFIX, ModelRegistry
from loopml.train import tracking
from loopml.train.candidates import BuildContext, class_weight_for, fit_candidate, get_candidate
from loopml.train.evaluate import Evaluation, evaluate
from loopml.train.gate import GateDecision, choose_best, registration_gate
from loopml.train.metrics import default_metric
from loopml.train.plots import make_plots
from loopml.train.report import ReportData, render_report
from loopml.train.split import encode_target, split_holdout, split_validation
from loopml.train.tuning import tune

HOLDOUT_ARTIFACT = "data/holdout.parquet"
EVALUATION_ARTIFACT = "evaluation/evaluation.json"


class Progress(Protocol):
    """How long work reports itself; the CLI renders it with Rich."""

    def stage(self, description: str, total: int | None = None) -> None: ...

    def advance(self, amount: int = 1) -> None: ...


class _Silent:
    def stage(self, description: str, total: int | None = None) -> None:
        return None

    def advance(self, amount: int = 1) -> None:
        return None


@dataclass(frozen=True)
class ModelResult:
    name: str
    kind: str
    params: dict[str, Any]
    evaluation: Evaluation
    fit_seconds: float
    trials: int
    pipeline: Any = field(repr=False, compare=False)

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.evaluation.metrics)


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    experiment_id: str
    metric: str
    leaderboard: tuple[ModelResult, ...]
    chosen: str
    gate: GateDecision
    version: str | None
    alias: str | None
    report: Path | None = None
    rows: int = 0

    def leaderboard_metric(self) -> float:
        """The chosen model's score on the deciding metric."""
        best = next(r for r in self.leaderboard if r.name == self.chosen)
        return best.metrics.get(self.metric, math.nan)


@dataclass(frozen=True)
class _Data:
    frame: pd.DataFrame
    train: pd.DataFrame
    holdout: pd.DataFrame
    x_train: pd.DataFrame
    y_train: np.ndarray
    x_holdout: pd.DataFrame
    y_holdout: np.ndarray


def load_checked_table(project: ProjectConfig) -> tuple[pd.DataFrame, Contract, ValidationReport]:
    """Read the training table and check it against its contract; raise on violations."""
    contract = Contract.load(project.resolve(project.data.contract))
    frame = read_source(project.data.source, project.root)
    source = project.data.source.path or "the SQL source"
    report = validate_table(frame, contract, source=source)
    if not report.ok:
        errors = [v for v in report.violations if v.severity == "error"]
        raise ContractError(
            f"{source} breaks its data contract ({len(errors)} violation(s))",
            detail="\n".join(v.message for v in errors[:10]),
            fix=f"run 'loopml validate {source}' for the full report; fix the data, or "
            "re-infer the contract with 'loopml init --force' if the change is intended",
        )
    check_trainable(frame, contract)
    return frame, contract, report


def train_project(project: ProjectConfig, progress: Progress | None = None) -> TrainResult:
    """Train baselines and tuned candidates, evaluate, gate, track and register."""
    progress = progress or _Silent()
    progress.stage("reading and validating the table")
    frame, contract, _ = load_checked_table(project)
    store = tracking.resolve_store(project)
    client = tracking.connect(store)
    experiment_id = tracking.ensure_experiment(client, store)
    data = _prepare(frame, contract, project)
    tags = {
        f"{TAG_PREFIX}data_fingerprint": fingerprint(frame),
        f"{TAG_PREFIX}git_commit": tracking.git_commit(project.root) or "none",
    }
    with tracking.tracked_run(client, experiment_id, f"train-{project.name}", tags) as run_id:
        results = _fit_all(project, contract, data, client, experiment_id, run_id, progress)
        metric = project.gate.metric or default_metric(contract.task)
        outcome = _gate_and_register(
            project, contract, data, results, metric, client, run_id, tags, progress
        )
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        metric=metric,
        leaderboard=tuple(results),
        chosen=outcome[0],
        gate=outcome[1],
        version=outcome[2],
        alias=outcome[3],
        report=outcome[4],
        rows=len(frame),
    )


def _prepare(frame: pd.DataFrame, contract: Contract, project: ProjectConfig) -> _Data:
    train, holdout = split_holdout(frame, contract, project.split)
    return _Data(
        frame=frame,
        train=train,
        holdout=holdout,
        x_train=feature_frame(train, contract),
        y_train=encode_target(train[contract.target], contract),
        x_holdout=feature_frame(holdout, contract),
        y_holdout=encode_target(holdout[contract.target], contract),
    )


def _context(project: ProjectConfig, contract: Contract, y: np.ndarray) -> BuildContext:
    task = contract.task
    return BuildContext(
        task=task,
        n_classes=len(contract.classes) if task != "regression" else 0,
        seed=project.train.seed,
        class_weight=class_weight_for(y, task, project.train.class_weight),
    )


def _fit_all(
    project: ProjectConfig,
    contract: Contract,
    data: _Data,
    client: Any,
    experiment_id: str,
    run_id: str,
    progress: Progress,
) -> list[ModelResult]:
    ctx = _context(project, contract, data.y_train)
    results: list[ModelResult] = []
    names = [(n, "baseline") for n in project.train.baselines]
    names += [(n, "candidate") for n in project.train.candidates]
    for name, kind in names:
        spec = get_candidate(name)
        if contract.task not in spec.tasks:
            continue
        started = time.perf_counter()
        params, trials = _tuned_params(project, contract, data, ctx, spec, progress)
        progress.stage(f"fitting {name} on {len(data.x_train):,} rows")
        pipeline = fit_candidate(spec, params, ctx, contract, data.x_train, data.y_train)
        seconds = time.perf_counter() - started
        progress.stage(f"evaluating {name} on the holdout")
        evaluation = _evaluate(project, contract, data, pipeline)
        result = ModelResult(name, kind, params, evaluation, seconds, trials, pipeline)
        _log_child(client, experiment_id, run_id, result)
        results.append(result)
    return results


def _tuned_params(
    project: ProjectConfig,
    contract: Contract,
    data: _Data,
    ctx: BuildContext,
    spec: Any,
    progress: Progress,
) -> tuple[dict[str, Any], int]:
    if spec.search_space is None:
        return dict(spec.defaults(contract.task)), 0
    budget = project.train.tuning
    progress.stage(f"tuning {spec.name}", total=budget.trials)
    x_tr, x_va, y_tr, y_va = split_validation(
        data.x_train, data.y_train, contract.task, fraction=0.2, seed=project.train.seed
    )
    result = tune(
        spec, ctx, contract, x_tr, y_tr, x_va, y_va, budget,
        on_trial=lambda _i, _score: progress.advance(),
    )  # fmt: skip
    return dict(result.params), int(result.n_trials)


def _predict(pipeline: Any, x: pd.DataFrame, task: str) -> np.ndarray:
    if task == "regression":
        return np.asarray(pipeline.predict(x), dtype=float)
    return np.asarray(pipeline.predict_proba(x), dtype=float)


def _evaluate(project: ProjectConfig, contract: Contract, data: _Data, pipeline: Any) -> Evaluation:
    return evaluate(
        contract.task,
        data.y_holdout,
        _predict(pipeline, data.x_holdout, contract.task),
        classes=contract.classes,
        frame=data.holdout,
        slice_columns=contract.categorical_features,
        bootstrap=project.train.bootstrap,
        seed=project.train.seed,
        min_slice_rows=project.gate.min_slice_rows,
    )


def _log_child(client: Any, experiment_id: str, parent: str, result: ModelResult) -> None:
    from mlflow.entities import Metric, Param, RunTag

    run = client.create_run(
        experiment_id,
        run_name=result.name,
        tags={"mlflow.parentRunId": parent, f"{TAG_PREFIX}kind": result.kind},
    )
    now = int(time.time() * 1000)
    metrics = [
        Metric(f"holdout_{k}", v, now, 0) for k, v in result.metrics.items() if math.isfinite(v)
    ]
    metrics.append(Metric("fit_seconds", result.fit_seconds, now, 0))
    params = [Param(k, str(v)[:6000]) for k, v in result.params.items()]
    params.append(Param("tuning_trials", str(result.trials)))
    client.log_batch(
        run.info.run_id, metrics=metrics, params=params, tags=[RunTag("kind", result.kind)]
    )
    client.set_terminated(run.info.run_id, "FINISHED")


def _gate_and_register(
    project: ProjectConfig,
    contract: Contract,
    data: _Data,
    results: list[ModelResult],
    metric: str,
    client: Any,
    run_id: str,
    tags: dict[str, str],
    progress: Progress,
) -> tuple[str, GateDecision, str | None, str | None, Path | None]:
    import mlflow

    candidates = {r.name: r.metrics for r in results if r.kind == "candidate"}
    baselines = {r.name: r.metrics for r in results if r.kind == "baseline"}
    chosen = choose_best(candidates or baselines, metric)
    best = next(r for r in results if r.name == chosen)
    gate = registration_gate(
        chosen, best.metrics, baselines, metric=metric, margin=project.gate.margin
    )
    progress.stage("writing plots, report and artifacts")
    _log_run(project, contract, data, results, best, gate, metric)
    report = _log_report(project, contract, data, results, best, gate, run_id)
    version: str | None = None
    alias: str | None = None
    if gate.passed:
        progress.stage(f"registering {chosen} as a new version of {project.name}")
        version, alias = _register(project, contract, best, client, run_id, tags, gate)
    mlflow.set_tag(f"{TAG_PREFIX}gate", "passed" if gate.passed else "failed")
    return chosen, gate, version, alias, report


def _log_run(
    project: ProjectConfig,
    contract: Contract,
    data: _Data,
    results: list[ModelResult],
    best: ModelResult,
    gate: GateDecision,
    metric: str,
) -> None:
    import mlflow

    tracking.log_params(
        {
            "data": {"target": contract.target, "task": contract.task, "rows": len(data.frame)},
            "split": project.split.model_dump(),
            "train": project.train.model_dump(),
            "gate": project.gate.model_dump(),
            "chosen": best.name,
        }
    )
    for key, value in best.metrics.items():
        if math.isfinite(value):
            mlflow.log_metric(f"holdout_{key}", value)
    for key, interval in best.evaluation.intervals.items():
        if math.isfinite(interval.low) and math.isfinite(interval.high):
            mlflow.log_metric(f"holdout_{key}_ci_low", interval.low)
            mlflow.log_metric(f"holdout_{key}_ci_high", interval.high)
    mlflow.log_text(contract.to_yaml(), "contract/contract.yaml")
    tracking.log_json(best.evaluation.to_dict(), EVALUATION_ARTIFACT)
    tracking.log_json(tracking.package_versions(), "environment/packages.json")
    tracking.log_json(
        [
            {"name": r.name, "kind": r.kind, "metrics": r.metrics, "params": r.params,
             "fit_seconds": r.fit_seconds, "trials": r.trials}
            for r in results
        ],
        "evaluation/leaderboard.json",
    )  # fmt: skip
    tracking.log_json(
        {"passed": gate.passed, "metric": metric, "margin": gate.margin, "reason": gate.reason},
        "evaluation/gate.json",
    )
    with tempfile.TemporaryDirectory(prefix="loopml-holdout-") as tmp:
        path = Path(tmp) / "holdout.parquet"
        data.holdout.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(HOLDOUT_ARTIFACT).parent))


def _log_report(
    project: ProjectConfig,
    contract: Contract,
    data: _Data,
    results: list[ModelResult],
    best: ModelResult,
    gate: GateDecision,
    run_id: str,
) -> Path:
    import mlflow

    out = project.resolve(f".loopml/reports/{run_id}")
    out.mkdir(parents=True, exist_ok=True)
    importance = feature_importance(
        best.pipeline, contract, data.x_holdout, data.y_holdout, seed=project.train.seed
    )
    pred = _predict(best.pipeline, data.x_holdout, contract.task)
    plots = make_plots(contract.task, data.y_holdout, pred, contract.classes, importance, out)
    html, markdown = render_report(
        ReportData(
            model_name=project.name,
            run_id=run_id,
            task=contract.task,
            target=contract.target,
            created_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            data_summary={
                "rows": len(data.frame),
                "train rows": len(data.train),
                "holdout rows": len(data.holdout),
                "features": len(contract.features),
                "fingerprint": fingerprint(data.frame)[:16],
            },
            leaderboard=[
                {"name": r.name, "kind": r.kind, "metrics": r.metrics,
                 "intervals": r.evaluation.intervals, "fit_seconds": r.fit_seconds,
                 "trials": r.trials}
                for r in results
            ],  # fmt: skip
            chosen=best.name,
            gate={"passed": gate.passed, "metric": gate.metric, "margin": gate.margin,
                  "reason": gate.reason},  # fmt: skip
            evaluation=best.evaluation,
            plots=plots,
            importance=importance,
        ),
        out,
    )
    for path in plots.values():
        mlflow.log_artifact(str(path), artifact_path="plots")
    mlflow.log_artifact(str(html), artifact_path="report")
    mlflow.log_artifact(str(markdown), artifact_path="report")
    return html


def _register(
    project: ProjectConfig,
    contract: Contract,
    best: ModelResult,
    client: Any,
    run_id: str,
    tags: dict[str, str],
    gate: GateDecision,
) -> tuple[str, str]:
    from loopml.registry.signature import signature_for

    registry = ModelRegistry(client, project.name, AuditLog(project.resolve(project.registry.audit_log)))
    meta = ModelMeta(
        name=project.name,
        task=contract.task,
        target=contract.target,
        target_type=contract.target_spec.type,
        classes=tuple(contract.classes),
        candidate=best.name,
        params={k: v for k, v in best.params.items() if isinstance(v, int | float | str | bool)},
        metrics={k: v for k, v in best.metrics.items() if math.isfinite(v)},
        run_id=run_id,
        data_fingerprint=tags[f"{TAG_PREFIX}data_fingerprint"],
    )
    package = ModelPackage(pipeline=best.pipeline, contract=contract, meta=meta)
    model_uri = registry.log_model(package, signature_for(contract), None)
    version_tags = {
        **tags,
        f"{TAG_PREFIX}candidate": best.name,
        f"{TAG_PREFIX}serving_artifact": "pending",
        **{f"{TAG_PREFIX}metric.{k}": f"{v:.6g}" for k, v in meta.metrics.items()},
    }
    version = registry.register(model_uri, run_id, version_tags)
    alias = CHALLENGER if registry.alias(CHAMPION) else CHAMPION
    registry.move_alias(alias, version, action="register", reason=gate.reason)
    return version, alias
