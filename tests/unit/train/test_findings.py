"""Copies and possible leakage are pointed out; clean tables get no finding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.data.infer import infer_contract
from loopml.features.pipeline import feature_frame
from loopml.train.findings import copies_finding, find_leaks
from loopml.train.split import encode_target

pytestmark = pytest.mark.unit


def leaks_in(frame: pd.DataFrame, task: str) -> list[str]:
    contract = infer_contract(frame, target="y", task=task, entity_key=None, time_column=None)
    x, y = feature_frame(frame, contract), encode_target(frame["y"], contract)
    half = len(frame) // 2
    found = find_leaks(contract, x.iloc[:half], y[:half], x.iloc[half:], y[half:])
    return [leak.feature for leak in found]


def table(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    signal = x[:, 0] + rng.normal(0, 1, n)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": rng.choice(["u", "v"], n), "s": signal})


def test_a_feature_known_only_after_the_target_is_flagged() -> None:
    frame = table()
    frame["y"] = np.where(frame["s"] > 0.5, "yes", "no")
    frame["refund"] = np.where(frame["y"] == "yes", 10.0, 0.0)
    assert leaks_in(frame.drop(columns="s"), "binary") == ["refund"]
    frame["status"] = np.where(frame["y"] == "yes", "closed", "open")
    assert set(leaks_in(frame.drop(columns="s"), "binary")) == {"refund", "status"}


def test_regression_and_multiclass_leaks() -> None:
    frame = table()
    frame["y"] = frame["s"] * 3
    assert leaks_in(frame, "regression") == ["s"]
    frame["y"] = pd.cut(frame["s"], [-np.inf, -0.5, 0.5, np.inf], labels=["l", "m", "h"]).astype(
        str
    )
    assert leaks_in(frame, "multiclass") == ["s"]


def test_an_honest_table_has_no_leak() -> None:
    frame = table().drop(columns="s")
    frame["y"] = np.where(table()["s"] > 0.5, "yes", "no")
    assert leaks_in(frame, "binary") == []


def test_the_copies_sentence() -> None:
    assert copies_finding(100, 0, crossing=None) is None
    kept = copies_finding(1000, 370, crossing=None)
    assert kept is not None and kept.startswith("370 of 1,000 rows (37.0 %) are exact copies")
    assert "kept each set of copies on one side" in kept
    crossing = copies_finding(1000, 370, crossing=120)
    assert crossing is not None and "120 holdout rows copy a training row" in crossing
