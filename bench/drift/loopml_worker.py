"""loopml's side of bench/bench_drift.py, run as its own (pinned) process.

    python loopml_worker.py raw DIR            # exact profiles from ref.parquet, then drift
    python loopml_worker.py prepare DIR FILE   # sketch profiles (points=2048) -> FILE (JSON)
    python loopml_worker.py stored DIR FILE    # drift of cur.parquet against FILE

Writes one JSON document to stdout: timings, per-column results, the peak RSS of this
process and the tracemalloc peak of the drift computation (a separate, untimed pass).
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.monitor.drift import column_drift, dataset_drift
from loopml.monitor.profile import (
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    categorical_profile,
    category_values,
    numeric_profile,
    numeric_values,
)

POINTS = 2048


def rss_mb() -> float:
    """Peak RSS of this process image (VmHWM; ru_maxrss would carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(spec: dict[str, Any], frame: pd.DataFrame, points: int | None) -> list[ColumnProfile]:
    profiles: list[ColumnProfile] = []
    for name in spec["numerical"]:
        profiles.append(numeric_profile(name, frame[name], points=points))
    for name in spec["categorical"]:
        profiles.append(categorical_profile(name, frame[name]))
    return profiles


def current_arrays(profiles: list[ColumnProfile], frame: pd.DataFrame) -> dict[str, Any]:
    """The window's columns as the monitor gets them (float64 / object of str)."""
    return {
        p.name: numeric_values(frame[p.name])
        if p.kind == "numeric"
        else category_values(frame[p.name])
        for p in profiles
    }


def compute(spec: dict[str, Any], profiles: list[ColumnProfile], frame: pd.DataFrame) -> list[Any]:
    methods = spec.get("methods") or {}
    arrays = current_arrays(profiles, frame)
    return [column_drift(p, arrays[p.name], test=methods.get(p.name)) for p in profiles]


def traced_peak(
    spec: dict[str, Any], profiles: list[ColumnProfile], frame: pd.DataFrame
) -> dict[str, float]:
    """Extra memory of the drift computation over arrays already in memory."""
    arrays = current_arrays(profiles, frame)
    nbytes = sum(a.nbytes for a in arrays.values())
    methods = spec.get("methods") or {}
    tracemalloc.start()
    for p in profiles:
        column_drift(p, arrays[p.name], test=methods.get(p.name))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"traced_peak_mb": peak / 2**20, "current_mb": nbytes / 2**20, "ratio": peak / nbytes}


def results(columns: list[Any]) -> dict[str, Any]:
    share, drifted = dataset_drift(columns, 0.5)
    return {
        "columns": {c.name: c.to_dict() for c in columns},
        "share": share,
        "dataset_drift": drifted,
    }


def raw(folder: Path) -> dict[str, Any]:
    spec = json.loads((folder / "spec.json").read_text())
    ref = pd.read_parquet(folder / "ref.parquet")
    cur = pd.read_parquet(folder / "cur.parquet")
    loaded = rss_mb()
    started = time.perf_counter()
    profiles = build(spec, ref, points=None)
    built = time.perf_counter()
    columns = compute(spec, profiles, cur)
    done = time.perf_counter()
    out = results(columns)
    out.update(
        profile_seconds=built - started,
        compute_seconds=done - built,
        peak_rss_mb=rss_mb(),
        loaded_rss_mb=loaded,
        memory=traced_peak(spec, profiles, cur),
    )
    return out


def prepare(folder: Path, target: Path) -> dict[str, Any]:
    spec = json.loads((folder / "spec.json").read_text())
    ref = pd.read_parquet(folder / "ref.parquet")
    started = time.perf_counter()
    profiles = build(spec, ref, points=POINTS)
    seconds = time.perf_counter() - started
    text = json.dumps([p.to_dict() for p in profiles], allow_nan=False)
    target.write_text(text)
    return {"profile_seconds": seconds, "profile_bytes": len(text), "peak_rss_mb": rss_mb()}


def load(target: Path) -> list[ColumnProfile]:
    out: list[ColumnProfile] = []
    for item in json.loads(target.read_text()):
        if item["kind"] == "numeric":
            out.append(NumericProfile.from_dict(item))
        else:
            out.append(CategoricalProfile.from_dict(item))
    return out


def stored(folder: Path, target: Path) -> dict[str, Any]:
    spec = json.loads((folder / "spec.json").read_text())
    cur = pd.read_parquet(folder / "cur.parquet")
    started = time.perf_counter()
    profiles = load(target)
    loaded = time.perf_counter()
    columns = compute(spec, profiles, cur)
    done = time.perf_counter()
    methods = spec.get("methods") or {}
    arrays = current_arrays(profiles, cur)
    began = time.perf_counter()
    for p in profiles:
        column_drift(p, arrays[p.name], test=methods.get(p.name))
    drift_seconds = time.perf_counter() - began
    small = cur.iloc[:10_000]
    arrays = current_arrays(profiles, small)
    with_conversion, drift_only = [], []
    for _ in range(7):
        began = time.perf_counter()
        compute(spec, profiles, small)
        converted = time.perf_counter()
        for p in profiles:
            column_drift(p, arrays[p.name], test=methods.get(p.name))
        with_conversion.append(converted - began)
        drift_only.append(time.perf_counter() - converted)
    out = results(columns)
    out.update(
        load_seconds=loaded - started,
        compute_seconds=done - loaded,
        drift_seconds=drift_seconds,
        compute_10k_seconds=statistics.median(with_conversion),
        drift_10k_seconds=statistics.median(drift_only),
        features=len(profiles),
        peak_rss_mb=rss_mb(),
        memory=traced_peak(spec, profiles, cur),
    )
    return out


def main() -> None:
    mode, folder = sys.argv[1], Path(sys.argv[2])
    if mode == "raw":
        out = raw(folder)
    elif mode == "prepare":
        out = prepare(folder, Path(sys.argv[3]))
    else:
        out = stored(folder, Path(sys.argv[3]))
    out["versions"] = {"numpy": np.__version__, "pandas": pd.__version__}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
