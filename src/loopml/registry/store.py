"""The MLflow model-registry adapter: versions, aliases, and the audit log beside them.

Every alias move goes through :meth:`ModelRegistry.move_alias`: an ``intent`` entry in
the audit log, the move in MLflow, a ``done`` entry. :func:`open_registry` reconciles the
two before anyone reads an alias (:meth:`ModelRegistry.reconcile`), so a crash between the
steps is completed or reported, never a move the log — which ``rollback`` replays — did
not see.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import tempfile
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from loopml.config import ProjectConfig
from loopml.errors import RegistryError, TrackingError
from loopml.registry.audit import (
    Action,
    AuditEntry,
    AuditLog,
    Phase,
    current_actor,
    dangling_intents,
)
from loopml.registry.manifest import MANIFEST_FILE, read_verified, sha256_file
from loopml.registry.package import ModelPackage, package_from_files, write_package
from loopml.registry.package_digest import (
    PACKAGE_SHA_TAG,
    digest_tag,
    loadable_files,
    package_digests,
    read_checked,
    recorded_digests,
    unchecked_warning,
)
from loopml.registry.reconcile import Resolution, resolve
from loopml.registry.serving_cache import fetch_into_cache
from loopml.train import tracking

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
REJECTED_TAG = "loopml.rejected"
"""Set on a version a rollout rolled back, to the reason (guard, value, limit)."""
TAG_PREFIX = "loopml."
MODEL_ARTIFACT = "model"
HOLDOUT_ARTIFACT = "data/holdout.parquet"
TRAIN_ROWS_ARTIFACT = "data/train_rows.parquet"
SERVING_ARTIFACT = "serving"
SERVING_TAG = f"{TAG_PREFIX}serving_artifact"
SERVING_PENDING = "pending"
SERVING_DIFF_TAG = f"{TAG_PREFIX}serving_parity_max_diff"
SERVING_ROWS_TAG = f"{TAG_PREFIX}serving_parity_rows"
SERVING_FALLBACK_TAG = f"{TAG_PREFIX}serving_fallback"
# The whole loopml package travels with every MLflow model (models-from-code needs it).
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
SERVING_SHA_TAG = f"{TAG_PREFIX}serving_sha256"
# What loading a version needs, pinned to the versions it was trained with: a pipeline
# unpickled under another scikit-learn may fail or, worse, predict differently.
PIP_REQUIREMENTS = (
    "mlflow", "pandas", "numpy", "scikit-learn", "lightgbm", "xgboost-cpu", "joblib", "pyyaml",
    "pydantic",
)  # fmt: skip
log = logging.getLogger("loopml.registry")


@dataclass(frozen=True)
class LoggedModel:
    """A package logged as an MLflow model: its URI and the sha256 of each of its files,
    which :meth:`ModelRegistry.register` must store on the version (``tags``)."""

    uri: str
    digests: dict[str, str]

    @property
    def tags(self) -> dict[str, str]:
        return {PACKAGE_SHA_TAG: digest_tag(self.digests)}


@dataclass(frozen=True)
class VersionInfo:
    """A registered version as ``loopml models`` shows it."""

    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str
    created_ms: int
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def candidate(self) -> str:
        return self.tags.get(f"{TAG_PREFIX}candidate", "?")

    def metric(self, name: str) -> float | None:
        raw = self.tags.get(f"{TAG_PREFIX}metric.{name}")
        return float(raw) if raw not in (None, "", "nan") else None

    @property
    def serving_format(self) -> str | None:
        """``onnx`` / ``skops`` / ``pickle``; None while the version has no serving artifact."""
        value = self.tags.get(SERVING_TAG)
        return None if value in (None, "", SERVING_PENDING) else value


class ModelRegistry:
    """One registered model (``project.name``) in an MLflow registry."""

    def __init__(self, client: Any, name: str, audit: AuditLog) -> None:
        self.client = client
        self.name = name
        self.audit = audit

    # -- reading -------------------------------------------------------------------------
    def versions(self) -> list[VersionInfo]:
        try:
            found = self.client.search_model_versions(f"name='{self.name}'")
            aliases = self._aliases() if found else {}
        except MlflowException as exc:
            raise TrackingError(f"cannot list versions of {self.name!r}", detail=str(exc)) from exc
        infos = (_info(v, aliases.get(str(v.version), ())) for v in found)
        return sorted(infos, key=lambda v: int(v.version))

    def _aliases(self) -> dict[str, tuple[str, ...]]:
        """version -> its aliases (version searches do not return them)."""
        model = self.client.get_registered_model(self.name)
        out: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            out.setdefault(str(version), []).append(alias)
        return {v: tuple(sorted(a)) for v, a in out.items()}

    def version(self, version: str) -> VersionInfo:
        for info in self.versions():
            if info.version == str(version):
                return info
        known = ", ".join(v.version for v in self.versions()) or "none yet"
        raise RegistryError(
            f"model {self.name!r} has no version {version}",
            detail=f"registered versions: {known}",
            fix="see 'loopml models' for the versions and their aliases",
        )

    def alias(self, alias: str) -> str | None:
        """The version behind ``alias``, None if unset; a store failure is an error, never
        "no champion" (that would let a version skip the promotion gate)."""

        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise TrackingError(
                f"cannot read alias {alias!r} of {self.name!r}",
                detail=str(exc),
                fix="check that the tracking store is reachable, then run the command again",
            ) from exc

    def served_version(self, alias: str) -> str:
        """The version behind ``alias``, the one to serve or score with; a clear error when
        the alias is not set."""
        version = self.alias(alias)
        if version is None:
            raise RegistryError(
                f"model {self.name!r} has no {alias!r} version to serve",
                fix="run 'loopml train' (the first version becomes champion), or point "
                "serve.alias at an alias that is set",
            )
        return version

    def load_package(self, version: str, *, trust_pickle: bool) -> ModelPackage:
        """A version's model package, its files checked against the sha256 recorded at
        registration before anything is parsed; ``pipeline.joblib`` is a pickle, loaded
        only if ``trust_pickle`` (see :func:`loopml.registry.package_digest.loadable_files`)."""
        info = self.version(version)
        where = f"version {info.version} of {self.name!r}"
        with tempfile.TemporaryDirectory(prefix=f"loopml-{self.name}-v{info.version}-") as tmp:
            folder = self._download_package(info, Path(tmp))
            contents = loadable_files(folder, info.tags, where, trust_pickle=trust_pickle)
        return package_from_files(contents)

    def verify_package(self, version: str) -> bool:
        """Check a version's package files against the sha256 recorded at registration
        (nothing is parsed); False, with a warning, for a version that recorded none."""
        info = self.version(version)
        where = f"version {info.version} of {self.name!r}"
        expected = recorded_digests(info.tags, where)
        if expected is None:
            log.warning("%s", unchecked_warning(where))
            return False
        with tempfile.TemporaryDirectory(prefix=f"loopml-{self.name}-v{info.version}-") as tmp:
            read_checked(self._download_package(info, Path(tmp)), expected, where)
        return True

    def _download_package(self, info: VersionInfo, tmp: Path) -> Path:
        uri = f"models:/{self.name}/{info.version}"
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp))
        except (MlflowException, OSError) as exc:
            raise RegistryError(
                f"cannot download the model package of version {info.version}",
                detail=str(exc).splitlines()[0][:300],
                fix="check that the artifact store is reachable and holds the version",
            ) from exc
        return Path(local) / "artifacts" / "package"

    def load_holdout(self, run_id: str) -> pd.DataFrame:
        """The holdout rows a training run evaluated on (logged by ``loopml train``)."""

        with tempfile.TemporaryDirectory(prefix="loopml-holdout-") as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=HOLDOUT_ARTIFACT, dst_path=tmp
                )
            except (MlflowException, OSError) as exc:
                raise RegistryError(
                    f"the holdout of run {run_id} is missing from the artifact store",
                    detail=str(exc).splitlines()[0][:300],
                    fix="check the artifact store, or promote with --force and a --reason",
                ) from exc
            return pd.read_parquet(path)

    def load_train_rows(self, run_id: str) -> np.ndarray | None:
        """The row hashes of a run's training rows (``split.row_hashes``), or None for a
        run that did not record them (trained before loopml stored them)."""
        with tempfile.TemporaryDirectory(prefix="loopml-train-rows-") as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=TRAIN_ROWS_ARTIFACT, dst_path=tmp
                )
            except (MlflowException, OSError):
                return None
            return np.asarray(pd.read_parquet(path)["row_hash"].to_numpy(), dtype=np.uint64)

    # -- writing -------------------------------------------------------------------------
    def log_model(self, package: ModelPackage) -> LoggedModel:
        """Log a package as an MLflow pyfunc model in the active run; returns its model URI
        and the sha256 of each package file (to be stored on the version: ``.tags``).

        No MLflow signature is attached on purpose: MLflow's schema enforcement rejects
        pandas' nullable integers (``Int64``) and NaN in integer columns, which loopml's
        contract accepts. Inputs are checked by the model itself against its contract.
        """

        with (
            tempfile.TemporaryDirectory(prefix="loopml-package-") as tmp,
            warnings.catch_warnings(),
        ):
            # MLflow warns about type hints and input examples it cannot use for a
            # models-from-code pyfunc; the signature is given explicitly instead.
            warnings.simplefilter("ignore", UserWarning)
            folder = write_package(package, Path(tmp) / "package")
            digests = package_digests(folder)
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
                artifacts={"package": str(folder)},
                code_paths=[str(PACKAGE_ROOT)],
                pip_requirements=pinned_requirements(),
            )
        return LoggedModel(str(info.model_uri), digests)

    def register(self, model: LoggedModel, run_id: str, tags: dict[str, str]) -> str:
        """Register a logged model as a new version; its package digests become version
        tags in the same call, so no version exists without them."""
        tags = {**tags, **model.tags}
        try:
            if not list(self.client.search_registered_models(f"name='{self.name}'", max_results=1)):
                self.client.create_registered_model(self.name)
            version = self.client.create_model_version(
                self.name, model.uri, run_id=run_id, tags={**tags, f"{TAG_PREFIX}run_id": run_id}
            )
        except MlflowException as exc:
            raise TrackingError(f"cannot register {self.name!r}", detail=str(exc)) from exc
        return str(version.version)

    def move_alias(
        self, alias: str, version: str, *, action: Action, reason: str, forced: bool = False,
        actor: str | None = None, rollout_id: str | None = None,
    ) -> AuditEntry:  # fmt: skip
        """Point ``alias`` at ``version``: intent entry, move, done entry (``actor``:
        who asked, default this user; ``rollout_id``: the rollout that moved it)."""
        entry = AuditEntry(
            model=self.name, alias=alias, action=action, from_version=self.alias(alias),
            to_version=str(version), reason=reason, forced=forced, rollout_id=rollout_id,
            actor=actor or current_actor(),
        )  # fmt: skip
        return self._audited(entry, lambda: self._set_alias(alias, str(version)))

    def drop_alias(
        self, alias: str, *, reason: str, actor: str | None = None, rollout_id: str | None = None
    ) -> AuditEntry | None:
        previous = self.alias(alias)
        if previous is None:
            return None
        entry = AuditEntry(
            model=self.name, alias=alias, action="retire", from_version=previous,
            to_version=None, reason=reason, rollout_id=rollout_id,
            actor=actor or current_actor(),
        )  # fmt: skip
        return self._audited(entry, lambda: self._set_alias(alias, None))

    def tag_version(self, version: str, key: str, value: str) -> None:
        """Set one tag on a version (e.g. ``loopml.rejected`` with a rollback's reason)."""
        try:
            self.client.set_model_version_tag(self.name, str(version), key, value[:4000])
        except MlflowException as exc:
            raise TrackingError(
                f"cannot tag version {version} of {self.name!r}",
                detail=str(exc).splitlines()[0][:300],
                fix="check that the tracking store is reachable, then run the command again",
            ) from exc

    def _audited(self, entry: AuditEntry, move: Any) -> AuditEntry:
        intent = dataclasses.replace(entry, phase="intent")
        self.audit.append(intent)
        _fault_point("after-intent")
        move()
        _fault_point("after-move")
        done = dataclasses.replace(intent, phase="done")
        self.audit.append(done)
        return done

    def _set_alias(self, alias: str, version: str | None) -> None:
        try:
            if version is None:
                self.client.delete_registered_model_alias(self.name, alias)
            else:
                self.client.set_registered_model_alias(self.name, alias, version)
        except MlflowException as exc:
            raise TrackingError(
                f"cannot move alias {alias!r} of {self.name!r} to {version or 'unset'}",
                detail=str(exc).splitlines()[0][:300],
                fix="check that the tracking store is reachable, then run the command again "
                "(the audit log's intent entry is reconciled on the next command)",
            ) from exc

    def reconcile(self) -> list[Resolution]:
        """Close the audit log's dangling intents against where the aliases are now.

        A completed move gets its ``done`` entry, a move that never happened an
        ``aborted`` one; an alias that is neither where the intent left it nor where it
        was going is logged as a warning and left for a person to decide.
        """
        # A rollout's own entries are not alias moves: the rollout controller closes them.
        records = [r for r in self.audit.records(self.name) if not r.is_rollout]
        dangling = dangling_intents(records)
        if not dangling:
            return []
        out = []
        for intent in dangling:
            later = records[records.index(intent) + 1 :]
            superseded = any(r.alias == intent.alias and r.phase == "done" for r in later)
            found = resolve(intent, self.alias(intent.alias), superseded=superseded)
            if found.outcome != "report":
                phase: Phase = "done" if found.outcome == "complete" else "aborted"
                self.audit.append(dataclasses.replace(intent, phase=phase))
            log.warning("audit log of %s: %s", self.name, found.message)
            out.append(found)
        return out

    def discard_version(self, version: str, restore: dict[str, str | None]) -> None:
        """Delete a half-registered version, first putting back every alias it took:
        ``restore`` maps an alias to the version it pointed at before the registration
        (None: unset). MLflow drops a deleted version's aliases, which would otherwise
        take ``challenger`` from the version the audit log says has it."""
        for alias, previous in restore.items():
            if self.alias(alias) != str(version):
                continue
            reason = f"registration of version {version} did not complete; alias restored"
            if previous is None:
                self.drop_alias(alias, reason=reason)
            else:
                self.move_alias(alias, previous, action="register", reason=reason)
        self.reconcile()
        self.client.delete_model_version(self.name, str(version))

    # -- serving artifacts (see loopml.registry.artifact) ---------------------------------
    def attach_serving_artifact(self, version: str, folder: Path) -> None:
        """Log a built serving artifact to the version's run (artifact path ``serving``)
        and tag the version with its format, parity figures, manifest sha256 and, when it
        is not ONNX, why (``loopml.serving_fallback``)."""
        info = self.version(version)
        manifest = read_verified(folder).manifest
        tags = {
            **(
                {SERVING_FALLBACK_TAG: manifest.fallback_reason[:4000]}
                if manifest.fallback_reason
                else {}
            ),
            SERVING_DIFF_TAG: f"{manifest.parity.max_abs_diff:.3g}",
            SERVING_ROWS_TAG: str(manifest.parity.rows_checked),
            SERVING_SHA_TAG: sha256_file(folder / MANIFEST_FILE),
            SERVING_TAG: manifest.format,  # last: the format tag says "ready"
        }
        try:
            self.client.log_artifacts(info.run_id, str(folder), artifact_path=SERVING_ARTIFACT)
            for key, value in tags.items():
                self.client.set_model_version_tag(self.name, info.version, key, value)
        except MlflowException as exc:
            raise TrackingError(
                f"cannot store the serving artifact of version {info.version}",
                detail=str(exc).splitlines()[0][:300],
                fix="check that the tracking store and its artifact store are reachable",
            ) from exc

    def fetch_serving_artifact(self, version: str, cache_root: Path) -> Path:
        """The version's serving artifact in ``cache_root/<model>/<version>/``, verified.

        A cached copy is reused when it still matches the version's ``serving_sha256`` tag;
        otherwise the artifact is downloaded beside it, verified, and renamed into place.
        Paths that leave ``cache_root`` and symbolic links are refused.
        """
        info = self.version(version)
        sha = info.tags.get(SERVING_SHA_TAG, "")
        if not info.serving_format or not sha:
            raise RegistryError(
                f"version {info.version} of {self.name!r} has no serving artifact",
                detail=f"tag {SERVING_TAG}: {info.tags.get(SERVING_TAG, 'not set')}",
                fix=f"run 'loopml models build-artifact {info.version}'",
            )
        return fetch_into_cache(
            cache_root, self.name, info.version, sha, lambda tmp: self._download_serving(info, tmp)
        )

    def _download_serving(self, info: VersionInfo, tmp: Path) -> Path:
        try:
            self.client.download_artifacts(info.run_id, SERVING_ARTIFACT, str(tmp))
        except (MlflowException, OSError) as exc:
            raise RegistryError(
                f"cannot download the serving artifact of version {info.version}",
                detail=str(exc).splitlines()[0][:300],
                fix="check the artifact store, or rebuild it with "
                f"'loopml models build-artifact {info.version} --force'",
            ) from exc
        return tmp / SERVING_ARTIFACT


def open_registry(project: ProjectConfig) -> ModelRegistry:
    """The project's registered model in its tracking store, with its audit log."""

    client = tracking.connect(tracking.resolve_store(project))
    registry = ModelRegistry(
        client, project.name, AuditLog(project.resolve(project.registry.audit_log))
    )
    registry.reconcile()
    return registry


def _fault_point(name: str) -> None:
    """Fail here when the crash tests ask for it by name (``LOOPML_TEST_CRASH_AT``):
    ``NAME`` is a SIGKILL, as a power cut would be (no handler, no cleanup), and
    ``NAME:interrupt`` is a Ctrl-C (cleanup handlers run)."""
    asked = os.environ.get("LOOPML_TEST_CRASH_AT", "")
    if asked == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if asked == f"{name}:interrupt" and name not in _FAULTS_RAISED:
        _FAULTS_RAISED.add(name)  # once: the cleanup it triggers must be able to run
        raise KeyboardInterrupt


_FAULTS_RAISED: set[str] = set()


def pinned_requirements() -> list[str]:
    pinned = []
    for name in PIP_REQUIREMENTS:
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pinned


def _info(version: Any, aliases: tuple[str, ...]) -> VersionInfo:
    return VersionInfo(
        name=str(version.name),
        version=str(version.version),
        aliases=aliases,
        run_id=str(version.run_id or ""),
        created_ms=int(version.creation_timestamp or 0),
        tags=dict(version.tags or {}),
    )
