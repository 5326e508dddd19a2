"""``loopml train``: from the project's table to a gated, tracked, registered version.

The order matters for "nothing half-written": everything that can fail because of the
user's data or settings (project file, contract, table, trainability, tracking store) is
checked *before* an MLflow run is opened; a failure after that deletes the run.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from loopml.config import STATE_DIR, ProjectConfig
from loopml.data.check import load_checked_table
from loopml.data.contract import Contract
from loopml.data.sources import fingerprint
from loopml.errors import ConfigError
from loopml.features.pipeline import feature_importance
from loopml.monitor.profile_store import attach_profile
from loopml.pipeline.fit import ModelResult, fit_models
from loopml.pipeline.prepare import TrainingData, prepare, reference_profile
from loopml.progress import Progress, progress_or_silent
from loopml.registry.artifact import build_serving_artifact
from loopml.registry.audit import AuditLog
from loopml.registry.package import ModelMeta, ModelPackage
from loopml.registry.store import (
    CHALLENGER,
    CHAMPION,
    HOLDOUT_ARTIFACT,
    SERVING_ARTIFACT,
    SERVING_PENDING,
    SERVING_TAG,
    TAG_PREFIX,
    TRAIN_ROWS_ARTIFACT,
    ModelRegistry,
)
from loopml.rollout.state import running_rollout
from loopml.train import tracking
from loopml.train.candidates import get_candidate
from loopml.train.evaluate import model_scores
from loopml.train.findings import copies_finding, find_leaks, leak_findings
from loopml.train.gate import GateDecision, choose_best
from loopml.train.metrics import default_metric, get_metric, metrics_for
from loopml.train.plots import make_plots
from loopml.train.report import DataSummary, LeaderboardRow, ReportData, render_report
from loopml.train.select import Scored, select_model
from loopml.train.split import contract_copies, row_hashes

EVALUATION_ARTIFACT = "evaluation/evaluation.json"


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
    serving_format: str | None = None
    """How the registered version is served: ``onnx``, or a fallback (``skops``, ``pickle``)."""
    serving_fallback: str = ""
    """Why the version is not served through ONNX (empty when it is)."""
    decision: str | None = None
    """A binary version's decision threshold, in one line."""
    findings: tuple[str, ...] = ()
    """Copies in the table and possible target leakage (see train/findings.py)."""

    def leaderboard_metric(self) -> float:
        """The chosen model's score on the deciding metric."""
        best = next(r for r in self.leaderboard if r.name == self.chosen)
        return best.metrics.get(self.metric, math.nan)


@dataclass(frozen=True)
class _Session:
    """What one training run works with, passed to each step instead of long arg lists."""

    project: ProjectConfig
    contract: Contract
    data: TrainingData
    client: Any
    experiment_id: str
    run_id: str
    tags: dict[str, str]
    progress: Progress


def train_project(project: ProjectConfig, progress: Progress | None = None) -> TrainResult:
    """Train baselines and tuned candidates, evaluate, gate, track and register."""
    progress = progress_or_silent(progress)
    progress.stage("reading and validating the table")
    frame, contract, _ = load_checked_table(project)
    metric = _check_settings(project, contract)
    report_dir = project.resolve(f"{STATE_DIR}/reports")
    store = tracking.resolve_store(project)
    client = tracking.connect(store)
    experiment_id = tracking.ensure_experiment(client, store)
    data = prepare(frame, contract, project)
    tags = {
        f"{TAG_PREFIX}data_fingerprint": fingerprint(frame),
        f"{TAG_PREFIX}git_commit": tracking.git_commit(project.root) or "none",
    }
    # One thread per library pool while fitting and scoring (see fit_candidate).
    with (
        threadpool_limits(limits=1),
        tracking.tracked_run(client, experiment_id, f"train-{project.name}", tags) as run_id,
    ):
        try:
            session = _Session(
                project, contract, data, client, experiment_id, run_id, tags, progress
            )
            results = _fit_all(session)
            outcome = _gate_and_register(session, results, metric)
        except BaseException:
            shutil.rmtree(report_dir / run_id, ignore_errors=True)
            raise
    registered = outcome.registered
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        metric=metric,
        leaderboard=tuple(results),
        chosen=outcome.chosen,
        gate=outcome.gate,
        version=registered.version if registered else None,
        alias=registered.alias if registered else None,
        report=outcome.report,
        rows=len(frame),
        serving_format=registered.serving_format if registered else None,
        serving_fallback=registered.serving_fallback if registered else "",
        decision=_decision(contract, next(r for r in results if r.name == outcome.chosen)),
        findings=outcome.findings,
    )


def _check_settings(project: ProjectConfig, contract: Contract) -> str:
    """Fail on settings training cannot use now, before hours of tuning: unknown model
    names, a gate metric unknown or not made for the task. Returns the gate metric."""
    for name in (*project.train.baselines, *project.train.candidates):
        get_candidate(name)
    metric = project.gate.metric or default_metric(contract.task)
    spec = get_metric(metric)
    if contract.task not in spec.tasks:
        choices = ", ".join(m.name for m in metrics_for(contract.task))
        raise ConfigError(
            f"gate.metric {metric!r} does not apply to a {contract.task} task",
            fix=f"set gate.metric to one of: {choices}",
        )
    return metric


