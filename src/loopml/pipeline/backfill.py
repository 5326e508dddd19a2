"""``loopml monitor profile VERSION``: a reference profile for a version that has none.

The version's verified serving artifact (its ONNX graph, or skops; a pickle only with the
trust flag) scores the holdout of the project's training table, after its package files
were checked against the sha256 recorded at registration — nothing is unpickled from an
unverified file. The table is prepared exactly as ``loopml train`` prepares it (the same
steps, the same settings, the same seed), so the profile is what training would have
stored (the artifact reproduces the pipeline within 1e-5). The table must be the one the
version was trained on; its fingerprint is compared with the version's and a mismatch is
refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from loopml.config import ProjectConfig
from loopml.data.check import check_table
from loopml.data.sources import fingerprint
from loopml.errors import RegistryError
from loopml.monitor.profile_store import attach_profile
from loopml.pipeline.prepare import prepare, reference_profile
from loopml.progress import Progress, progress_or_silent
from loopml.registry.store import TAG_PREFIX, open_registry
from loopml.registry.verified_runtime import frame_scores, open_runtime
from loopml.train.metrics import compute_metrics

__all__ = ["ProfileSummary", "rebuild_profile"]


@dataclass(frozen=True)
class ProfileSummary:
    """What was profiled: the version, its features, and the rows on each side."""

    version: str
    features: int
    train_rows: int
    holdout_rows: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def rebuild_profile(
    project: ProjectConfig, version: str, *, progress: Progress | None = None
) -> ProfileSummary:
    """Build and attach the profile of ``version``."""
    report = progress_or_silent(progress)
    registry = open_registry(project)
    info = registry.version(version)
    report.stage("reading the training table")
    frame, _, _ = check_table(project)
    expected = info.tags.get(f"{TAG_PREFIX}data_fingerprint")
    if expected and fingerprint(frame) != expected:
        raise RegistryError(
            f"the project's table is not the one version {info.version} was trained on",
            detail=f"fingerprint {fingerprint(frame)[:16]}, the version's {expected[:16]}",
            fix="point data.source at the training table of that version, or retrain",
        )
    report.stage(f"profiling version {info.version}")
    registry.verify_package(info.version)
    cache = project.resolve(project.serve.cache_dir)
    runtime = open_runtime(registry, info.version, cache, trust_pickle=project.serve.trust_pickle)
    runtime.check_parity()
    contract = runtime.contract
    data = prepare(frame, contract, project)
    scores = frame_scores(runtime, data.x_holdout)
    threshold = runtime.meta.threshold
    metrics = compute_metrics(
        contract.task, data.y_holdout, scores, len(contract.classes), threshold=threshold
    )
    profile = reference_profile(
        contract, data, scores, metrics, model=project.name, threshold=threshold
    )
    attach_profile(registry, info.version, profile)
    return ProfileSummary(
        info.version, len(profile.features), profile.train_rows, profile.holdout_rows
    )
