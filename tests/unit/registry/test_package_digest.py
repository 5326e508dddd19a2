"""Package digests: recorded at registration, checked on the bytes that are loaded.

The pure part (hashing, the tag, the check) on files in a temp folder; the registry part
against a real MLflow store (SQLite in a temp folder), where a planted pickle must never
run: the package's ``pipeline.joblib`` is replaced in the artifact store by a pickle that
creates a marker file when it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from loopml.config import DataConfig, ProjectConfig, SourceConfig
from loopml.errors import RegistryError
from loopml.registry.audit import AuditLog
from loopml.registry.package import PIPELINE_FILE, package_from_files, write_package
from loopml.registry.package_digest import (
    PACKAGE_FILES,
    PACKAGE_SHA_TAG,
    digest_tag,
    package_digests,
    read_checked,
    recorded_digests,
)
from loopml.registry.store import ModelRegistry
from loopml.train import tracking
from tests.mlflow_uris import mlflow_uris_restored
from tests.poison import poisoned_pickle
from tests.unit.registry.models import package

pytestmark = pytest.mark.unit

WHERE = "version 1 of 'toy'"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pkg, _ = package("linear", "binary")
    return write_package(pkg, tmp_path_factory.mktemp("package") / "package")


def test_every_package_file_gets_its_sha256(written: Path) -> None:
    digests = package_digests(written)
    assert set(digests) == set(PACKAGE_FILES) == {"pipeline.joblib", "contract.yaml", "model.json"}
    for name, digest in digests.items():
        assert digest == hashlib.sha256((written / name).read_bytes()).hexdigest()
    assert recorded_digests({PACKAGE_SHA_TAG: digest_tag(digests)}, WHERE) == digests
    assert len(digest_tag(digests)) < 300  # far under MLflow's tag limit


def test_matching_files_are_read_and_parse_back_into_the_package(written: Path) -> None:
    contents = read_checked(written, package_digests(written), WHERE)
    assert contents[PIPELINE_FILE] == (written / PIPELINE_FILE).read_bytes()
    restored = package_from_files(contents)
    assert restored.meta.candidate == "linear" and restored.contract.target == "y"
    assert hasattr(restored.pipeline, "predict_proba")


def test_a_changed_file_is_refused_naming_the_file_both_digests_and_the_fix(
    written: Path, tmp_path: Path
) -> None:
    digests = package_digests(written)
    marker = tmp_path / "ran"
    copy = tmp_path / "package"
    copy.mkdir()
    for name in PACKAGE_FILES:
        (copy / name).write_bytes((written / name).read_bytes())
    planted = poisoned_pickle(marker)
    (copy / PIPELINE_FILE).write_bytes(planted)
    with pytest.raises(RegistryError) as info:
        read_checked(copy, digests, WHERE)
    error = info.value
    assert "pipeline.joblib of version 1 of 'toy' does not match the sha256" in error.headline
    assert "nothing was loaded" in error.headline
    assert digests[PIPELINE_FILE] in error.detail
    assert hashlib.sha256(planted).hexdigest() in error.detail
    assert "restore the original file" in error.fix and "loopml train" in error.fix
    assert not marker.exists()


def test_a_missing_or_linked_file_is_refused(written: Path, tmp_path: Path) -> None:
    digests = package_digests(written)
    with pytest.raises(RegistryError, match="model.json of version 1 of 'toy' is missing"):
        read_checked(tmp_path, {"model.json": digests["model.json"]}, WHERE)
    (tmp_path / "model.json").symlink_to(written / "model.json")
    with pytest.raises(RegistryError, match="symbolic link"):
        read_checked(tmp_path, {"model.json": digests["model.json"]}, WHERE)


def test_no_tag_is_a_legacy_version_and_a_damaged_tag_is_an_error() -> None:
    assert recorded_digests({}, WHERE) is None
    good = {name: "a" * 64 for name in PACKAGE_FILES}
    damaged = [
        "not json",
        json.dumps(["a"]),
        json.dumps({k: v for k, v in good.items() if k != PIPELINE_FILE}),
        json.dumps(good | {PIPELINE_FILE: "A" * 64}),
    ]
    for raw in damaged:
        with pytest.raises(RegistryError, match="is not valid; nothing was loaded"):
            recorded_digests({PACKAGE_SHA_TAG: raw}, WHERE)


# -- the registry: digests travel with the version -------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[ModelRegistry]:
    """One registered version of a linear model, as ``loopml train`` registers it."""
    project = ProjectConfig(
        name="toy",
        data=DataConfig(source=SourceConfig(path="table.csv"), target="y", task="binary"),
        root=tmp_path,
    )
    with mlflow_uris_restored():
        store = tracking.resolve_store(project)
        client = tracking.connect(store)
        experiment = tracking.ensure_experiment(client, store)
        registry = ModelRegistry(client, "toy", AuditLog(tmp_path / "audit.jsonl"))
        pkg, _ = package("linear", "binary")
        with tracking.tracked_run(client, experiment, "linear", {}) as run_id:
            pkg = replace(pkg, meta=replace(pkg.meta, run_id=run_id))
            assert registry.register(registry.log_model(pkg), run_id, {}) == "1"
        yield registry


def _stored_pipeline(root: Path) -> Path:
    (found,) = [p for p in root.rglob(PIPELINE_FILE) if "package" in p.parts]
    return found


def test_registration_records_the_digests_on_the_version(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    tags = registry.version("1").tags
    digests = recorded_digests(tags, WHERE)
    assert digests is not None
    stored = _stored_pipeline(tmp_path)
    assert digests[PIPELINE_FILE] == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert registry.verify_package("1") is True
    assert registry.load_package("1", trust_pickle=True).meta.candidate == "linear"


def test_a_verified_pipeline_is_still_a_pickle_and_needs_the_trust_flag(
    registry: ModelRegistry,
) -> None:
    with pytest.raises(RegistryError) as info:
        registry.load_package("1", trust_pickle=False)
    assert "unpickling its pipeline.joblib" in info.value.headline
    assert "--trust-pickle" in info.value.fix


def test_a_planted_pickle_never_runs_even_when_pickles_are_trusted(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    planted = poisoned_pickle(marker)
    _stored_pipeline(tmp_path).write_bytes(planted)
    for trust in (True, False):
        with pytest.raises(RegistryError, match="does not match the sha256") as info:
            registry.load_package("1", trust_pickle=trust)
        assert hashlib.sha256(planted).hexdigest() in info.value.detail
    with pytest.raises(RegistryError, match="does not match the sha256"):
        registry.verify_package("1")
    assert not marker.exists()


def test_a_version_without_digests_is_refused_unless_trusted_then_warned(
    registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    registry.client.delete_model_version_tag("toy", "1", PACKAGE_SHA_TAG)
    with pytest.raises(RegistryError) as info:
        registry.load_package("1", trust_pickle=False)
    assert "records no sha256" in info.value.headline and "retrain" in info.value.fix
    with caplog.at_level(logging.WARNING, logger="loopml.registry"):
        assert registry.load_package("1", trust_pickle=True).meta.candidate == "linear"
        assert registry.verify_package("1") is False
    assert "loaded unverified" in caplog.text and "not checked" in caplog.text