def _fit_all(s: _Session) -> list[ModelResult]:
    return fit_models(
        s.project, s.contract, s.data, s.progress, on_model=lambda r: _log_child(s, r)
    )


def _log_child(s: _Session, result: ModelResult) -> None:
    """One nested MLflow run per model, so the UI shows the whole leaderboard."""
    tracking.log_child_run(
        s.client, s.experiment_id, s.run_id, result.name,
        tags={f"{TAG_PREFIX}kind": result.kind, "kind": result.kind},
        metrics={**{f"holdout_{k}": v for k, v in result.metrics.items()},
                 "fit_seconds": result.fit_seconds},
        params={**result.params, "tuning_trials": result.trials},
    )  # fmt: skip


@dataclass(frozen=True)
class _Outcome:
    chosen: str
    gate: GateDecision
    registered: _Registered | None
    report: Path
    findings: tuple[str, ...]


def _gate_and_register(s: _Session, results: list[ModelResult], metric: str) -> _Outcome:
    scored = [Scored(r.name, get_candidate(r.name).complexity, r.metrics) for r in results]
    selection = select_model(scored, metric=metric, margin=s.project.gate.margin)
    gate = selection.gate
    # Nothing cleared the floor: the report still shows the best model, and why it failed.
    chosen = selection.chosen or choose_best({r.name: r.metrics for r in results}, metric)
    best = next(r for r in results if r.name == chosen)
    s.progress.stage("looking for copies and leaking features")
    data = s.data
    importance = feature_importance(
        best.pipeline, s.contract, data.x_holdout, data.y_holdout, seed=s.project.train.seed
    )
    findings = _findings(s, importance)
    s.progress.stage("writing plots, report and artifacts")
    _log_run(s, results, best, gate)
    report = _log_report(s, results, best, gate, importance, findings)
    registered: _Registered | None = None
    tracking.set_tag(f"{TAG_PREFIX}gate", "passed" if gate.passed else "failed")
    if gate.passed:  # last: nothing after it can fail and strand a version
        registered = _register(s, best, gate)
    return _Outcome(chosen, gate, registered, report, findings)


def _findings(s: _Session, importance: pd.Series[Any]) -> tuple[str, ...]:
    """Copies in the table and features that may leak the target (train/findings.py)."""
    data, contract = s.data, s.contract
    groups = contract_copies(data.frame, contract)
    copies = len(groups) - len(np.unique(groups))
    crossing = _crossing(data, contract) if s.project.split.strategy == "time" else None
    copy = copies_finding(len(groups), copies, crossing=crossing)
    leaks = find_leaks(
        contract, data.x_train, data.y_train, data.x_holdout, data.y_holdout,
        seed=s.project.train.seed,
    )  # fmt: skip
    return tuple([*([copy] if copy else []), *leak_findings(leaks, importance)])


def _crossing(data: TrainingData, contract: Contract) -> int:
    """Holdout rows that copy a training row (a time split cannot keep copies together)."""
    both = pd.concat([data.train, data.holdout])
    groups = contract_copies(both, contract)
    train_groups = groups[: len(data.train)]
    return int(np.isin(groups[len(data.train) :], train_groups).sum())


def _log_run(
    s: _Session, results: list[ModelResult], best: ModelResult, gate: GateDecision
) -> None:
    project, contract, data = s.project, s.contract, s.data
    tracking.log_params(
        {
            "data": {"target": contract.target, "task": contract.task, "rows": len(data.frame)},
            "split": project.split.model_dump(),
            "train": project.train.model_dump(),
            "gate": project.gate.model_dump(),
            "chosen": best.name,
        }
    )
    tracking.log_metrics({f"holdout_{k}": v for k, v in best.metrics.items()})
    for key, interval in best.evaluation.intervals.items():
        tracking.log_metrics(
            {f"holdout_{key}_ci_low": interval.low, f"holdout_{key}_ci_high": interval.high}
        )
    tracking.log_text(contract.to_yaml(), "contract/contract.yaml")
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
        {"passed": gate.passed, "metric": gate.metric, "margin": gate.margin,
         "reason": gate.reason},
        "evaluation/gate.json",
    )  # fmt: skip
    tracking.log_parquet(data.holdout, HOLDOUT_ARTIFACT)
    # What promote needs to compare two versions on rows neither of them trained on.
    hashes = pd.DataFrame({"row_hash": row_hashes(data.train, contract)})
    tracking.log_parquet(hashes, TRAIN_ROWS_ARTIFACT)


