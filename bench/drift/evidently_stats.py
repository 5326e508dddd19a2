"""Evidently 0.7's drift results on Parquet files; runs inside bench/.venvs/evidently.

Not part of loopml (it imports Evidently, which loopml never depends on). Called by
bench/bench_drift.py:

    python evidently_stats.py parity DIR   # DIR/spec.json, DIR/ref.parquet, DIR/cur.parquet
    python evidently_stats.py speed DIR    # the same files, timed

Writes one JSON document to stdout: per column the method Evidently chose, its score and
(parity mode) its own drift decision; the share of drifted columns; in speed mode the wall
time of building the datasets and running DataDriftPreset, and the process's peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import evidently
import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset

# Evidently's display names -> loopml's test names
METHODS = {
    "K-S p_value": "ks",
    "chi-square p_value": "chi_square",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensen_shannon",
    "PSI": "psi",
    "psi": "psi",
}


def rss_mb() -> float:
    """Peak RSS of this process image (VmHWM; ru_maxrss would carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_preset(folder: Path) -> tuple[dict[str, Any], dict[str, Any], float, float]:
    spec = json.loads((folder / "spec.json").read_text())
    ref = pd.read_parquet(folder / "ref.parquet")
    cur = pd.read_parquet(folder / "cur.parquet")
    loaded_rss = rss_mb()
    started = time.perf_counter()
    definition = DataDefinition(
        numerical_columns=spec["numerical"], categorical_columns=spec["categorical"]
    )
    report = Report([DataDriftPreset(per_column_method=spec.get("methods") or None)])
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    result = snapshot.dict()
    wall = time.perf_counter() - started
    columns: dict[str, Any] = {}
    share = None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "test": METHODS.get(config["method"], config["method"]),
                "method": config["method"],
                "threshold": config["threshold"],
                "score": float(metric["value"]),
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            share = metric["value"]["share"]
    out = {"columns": columns, "share": share, "drift_share": 0.5}
    frames = {"spec": spec, "ref": ref, "cur": cur}
    return out, frames, wall, loaded_rss


def decisions(out: dict[str, Any], frames: dict[str, Any]) -> None:
    """Evidently's own drift decision per column, from its stat test objects."""
    spec = frames["spec"]
    for name, column in out["columns"].items():
        kind = ColumnType.Numerical if name in spec["numerical"] else ColumnType.Categorical
        ref = frames["ref"][name].replace([-np.inf, np.inf], np.nan).dropna()
        cur = frames["cur"][name].replace([-np.inf, np.inf], np.nan).dropna()
        method = (spec.get("methods") or {}).get(name)
        test = get_stattest(ref, cur, kind, method)
        result = test(ref, cur, kind, column["threshold"])
        column["drifted"] = bool(result.drifted)
        column["check_score"] = float(result.drift_score)


def main() -> None:
    mode, folder = sys.argv[1], Path(sys.argv[2])
    out, frames, wall, loaded_rss = run_preset(folder)
    if mode == "parity":
        decisions(out, frames)
    out.update(
        {
            "wall_seconds": wall,
            "peak_rss_mb": rss_mb(),
            "loaded_rss_mb": loaded_rss,
            "versions": {
                "evidently": evidently.__version__,
                "pandas": pd.__version__,
                "numpy": np.__version__,
                "python": sys.version.split()[0],
            },
        }
    )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
