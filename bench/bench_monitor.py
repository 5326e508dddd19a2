"""Benchmark: the quality of monitoring's signal on the generated feed (not a test).

One LightGBM feed model is trained with ``loopml train`` on a stationary table (seed 1).
For each scenario a fresh table (another seed) is scored by the model's serving artifact
and written to a ledger exactly as ``loopml serve`` writes it (features, outputs, and
every label as feedback); then ``loopml monitor run`` (the library function) cuts it into
windows of 5,000 predictions with the project's default settings and alert rules.

Reported per scenario: the first window flagged as dataset drift, prediction drift, or
by any default alert, in predictions after the onset; whether the first full window after
the onset is flagged; alerts raised before the onset and over the whole stationary run
(false alarms, target 0 over >= 100 windows); and how close estimated ROC-AUC (confidence
based, no labels) comes to the realized one after the onset.

Run: .venv/bin/python bench/bench_monitor.py [--rows 600000] [--train-rows 200000]
"""

from __future__ import annotations

import argparse
import json
import math
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
from loopml.train.metrics import roc_auc

SCENARIOS = ("stationary", "covariate_shift", "broken_feature", "label_shift", "concept_drift")
WINDOW = 5_000
ONSET = 0.5
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


def train(folder: Path, rows: int) -> Model:
    table = folder / "train.parquet"
    write_table(generate_feed(rows, seed=1), table)
    init_project(
        table, "engaged", project_file=folder / "loopml.yaml", options=InitOptions(name="feed")
    )
    project = load_project(folder / "loopml.yaml", TRAIN_ENV)
    started = time.perf_counter()
    from loopml.pipeline.train import train_project

    result = train_project(project)
    print(f"trained version {result.version} in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)  # fmt: skip
    assert result.version is not None
    registry = open_registry(project)
    profile = load_profile(registry, result.version, folder / ".loopml" / "profiles")
    artifact = registry.fetch_serving_artifact(result.version, folder / ".loopml" / "serving")
    return Model(project, profile, load_runtime(artifact, threads=2))


def write_ledger(model: Model, frame: pd.DataFrame, url: str) -> int:
    """Score ``frame`` and record it as the server would; returns the onset row."""
    contract = model.runtime.contract
    features = feature_arrays(frame, contract)
    outputs = model.runtime.predict(features)
    classes = list(model.runtime.meta.classes)
    names = list(features)
    columns = [np.where(pd.isna(features[n]), None, features[n]).tolist()
               if features[n].dtype != object else features[n].tolist() for n in names]  # fmt: skip
    ts = frame["ts"].to_numpy(dtype="datetime64[us]").astype(np.int64) / 1e6
    labels = frame["engaged"].to_numpy()
    backend = SqliteBackend.from_url(url, Path("."))
    try:
        for start in range(0, len(frame), 20_000):
            stop = min(start + 20_000, len(frame))
            rows = [
                PredictionRow(
                    f"r{i:08d}", 0, float(ts[i]), "feed", "1", "champion", None,
                    orjson.dumps(dict(zip(names, (c[i] for c in columns), strict=True))).decode(),
                    orjson.dumps({"label": str(outputs.labels[i]), **{
                        f"proba_{k}": float(outputs.probabilities[i, j])
                        for j, k in enumerate(classes)}}).decode(),
                    0.1,
                )
                for i in range(start, stop)
            ]  # fmt: skip
            feedback = [
                Feedback(f"r{i:08d}", 0, orjson.dumps(int(labels[i])).decode(), float(ts[i]))
                for i in range(start, stop)
            ]
            backend.commit([PredictionOp(rows), FeedbackOp(feedback)])
    finally:
        backend.close()
    # The generator's onset is a fraction of its 30-day span from its start date.
    start_day = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    onset_ts = start_day + ONSET * 30 * 86400
    return int(np.searchsorted(ts, onset_ts))


def run_scenario(model: Model, folder: Path, scenario: str, rows: int, seed: int) -> dict[str, Any]:
    frame = generate_feed(rows, seed=seed, scenario=scenario, onset=ONSET)
    ledger = folder / f"ledger-{scenario}.db"
    started = time.perf_counter()
    onset_row = write_ledger(model, frame, f"sqlite:///{ledger}")
    written = time.perf_counter() - started
    project = model.project.model_copy(
        update={
            "serve": model.project.serve.model_copy(
                update={"ledger": model.project.serve.ledger.model_copy(
                    update={"url": f"sqlite:///{ledger}"})}
            ),
            "monitor": model.project.monitor.model_copy(
                update={
                    "window": str(WINDOW),
                    "store": f"sqlite:///{folder / f'monitor-{scenario}.db'}",
                    "alert_log": str(folder / f"alerts-{scenario}.jsonl"),
                    "reports_dir": str(folder / f"reports-{scenario}"),
                }
            ),
        }
    )  # fmt: skip
    started = time.perf_counter()
    run = run_monitor(project, profiles=lambda _v: model.profile, write_reports=False)
    monitored = time.perf_counter() - started
    windows = sorted(run.complete_windows, key=lambda w: w.index)
    result = summarize(scenario, windows, run.events, onset_row, rows)
    result |= {"write_seconds": round(written, 1), "monitor_seconds": round(monitored, 1),
               "rows_per_second": round(rows / monitored)}  # fmt: skip
    if scenario != "stationary":
        result |= estimate_gap(windows, frame, model, onset_row)
    return result


def summarize(
    scenario: str, windows: list[WindowReport], events: list[Any], onset_row: int, rows: int
) -> dict[str, Any]:
    def first(flag: Any) -> int | None:
        for w in windows:
            if (w.index + 1) * WINDOW > onset_row and flag(w):
                return (w.index + 1) * WINDOW - onset_row
        return None

    def flagged_before(flag: Any) -> int:
        return sum(1 for w in windows if (w.index + 1) * WINDOW <= onset_row and flag(w))

    dataset = lambda w: w.dataset_drift  # noqa: E731
    signal = lambda w: bool(w.drifted_features) or w.dataset_drift or any(  # noqa: E731
        v > 0.5 for k, v in w.metrics.items()
        if k == "prediction_drift" or (k.split(".")[0] in ("missing_increase", "unseen_rate")
                                       and v > 0.1)
    )  # fmt: skip
    prediction = lambda w: bool(w.metrics.get("prediction_drift"))  # noqa: E731
    first_full = next((w for w in windows if w.index * WINDOW >= onset_row), None)
    raised = [e for e in events if e.state == "raised"]
    before = [e for e in raised if (e.window + 1) * WINDOW <= onset_row]
    after = [e for e in raised if (e.window + 1) * WINDOW > onset_row]
    stationary = scenario == "stationary"
    return {
        "scenario": scenario,
        "windows": len(windows),
        "onset_row": None if stationary else onset_row,
        "false_alerts": len(raised) if stationary else len(before),
        "false_alert_rules": sorted({f"{e.rule}:{e.metric}" for e in (raised if stationary
                                                                       else before)}),
        "windows_flagged_dataset_drift_before_onset": flagged_before(dataset) if not stationary
        else sum(1 for w in windows if w.dataset_drift),
        "windows_flagged_prediction_drift_before_onset": flagged_before(prediction)
        if not stationary else sum(1 for w in windows if prediction(w)),
        "delay_any_signal": None if stationary else first(signal),
        "windows_with_any_signal": sum(1 for w in windows if signal(w)) if stationary else
        flagged_before(signal),
        "delay_dataset_drift": None if stationary else first(dataset),
        "delay_prediction_drift": None if stationary else first(prediction),
        "delay_first_alert": None if stationary or not after
        else (min(e.window for e in after) + 1) * WINDOW - onset_row,
        "first_alerts": sorted({f"{e.rule}:{e.metric}" for e in after})[:6],
        "first_full_window_flags": None if first_full is None or stationary else {
            "dataset_drift": first_full.dataset_drift,
            "prediction_drift": prediction(first_full),
            "drifted_features": first_full.drifted_features,
            "missing_increase": {k: round(v, 3) for k, v in first_full.metrics.items()
                                 if k.startswith("missing_increase.") and v > 0.05},
        },
        "drifted_features_seen": sorted({f for w in windows for f in w.drifted_features}),
    }  # fmt: skip


def estimate_gap(
    windows: list[WindowReport], frame: pd.DataFrame, model: Model, onset_row: int
) -> dict[str, Any]:
    """Estimated vs realized ROC-AUC after the onset: per window, and over all post rows."""
    gaps = [
        abs(w.performance.estimated["roc_auc"] - w.performance.realized["roc_auc"])  # type: ignore[operator]
        for w in windows
        if w.index * WINDOW >= onset_row
        and w.performance.estimated.get("roc_auc") is not None
        and w.performance.realized.get("roc_auc") is not None
    ]
    from loopml.monitor.performance import estimate_performance

    post = frame.iloc[onset_row:]
    scores = model.runtime.predict(feature_arrays(post, model.runtime.contract)).probabilities
    y = post["engaged"].to_numpy().astype(np.int64)
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


def markdown(results: list[dict[str, Any]], args: argparse.Namespace, seconds: float) -> str:
    def cell(value: Any) -> str:
        return "—" if value is None else f"{value:,}" if isinstance(value, int) else str(value)

    lines = [
        "## Monitoring: quality of the signal",
        "",
        f"`.venv/bin/python bench/bench_monitor.py --rows {args.rows} --train-rows "
        f"{args.train_rows}` — {datetime.now(UTC):%Y-%m-%d}, {seconds / 60:.1f} min. "
        f"Windows of {WINDOW:,} predictions, default monitor settings and alert rules; "
        f"onset at {ONSET:.0%} of the 30 days. Delays are predictions from the onset to the "
        "end of the first flagged window (one window = 5,000).",
        "",
        "| scenario | windows | false alerts | windows flagged before onset | first signal "
        "delay | dataset drift delay | prediction drift delay | first alert delay | first full "
        "window after onset | est. vs realized AUC after onset |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        flags = r.get("first_full_window_flags") or {}
        flagged = ", ".join(
            k for k in ("dataset_drift", "prediction_drift") if flags.get(k)
        ) or ("features: " + ", ".join(flags.get("drifted_features", [])[:4])
              if flags.get("drifted_features") else "not flagged")  # fmt: skip
        if flags.get("missing_increase"):
            flagged += "; missing: " + ", ".join(flags["missing_increase"])
        gap = (f"{r['auc_post_estimated']} vs {r['auc_post_realized']} "
               f"(gap {r['auc_post_gap']}; per window mean {r['auc_gap_mean_per_window']})"
               if "auc_post_gap" in r else "—")  # fmt: skip
        lines.append(
            f"| {r['scenario']} | {r['windows']} | {r['false_alerts']} "
            f"| {r['windows_with_any_signal']} | {cell(r['delay_any_signal'])} "
            f"| {cell(r['delay_dataset_drift'])} | {cell(r['delay_prediction_drift'])} "
            f"| {cell(r['delay_first_alert'])} | "
            f"{'—' if r['scenario'] == 'stationary' else flagged} | {gap} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600_000, help="rows per scenario")
    parser.add_argument("--train-rows", type=int, default=200_000)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="loopml-bench-monitor-") as tmp:
        folder = Path(tmp)
        model = train(folder, args.train_rows)
        results = []
        for seed, scenario in enumerate(SCENARIOS, start=101):
            result = run_scenario(model, folder, scenario, args.rows, seed)
            print(json.dumps(result), file=sys.stderr, flush=True)
            results.append(result)
    seconds = time.perf_counter() - started
    OUT.mkdir(exist_ok=True)
    (OUT / "monitor.json").write_text(json.dumps(results, indent=2))
    text = markdown(results, args, seconds)
    (OUT / "monitor.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
