"""Micro-benchmark: the two readers of request validation, side by side.

Not a test. `loopml.serve.validation.validate` reads a JSON table of up to SMALL_ROWS rows
value by value (`method="loop"`) and anything larger, or any frame, a column at a time
(`method="vector"`). This measures both on the same tables, so the choice rests on numbers:
JSON tables of 1, 10, 100, 256 and 10,000 records of the generated feed (15 features, as a
JSON body decodes: Python values, null for a gap), and a 10,000-row frame (pandas dtypes,
as `loopml score` reads a file) — the per-value reader reads the frame's values as JSON
records, the only form it takes. One record is read by the per-value reader's one-record
shortcut; the "general loop" line shows the same record read without it.

Each measurement is a batch of calls sized to take ~50 ms; the readers' batches are
interleaved, --repeats rounds, and the median per call is shown with the ratio of the two
(per value / column-wise: below 1 the per-value reader is faster). Both readers' results
are checked equal first.

Run: .venv/bin/python bench/bench_validation.py             (about a minute)
     .venv/bin/python bench/bench_validation.py --repeats 3 (quicker, noisier)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from loopml.data.feed import FEED_KEY, FEED_TARGET, FEED_TIME, generate_feed
from loopml.data.infer import infer_contract
from loopml.serve.schema import InputSchema
from loopml.serve.table import Table
from loopml.serve.validation import SMALL_ROWS, ModelInput, validate

SIZES = (1, 10, 100, SMALL_ROWS, 10_000)
BATCH_SECONDS = 0.05


def _setup(rows: int, seed: int) -> tuple[InputSchema, pd.DataFrame, list[dict[str, object]]]:
    frame = generate_feed(rows, seed=seed)
    contract = infer_contract(
        frame, target=FEED_TARGET, task="binary", entity_key=FEED_KEY, time_column=FEED_TIME
    )
    inputs = frame.drop(columns=[FEED_TARGET, FEED_TIME])
    records = [
        {k: None if pd.isna(v) else v for k, v in row.items()}
        for row in inputs.astype(object).to_dict("records")
    ]
    return InputSchema.from_contract(contract), inputs, records


def _batch_size(call: Callable[[], object]) -> int:
    """Calls per batch so that one batch takes about BATCH_SECONDS."""
    number = 1
    while True:
        started = time.perf_counter()
        for _ in range(number):
            call()
        if time.perf_counter() - started >= BATCH_SECONDS / 4:
            elapsed = time.perf_counter() - started
            return max(1, round(number * BATCH_SECONDS / elapsed))
        number *= 4


def _measure(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each, the batches interleaved round by round."""
    sizes = {name: _batch_size(call) for name, call in calls.items()}
    runs: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            for _ in range(sizes[name]):
                call()
            runs[name].append((time.perf_counter() - started) / sizes[name])
    return {name: statistics.median(times) for name, times in runs.items()}


def _same(a: ModelInput, b: ModelInput) -> bool:
    return (
        list(a.features) == list(b.features)
        and all(
            np.array_equal(a.features[k], b.features[k], equal_nan=a.features[k].dtype != object)
            for k in a.features
        )
        and a.entity_keys == b.entity_keys
        and a.unseen == b.unseen
    )


def _compare(
    name: str, schema: InputSchema, by_value: Table, columns: Table, repeats: int
) -> tuple[str, float, float]:
    loop = validate(by_value, schema, method="loop")
    vector = validate(columns, schema, method="vector")
    assert _same(loop, vector), f"the readers disagree on {name}"
    times = _measure(
        {
            "loop": lambda: validate(by_value, schema, method="loop"),
            "vector": lambda: validate(columns, schema, method="vector"),
        },
        repeats,
    )
    return name, times["loop"], times["vector"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    schema, frame, records = _setup(20_000, args.seed)
    print(f"contract: {len(schema.features)} features ({len(schema.numeric)} numeric)")
    results = []
    for rows in SIZES:
        table = Table.from_records(records[:rows])
        name = f"JSON, {rows:,} row{'s' * (rows != 1)}"
        results.append(_compare(name, schema, table, table, args.repeats))
        if rows == 1:  # the general loop: the one-record shortcut declines tuple columns
            tuples = Table({name: tuple(values) for name, values in table.columns.items()}, 1)
            results.append(_compare("  general loop", schema, tuples, table, args.repeats))
    rows = 10_000
    same_values = Table.from_records(records[:rows])
    typed = Table.from_frame(frame.head(rows))
    results.append(_compare(f"frame, {rows:,} rows", schema, same_values, typed, args.repeats))
    print(f"{'table':<22}{'per value µs':>14}{'column-wise µs':>16}{'ratio':>8}  faster")
    for name, loop, vector in results:
        faster = "per value" if loop < vector else "column-wise"
        shown = f"{loop * 1e6:>14,.1f}{vector * 1e6:>16,.1f}{loop / vector:>8.2f}"
        print(f"{name:<22}{shown}  {faster}")


if __name__ == "__main__":
    main()
