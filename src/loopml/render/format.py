"""How a page writes a value: numbers, shares, counts, times, and text for a table cell.

Every report and page formats through these (in Python, or as the Jinja filters of
:mod:`loopml.render.environment`), so a number reads the same everywhere. A missing or
non-finite value is written as ``missing`` (by default "—"), never "nan" or "None".

>>> fmt_num(0.000123456), fmt_fixed(0.781234), fmt_pct(0.1234), fmt_int(12345.0)
('0.0001235', '0.7812', '12.3%', '12,345')
>>> fmt_num(float("nan")), fmt_fixed(None, missing="n/a")
('—', 'n/a')
"""

from __future__ import annotations

import math
import numbers
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DASH",
    "escape_markdown",
    "finite",
    "fmt_fixed",
    "fmt_int",
    "fmt_interval",
    "fmt_num",
    "fmt_pct",
    "fmt_range",
    "fmt_time",
    "shorten",
    "text",
    "utc",
]

DASH = "—"
LABEL_CHARS = 18


def finite(value: Any) -> float | None:
    """``value`` (a Python or NumPy number) as a finite float; None for anything else
    (bools, NaN, infinities, text)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def fmt_num(value: Any, missing: str = DASH) -> str:
    """A number to 4 significant digits (whole above 10,000)."""
    number = finite(value)
    if number is None:
        return missing
    if abs(number) >= 1e4:
        return f"{number:,.0f}"
    return f"{number:.4g}"


def fmt_fixed(value: Any, digits: int = 4, *, sign: bool = False, missing: str = DASH) -> str:
    """A number to ``digits`` decimals ("0.7812"), with its sign when ``sign``."""
    number = finite(value)
    if number is None:
        return missing
    return f"{number:+.{digits}f}" if sign else f"{number:.{digits}f}"


def fmt_interval(value: Any, low: Any, high: Any, digits: int = 4, missing: str = DASH) -> str:
    """A value with its interval, "0.7812 [0.7791, 0.7834]"; no value: ``missing``."""
    shown = fmt_fixed(value, digits, missing=missing)
    if finite(value) is None or (low is None and high is None):
        return shown
    bounds = (fmt_fixed(b, digits, missing=missing) for b in (low, high))
    return f"{shown} [{', '.join(bounds)}]"


def fmt_pct(value: Any, missing: str = DASH) -> str:
    """A share as a percentage ("12.3%", "50%", "<0.1%")."""
    number = finite(value)
    if number is None:
        return missing
    if 0 < number < 0.001:
        return "<0.1%"
    return f"{number:.1%}".replace(".0%", "%")


def fmt_int(value: Any, missing: str = DASH) -> str:
    """A count with thousands separators."""
    number = finite(value)
    return missing if number is None else f"{int(number):,}"


def text(value: Any) -> str:
    """A string for the page: ``None`` (and NaN) as "—", a float as :func:`fmt_num`."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    return fmt_num(value) if isinstance(value, float) else str(value)


def utc(value: Any) -> datetime | None:
    """A Unix timestamp or ISO string as an aware UTC datetime; None if unreadable."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    number = finite(value)
    try:
        return None if number is None else datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def fmt_time(value: Any) -> str:
    """A Unix timestamp or ISO string as "2024-05-01 10:00:00 UTC"; unknown as given."""
    moment = utc(value)
    if moment is None:
        return DASH if value is None or finite(value) is not None else text(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_range(start: Any, end: Any) -> str:
    """A time range; the end drops its date when both fall on the same day."""
    first, last = utc(start), utc(end)
    if first is None or last is None:
        return fmt_time(start if last is None else end)
    tail = "%H:%M:%S UTC" if first.date() == last.date() else "%Y-%m-%d %H:%M:%S UTC"
    return f"{first:%Y-%m-%d %H:%M:%S} – {last.strftime(tail)}"


def shorten(label: str, limit: int = LABEL_CHARS) -> str:
    """``label`` cut to ``limit`` characters, ending in "…" when cut."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def escape_markdown(value: object) -> str:
    r"""One line of text that cannot break a Markdown table cell or be read as markup.

    >>> escape_markdown("a|b <i>")
    'a\\|b &lt;i&gt;'
    """
    line = " ".join(str(value).splitlines())
    for char in "\\`*[]|":
        line = line.replace(char, "\\" + char)
    return line.replace("<", "&lt;").replace(">", "&gt;")
