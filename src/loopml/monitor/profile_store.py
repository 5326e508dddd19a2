"""Where a version's reference profile lives: its MLflow run, under ``monitor/``.

The profile is logged to the version's training run (``monitor/profile.json``) and the
version is tagged with its sha256 (``loopml.profile_sha256``). Readers keep a verified
copy in a local cache and download again only when the tag changes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from loopml.errors import RegistryError, TrackingError
from loopml.files import write_text_atomic
from loopml.monitor.profile import PROFILE_FILE, ReferenceProfile
from loopml.registry.manifest import sha256_bytes
from loopml.registry.serving_cache import contained
from loopml.registry.store import TAG_PREFIX, ModelRegistry

__all__ = ["PROFILE_ARTIFACT", "PROFILE_SHA_TAG", "attach_profile", "has_profile", "load_profile"]

PROFILE_ARTIFACT = "monitor"
PROFILE_SHA_TAG = f"{TAG_PREFIX}profile_sha256"


def attach_profile(registry: ModelRegistry, version: str, profile: ReferenceProfile) -> str:
    """Log ``profile`` to the version's run and tag the version; returns the sha256."""

    info = registry.version(version)
    text = profile.to_json()
    sha = sha256_bytes(text.encode())
    with tempfile.TemporaryDirectory(prefix="loopml-profile-") as tmp:
        path = Path(tmp) / PROFILE_FILE
        path.write_text(text, encoding="utf-8")
        try:
            registry.client.log_artifact(info.run_id, str(path), artifact_path=PROFILE_ARTIFACT)
            registry.client.set_model_version_tag(registry.name, info.version, PROFILE_SHA_TAG, sha)
        except MlflowException as exc:
            raise TrackingError(
                f"cannot store the reference profile of version {info.version}",
                detail=str(exc).splitlines()[0][:300],
                fix="check that the tracking store and its artifact store are reachable",
            ) from exc
    return sha


def has_profile(tags: dict[str, str]) -> bool:
    return bool(tags.get(PROFILE_SHA_TAG))


def load_profile(registry: ModelRegistry, version: str, cache_root: Path) -> ReferenceProfile:
    """The version's profile, from ``cache_root`` when the cached copy's sha matches."""
    info = registry.version(version)
    sha = info.tags.get(PROFILE_SHA_TAG)
    if not sha:
        raise RegistryError(
            f"version {info.version} of {registry.name!r} has no reference profile",
            detail="versions trained before loopml 0.1 monitoring have none",
            fix=f"run 'loopml monitor profile {info.version}' to build it from the "
            "project's training table",
        )
    root = cache_root.resolve()
    cached = contained(root, root / registry.name / info.version / PROFILE_FILE)
    text = _read_if_matches(cached, sha)
    if text is None:
        text = _download(registry, info.run_id, info.version)
        if sha256_bytes(text.encode()) != sha:
            raise RegistryError(
                f"the reference profile of version {info.version} does not match its sha256",
                detail=f"expected {sha}",
                fix=f"rebuild it with 'loopml monitor profile {info.version}'",
            )
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cached, text)
    return ReferenceProfile.from_json(text)


def _read_if_matches(path: Path, sha: str) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text if sha256_bytes(text.encode()) == sha else None


def _download(registry: ModelRegistry, run_id: str, version: str) -> str:
    client: Any = registry.client
    with tempfile.TemporaryDirectory(prefix="loopml-profile-") as tmp:
        try:
            local = client.download_artifacts(run_id, f"{PROFILE_ARTIFACT}/{PROFILE_FILE}", tmp)
            return Path(local).read_text(encoding="utf-8")
        except (MlflowException, OSError) as exc:
            raise RegistryError(
                f"cannot download the reference profile of version {version}",
                detail=str(exc).splitlines()[0][:300],
                fix=f"check the artifact store, or rebuild it with 'loopml monitor profile "
                f"{version}'",
            ) from exc