def _log_report(
    s: _Session,
    results: list[ModelResult],
    best: ModelResult,
    gate: GateDecision,
    importance: pd.Series[Any],
    findings: tuple[str, ...],
) -> Path:
    contract, data = s.contract, s.data
    out = s.project.resolve(f"{STATE_DIR}/reports/{s.run_id}")
    pred = model_scores(best.pipeline, data.x_holdout, contract.task)
    plots = make_plots(contract.task, data.y_holdout, pred, contract.classes, importance, out)
    html, markdown = render_report(
        ReportData(
            model_name=s.project.name,
            run_id=s.run_id,
            task=contract.task,
            target=contract.target,
            created_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            data_summary=DataSummary(
                rows=len(data.frame),
                train_rows=len(data.train),
                holdout_rows=len(data.holdout),
                columns=len(contract.features),
                fingerprint=s.tags[f"{TAG_PREFIX}data_fingerprint"][:16],
            ),
            leaderboard=[
                LeaderboardRow(
                    r.name, r.kind, r.metrics, r.evaluation.intervals, r.fit_seconds, r.trials
                )
                for r in results
            ],
            chosen=best.name,
            gate=gate,
            evaluation=best.evaluation,
            plots=plots,
            importance=importance,
            decision=_decision(contract, best),
            findings=findings,
        ),
        out,
    )
    tracking.log_files(plots.values(), "plots")
    tracking.log_files([html, markdown], "report")
    return html


@dataclass(frozen=True)
class _Registered:
    version: str
    alias: str | None
    serving_format: str
    serving_fallback: str


def _register(s: _Session, best: ModelResult, gate: GateDecision) -> _Registered:
    """Register ``best`` with its serving artifact and give it an alias.

    The artifact is built (and parity-checked) before the version exists, so a build
    failure registers nothing; a failure after the version is created deletes it again.
    """
    project, contract = s.project, s.contract
    audit = AuditLog(project.resolve(project.registry.audit_log))
    registry = ModelRegistry(s.client, project.name, audit)
    registry.reconcile()  # an earlier crash mid-move is settled before aliases are read
    meta = ModelMeta(
        name=project.name,
        task=contract.task,
        target=contract.target,
        target_type=contract.target_spec.type,
        classes=tuple(contract.classes),
        candidate=best.name,
        params={k: v for k, v in best.params.items() if isinstance(v, int | float | str | bool)},
        metrics={k: v for k, v in best.metrics.items() if math.isfinite(v)},
        run_id=s.run_id,
        data_fingerprint=s.tags[f"{TAG_PREFIX}data_fingerprint"],
        threshold=None if best.threshold is None else best.threshold.value,
    )
    package = ModelPackage(pipeline=best.pipeline, contract=contract, meta=meta)
    s.progress.stage("profiling the training data for monitoring")
    scores = model_scores(best.pipeline, s.data.x_holdout, contract.task)
    profile = reference_profile(
        contract, s.data, scores, best.metrics, model=project.name, threshold=meta.threshold
    )
    with tempfile.TemporaryDirectory(prefix="loopml-serving-") as tmp:
        s.progress.stage("building the serving artifact")
        serving = Path(tmp) / SERVING_ARTIFACT
        manifest = build_serving_artifact(package, s.data.holdout, serving)
        s.progress.stage(f"registering {best.name} as a new version of {project.name}")
        logged = registry.log_model(package)
        version_tags = {
            **s.tags,
            f"{TAG_PREFIX}candidate": best.name,
            SERVING_TAG: SERVING_PENDING,
            **{f"{TAG_PREFIX}metric.{k}": f"{v:.6g}" for k, v in meta.metrics.items()},
            **(
                {}
                if meta.threshold is None
                else {f"{TAG_PREFIX}threshold": f"{meta.threshold:.6g}"}
            ),
        }
        version = registry.register(logged, s.run_id, version_tags)
        before = {CHAMPION: registry.alias(CHAMPION), CHALLENGER: registry.alias(CHALLENGER)}
        try:
            registry.attach_serving_artifact(version, serving)
            attach_profile(registry, version, profile)
            alias = _alias_for_new(project, before)
            if alias is not None:
                registry.move_alias(alias, version, action="register", reason=gate.reason)
        except BaseException:
            # A version without its alias is a half-write; the aliases go back first.
            registry.discard_version(version, restore=before)
            raise
    return _Registered(version, alias, manifest.format, manifest.fallback_reason)


def _alias_for_new(project: ProjectConfig, before: dict[str, str | None]) -> str | None:
    """``champion`` for a first version, else ``challenger`` — unless a rollout is running:
    its challenger keeps the alias (moving it would end the rollout), and the new version
    waits, registered without an alias, for a rollout of its own."""
    if not before[CHAMPION]:
        return CHAMPION
    if running_rollout(project.rollout.state, project.root, project.name) is not None:
        return None
    return CHALLENGER


def _threshold_tag(threshold: float | None) -> dict[str, str]:
    return {} if threshold is None else {f"{TAG_PREFIX}threshold": f"{threshold:.6g}"}


def _decision(contract: Contract, result: ModelResult) -> str | None:
    if result.threshold is None or contract.task != "binary":
        return None
    return result.threshold.describe(contract.classes[1])
