"""A project folder that was moved keeps working: the embedded store follows it.

MLflow records artifact locations as absolute ``file://`` URIs (an experiment's
``artifact_location`` is resolved and fixed at creation; MLflow has no call to change it),
so after ``mv project elsewhere`` every run, logged model and registered version would
point into the old folder. When the embedded store's experiment points at an artifact
folder that no longer exists while the project's own artifact folder does,
:func:`follow_move` rewrites the old prefix to the new one in the columns that hold
artifact locations, in one SQLite transaction, before MLflow opens the store. Only
values under the old folder change; stores other than the embedded one (an MLflow
server, S3) are never touched.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)

# (table, column) pairs that hold artifact locations in MLflow's SQL schema.
COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)


def follow_move(db: Path, experiment: str, artifact_uri: str) -> int:
    """Rewrite the store's artifact locations from a moved folder to ``artifact_uri``
    (the project's artifact folder now); returns how many values changed (0: not moved)."""
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT artifact_location FROM experiments WHERE name = ?", (experiment,)
        ).fetchone()
        old = str(row[0]) if row and row[0] else ""
        if not _moved(old, artifact_uri):
            return 0
        changed = 0
        have = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
        for table, column in COLUMNS:
            if table not in have:
                continue
            cursor = conn.execute(
                f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                f"WHERE substr({column}, 1, ?) = ? "
                f"AND (length({column}) = ? OR substr({column}, ?, 1) = '/')",
                (artifact_uri, len(old) + 1, len(old), old, len(old), len(old) + 1),
            )
            changed += cursor.rowcount
    log.warning(
        "the project folder moved: its MLflow store pointed at %s; %d artifact locations "
        "now point at %s",
        old,
        changed,
        artifact_uri,
    )
    return changed


def _moved(old: str, new: str) -> bool:
    if not old.startswith("file:") or old == new:
        return False
    return not _path(old).exists() and _path(new).exists()


def _path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))
