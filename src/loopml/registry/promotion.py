"""``loopml promote`` and ``loopml rollback``: moving ``champion``, gated and audited.

A promotion scores the new version *and* the current champion on the same rows — the
holdout stored with the new version's training run, less the rows the champion trained on
(each version stores the hashes of its training rows), so neither is scored on rows it has
seen — and bootstraps the difference of their metric over shared resamples (a paired
comparison). Each version labels rows at its own decision threshold. The new version must
be better by ``gate.margin`` (relative for error metrics, absolute for bounded scores, as
at registration) with a paired interval that excludes "no better". The decision itself is
the pure :func:`loopml.train.gate.promotion_gate`; ``--force`` overrides it, including
when the two versions cannot be compared at all, and the audit log records that it did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from loopml.config import ProjectConfig, Task
from loopml.errors import ContractError, GateFailed, RegistryError
from loopml.features.pipeline import feature_frame
from loopml.registry.audit import AuditEntry, previous_champion
from loopml.registry.runtime import Runtime
from loopml.registry.store import CHALLENGER, CHAMPION, ModelRegistry
from loopml.registry.verified_runtime import frame_scores, open_runtime
from loopml.train.compare import Comparison, SliceRegression, compare, paired_delta_interval
from loopml.train.evaluate import Evaluation, evaluate, slice_rows
from loopml.train.gate import GateDecision, promotion_gate
from loopml.train.metrics import default_metric, higher_is_better
from loopml.train.split import encode_target, row_hashes

MIN_COMPARE_ROWS = 30


@dataclass(frozen=True)
class PromotionCheck:
    """The promotion gate's verdict on ``version`` against the champion ``current``."""

    version: str
    current: str | None
    decision: GateDecision
    comparison: Comparison | None


@dataclass(frozen=True)
class PromotionResult:
    version: str
    previous: str | None
    decision: GateDecision
    comparison: Comparison | None
    entry: AuditEntry


def promote(
    project: ProjectConfig, registry: ModelRegistry, version: str, *, reason: str, force: bool
) -> PromotionResult:
    """Move ``champion`` to ``version`` if it beats the current champion (or ``force``)."""
    check = check_promotion(project, registry, version, force=force)
    return apply_promotion(registry, check, reason=reason)


def check_promotion(
    project: ProjectConfig, registry: ModelRegistry, version: str, *, force: bool
) -> PromotionCheck:
    """The gate alone: compare ``version`` with the champion on its holdout; raises
    :class:`GateFailed` when it does not pass (and ``force`` does not override)."""
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
        try:
            comparison = compare_on_holdout(project, registry, target.version, current)
        except (GateFailed, ContractError) as exc:
            if not force:
                raise
            decision = GateDecision(True, "", 0.0, f"forced: {exc.headline}", forced=True)
        else:
            decision = promotion_gate(comparison, metric=comparison.metric, force=force)
    if not decision.passed:
        raise GateFailed(
            f"version {target.version} does not beat champion {current}; champion unchanged",
            detail=decision.reason,
            fix="train a better model, or pass --force with a --reason to override "
            "(the override is recorded in the audit log)",
        )
    return PromotionCheck(target.version, current, decision, comparison)


def apply_promotion(
    registry: ModelRegistry,
    check: PromotionCheck,
    *,
    reason: str,
    actor: str | None = None,
    rollout_id: str | None = None,
) -> PromotionResult:
    """Move ``champion`` to a version that passed :func:`check_promotion` (its challenger
    alias, if it had it, is dropped: it is the champion now)."""
    entry = registry.move_alias(
        CHAMPION, check.version, action="promote",
        reason=f"{reason} ({check.decision.reason})", forced=check.decision.forced,
        actor=actor, rollout_id=rollout_id,
    )  # fmt: skip
    if registry.alias(CHALLENGER) == check.version:
        registry.drop_alias(
            CHALLENGER, reason=f"version {check.version} became champion", actor=actor,
            rollout_id=rollout_id,
        )  # fmt: skip
    return PromotionResult(check.version, check.current, check.decision, check.comparison, entry)


def rollback(registry: ModelRegistry, *, reason: str, actor: str | None = None) -> AuditEntry:
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
    return registry.move_alias(CHAMPION, previous, action="rollback", reason=reason, actor=actor)


def compare_on_holdout(
    project: ProjectConfig, registry: ModelRegistry, new: str, old: str
) -> Comparison:
    """Evaluate ``new`` and ``old`` on ``new``'s holdout and compare them, paired.

    Both are scored through their verified serving artifacts (no unpickling unless an
    artifact is a pickle and the project trusts pickles), after their package files were
    checked against the sha256 recorded at registration."""
    new_pkg, old_pkg = _verified(project, registry, new), _verified(project, registry, old)
    _check_comparable(new_pkg, old_pkg, new, old)
    holdout, note = _unseen_by(registry, old_pkg, registry.load_holdout(new_pkg.meta.run_id), old)
    contract = new_pkg.contract
    metric = project.gate.metric or default_metric(contract.task)
    y = encode_target(holdout[contract.target], contract)
    new_pred = _scores(new_pkg, holdout)
    old_pred = _scores(old_pkg, holdout)
    thresholds = (new_pkg.meta.threshold, old_pkg.meta.threshold)
    delta = paired_delta_interval(
        contract.task, y, new_pred, old_pred, metric=metric,
        n_classes=len(contract.classes), resamples=project.train.bootstrap,
        seed=project.train.seed, thresholds=thresholds,
    )  # fmt: skip
    comparison = compare(
        _evaluate(project, new_pkg, holdout, y, new_pred, thresholds[0]),
        _evaluate(project, new_pkg, holdout, y, old_pred, thresholds[1]),
        metric,
        slice_tolerance=project.gate.slice_tolerance,
        delta_interval=delta,
        margin=project.gate.margin,
    )
    comparison = replace(comparison, reason=f"{comparison.reason}; {note}")
    scores = _PairedScores(contract.task, len(contract.classes), y, new_pred, old_pred, thresholds)
    confirmed = tuple(
        r for r in comparison.slice_regressions
        if _significantly_worse(project, holdout, r, scores, metric)
    )  # fmt: skip
    return replace(comparison, slice_regressions=confirmed)


