"""The MLflow model-registry adapter: versions, aliases, and the audit log beside them.

Every alias move goes through :meth:`ModelRegistry.move_alias`, which moves the alias in
MLflow and appends the move to the audit log, so the two never tell different stories
about who did what.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import loopml
from loopml.errors import RegistryError, TrackingError
from loopml.registry.audit import Action, AuditEntry, AuditLog
from loopml.registry.package import ModelPackage, read_package, write_package

CHAMPION = "champion"
CHALLENGER = "challenger"
TAG_PREFIX = "loopml."
MODEL_ARTIFACT = "model"
PIP_REQUIREMENTS = (
    "mlflow", "pandas", "numpy", "scikit-learn", "lightgbm", "xgboost", "joblib", "pyyaml",
    "pydantic",
)  # fmt: skip


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


class ModelRegistry:
    """One registered model (``project.name``) in an MLflow registry."""

    def __init__(self, client: Any, name: str, audit: AuditLog) -> None:
        self.client = client
        self.name = name
        self.audit = audit

    # -- reading -------------------------------------------------------------------------
    def versions(self) -> list[VersionInfo]:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name='{self.name}'")
        except MlflowException as exc:
            raise TrackingError(f"cannot list versions of {self.name!r}", detail=str(exc)) from exc
        return sorted((_info(v) for v in found), key=lambda v: int(v.version))

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
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    def load_package(self, version: str) -> ModelPackage:
        """Download a version's model package into a temp folder and load it."""
        info = self.version(version)
        uri = f"models:/{self.name}/{info.version}"
        import mlflow.artifacts

        folder = Path(tempfile.mkdtemp(prefix=f"loopml-{self.name}-v{info.version}-"))
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder))
        return read_package(Path(local) / "artifacts" / "package")

    # -- writing -------------------------------------------------------------------------
    def log_model(self, package: ModelPackage, signature: Any, input_example: Any) -> str:
        """Log a package as an MLflow pyfunc model in the active run; returns its model URI."""
        import mlflow.pyfunc

        with tempfile.TemporaryDirectory(prefix="loopml-package-") as tmp:
            folder = write_package(package, Path(tmp) / "package")
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
                artifacts={"package": str(folder)},
                code_paths=[str(Path(loopml.__file__).parent)],
                pip_requirements=list(PIP_REQUIREMENTS),
                signature=signature,
                input_example=input_example,
            )
        return str(info.model_uri)

    def register(self, model_uri: str, run_id: str, tags: dict[str, str]) -> str:
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            version = mlflow.register_model(model_uri, self.name, tags=tags)
        except MlflowException as exc:
            raise TrackingError(f"cannot register {self.name!r}", detail=str(exc)) from exc
        self.client.set_model_version_tag(self.name, version.version, f"{TAG_PREFIX}run_id", run_id)
        return str(version.version)

    def move_alias(
        self, alias: str, version: str, *, action: Action, reason: str, forced: bool = False
    ) -> AuditEntry:
        """Point ``alias`` at ``version`` and record the move."""
        previous = self.alias(alias)
        self.client.set_registered_model_alias(self.name, alias, str(version))
        entry = AuditEntry(
            model=self.name,
            alias=alias,
            action=action,
            from_version=previous,
            to_version=str(version),
            reason=reason,
            forced=forced,
        )
        self.audit.append(entry)
        return entry

    def drop_alias(self, alias: str, *, reason: str) -> AuditEntry | None:
        previous = self.alias(alias)
        if previous is None:
            return None
        self.client.delete_registered_model_alias(self.name, alias)
        entry = AuditEntry(
            model=self.name,
            alias=alias,
            action="retire",
            from_version=previous,
            to_version=None,
            reason=reason,
        )
        self.audit.append(entry)
        return entry


def _info(version: Any) -> VersionInfo:
    return VersionInfo(
        name=str(version.name),
        version=str(version.version),
        aliases=tuple(sorted(getattr(version, "aliases", []) or [])),
        run_id=str(version.run_id or ""),
        created_ms=int(version.creation_timestamp or 0),
        tags=dict(version.tags or {}),
    )
