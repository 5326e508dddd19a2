from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.data.cells import (
    as_number,
    boolean_key,
    boolean_keys,
    category_keys,
    fractional,
    is_null,
    is_whole,
    read_numbers,
)

pytestmark = pytest.mark.unit


def test_category_keys() -> None:
    assert category_keys(pd.Series([1.0, None, 0.0])).tolist() == ["1", "0"]
    assert category_keys(pd.Series([1.5, 0.0])).tolist() == ["1.5", "0.0"]
    assert category_keys(pd.Series([True, False])).tolist() == ["True", "False"]


@pytest.mark.parametrize("value", [None, pd.NA, pd.NaT, float("nan"), np.float32("nan")])
def test_nulls(value: object) -> None:
    assert is_null(value)


@pytest.mark.parametrize("value", [0, 0.0, "", "nan", False, "__missing__"])
def test_values_that_are_not_null(value: object) -> None:
    assert not is_null(value)


@pytest.mark.parametrize(
    ("value", "strict", "number"),
    [
        (3, True, 3.0),
        (np.int8(-2), True, -2.0),
        (2.5, True, 2.5),
        (10**400, True, math.inf),
        (-(10**400), False, -math.inf),
        (True, False, None),
        (np.bool_(False), True, None),
        ("3", True, None),
        (" 3 ", False, 3.0),
        ("1e3", False, 1000.0),
        ("-Infinity", False, -math.inf),
        ("nan", False, None),
        ("", False, None),
        ("1_000", False, None),
        ("x", False, None),
        (Decimal("1.5"), False, 1.5),
        (Decimal("1.5"), True, None),
        ({"a": 1}, False, None),
        ([1], False, None),
    ],
)
def test_numbers(value: object, strict: bool, number: float | None) -> None:
    assert as_number(value, strict=strict) == number


def test_whole_numbers() -> None:
    assert is_whole(3.0) and is_whole(-0.0)
    assert not is_whole(2.5) and not is_whole(math.inf) and not is_whole(math.nan)
    values = np.array([1.0, 1.5, np.inf, np.nan, -2.0])
    assert fractional(values).tolist() == [False, True, False, False, False]


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (True, "True"),
        (np.bool_(False), "False"),
        (" TRUE ", "True"),
        ("0", "False"),
        (1, "True"),
        (0.0, "False"),
        ("1.0", "True"),
        (-0.0, None),
        (2, None),
        ("yes", None),
        ({"a": 1}, None),
    ],
)
def test_booleans(value: object, key: str | None) -> None:
    assert boolean_key(value) == key


# -- the vectorised rules are the scalar rules, value for value -------------------------

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**400), 10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1", " 2 ", "1e3", "inf", "-Infinity", "nan", "", "x", "1_000", "0.0"]),
    st.sampled_from(["true", " FALSE ", "1.0", "yes", Decimal("2.5"), np.int64(4)]),
    st.text(max_size=4),
)


def _same(a: Any, b: Any) -> bool:
    return (a is None and b is None) or a == b or (isinstance(a, float) and math.isnan(a))


@given(st.lists(VALUES, min_size=1, max_size=8))
def test_read_numbers_reads_each_value_as_as_number_does(values: list[object]) -> None:
    series = pd.Series(values, dtype=object)
    numbers, unreadable = read_numbers(series)
    for value, number, bad in zip(values, numbers.tolist(), unreadable.tolist(), strict=True):
        expected = None if is_null(value) else as_number(value, strict=False)
        assert bad == (not is_null(value) and expected is None), value
        assert _same(number, math.nan if expected is None else expected), value


@given(st.lists(st.text(max_size=6), min_size=1, max_size=8))
def test_read_numbers_reads_text_as_as_number_does(values: list[str]) -> None:
    numbers, unreadable = read_numbers(pd.Series(values, dtype=object))
    for value, number, bad in zip(values, numbers.tolist(), unreadable.tolist(), strict=True):
        expected = as_number(value, strict=False)
        assert bad == (expected is None), value
        assert _same(number, math.nan if expected is None else expected), value


@given(st.lists(VALUES, min_size=1, max_size=8))
def test_boolean_keys_read_each_value_as_boolean_key_does(values: list[object]) -> None:
    keys = boolean_keys(pd.Series(values, dtype=object))
    present = [v for v in values if not is_null(v)]
    expected = [boolean_key(v) for v in present]
    assert [None if pd.isna(k) else k for k in keys.tolist()] == expected
