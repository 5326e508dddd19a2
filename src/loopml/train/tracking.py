"""The MLflow adapter for experiment tracking: the only training module that talks to MLflow
(the registry's own adapter is :mod:`loopml.registry.store`).

The embedded default is ``sqlite:///.loopml/mlflow.db`` with a local artifact folder, both
resolved against the project's folder so every command finds the same store wherever it
is run from. Any other tracking URI (an MLflow server backed by PostgreSQL and S3) is used
unchanged. :func:`connect` checks the store answers *before* any work starts, so an
unreachable server fails in seconds with a clear message and leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from loopml.config import ProjectConfig
from loopml.data.sources import mask_url
from loopml.errors import TrackingError
from loopml.train.relocate import follow_move
from loopml.train.store_check import EmbeddedStore, check_embedded_store

PACKAGES = (
    "loopml", "numpy", "pandas", "scikit-learn", "lightgbm", "xgboost-cpu", "xgboost",
    "optuna", "mlflow", "pyarrow", "scipy",
)  # fmt: skip


@dataclass(frozen=True)
class Store:
    """Where runs and models go: a resolved tracking URI and artifact location."""

    tracking_uri: str
    artifact_location: str | None
    experiment: str
    embedded: EmbeddedStore | None = None


def resolve_store(project: ProjectConfig) -> Store:
    """Make relative ``sqlite:///`` and artifact paths absolute against the project folder."""
    uri = project.tracking.uri
    artifact: str | None = None
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        db = project.resolve(uri.removeprefix("sqlite:///"))
        uri = f"sqlite:///{db}"
    embedded = None
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        folder = project.resolve(project.tracking.artifact_location)
        artifact = folder.as_uri()
        if uri.startswith("sqlite:///"):
            audit = project.resolve(project.registry.audit_log)
            embedded = EmbeddedStore(Path(uri.removeprefix("sqlite:///")), folder, audit)
    return Store(uri, artifact, project.experiment_name, embedded)


def connect(store: Store) -> Any:
    """Point MLflow at the store, check it answers, and return an ``MlflowClient``."""

    _quiet_mlflow()
    if store.tracking_uri.startswith(("http://", "https://")):
        _check_http(store.tracking_uri)
    if store.embedded is not None:
        _open_embedded(store, store.embedded)
    mlflow.set_tracking_uri(store.tracking_uri)
    mlflow.set_registry_uri(store.tracking_uri)
    try:
        client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
        client.search_experiments(max_results=1)
    except Exception as exc:
        raise _unreachable(store.tracking_uri, exc) from exc
    return client


def _open_embedded(store: Store, embedded: EmbeddedStore) -> None:
    """Check the embedded store is whole (never re-create one that existed), follow a
    moved project folder, or create the store on first use."""
    if not check_embedded_store(embedded):
        _create_sqlite_store(embedded.db)
    elif store.artifact_location is not None:
        follow_move(embedded.db, store.experiment, store.artifact_location)


def _create_sqlite_store(db: Path) -> None:
    """Create the embedded store's schema beside it, then move it into place.

    MLflow builds its schema on first use in ~20 migrations; an interrupt in the middle
    would leave a half-migrated database that fails forever after. Built aside and
    renamed, the store either does not exist or is complete.
    """
    if db.exists():
        return

    db.parent.mkdir(parents=True, exist_ok=True)
    partial = db.with_name(db.name + ".creating")
    partial.unlink(missing_ok=True)
    MlflowClient(tracking_uri=f"sqlite:///{partial}").search_experiments(max_results=1)
    partial.replace(db)


def ensure_experiment(client: Any, store: Store) -> str:
    """The experiment's id, creating it (with the local artifact folder) on first use."""
    found = client.get_experiment_by_name(store.experiment)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return str(found.experiment_id)
    return str(
        client.create_experiment(store.experiment, artifact_location=store.artifact_location)
    )


def _check_http(uri: str) -> None:
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=5):
            return
    except urllib.error.HTTPError:
        return  # it answered; MLflow's own calls will report real errors
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(uri, exc) from exc


def _unreachable(uri: str, exc: BaseException) -> TrackingError:
    reason = str(getattr(exc, "reason", exc)).splitlines()[0][:300]
    return TrackingError(
        f"cannot reach the MLflow tracking store at {mask_url(uri)}",
        detail=reason,
        fix="start the MLflow server or fix 'tracking.uri' in loopml.yaml "
        "(or LOOPML_TRACKING__URI); the embedded default is sqlite:///.loopml/mlflow.db",
    )


def _quiet_mlflow() -> None:
    """MLflow's own progress bars and notices would tear through loopml's progress display."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def tracked_run(
    client: Any, experiment_id: str, name: str, tags: Mapping[str, str]
) -> Iterator[str]:
    """Start a run; on any failure it and its child runs are deleted, so no partial run
    is left behind (an interrupted training is not a result anyone should compare with)."""

    run = mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=dict(tags))
    run_id = run.info.run_id
    try:
        yield run_id
    except BaseException:
        mlflow.end_run(status="FAILED")
        children = client.search_runs(
            [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
        )
        for child in children:
            client.delete_run(child.info.run_id)
        client.delete_run(run_id)
        raise
    mlflow.end_run(status="FINISHED")


def log_params(params: Mapping[str, Any]) -> None:
    flat = {k: str(v)[:6000] for k, v in flatten(params).items()}
    items = list(flat.items())
    for start in range(0, len(items), 100):  # MLflow caps a batch at 100 params
        mlflow.log_params(dict(items[start : start + 100]))


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def git_commit(folder: Path) -> str | None:
    """The commit of the project's git checkout, with ``-dirty`` when it has changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def log_json(obj: Any, artifact_file: str) -> None:
    mlflow.log_text(json.dumps(obj, indent=2, default=str), artifact_file)


def log_child_run(
    client: Any,
    experiment_id: str,
    parent_id: str,
    name: str,
    *,
    tags: Mapping[str, str],
    metrics: Mapping[str, float],
    params: Mapping[str, Any],
) -> str:
    """A finished child run under ``parent_id`` (non-finite metrics are left out)."""

    run = client.create_run(
        experiment_id, run_name=name, tags={"mlflow.parentRunId": parent_id, **tags}
    )
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, now, 0) for k, v in metrics.items() if math.isfinite(v)],
        params=[Param(k, str(v)[:6000]) for k, v in params.items()],
    )
    client.set_terminated(run.info.run_id, "FINISHED")
    return str(run.info.run_id)


def log_metrics(metrics: Mapping[str, float]) -> None:
    """Metrics of the active run; NaN / inf (a metric undefined on this data) are skipped."""

    finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
    if finite:
        mlflow.log_metrics(finite)


def set_tag(key: str, value: str) -> None:
    mlflow.set_tag(key, value)


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def log_files(paths: Iterable[Path], artifact_path: str) -> None:
    for path in paths:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_parquet(frame: pd.DataFrame, artifact_file: str) -> None:
    """A frame as a Parquet artifact of the active run (e.g. the holdout, for promotion)."""
    target = Path(artifact_file)
    with tempfile.TemporaryDirectory(prefix="loopml-artifact-") as tmp:
        path = Path(tmp) / target.name
        frame.to_parquet(path, index=False)
        log_files([path], str(target.parent))
