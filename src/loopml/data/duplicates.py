"""Exact duplicate rows: rows that repeat an earlier row in every column compared.

Each column is factorized (a null is a value of its own, equal to every other null) and
the codes are folded into one group number per row, column after column, so a million rows
of many columns take one factorization per column rather than a comparison of rows. A row
whose group appeared before repeats the group's first row.

>>> found = duplicate_rows(pd.DataFrame({"a": [1, 2, 1, 1], "b": ["x", None, "x", "y"]}))
>>> found.count, found.pairs
(1, ((2, 0),))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Duplicates", "duplicate_rows"]

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Duplicates:
    """``count`` rows repeat an earlier row of ``rows``; ``pairs`` holds the first few
    as (row, the earlier row it repeats), 0-based positions."""

    rows: int
    count: int
    pairs: tuple[tuple[int, int], ...]

    @property
    def share(self) -> float:
        return self.count / self.rows if self.rows else 0.0


def duplicate_rows(frame: pd.DataFrame, *, examples: int = 5) -> Duplicates:
    """The rows of ``frame`` that repeat an earlier one in every column (see module docs)."""
    n = len(frame)
    if n == 0 or frame.shape[1] == 0:
        return Duplicates(n, 0, ())
    groups = _groups(frame)
    # factorize numbers groups by first appearance: group g's first row is firsts[g]
    _, firsts = np.unique(groups, return_index=True)
    first_of_row = firsts[groups]
    repeats = np.flatnonzero(first_of_row != np.arange(n))
    pairs = tuple((int(row), int(first_of_row[row])) for row in repeats[:examples])
    return Duplicates(n, int(repeats.size), pairs)


def _groups(frame: pd.DataFrame) -> Array:
    """One group number per row, equal for rows equal in every column, numbered by first
    appearance. Column codes are folded as digits of one number; the number is factorized
    again only when the next column could overflow it (as pandas' own group index does)."""
    groups = np.zeros(len(frame), dtype=np.int64)
    bound = 1
    for _, column in frame.items():
        codes, size = _codes(column)
        if bound * size >= _LIMIT:
            groups, bound = _compress(groups)
        groups = groups * size + codes
        bound *= size
    return _compress(groups)[0]


_LIMIT = 2**62


def _codes(column: pd.Series) -> tuple[Array, int]:
    """A column's values as codes 0..size-1 (a null is a value of its own)."""
    try:
        codes, uniques = pd.factorize(column, use_na_sentinel=False)
    except TypeError:  # unhashable values (lists in a Parquet column): compare their text
        codes, uniques = pd.factorize(column.astype(str), use_na_sentinel=False)
    return np.asarray(codes, dtype=np.int64), max(len(uniques), 1)


def _compress(groups: Array) -> tuple[Array, int]:
    codes, uniques = pd.factorize(groups)
    return np.asarray(codes, dtype=np.int64), max(len(uniques), 1)
