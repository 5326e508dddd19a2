"""Promotion and rollback against a real MLflow registry (SQLite store in a temp folder).

Three versions are registered once per module, the way ``loopml train`` registers them
(package, holdout artifact, model version): 1 is a prior-only dummy, 2 a logistic
regression that beats it on the same table, 3 a multiclass model that cannot be compared
with either. Each test starts with no alias set and an empty audit log of its own.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from loopml.config import DataConfig, ProjectConfig, SourceConfig, TrainConfig
from loopml.errors import GateFailed, RegistryError
from loopml.registry.artifact import build_serving_artifact
from loopml.registry.audit import AuditEntry, AuditLog
from loopml.registry.promotion import promote, rollback
from loopml.registry.store import CHALLENGER, CHAMPION, HOLDOUT_ARTIFACT, ModelRegistry
from loopml.train import tracking
from tests.mlflow_uris import mlflow_uris_restored
from tests.unit.registry.models import package

pytestmark = pytest.mark.unit

NAME = "toy"
DUMMY, LINEAR, MULTICLASS = "1", "2", "3"


def make_project(root: Path) -> ProjectConfig:
    return ProjectConfig(
        name=NAME,
        data=DataConfig(source=SourceConfig(path="table.csv"), target="y", task="binary"),
        train=TrainConfig(bootstrap=50),
        root=root,
    )


def register(
    client: Any, experiment: str, registry: ModelRegistry, candidate: str, task: str
) -> str:
    """One version as ``loopml train`` leaves it: package, holdout, model version and
    serving artifact (what promotion scores with)."""
    pkg, holdout = package(candidate, task, seed=0)  # type: ignore[arg-type]
    with tracking.tracked_run(client, experiment, candidate, {}) as run_id:
        pkg = replace(pkg, meta=replace(pkg.meta, name=NAME, run_id=run_id))
        tracking.log_parquet(holdout, HOLDOUT_ARTIFACT)
        version = registry.register(registry.log_model(pkg), run_id, {})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "serving"
        build_serving_artifact(pkg, holdout, folder)
        registry.attach_serving_artifact(version, folder)
    return version


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("promotion")
    project = make_project(root)
    store = tracking.resolve_store(project)
    with mlflow_uris_restored():  # this fixture outlives the tests' own restoring
        client = tracking.connect(store)
        experiment = tracking.ensure_experiment(client, store)
        registry = ModelRegistry(client, NAME, AuditLog(root / "setup-audit.jsonl"))
        versions = [
            register(client, experiment, registry, "dummy", "binary"),
            register(client, experiment, registry, "linear", "binary"),
            register(client, experiment, registry, "linear", "multiclass"),
        ]
    assert versions == [DUMMY, LINEAR, MULTICLASS]
    return root


@dataclass(frozen=True)
class Setup:
    project: ProjectConfig
    registry: ModelRegistry

    def audit(self) -> list[AuditEntry]:
        return self.registry.audit.entries(NAME)

    def start_with(self, champion: str, challenger: str | None = None) -> None:
        """Aliases as training leaves them: the first version champion, later challengers."""
        self.registry.move_alias(CHAMPION, champion, action="register", reason="trained")
        if challenger is not None:
            self.registry.move_alias(CHALLENGER, challenger, action="register", reason="trained")


@pytest.fixture
def setup(store_root: Path, tmp_path: Path) -> Setup:
    """The shared store with no alias set and an empty audit log for this test."""
    project = make_project(store_root)
    client = tracking.connect(tracking.resolve_store(project))  # this test's MLflow URIs
    for alias in (CHAMPION, CHALLENGER):
        client.delete_registered_model_alias(NAME, alias)
    return Setup(project, ModelRegistry(client, NAME, AuditLog(tmp_path / "audit.jsonl")))


def test_a_better_version_becomes_champion_and_the_move_is_audited(setup: Setup) -> None:
    setup.start_with(DUMMY, challenger=LINEAR)
    result = promote(setup.project, setup.registry, LINEAR, reason="beats the dummy", force=False)

    assert (result.version, result.previous) == (LINEAR, DUMMY)
    assert result.decision.passed and not result.decision.forced
    assert result.comparison is not None and result.comparison.beats
    assert result.comparison.metric == "roc_auc"
    assert setup.registry.alias(CHAMPION) == LINEAR
    assert setup.registry.alias(CHALLENGER) is None  # the challenger became champion
    moves = [(e.alias, e.action, e.from_version, e.to_version) for e in setup.audit()[2:]]
    assert moves == [
        (CHAMPION, "promote", DUMMY, LINEAR),
        (CHALLENGER, "retire", LINEAR, None),
    ]
    assert result.entry == setup.audit()[2]
    assert result.entry.reason.startswith("beats the dummy (") and not result.entry.forced


def test_a_worse_version_is_refused_and_nothing_moves(setup: Setup) -> None:
    setup.start_with(LINEAR)
    before = setup.audit()
    with pytest.raises(GateFailed) as caught:
        promote(setup.project, setup.registry, DUMMY, reason="try", force=False)

    assert caught.value.headline == (
        f"version {DUMMY} does not beat champion {LINEAR}; champion unchanged"
    )
    assert "roc_auc" in caught.value.detail and "--force" in caught.value.fix
    assert setup.registry.alias(CHAMPION) == LINEAR
    assert setup.audit() == before


def test_force_promotes_a_worse_version_and_the_audit_says_so(setup: Setup) -> None:
    setup.start_with(LINEAR)
    result = promote(setup.project, setup.registry, DUMMY, reason="incident 42", force=True)

    assert result.decision.passed and result.decision.forced
    assert result.decision.reason.startswith("forced past the gate: ")
    assert setup.registry.alias(CHAMPION) == DUMMY
    entry = setup.audit()[-1]
    assert (entry.action, entry.from_version, entry.to_version) == ("promote", LINEAR, DUMMY)
    assert entry.forced and entry.reason.startswith("incident 42 (forced past the gate: ")


def test_versions_that_cannot_be_compared_need_force(setup: Setup) -> None:
    setup.start_with(LINEAR)
    with pytest.raises(GateFailed, match="cannot be compared"):
        promote(setup.project, setup.registry, MULTICLASS, reason="try", force=False)
    assert setup.registry.alias(CHAMPION) == LINEAR

    result = promote(setup.project, setup.registry, MULTICLASS, reason="new task", force=True)
    assert result.comparison is None and result.decision.forced
    assert result.decision.reason == (
        f"forced: versions {MULTICLASS} and {LINEAR} cannot be compared"
    )
    assert setup.registry.alias(CHAMPION) == MULTICLASS and setup.audit()[-1].forced


def test_the_first_champion_needs_no_comparison(setup: Setup) -> None:
    result = promote(setup.project, setup.registry, DUMMY, reason="first", force=False)

    assert result.previous is None and result.comparison is None
    assert result.decision.passed and not result.decision.forced
    assert result.decision.reason == "there is no champion yet"
    assert setup.registry.alias(CHAMPION) == DUMMY
    entry = setup.audit()[-1]
    assert (entry.action, entry.from_version, entry.to_version) == ("promote", None, DUMMY)


def test_promoting_the_champion_again_is_an_error(setup: Setup) -> None:
    setup.start_with(LINEAR)
    with pytest.raises(RegistryError, match=f"version {LINEAR} is already the champion"):
        promote(setup.project, setup.registry, LINEAR, reason="again", force=True)
    assert len(setup.audit()) == 1


def test_rollback_restores_the_previous_champions_in_turn(setup: Setup) -> None:
    setup.start_with(DUMMY)
    promote(setup.project, setup.registry, LINEAR, reason="better", force=False)
    promote(setup.project, setup.registry, MULTICLASS, reason="new task", force=True)

    entry = rollback(setup.registry, reason="bad outputs")
    assert (entry.action, entry.from_version, entry.to_version) == ("rollback", MULTICLASS, LINEAR)
    assert entry.reason == "bad outputs" and not entry.forced
    assert setup.registry.alias(CHAMPION) == LINEAR and setup.audit()[-1] == entry

    assert rollback(setup.registry, reason="still bad").to_version == DUMMY
    assert setup.registry.alias(CHAMPION) == DUMMY
    with pytest.raises(RegistryError, match="no previous champion"):
        rollback(setup.registry, reason="once more")


def test_rollback_with_nothing_to_roll_back_is_a_clear_error(setup: Setup) -> None:
    with pytest.raises(RegistryError) as none:
        rollback(setup.registry, reason="oops")
    assert none.value.headline == f"model {NAME!r} has no previous champion to roll back to"
    assert none.value.detail == "current champion: none; see 'loopml audit'"
    assert "loopml promote VERSION" in none.value.fix

    setup.start_with(DUMMY)
    with pytest.raises(RegistryError) as one:
        rollback(setup.registry, reason="oops")
    assert one.value.detail == f"current champion: {DUMMY}; see 'loopml audit'"
    assert setup.registry.alias(CHAMPION) == DUMMY and len(setup.audit()) == 1
