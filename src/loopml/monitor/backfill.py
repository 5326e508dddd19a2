"""``loopml monitor profile VERSION``: a reference profile for a version that has none.

The version's own package (pipeline and contract) scores the holdout of the project's
training table, split exactly as ``loopml train`` splits it (same settings, same seed),
so the profile is what training would have stored. The table must be the one the version
was trained on; its fingerprint is compared with the version's and a mismatch is refused.
"""

from __future__ import annotations

from typing import Any, Protocol

from loopml.config import ProjectConfig
from loopml.data.sources import fingerprint
from loopml.errors import RegistryError
from loopml.features.pipeline import feature_frame
from loopml.monitor.profile_store import attach_profile
from loopml.monitor.reference import build_profile
from loopml.registry.store import TAG_PREFIX, open_registry

__all__ = ["rebuild_profile"]


class Progress(Protocol):
    def stage(self, description: str, total: int | None = None) -> None: ...


def rebuild_profile(
    project: ProjectConfig, version: str, *, progress: Progress | None = None
) -> dict[str, Any]:
    """Build and attach the profile of ``version``; returns a summary for the CLI."""
    from loopml.project import check_table
    from loopml.train.evaluate import model_scores
    from loopml.train.metrics import compute_metrics
    from loopml.train.split import encode_target, split_holdout

    registry = open_registry(project)
    info = registry.version(version)
    if progress is not None:
        progress.stage("reading the training table")
    frame, _, _ = check_table(project)
    expected = info.tags.get(f"{TAG_PREFIX}data_fingerprint")
    if expected and fingerprint(frame) != expected:
        raise RegistryError(
            f"the project's table is not the one version {info.version} was trained on",
            detail=f"fingerprint {fingerprint(frame)[:16]}, the version's {expected[:16]}",
            fix="point data.source at the training table of that version, or retrain",
        )
    if progress is not None:
        progress.stage(f"profiling version {info.version}")
    package = registry.load_package(info.version)
    contract = package.contract
    train, holdout = split_holdout(frame, contract, project.split)
    x_holdout = feature_frame(holdout, contract)
    y_holdout = encode_target(holdout[contract.target], contract)
    scores = model_scores(package.pipeline, x_holdout, contract.task)
    metrics = compute_metrics(contract.task, y_holdout, scores, len(contract.classes))
    profile = build_profile(
        contract, feature_frame(train, contract), scores, y_holdout, metrics,
        model=project.name,
        times=train[contract.time_column] if contract.time_column else None,
        holdout_features=x_holdout,
    )  # fmt: skip
    attach_profile(registry, info.version, profile)
    return {
        "version": info.version,
        "features": len(profile.features),
        "train_rows": profile.train_rows,
        "holdout_rows": profile.holdout_rows,
    }
