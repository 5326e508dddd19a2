"""Formatting for the monitoring report: every value the page shows goes through here.

Numbers, shares, counts, times and time ranges become strings; a missing or non-finite
value becomes "—", never "nan" or "None". Also the metric names' titles and directions
and :func:`jsonable`, which makes a report strict JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from loopml.errors import ConfigError
from loopml.train.metrics import get_metric

__all__ = [
    "DASH",
    "View",
    "finite",
    "fmt_int",
    "fmt_num",
    "fmt_pct",
    "fmt_range",
    "fmt_time",
    "higher_is_better",
    "jsonable",
    "metric_title",
    "shorten",
    "status_text",
    "text",
    "utc",
]

DASH = "—"
LABEL_CHARS = 18

View = dict[str, Any]  # the view model the template reads: plain strings, lists, numbers


# --- formatting: every value the page shows goes through one of these -----------------


def finite(value: Any) -> float | None:
    """``value`` as a finite float; None for anything else (bools, NaN, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def fmt_num(value: Any) -> str:
    """A number to 4 significant digits; missing or non-finite as "—"."""
    number = finite(value)
    if number is None:
        return DASH
    if abs(number) >= 1e4:
        return f"{number:,.0f}"
    return f"{number:.4g}"


def fmt_pct(value: Any) -> str:
    """A share as a percentage ("12.3%", "<0.1%"); missing as "—"."""
    number = finite(value)
    if number is None:
        return DASH
    if 0 < number < 0.001:
        return "<0.1%"
    return f"{number:.1%}".replace(".0%", "%")


def fmt_int(value: Any) -> str:
    """A count with thousands separators; missing or non-finite as "—"."""
    number = finite(value)
    return DASH if number is None else f"{int(number):,}"


def text(value: Any) -> str:
    """A string for the page: ``None`` (and NaN) as "—"."""
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


def status_text(status: Any, reason: Any) -> str:
    """The reason when there is one (it names the status), else the status in words."""
    if reason:
        return str(reason)
    return str(status or "ok").replace("_", " ")


def metric_title(name: str) -> str:
    """The registry's title for a metric; an unknown metric keeps its name."""
    try:
        return get_metric(name).title
    except ConfigError:
        return name


def higher_is_better(name: str) -> bool:
    """The registry's direction for a metric; an unknown one counts as higher-better."""
    try:
        return get_metric(name).higher_is_better
    except ConfigError:
        return True


def shorten(label: str, limit: int = LABEL_CHARS) -> str:
    """``label`` cut to ``limit`` characters, ending in "…" when cut."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def jsonable(data: Any) -> Any:
    """Plain JSON values all the way down: non-finite floats become ``None``."""
    if isinstance(data, Mapping):
        return {str(k): jsonable(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [jsonable(v) for v in data]
    if hasattr(data, "item") and callable(data.item):  # numpy scalars
        return jsonable(data.item())
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data
