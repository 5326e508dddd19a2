"""``loopml promote`` and ``loopml rollback``: moving ``champion``, gated and audited.

A promotion scores the new version *and* the current champion on the same rows — the
holdout stored with the new version's training run — so the comparison is fair even when
the two were trained on different tables. The decision itself is the pure
:func:`loopml.train.gate.promotion_gate`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from loopml.config import ProjectConfig
from loopml.errors import GateFailed, RegistryError
from loopml.features.pipeline import feature_frame
from loopml.registry.audit import AuditEntry, previous_champion
from loopml.registry.package import ModelPackage
from loopml.registry.store import CHALLENGER, CHAMPION, ModelRegistry
from loopml.train.evaluate import Comparison, Evaluation, compare, evaluate
from loopml.train.gate import GateDecision, promotion_gate
from loopml.train.metrics import default_metric
from loopml.train.split import encode_target

HOLDOUT_ARTIFACT = "data/holdout.parquet"


@dataclass(frozen=True)
class PromotionResult:
    version: str
    previous: str | None
    decision: GateDecision
    comparison: Comparison | None
    entry: AuditEntry | None

    @property
    def moved(self) -> bool:
        return self.entry is not None


def promote(
    project: ProjectConfig, registry: ModelRegistry, version: str, *, reason: str, force: bool
) -> PromotionResult:
    """Move ``champion`` to ``version`` if it beats the current champion (or ``force``)."""
    target = registry.version(version)
    current = registry.alias(CHAMPION)
    if current == target.version:
        raise RegistryError(
            f"version {target.version} is already the champion of {registry.name!r}",
            fix="see 'loopml models'; nothing to do",
        )
    comparison: Comparison | None = None
    if current is None:
        decision = GateDecision(True, "", 0.0, "there is no champion yet")
    else:
        comparison = compare_on_holdout(project, registry, target.version, current)
        decision = promotion_gate(comparison, metric=comparison.metric, force=force)
    if not decision.passed:
        raise GateFailed(
            f"version {target.version} does not beat champion {current}; champion unchanged",
            detail=decision.reason,
            fix="train a better model, or pass --force with a --reason to override "
            "(the override is recorded in the audit log)",
        )
    entry = registry.move_alias(
        CHAMPION, target.version, action="promote",
        reason=_reason(reason, decision), forced=decision.forced,
    )  # fmt: skip
    if registry.alias(CHALLENGER) == target.version:
        registry.drop_alias(CHALLENGER, reason=f"version {target.version} became champion")
    return PromotionResult(target.version, current, decision, comparison, entry)


def rollback(registry: ModelRegistry, *, reason: str) -> AuditEntry:
    """Restore the champion that preceded the current one, according to the audit log."""
    current = registry.alias(CHAMPION)
    previous = previous_champion(registry.audit.entries(registry.name), current)
    if previous is None:
        raise RegistryError(
            f"model {registry.name!r} has no previous champion to roll back to",
            detail=f"current champion: {current or 'none'}; see 'loopml audit'",
            fix="promote a specific version instead: 'loopml promote VERSION --reason ...'",
        )
    registry.version(previous)  # it must still exist
    return registry.move_alias(CHAMPION, previous, action="rollback", reason=reason)


def compare_on_holdout(
    project: ProjectConfig, registry: ModelRegistry, new: str, old: str
) -> Comparison:
    """Evaluate ``new`` and ``old`` on ``new``'s holdout and compare them."""
    new_pkg, old_pkg = registry.load_package(new), registry.load_package(old)
    _check_comparable(new_pkg, old_pkg, new, old)
    holdout = _download_holdout(registry, new_pkg.meta.run_id)
    metric = project.gate.metric or default_metric(new_pkg.meta.task)
    return compare(
        _evaluate(project, new_pkg, holdout, new_pkg),
        _evaluate(project, old_pkg, holdout, new_pkg),
        metric,
        slice_tolerance=project.gate.slice_tolerance,
    )


def _check_comparable(new: ModelPackage, old: ModelPackage, new_v: str, old_v: str) -> None:
    if new.meta.task != old.meta.task or new.meta.classes != old.meta.classes:
        raise GateFailed(
            f"versions {new_v} and {old_v} cannot be compared",
            detail=f"task/classes differ: {new.meta.task} {list(new.meta.classes)} vs "
            f"{old.meta.task} {list(old.meta.classes)}",
            fix="pass --force with a --reason to promote anyway",
        )
    missing = [c for c in old.contract.names if c not in new.contract.names]
    if any(old.contract.column(c).role == "feature" for c in missing):
        raise GateFailed(
            f"champion {old_v} needs columns the holdout of {new_v} lacks: {', '.join(missing)}",
            fix="pass --force with a --reason to promote anyway",
        )


def _download_holdout(registry: ModelRegistry, run_id: str) -> pd.DataFrame:
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="loopml-holdout-") as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=HOLDOUT_ARTIFACT, dst_path=tmp
        )
        return pd.read_parquet(Path(path))


def _evaluate(
    project: ProjectConfig, package: ModelPackage, holdout: pd.DataFrame, reference: ModelPackage
) -> Evaluation:
    contract = reference.contract
    features = feature_frame(holdout, package.contract)
    if contract.task == "regression":
        pred = np.asarray(package.pipeline.predict(features), dtype=float)
    else:
        pred = np.asarray(package.pipeline.predict_proba(features), dtype=float)
    return evaluate(
        contract.task,
        encode_target(holdout[contract.target], contract),
        pred,
        classes=contract.classes,
        frame=holdout,
        slice_columns=contract.categorical_features,
        bootstrap=project.train.bootstrap,
        seed=project.train.seed,
        min_slice_rows=project.gate.min_slice_rows,
    )


def _reason(reason: str, decision: GateDecision) -> str:
    return f"{reason} ({decision.reason})" if decision.reason else reason
