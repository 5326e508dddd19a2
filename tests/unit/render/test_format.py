"""The value formats every page shares (moved here from the monitoring report's tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loopml.render.format import (
    escape_markdown,
    fmt_fixed,
    fmt_int,
    fmt_interval,
    fmt_num,
    fmt_pct,
    fmt_range,
    fmt_time,
    shorten,
    text,
)

pytestmark = pytest.mark.unit

T0 = 1_714_557_600.0  # 2024-05-01 10:00:00 UTC
HOUR = 3600.0


def test_formatting_helpers() -> None:
    assert fmt_num(0.000123456) == "0.0001235"
    assert fmt_num(0.81234) == "0.8123"
    assert fmt_num(123456.7) == "123,457"
    assert fmt_num(float("nan")) == fmt_num(None) == fmt_num(float("inf")) == "—"
    assert fmt_pct(0.1234) == "12.3%"
    assert fmt_pct(0.5) == "50%"
    assert fmt_pct(0.0004) == "<0.1%"
    assert fmt_pct(None) == "—"
    assert fmt_time(T0) == "2024-05-01 10:00:00 UTC"
    assert fmt_time("2024-05-01T12:00:00+02:00") == "2024-05-01 10:00:00 UTC"
    assert fmt_range(T0, T0 + 25 * HOUR) == "2024-05-01 10:00:00 – 2024-05-02 11:00:00 UTC"
    assert fmt_range(None, None) == "—"


def test_fixed_decimals_intervals_and_counts() -> None:
    assert fmt_fixed(0.781234) == "0.7812"
    assert fmt_fixed(-0.08123, sign=True) == "-0.0812"
    assert fmt_fixed(0.01877, sign=True) == "+0.0188"
    assert fmt_fixed(12.34, 1) == "12.3"
    assert fmt_fixed(math.nan, missing="n/a") == fmt_fixed(None, missing="n/a") == "n/a"
    assert fmt_interval(0.7812, 0.7791, 0.7834) == "0.7812 [0.7791, 0.7834]"
    assert fmt_interval(0.7812, None, None) == "0.7812"
    assert fmt_interval(math.nan, 0.1, 0.2, missing="n/a") == "n/a"
    assert fmt_int(12345.0) == "12,345" and fmt_int(None) == "—"
    assert fmt_int(True) == "—"  # a bool is no count
    assert fmt_fixed(np.float32(0.25)) == "0.2500" and fmt_int(np.int64(3)) == "3"


def test_text_is_never_none_or_nan() -> None:
    assert text(None) == text(math.nan) == "—"
    assert text(0.123456) == "0.1235"
    assert text("plan") == "plan"
    assert shorten("a" * 30) == "a" * 17 + "…"
    assert shorten("short") == "short"


def test_markdown_cells_cannot_break_a_table() -> None:
    assert escape_markdown("a|b") == "a\\|b"
    assert escape_markdown("<script>x</script>") == "&lt;script&gt;x&lt;/script&gt;"
    assert escape_markdown("two\nlines") == "two lines"
    assert escape_markdown("feat_0") == "feat_0"  # underscores are left alone
