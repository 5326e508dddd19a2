"""Benchmark: the concept-drift check over many feed seeds (not a test).

``bench_monitor.py`` runs each scenario once; a false alarm rate of "one in a few hundred
windows" would pass it by luck. This runs the same check — the ROC-AUC drop of each
5,000-row window in standard deviations of chance (:class:`~loopml.monitor.noise.
ChanceTable`), fed to :class:`~loopml.monitor.cusum.Cusum`, alert above ``CUSUM_LIMIT`` —
on 10 stationary feeds (1,200 windows) and 5 concept-drift feeds, and prints, per feed,
the first window raised (the onset is at window 60, so 61 is the second full window after
it), the series' learnt level and the highest sum. It reads the scores directly from the
serving artifact instead of a ledger, so it runs in ~6 minutes.

Run: .venv/bin/python bench/bench_monitor_seeds.py
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import bench_monitor as bm

from loopml.config import CUSUM_LIMIT
from loopml.data.feed import generate_feed
from loopml.monitor.cusum import Cusum
from loopml.monitor.noise import ChanceTable
from loopml.registry.runtime import feature_arrays
from loopml.train.metrics import roc_auc

WINDOW = 5_000
ROWS = 600_000
STATIONARY = range(301, 311)
CONCEPT_DRIFT = range(401, 406)


def series(model: bm.Model, scenario: str, seed: int) -> tuple[int | None, Cusum, float, int]:
    """The first window raised, the last state, the highest sum and the alerts of one feed."""
    profile = model.profile
    chance = ChanceTable(profile).realized(WINDOW)["roc_auc"]
    frame = generate_feed(ROWS, seed=seed, scenario=scenario, onset=0.5)
    scores = model.runtime.predict(feature_arrays(frame, model.runtime.contract)).probabilities
    y = frame[model.target].to_numpy().astype(np.int64)
    state, first, peak, alerts = Cusum(), None, 0.0, 0
    for index in range(len(frame) // WINDOW):
        rows = slice(index * WINDOW, (index + 1) * WINDOW)
        z = chance.z(profile.holdout_metrics["roc_auc"] - roc_auc(y[rows], scores[rows], None))
        state = state.step(z, index)
        peak = max(peak, state.value)
        if state.value > CUSUM_LIMIT:
            first = index if first is None else first
            alerts += 1
            state = Cusum(0.0, None, state.windows, state.z_sum)  # raised: start again
    return first, state, peak, alerts


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        table = generate_feed(200_000, seed=1)
        model = bm.train(Path(folder) / "feed", table, bm.FEED_TARGET, "binary", WINDOW)
        runs = itertools.chain(
            ((seed, "stationary") for seed in STATIONARY),
            ((seed, "concept_drift") for seed in CONCEPT_DRIFT),
        )
        print("| feed | seed | first window raised | level | highest sum | alerts |")
        print("|---|---|---|---|---|---|")
        for seed, scenario in runs:
            first, state, peak, alerts = series(model, scenario, seed)
            shown = "—" if first is None else str(first)
            print(f"| {scenario} | {seed} | {shown} | {state.level:.2f} | {peak:.2f} | {alerts} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
