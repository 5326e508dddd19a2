"""Is the embedded MLflow store (``.loopml/mlflow.db``) whole, and is it the one this
project has been using?

MLflow treats a missing or empty database file as "no store yet" and builds a fresh one:
a registry lost to a bad disk, a failed copy or a stray ``> mlflow.db`` would come back
as "no versions yet", and the next ``train`` would register a new version 1 over it. So
before MLflow touches the file, :func:`check_embedded_store` reads it with SQLite itself
(read-only) and refuses, with what is wrong and how to fix it, when it is

- empty (0 bytes) or missing while the project shows it was used (its audit log or its
  artifact folder has entries);
- not a database, truncated or damaged (``PRAGMA quick_check``), or missing a table;
- whole but empty of runs while the artifact folder holds runs, or of model versions
  while the audit log records alias moves (an emptied or swapped-in database).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from loopml.errors import TrackingError

TABLES = (
    "alembic_version", "experiments", "runs", "registered_models", "model_versions",
    "registered_model_aliases",
)  # fmt: skip
RESTORE = (
    "restore {db} from a backup (stop every loopml process first), or, to start over "
    "with an empty registry on purpose, move {db}, {audit} and {artifacts} aside"
)


@dataclass(frozen=True)
class EmbeddedStore:
    """The files of a project's embedded store."""

    db: Path
    artifacts: Path
    audit_log: Path

    def fix(self) -> str:
        return RESTORE.format(db=self.db, audit=self.audit_log, artifacts=self.artifacts)

    def used(self) -> list[str]:
        """What shows the project has had a registry: a non-empty audit log, run folders."""
        signs = []
        if self.audit_log.is_file() and self.audit_log.stat().st_size > 0:
            signs.append(f"the audit log {self.audit_log} records alias moves")
        if run_folders(self.artifacts):
            signs.append(f"the artifact folder {self.artifacts} holds runs")
        return signs


def run_folders(artifacts: Path) -> list[Path]:
    """``<artifacts>/<experiment id>/<run id>/`` folders (MLflow's local layout)."""
    if not artifacts.is_dir():
        return []
    return [run for exp in artifacts.iterdir() if exp.is_dir() for run in exp.iterdir()]


def check_embedded_store(store: EmbeddedStore) -> bool:
    """True if the store exists and is whole, False if it does not exist and may be
    created; raises :class:`TrackingError` when it is damaged or must not be re-created."""
    db = store.db
    if not db.exists():
        signs = store.used()
        if signs:
            raise TrackingError(
                f"the MLflow store {db} is missing, but this project has used one",
                detail="; ".join(signs) + "; a new empty store would hide the lost registry",
                fix=store.fix(),
            )
        return False
    if db.stat().st_size == 0:
        raise TrackingError(
            f"the MLflow store {db} is empty (0 bytes): its runs and registered versions are gone",
            detail="loopml never writes an empty store; the file was truncated or replaced "
            "(a full disk, a failed copy)",
            fix=store.fix(),
        )
    _check_database(store)
    return True


def _check_database(store: EmbeddedStore) -> None:
    try:
        with sqlite3.connect(f"{store.db.as_uri()}?mode=ro", uri=True) as conn:
            problem = _problem(conn)
            counts = {t: _count(conn, t) for t in ("runs", "model_versions")} if not problem else {}
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    if problem:
        raise TrackingError(
            f"the MLflow store {store.db} is damaged: {problem}",
            detail="the file is not a whole SQLite database of MLflow's schema (truncated, "
            "overwritten, or a table dropped); loopml will not write into it",
            fix=store.fix(),
        )
    signs = store.used()
    if counts and counts["model_versions"] == 0 and any("audit" in s for s in signs):
        _emptied(store, "no registered version", signs)
    if counts and counts["runs"] == 0 and any("artifact" in s for s in signs):
        _emptied(store, "no run", signs)


def _problem(conn: sqlite3.Connection) -> str:
    verdict = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
    if verdict != ["ok"]:
        return "; ".join(verdict[:3])
    have = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = [t for t in TABLES if t not in have]
    return f"missing table(s) {', '.join(missing)}" if missing else ""


def _count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _emptied(store: EmbeddedStore, what: str, signs: list[str]) -> None:
    raise TrackingError(
        f"the MLflow store {store.db} holds {what}, but this project has used a registry",
        detail="; ".join(signs) + " — the store was emptied or replaced",
        fix=store.fix(),
    )
