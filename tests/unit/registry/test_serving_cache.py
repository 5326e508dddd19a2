"""Attaching a serving artifact to a version and fetching it into the local cache, through
:class:`ModelRegistry` over an in-memory stand-in for MLflow's client (artifacts live in a
folder, as with MLflow's local artifact store)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from loopml.errors import RegistryError
from loopml.registry.artifact import build_serving_artifact
from loopml.registry.audit import AuditLog
from loopml.registry.manifest import MANIFEST_FILE, sha256_file
from loopml.registry.runtime import load_runtime
from loopml.registry.store import (
    SERVING_DIFF_TAG,
    SERVING_ROWS_TAG,
    SERVING_SHA_TAG,
    SERVING_TAG,
    ModelRegistry,
)
from tests.unit.registry.models import package

pytestmark = pytest.mark.unit


class FakeClient:
    """The handful of MlflowClient calls the serving-artifact methods make."""

    def __init__(self, store: Path, tags: dict[str, str] | None = None) -> None:
        self.store = store
        self.tags: dict[str, str] = dict(tags or {})
        self.downloads = 0

    def search_model_versions(self, query: str) -> list[Any]:
        return [
            SimpleNamespace(
                name="toy", version="1", run_id="run1", creation_timestamp=0, tags=self.tags
            )
        ]

    def get_registered_model(self, name: str) -> Any:
        return SimpleNamespace(aliases={})

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str) -> None:
        shutil.copytree(local_dir, self.store / run_id / artifact_path, dirs_exist_ok=True)

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.tags[key] = value

    def download_artifacts(self, run_id: str, path: str, dst_path: str) -> str:
        self.downloads += 1
        target = Path(dst_path) / path
        shutil.copytree(self.store / run_id / path, target, symlinks=True)
        return str(target)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pkg, holdout = package("lightgbm", "binary")
    folder = tmp_path_factory.mktemp("built") / "serving"
    build_serving_artifact(pkg, holdout, folder)
    return folder


def attached(tmp_path: Path, artifact: Path) -> tuple[ModelRegistry, FakeClient]:
    client = FakeClient(tmp_path / "store", {SERVING_TAG: "pending"})
    registry = ModelRegistry(client, "toy", AuditLog(tmp_path / "audit.jsonl"))
    registry.attach_serving_artifact("1", artifact)
    return registry, client


def test_attach_logs_the_folder_and_tags_the_version(tmp_path: Path, artifact: Path) -> None:
    registry, client = attached(tmp_path, artifact)
    stored = tmp_path / "store" / "run1" / "serving"
    assert sorted(p.name for p in stored.iterdir()) == sorted(p.name for p in artifact.iterdir())
    assert client.tags[SERVING_TAG] == "onnx"
    assert client.tags[SERVING_SHA_TAG] == sha256_file(artifact / MANIFEST_FILE)
    assert float(client.tags[SERVING_DIFF_TAG]) <= 1e-5
    assert int(client.tags[SERVING_ROWS_TAG]) == 100
    assert registry.version("1").serving_format == "onnx"


def test_fetch_downloads_once_then_reuses_the_verified_copy(tmp_path: Path, artifact: Path) -> None:
    registry, client = attached(tmp_path, artifact)
    cache = tmp_path / "cache"
    folder = registry.fetch_serving_artifact("1", cache)
    assert folder == (cache / "toy" / "1").resolve()
    assert load_runtime(folder, manifest_sha256=client.tags[SERVING_SHA_TAG]).version == "1"
    assert registry.fetch_serving_artifact("1", cache) == folder
    assert client.downloads == 1
    assert sorted(p.name for p in (cache / "toy").iterdir()) == ["1"]  # no temp leftovers


def test_a_tampered_cached_copy_is_downloaded_again(tmp_path: Path, artifact: Path) -> None:
    registry, client = attached(tmp_path, artifact)
    cache = tmp_path / "cache"
    folder = registry.fetch_serving_artifact("1", cache)
    (folder / "model.onnx").write_bytes(b"not a model")
    again = registry.fetch_serving_artifact("1", cache)
    assert client.downloads == 2
    assert sha256_file(again / "model.onnx") == sha256_file(artifact / "model.onnx")


def test_a_store_copy_that_does_not_match_the_tag_is_refused(
    tmp_path: Path, artifact: Path
) -> None:
    registry, client = attached(tmp_path, artifact)
    client.tags[SERVING_SHA_TAG] = "0" * 64
    with pytest.raises(RegistryError, match="corrupt"):
        registry.fetch_serving_artifact("1", tmp_path / "cache")
    assert not (tmp_path / "cache" / "toy" / "1").exists()


def test_a_version_without_an_artifact_says_how_to_build_one(tmp_path: Path) -> None:
    client = FakeClient(tmp_path / "store", {SERVING_TAG: "pending"})
    registry = ModelRegistry(client, "toy", AuditLog(tmp_path / "audit.jsonl"))
    with pytest.raises(RegistryError, match="no serving artifact") as info:
        registry.fetch_serving_artifact("1", tmp_path / "cache")
    assert "loopml models build-artifact 1" in info.value.fix


def test_a_cache_folder_that_escapes_the_root_is_refused(tmp_path: Path, artifact: Path) -> None:
    registry, client = attached(tmp_path, artifact)
    cache, outside = tmp_path / "cache", tmp_path / "elsewhere"
    cache.mkdir()
    outside.mkdir()
    os.symlink(outside, cache / "toy")
    with pytest.raises(RegistryError, match="outside the cache"):
        registry.fetch_serving_artifact("1", cache)
    assert list(outside.iterdir()) == []
    assert client.downloads == 0


def test_a_download_holding_a_symlink_is_refused(tmp_path: Path, artifact: Path) -> None:
    registry, _ = attached(tmp_path, artifact)
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve me")
    os.symlink(secret, tmp_path / "store" / "run1" / "serving" / "extra.txt")
    with pytest.raises(RegistryError, match="symbolic link"):
        registry.fetch_serving_artifact("1", tmp_path / "cache")
    assert not (tmp_path / "cache" / "toy" / "1").exists()


def test_files_the_manifest_does_not_list_are_dropped(tmp_path: Path, artifact: Path) -> None:
    registry, _ = attached(tmp_path, artifact)
    (tmp_path / "store" / "run1" / "serving" / "model.joblib").write_bytes(b"old build")
    folder = registry.fetch_serving_artifact("1", tmp_path / "cache")
    assert not (folder / "model.joblib").exists()
    assert (folder / "model.onnx").is_file()
