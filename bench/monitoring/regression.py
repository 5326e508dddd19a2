"""A stationary regression table for the monitoring bench, in dollar-like units.

Friedman #1 (scikit-learn's ``make_friedman1``: five informative inputs on [0, 1], one
pure noise input, Gaussian noise) plus one categorical column that shifts the target,
scaled by 1,000 so that the target reads like a price. An absolute threshold that suits
the feed's ROC-AUC (0.05) is then about a thousandth of the noise of one window's RMSE:
a performance alert on this table has to judge a drop against the metric's own noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import make_friedman1

TARGET = "price"
SCALE = 1_000.0
REGIONS = ("north", "south", "east", "west")
REGION_SHARE = (0.4, 0.3, 0.2, 0.1)
REGION_OFFSET = (0.0, 2.0, -1.5, 4.0)
NOISE = 1.0
DAYS = 30
START = "2026-01-01"


def generate_regression(rows: int, seed: int) -> pd.DataFrame:
    """``rows`` rows over 30 days from ``START``, sorted by ``ts``; the same seed, the same table.

    >>> table = generate_regression(1_000, seed=1)
    >>> sorted(table.columns)[:3], table["region"].nunique(), bool(table[TARGET].std() > 1_000)
    (['price', 'region', 'ts'], 4, True)
    """
    rng = np.random.default_rng(seed)
    x, y = make_friedman1(rows, n_features=6, noise=NOISE, random_state=seed)
    region = rng.choice(len(REGIONS), size=rows, p=REGION_SHARE)
    target = (y + np.asarray(REGION_OFFSET)[region]) * SCALE
    offsets = np.sort(rng.uniform(0, DAYS * 86_400e6, size=rows)).astype("int64")
    ts = pd.Timestamp(START).as_unit("us") + pd.to_timedelta(offsets, unit="us")
    frame = pd.DataFrame({"ts": ts})
    for i in range(x.shape[1]):
        frame[f"x{i + 1}"] = x[:, i]
    frame["region"] = pd.Series(np.asarray(REGIONS, dtype=object)[region], dtype="str")
    frame[TARGET] = target.round(2)
    return frame
