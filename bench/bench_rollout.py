"""Benchmark: the quality of the rollout's decisions (issue 13), over seeded runs.

Not a test. Method: docs/benchmark-method.md ("The loop"). Builds a bench project on the
generated feed (a LightGBM champion trained on 20,000 rows; challengers: (a) healthy,
retrained on 150,000 rows; (b) trained on the same rows with the labels permuted,
registered with the registration gate forced, since it does not pass it; (c) the healthy
version answering 5 % errors; (d) the healthy version 3x slower — (c) and (d) wrap its
runtime in-process, see bench/rollout/arms.py), then rolls each out with the default
policy (``RolloutConfig()``) over replayed, labelled feed traffic on a simulated clock,
in-process (bench/rollout/replay.py), ``--seeds`` runs per case. The challengers are
trained once; a seed changes the replayed rows (a fresh feed table, seed 1000 + seed),
the rollout (its id, so the router's places) and the flaky challenger's failures.

Prints the tables and writes the "Rollout: quality of the decisions" section of
docs/benchmarks.md; every run's result goes to bench/out/rollout/runs.jsonl.

Run: .venv/bin/python bench/bench_rollout.py            (20 seeds per case)
     .venv/bin/python bench/bench_rollout.py --quick    (3 seeds, for development)
Targets (issue 13): 0 healthy challengers rolled back, 0 bad ones promoted over 20 seeded
runs each; every bad one rolled back before it serves more than 5 % of the traffic it
would have served at full share.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rollout.project import TRAIN_ENV, build_project, log
from rollout.replay import CASES, load_bench, run_case
from rollout.report import (
    CASE_HEADER,
    MARGIN_HEADER,
    case_rows,
    margin_rows,
    table,
    target_rows,
    write_section,
)

ROOT = Path(__file__).resolve().parent.parent
TITLE = "## Rollout: quality of the decisions"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds per case")
    parser.add_argument("--seeds", type=int, default=20, help="seeded runs per case")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument(
        "--cap", type=int, default=80_000, help="requests per run before it is reported undecided"
    )
    parser.add_argument("--tick", type=float, default=0.05, help="simulated s per request")
    parser.add_argument("--champion-rows", type=int, default=20_000)
    parser.add_argument("--challenger-rows", type=int, default=150_000)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "rollout")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the bench project, and the runs already in runs.jsonl",
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="no new runs: render the runs already in runs.jsonl",
    )
    parser.add_argument(
        "--source-note",
        default="",
        help="which loopml code ran, for the docs (default: its git commit)",
    )
    parser.add_argument(
        "--measured-minutes",
        type=float,
        default=None,
        help="with --render-only: how long the measuring run took",
    )
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-docs", action="store_true", help="print only")
    args = parser.parse_args()
    if args.quick:
        args.seeds = 3
    return args


def command(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python bench/bench_rollout.py"]
    if args.quick:
        parts.append("--quick")
    elif args.seeds != 20:
        parts.append(f"--seeds {args.seeds}")
    if args.cap != 80_000:
        parts.append(f"--cap {args.cap}")
    if args.cases != ",".join(CASES):
        parts.append(f"--cases {args.cases}")
    return " ".join(parts)


def gate_said(notes: dict[str, Any]) -> str:
    scores = notes.get("scores") or {}
    if "lightgbm" in scores and "dummy" in scores:
        return (
            f"its holdout ROC-AUC {scores['lightgbm']:.4f} does not beat the floor's "
            f"{scores['dummy']:.4f} by the margin 0.005"
        )
    return str(notes.get("gate_reason", "?"))[:120]


def source_commit() -> str:
    import loopml

    folder = Path(loopml.__file__).resolve().parent
    done = subprocess.run(
        ["git", "-C", str(folder), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"loopml at {done.stdout.strip()[:80] or 'an unknown commit'}"


def versions_line() -> str:
    from importlib.metadata import version

    names = ("lightgbm", "onnxruntime", "numpy", "pandas", "scikit-learn", "mlflow")
    return ", ".join(f"{n} {version(n)}" for n in names)


_BENCH: list[Any] = []


def _init(job: tuple[Path, Any, float, int, Path]) -> None:
    """A worker process: the project's deployments, loaded once."""
    folder, versions, tick, cap, _ = job
    _BENCH[:] = [load_bench(folder, versions, tick, cap), job[4]]


def _one(task: tuple[str, int]) -> dict[str, Any]:
    bench, runs = _BENCH
    return run_case(bench, task[0], task[1], runs).to_dict()