@dataclass(frozen=True)
class _PairedScores:
    """Both versions' scores on the same holdout rows."""

    task: Task
    n_classes: int
    y: np.ndarray
    new: np.ndarray
    old: np.ndarray
    thresholds: tuple[float | None, float | None] = (None, None)


def _significantly_worse(
    project: ProjectConfig,
    holdout: pd.DataFrame,
    regression: SliceRegression,
    scores: _PairedScores,
    metric: str,
) -> bool:
    """A slice blocks a promotion only if it is worse beyond the tolerance *and* the paired
    interval of its difference excludes zero: small slices are noisy, and a gate that
    cries wolf on noise gets forced past until nobody reads it."""
    rows = dict(slice_rows(holdout[regression.column], 1, len(holdout)))
    mask = rows.get(regression.value)
    if mask is None:
        return True
    delta = paired_delta_interval(
        scores.task, scores.y[mask], scores.new[mask], scores.old[mask], metric=metric,
        n_classes=scores.n_classes, resamples=project.train.bootstrap, seed=project.train.seed,
        thresholds=scores.thresholds,
    )  # fmt: skip
    if delta is None or math.isnan(delta.low):
        return True  # no interval: keep the conservative point-estimate verdict
    return delta.high < 0 if higher_is_better(metric) else delta.low > 0


def _verified(project: ProjectConfig, registry: ModelRegistry, version: str) -> Runtime:
    """A version's serving runtime, its package and artifact checked, parity confirmed."""
    registry.verify_package(version)
    cache = project.resolve(project.serve.cache_dir)
    runtime = open_runtime(registry, version, cache, trust_pickle=project.serve.trust_pickle)
    runtime.check_parity()
    return runtime


def _check_comparable(new: Runtime, old: Runtime, new_v: str, old_v: str) -> None:
    if new.meta.task != old.meta.task or new.meta.classes != old.meta.classes:
        raise GateFailed(
            f"versions {new_v} and {old_v} cannot be compared",
            detail=f"task/classes differ: {new.meta.task} {list(new.meta.classes)} vs "
            f"{old.meta.task} {list(old.meta.classes)}",
            fix="pass --force with a --reason to promote anyway",
        )
    needed = {spec.name for spec in old.contract.features}
    missing = sorted(needed - set(new.contract.names))
    if missing:
        raise GateFailed(
            f"champion {old_v} needs columns the holdout of {new_v} lacks: {', '.join(missing)}",
            fix="pass --force with a --reason to promote anyway",
        )


def _unseen_by(
    registry: ModelRegistry, champion: Runtime, holdout: pd.DataFrame, version: str
) -> tuple[pd.DataFrame, str]:
    """The holdout rows the champion did not train on, and a note saying how many."""
    trained = registry.load_train_rows(champion.meta.run_id)
    if trained is None:
        return holdout, (
            f"compared on all {len(holdout):,} holdout rows (champion {version} did not "
            "record its training rows; some may be among them, which favours it)"
        )
    fresh = ~np.isin(row_hashes(holdout, champion.contract), trained)
    seen = int((~fresh).sum())
    if int(fresh.sum()) < MIN_COMPARE_ROWS:
        raise GateFailed(
            f"only {int(fresh.sum())} of the {len(holdout):,} holdout rows were not used to "
            f"train champion {version}: too few to compare the two versions",
            detail=f"{seen:,} holdout rows are among the champion's training rows",
            fix="train the new version on a table with rows the champion has not seen, or "
            "pass --force with a --reason",
        )
    kept = holdout[fresh] if seen else holdout
    return kept, (
        f"compared on {len(kept):,} holdout rows neither version trained on"
        + (f" ({seen:,} the champion trained on left out)" if seen else "")
    )


def _scores(runtime: Runtime, holdout: pd.DataFrame) -> np.ndarray:
    return frame_scores(runtime, feature_frame(holdout, runtime.contract))


def _evaluate(
    project: ProjectConfig,
    package: Runtime,
    holdout: pd.DataFrame,
    y: np.ndarray,
    pred: np.ndarray,
    threshold: float | None,
) -> Evaluation:
    contract = package.contract
    return evaluate(
        contract.task,
        y,
        pred,
        classes=contract.classes,
        frame=holdout,
        slice_columns=contract.categorical_features,
        bootstrap=0,  # the paired interval above is what decides
        seed=project.train.seed,
        min_slice_rows=project.gate.min_slice_rows,
        threshold=threshold,
    )
