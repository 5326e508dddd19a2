"""Benchmark: the full `loopml train` on N generated feed rows with the default budget.

Not a test. Reports wall time per stage and peak RSS (this process and its children).
Run: .venv/bin/python bench/bench_train.py --rows 1000000
Targets (issue 2): all candidates under 10 minutes and under 4 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from loopml.config import load_project
from loopml.data.feed import generate_feed
from loopml.data.sources import write_table
from loopml.pipeline.project import InitOptions, init_project
from loopml.pipeline.train import train_project


class Timer:
    """A Progress that records when each stage started."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, float]] = []

    def stage(self, description: str, total: int | None = None) -> None:
        self.stages.append((description, time.perf_counter()))
        print(f"  {time.strftime('%H:%M:%S')} {description}", file=sys.stderr, flush=True)

    def advance(self, amount: int = 1) -> None:
        return None


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loopml-bench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        frame = generate_feed(args.rows, args.seed)
        write_table(frame, folder / "feed.parquet")
        generated = time.perf_counter() - started
        del frame
        init_project(
            folder / "feed.parquet",
            "engaged",
            project_file=folder / "loopml.yaml",
            options=InitOptions(name="bench-feed"),
        )
        project = load_project(folder / "loopml.yaml", environ={})
        timer = Timer()
        started = time.perf_counter()
        result = train_project(project, timer)
        wall = time.perf_counter() - started
    print(f"\nrows: {args.rows:,}  generate+write: {generated:.1f} s")
    print(f"train wall time: {wall:.1f} s ({wall / 60:.2f} min)  peak RSS: {peak_rss_mb():,.0f} MB")
    print(f"chosen: {result.chosen}  {result.metric}: {result.leaderboard_metric():.4f}")
    print(f"gate: {'passed' if result.gate.passed else 'failed'} - {result.gate.reason}")
    print("\n| model | kind | " + result.metric + " | fit+tune s | trials |")
    print("|---|---|---|---|---|")
    for row in result.leaderboard:
        print(
            f"| {row.name} | {row.kind} | {row.metrics.get(result.metric, float('nan')):.4f} "
            f"| {row.fit_seconds:.1f} | {row.trials} |"
        )


if __name__ == "__main__":
    main()
