"""The Serving section of docs/benchmarks.md: command, machine, versions, tables, notes."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from serve.peers import Context, versions
from serve.report import (
    SECTION_TITLE,
    PeerResult,
    ScoreResult,
    notes,
    score_table,
    serving_table,
    targets_table,
)

GROUP_NAMES = {
    "mlflow": "`mlflow models serve`",
    "mlserver": "MLServer",
    "fastapi": "hand-written FastAPI",
    "loopml": "loopml",
}


def machine() -> str:
    """Cores, CPU model and memory of this machine."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return f"{os.cpu_count()} cores ({model}), {mem_kb / 2**20:.0f} GiB, Linux {platform.release()}"


def wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0] if first else "wrk (unknown version)"


def versions_lines(ctx: Context, results: list[PeerResult]) -> list[str]:
    """One line per peer product, with the versions installed in its environment."""
    lines = []
    seen: set[str] = set()
    for r in results:
        group = r.peer.group
        if group in seen:
            continue
        seen.add(group)
        python = ctx.venvs / r.peer.venv / "bin" / "python" if r.peer.venv else Path(sys.executable)
        found = versions(python, group) if python.exists() else {}
        text = ", ".join(f"{k} {v}" for k, v in found.items() if v != "-") or "not installed"
        lines.append(f"- {GROUP_NAMES[group]}: {text}")
    return lines


def method_lines(args: argparse.Namespace, mode: str) -> list[str]:
    """How the figures were taken, as a Markdown list."""
    return [
        f"{mode}How:",
        "",
        "- every server pinned to core 1 (`taskset -c 1`, `OMP_NUM_THREADS=1`, LightGBM "
        "`n_jobs=1`); wrk on core 0 (`-t1`, a Lua script POSTing a fixed body), closed loop;",
        f"- per scenario a {args.warmup:g} s warm-up, then {args.runs} runs of "
        f"{args.seconds:g} s, the peers' runs interleaved; after every run the harness waits "
        "until the server has drained what wrk left queued;",
        "- req/s: median run (min–max); latencies: median of the runs' p50 / p99 (wrk "
        "`--latency`); server CPU ms / request: CPU time of the server's process tree during "
        "a run over the requests it answered (robust to the other load on the machine);",
        "- one model file for all: the champion of a bench project "
        f"({args.train_rows:,} generated feed rows; scikit-learn pipeline of median imputer, "
        "one-hot encoder and LGBMClassifier), which loopml serves from its ONNX artifact;",
        "- payload: one feed row of 14 features (1,000 rows at c=8 for rows/s), in each "
        "server's dialect: `{\"dataframe_records\": [...]}` to mlflow's `/invocations`, an "
        "Open Inference Protocol v2 request with one input per column and the pandas codec "
        "to MLServer, `{\"records\": [...]}` to FastAPI's and loopml's `/predict`;",
        "- cold start: process start to the first response carrying the expected "
        "probability; peak RSS: highest sum of RSS over the server's process tree, sampled "
        "every 100 ms.",
    ]


def _command(args: argparse.Namespace) -> str:
    return ".venv/bin/python bench/bench_serve.py " + " ".join(sys.argv[1:])


def render_section(
    ctx: Context,
    args: argparse.Namespace,
    results: list[PeerResult],
    scores: list[ScoreResult],
    minutes: float,
) -> str:
    """The whole Serving section, Markdown."""
    mode = "**Quick mode** (development figures, not for quoting): " if args.quick else ""
    lines = [
        f"{SECTION_TITLE}: `loopml serve` side by side with its peers",
        "",
        "```bash",
        _command(args).rstrip(),
        "```",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; {wrk_version()}, "
        f"Python {platform.python_version()}; the whole run took {minutes:.0f} min. The "
        "machine is shared: load average (1 min) "
        f"{args.load_before[0]:.1f} at the start, {args.load_after[0]:.1f} at the end; the "
        "runs of all peers are interleaved so that noise falls on every peer alike.",
        "",
        *method_lines(args, mode),
        "",
        "### Targets (issue 3)",
        "",
        *targets_table(results, scores),
        "",
        "### Servers, 1-row requests unless said",
        "",
        *serving_table(results),
        "",
    ]
    if scores:
        lines += [
            f"### Batch scoring, {scores[0].rows:,} rows of Parquet, one core",
            "",
            *score_table(scores),
            "",
            "Wall time of the whole command (process start, read, score, write).",
            "",
        ]
    if found := notes(results, scores):
        lines += ["Notes:", "", *found, ""]
    lines += ["### Versions", "", *versions_lines(ctx, results), ""]
    return "\n".join(lines)
