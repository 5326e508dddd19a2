"""Benchmark: the quality of monitoring's signal (not a test).

Two models, each trained with ``loopml train`` (LightGBM and the dummy floor, 5 tuning
trials, no bootstrap):

- the feed model: a binary classifier on 200k stationary rows of the generated feed
  (seed 1), monitored in windows of 5,000 predictions over 600k fresh rows per scenario
  (120 windows; onset on day 15 of 30);
- the regression model: a regressor on 20k rows of a Friedman #1 table with a categorical
  column, the target in dollar-like units (x1,000: see ``monitoring/regression.py``),
  monitored in windows of 1,000 predictions over 120k stationary rows (120 windows).

Each scenario's rows are scored by the model's serving artifact and written to a SQLite
ledger as ``loopml serve`` writes them (features, outputs, and every label as feedback at
the prediction's time: labels arrive at once); then ``loopml monitor run``'s function cuts
the ledger into windows with the project's default settings and alert rules.

Targets, each measured and printed as a table:

- ``stationary``: 0 false alerts in >= 100 stationary windows of the feed;
- ``covariate_shift``, ``broken_feature``, ``label_shift``: flagged (drift, prediction
  drift or data quality) in the first full window after the onset;
- ``concept_drift``: a realized-performance alert <= 3 windows after the onset, counted
  as windows from the onset to the window that raised it (1 = the first full window after
  the onset). Performance alerts are rules named in ``PERFORMANCE_RULES``
  (``performance-drop``, ``concept-drift``) or whose metric is ``realized*`` or
  ``performance_cusum``;
- ``regression_stationary``: 0 false performance alerts in >= 100 stationary windows;
  every alert raised is listed with its rule and message.

Also reported: delays in predictions from the onset to the end of the first flagged
window, alerts before the onset, and how close estimated ROC-AUC (confidence based, no
labels) comes to the realized one after the onset.

Run: .venv/bin/python bench/bench_monitor.py [--rows 600000] [--train-rows 200000]
     [--scenarios concept_drift,regression_stationary]
Writes bench/out/monitor.json and bench/out/monitor.md (a subset: monitor-<names>.*).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from monitoring.quality import realized_spread, summarize_onset, summarize_stationary
from monitoring.regression import TARGET as REGRESSION_TARGET
from monitoring.regression import generate_regression
from monitoring.render import markdown

from loopml.config import ProjectConfig, load_project
from loopml.data.feed import generate_feed
from loopml.data.sources import write_table
from loopml.ledger.backend import FeedbackOp, PredictionOp
from loopml.ledger.records import Feedback, PredictionRow
from loopml.ledger.sqlite import SqliteBackend
from loopml.monitor.profile import ReferenceProfile
from loopml.monitor.profile_store import load_profile
from loopml.monitor.results import WindowReport
from loopml.monitor.run import run_monitor
from loopml.pipeline.project import InitOptions, init_project
from loopml.registry.runtime import Runtime, feature_arrays, load_runtime
from loopml.registry.store import open_registry
from loopml.serve.service import output_records
from loopml.train.metrics import roc_auc

FEED_SCENARIOS = ("stationary", "covariate_shift", "broken_feature", "label_shift", "concept_drift")
REGRESSION_SCENARIOS = ("regression_stationary",)
SCENARIOS = FEED_SCENARIOS + REGRESSION_SCENARIOS
FEED_TARGET = "engaged"
FEED_WINDOW = 5_000
ONSET = 0.5
FEED_START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
COMMIT_ROWS = 20_000
OUT = Path(__file__).parent / "out"
TRAIN_ENV = {
    "LOOPML_TRAIN__CANDIDATES": "[lightgbm]",
    "LOOPML_TRAIN__BASELINES": "[dummy]",
    "LOOPML_TRAIN__TUNING__TRIALS": "5",
    "LOOPML_TRAIN__BOOTSTRAP": "0",
}


@dataclass
class Model:
    project: ProjectConfig
    profile: ReferenceProfile
    runtime: Runtime
    target: str
    window: int


def train(folder: Path, table: pd.DataFrame, target: str, task: str, window: int) -> Model:
    """``loopml init`` + ``loopml train`` in ``folder``; the champion's profile and artifact."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.parquet"
    write_table(table, path)
    options = InitOptions(name=folder.name, task=task)
    init_project(path, target, project_file=folder / "loopml.yaml", options=options)
    project = load_project(folder / "loopml.yaml", TRAIN_ENV)
    started = time.perf_counter()
    from loopml.pipeline.train import train_project

    result = train_project(project)
    log(f"{folder.name}: trained version {result.version} on {len(table):,} rows "
        f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
    assert result.version is not None
    registry = open_registry(project)
    profile = load_profile(registry, result.version, folder / ".loopml" / "profiles")
    artifact = registry.fetch_serving_artifact(result.version, folder / ".loopml" / "serving")
    return Model(project, profile, load_runtime(artifact, threads=2), target, window)


def write_ledger(model: Model, frame: pd.DataFrame, url: str) -> None:
    """Score ``frame`` and record it as the server would, each label as feedback at once."""
    contract = model.runtime.contract
    features = feature_arrays(frame, contract)
    outputs = output_records(model.runtime.predict(features), list(model.runtime.meta.classes))
    names = list(features)
    columns = [np.where(pd.isna(features[n]), None, features[n]).tolist()
               if features[n].dtype != object else features[n].tolist() for n in names]  # fmt: skip
    ts = timestamps(frame)
    labels = frame[model.target].tolist()
    backend = SqliteBackend.from_url(url, Path("."))
    try:
        for start in range(0, len(frame), COMMIT_ROWS):
            stop = min(start + COMMIT_ROWS, len(frame))
            rows = [
                PredictionRow(
                    f"r{i:08d}", 0, float(ts[i]), model.project.name, "1", "champion", None,
                    orjson.dumps(dict(zip(names, (c[i] for c in columns), strict=True))).decode(),
                    orjson.dumps(outputs[i]).decode(), 0.1,
                )
                for i in range(start, stop)
            ]  # fmt: skip
            feedback = [
                Feedback(f"r{i:08d}", 0, orjson.dumps(labels[i]).decode(), float(ts[i]))
                for i in range(start, stop)
            ]
            backend.commit([PredictionOp(rows), FeedbackOp(feedback)])
    finally:
        backend.close()


def timestamps(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    """``ts`` as Unix seconds (the generators' naive timestamps are UTC)."""
    return frame["ts"].to_numpy(dtype="datetime64[us]").astype(np.int64) / 1e6


def monitor(model: Model, folder: Path, name: str) -> tuple[list[WindowReport], list[Any]]:
    """``loopml monitor run`` over the scenario's ledger with default settings and rules."""
    serve, settings = model.project.serve, model.project.monitor
    project = model.project.model_copy(
        update={
            "serve": serve.model_copy(
                update={"ledger": serve.ledger.model_copy(
                    update={"url": f"sqlite:///{folder / f'ledger-{name}.db'}"})}
            ),
            "monitor": settings.model_copy(
                update={
                    "window": str(model.window),
                    "store": f"sqlite:///{folder / f'monitor-{name}.db'}",
                    "alert_log": str(folder / f"alerts-{name}.jsonl"),
                    "reports_dir": str(folder / f"reports-{name}"),
                }
            ),
        }
    )  # fmt: skip
    run = run_monitor(project, profiles=lambda _v: model.profile, write_reports=False)
    return sorted(run.complete_windows, key=lambda w: w.index), run.events


def run_scenario(model: Model, folder: Path, name: str, frame: pd.DataFrame) -> dict[str, Any]:
    started = time.perf_counter()
    write_ledger(model, frame, f"sqlite:///{folder / f'ledger-{name}.db'}")
    written = time.perf_counter() - started
    started = time.perf_counter()
    windows, events = monitor(model, folder, name)
    monitored = time.perf_counter() - started
    feed = name in FEED_SCENARIOS
    if name in ("stationary", "regression_stationary"):
        result = summarize_stationary(windows, events, model.window)
    else:
        onset_row = int(np.searchsorted(timestamps(frame), FEED_START + ONSET * 30 * 86400))
        result = summarize_onset(windows, events, model.window, onset_row)
        result |= estimate_gap(windows, frame, model, onset_row)
    if not feed:
        result["realized_spread"] = realized_spread(windows, "rmse")
    return {
        "scenario": name,
        "table": "feed" if feed else "regression",
        "rows": len(frame),
        **result,
        "write_seconds": round(written, 1),
        "monitor_seconds": round(monitored, 1),
        "rows_per_second": round(len(frame) / monitored),
    }


def estimate_gap(
    windows: list[WindowReport], frame: pd.DataFrame, model: Model, onset_row: int
) -> dict[str, Any]:
    """Estimated vs realized ROC-AUC after the onset: per window, and over all post rows."""
    gaps = [
        abs(w.performance.estimated["roc_auc"] - w.performance.realized["roc_auc"])  # type: ignore[operator]
        for w in windows
        if w.index * model.window >= onset_row
        and w.performance.estimated.get("roc_auc") is not None
        and w.performance.realized.get("roc_auc") is not None
    ]
    from loopml.monitor.performance import estimate_performance

    post = frame.iloc[onset_row:]
    scores = model.runtime.predict(feature_arrays(post, model.runtime.contract)).probabilities
    y = post[model.target].to_numpy().astype(np.int64)
    realized = float(roc_auc(y, scores, None))
    estimated = estimate_performance("binary", model.profile.calibration, scores)["roc_auc"]
    return {
        "auc_gap_mean_per_window": round(float(np.mean(gaps)), 4) if gaps else None,
        "auc_gap_max_per_window": round(float(np.max(gaps)), 4) if gaps else None,
        "auc_post_realized": round(realized, 4),
        "auc_post_estimated": round(float(estimated), 4),
        "auc_post_gap": round(abs(realized - float(estimated)), 4),
        "auc_reference": round(model.profile.holdout_metrics.get("roc_auc", math.nan), 4),
    }


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600_000, help="feed rows per scenario")
    parser.add_argument("--train-rows", type=int, default=200_000, help="feed training rows")
    parser.add_argument(
        "--regression-rows", type=int, default=120_000, help="rows of the regression run"
    )
    parser.add_argument("--regression-train-rows", type=int, default=20_000)
    parser.add_argument(
        "--regression-window", type=int, default=1_000, help="predictions per regression window"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of: {', '.join(SCENARIOS)}",
    )
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown or not chosen:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    args.scenarios = [s for s in SCENARIOS if s in chosen]
    return args


def run_all(args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    results = []
    feed = [s for s in args.scenarios if s in FEED_SCENARIOS]
    if feed:
        table = generate_feed(args.train_rows, seed=1)
        model = train(folder / "feed", table, FEED_TARGET, "binary", FEED_WINDOW)
        for seed, name in enumerate(FEED_SCENARIOS, start=101):
            if name in feed:
                frame = generate_feed(args.rows, seed=seed, scenario=name, onset=ONSET)
                results.append(run_scenario(model, folder, name, frame))
                log(json.dumps(results[-1]))
    if "regression_stationary" in args.scenarios:
        table = generate_regression(args.regression_train_rows, seed=1)
        model = train(
            folder / "regression", table, REGRESSION_TARGET, "regression", args.regression_window
        )
        frame = generate_regression(args.regression_rows, seed=201)
        results.append(run_scenario(model, folder, "regression_stationary", frame))
        log(json.dumps(results[-1]))
    return results


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="loopml-bench-monitor-") as tmp:
        results = run_all(args, Path(tmp))
    seconds = time.perf_counter() - started
    command = shlex.join([".venv/bin/python", "bench/bench_monitor.py", *sys.argv[1:]])
    about = (
        f"{datetime.now(UTC):%Y-%m-%d}, {seconds / 60:.1f} min. Default monitor settings "
        f"and alert rules. Feed: windows of {FEED_WINDOW:,} predictions over {args.rows:,} "
        f"rows per scenario, model trained on {args.train_rows:,}, onset at {ONSET:.0%} of "
        "the 30 days; delays are predictions from the onset to the end of the first flagged "
        "window. Regression: windows of "
        f"{args.regression_window:,} over {args.regression_rows:,} rows, model trained on "
        f"{args.regression_train_rows:,}."
    )
    OUT.mkdir(exist_ok=True)
    subset = args.scenarios != list(SCENARIOS)
    stem = "monitor-" + "+".join(args.scenarios) if subset else "monitor"
    (OUT / f"{stem}.json").write_text(json.dumps(results, indent=2))
    text = markdown(results, command, about)
    (OUT / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
