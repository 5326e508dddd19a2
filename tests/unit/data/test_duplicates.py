"""Exact duplicate rows agree with pandas' ``duplicated`` and name the first earlier copy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.data.duplicates import duplicate_rows

pytestmark = pytest.mark.unit

CELLS = st.sampled_from([0, 1, 2.5, None, np.nan, "a", "b", True])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(CELLS, CELLS, CELLS), min_size=1, max_size=30))
def test_the_same_rows_as_pandas_each_with_its_first_copy(rows: list[tuple[object, ...]]) -> None:
    frame = pd.DataFrame(rows, columns=["a", "b", "c"], dtype=object)
    found = duplicate_rows(frame, examples=len(frame))
    repeats = frame.duplicated(keep="first").to_numpy()
    assert found.count == int(repeats.sum())
    assert [row for row, _ in found.pairs] == np.flatnonzero(repeats).tolist()
    # equal as Python compares values (1 == 1.0 == True, as pandas hashes them); nulls equal
    keys = [tuple(None if pd.isna(v) else v for v in row) for row in frame.itertuples(index=False)]
    for row, first in found.pairs:
        assert keys[first] == keys[row] and keys.index(keys[row]) == first


def test_many_wide_columns_fold_without_overflow() -> None:
    rng = np.random.default_rng(0)
    n = 5_000
    frame = pd.DataFrame({f"c{i}": rng.integers(0, n, n) for i in range(12)})
    frame = pd.concat([frame, frame.iloc[[10, 4_000]]], ignore_index=True)
    found = duplicate_rows(frame)
    assert (found.count, found.pairs) == (2, ((5_000, 10), (5_001, 4_000)))
    assert found.share == pytest.approx(2 / 5_002)


def test_no_rows_or_no_columns() -> None:
    assert duplicate_rows(pd.DataFrame({"a": []})).count == 0
    assert duplicate_rows(pd.DataFrame(index=range(3))).count == 0


def test_unhashable_values_are_compared_by_their_text() -> None:
    frame = pd.DataFrame({"a": [[1, 2], [1, 2], [3]]})
    assert duplicate_rows(frame).pairs == ((1, 0),)