def main() -> None:
    args = parse_args()
    os.environ.update({"OMP_NUM_THREADS": "1"})
    started = time.time()
    versions = build_project(
        args.workdir / "project",
        champion_rows=args.champion_rows,
        challenger_rows=args.challenger_rows,
        reuse=args.reuse,
    )
    out = args.workdir / "runs.jsonl"
    done: dict[tuple[str, int], dict] = {}
    if (args.reuse or args.render_only) and out.is_file():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            if r["outcome"] != "error":
                done[(r["case"], r["seed"])] = r
    else:
        out.write_text("")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    tasks = [(c, s) for s in seeds for c in args.cases.split(",")]  # seed by seed
    runs = [done[t] for t in tasks if t in done]
    todo = [] if args.render_only else [t for t in tasks if t not in done]
    job = (args.workdir / "project", versions, args.tick, args.cap, args.workdir / "runs")
    with multiprocessing.get_context("spawn").Pool(
        min(args.jobs, max(1, len(todo))), _init, (job,)
    ) as pool:
        for result in pool.imap_unordered(_one, todo) if todo else ():
            runs.append(result)
            with out.open("a") as f:
                f.write(json.dumps(result) + "\n")
            log(
                f"{result['case']} seed {result['seed']}: {result['outcome']} after "
                f"{result['requests']:,} requests ({result['wall_seconds']:.0f} s); "
                f"{result['last_summary'][:150]}"
                + (f" {result['detail'][:300]}" if result["detail"] else "")
            )
    runs.sort(key=lambda r: (CASES.index(r["case"]), r["seed"]))
    took = time.time() - started
    if args.render_only and args.measured_minutes is not None:
        took = args.measured_minutes * 60
    section = render(args, runs, versions, took)
    print(section)
    if not args.no_docs:
        write_section(args.docs, TITLE, section)
        log(f"wrote the section to {args.docs}")


def render(args: argparse.Namespace, runs: list[dict], versions, seconds: float) -> str:
    from loopml.config import RolloutConfig

    policy = RolloutConfig()
    n_seeds = len({r["seed"] for r in runs})
    lines = [
        TITLE,
        "",
        "```bash",
        command(args),
        "```",
        "",
        f"Measured {time.strftime('%Y-%m-%d')}, {seconds / 60:.0f} min on the shared 2-core "
        f"machine; Python {sys.version.split()[0]}, {versions_line()}. {n_seeds} seeded runs per "
        "case; method in [benchmark-method.md](benchmark-method.md#rollout-quality-"
        f"benchbench_rolloutpy). Code: {args.source_note or source_commit()}.",
        "",
        f"Default policy: {policy.strategy}, shadow first, steps "
        f"{', '.join(f'{s:.0%}' for s in policy.steps)}, min_predictions "
        f"{policy.min_predictions:,} per arm, bake {policy.bake_seconds:.0f} s (simulated), "
        f"judged every {policy.interval_seconds:.0f} s (simulated); guards as shipped. "
        f"Champion: version {versions.champion} (LightGBM, {args.champion_rows:,} feed rows); "
        f"healthy challenger: version {versions.healthy} ({args.challenger_rows:,} rows); "
        f"shuffled: version {versions.shuffled} (the same rows, labels permuted; the "
        "registration gate refused it — "
        f"{gate_said(versions.notes)} — so it was registered with the "
        "gate forced, through `train_project` with the selection overridden, audited as "
        "forced); errors and slow: version "
        f"{versions.healthy} with its runtime wrapped in-process.",
        "",
        "### Targets",
        "",
        table(("target (issue 13)", "measured", ""), target_rows(runs)),
        "",
        "### Per challenger",
        "",
        table(CASE_HEADER, case_rows(runs)),
        "",
        *(
            [
                "### The healthy challenger's guard values at the stages it passed",
                "",
                table(MARGIN_HEADER, margin_rows(runs)),
                "",
            ]
            if margin_rows(runs)
            else []
        ),
        "How to read it: one run replays fresh feed rows (a new table per seed, never seen "
        f"in training) as 1-row requests, {1 / args.tick:.0f} per simulated second, each "
        "keyed by its `impression_id` (the entity key, so the sticky key); every prediction "
        "is labelled, the labels of each 30 s window sent through the service's feedback "
        'path in one batch before the controller\'s step. "Predictions until the decision" '
        "counts requests from `rollout start` to the step that promoted or rolled back; "
        '"challenger\'s share served" is the requests the challenger answered over all '
        "requests of the run (what it would have answered at full share; shadow scoring "
        "answers nobody). Undecided: no decision within "
        f"{args.cap:,} requests ({args.cap * args.tick / 60:.0f} simulated minutes).",
    ]
    _ = TRAIN_ENV
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
