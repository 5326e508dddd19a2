"""Benchmark: generate N feed rows and write them to Parquet.

Not a test. Reports the median of --repeats runs for generation and for the Parquet write
(pyarrow, snappy), rows/s, the file size and the peak RSS of this process.
Run: .venv/bin/python bench/bench_feed.py --rows 1000000
Target: >= 500k rows/s for generation on one core (ideally 1M rows in ~1 s).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from loopml.data.feed import FEED_TARGET, describe_scenarios, generate_feed


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenario", default="stationary", choices=list(describe_scenarios()))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    generate_feed(1_000, args.seed, args.scenario)  # warm-up: imports, first-call costs
    generate_seconds, write_seconds = [], []
    with tempfile.TemporaryDirectory(prefix="loopml-bench-feed-") as tmp:
        path = Path(tmp) / "feed.parquet"
        for _ in range(args.repeats):
            frame = None  # let the previous frame go before the next is made
            started = time.perf_counter()
            frame = generate_feed(args.rows, args.seed, args.scenario)
            generate_seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
            write_seconds.append(time.perf_counter() - started)
        size_mb = path.stat().st_size / 2**20

    generate = statistics.median(generate_seconds)
    write = statistics.median(write_seconds)
    print(f"rows: {args.rows:,}  scenario: {args.scenario}  repeats: {args.repeats}")
    print(f"generate: {generate:.3f} s median  ({args.rows / generate:,.0f} rows/s)")
    print(f"  runs: {', '.join(f'{s:.3f}' for s in generate_seconds)}")
    print(f"parquet write: {write:.3f} s median  ({args.rows / write:,.0f} rows/s)")
    print(f"generate + write: {args.rows / (generate + write):,.0f} rows/s")
    memory_mb = frame.memory_usage(deep=True).sum() / 2**20
    print(f"parquet size: {size_mb:.1f} MB  frame in memory: {memory_mb:.0f} MB")
    print(f"engaged rate: {frame[FEED_TARGET].mean():.4f}  peak RSS: {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
