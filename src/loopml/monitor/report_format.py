"""The monitoring report's words: metric titles and directions, statuses, strict JSON.

Values themselves (numbers, shares, counts, times) are written by the formats every page
shares, :mod:`loopml.render.format`; this adds what only monitoring knows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from loopml.errors import ConfigError
from loopml.train.metrics import get_metric

__all__ = ["View", "higher_is_better", "jsonable", "metric_title", "status_text"]

View = dict[str, Any]  # the view model the template reads: plain strings, lists, numbers


def status_text(status: Any, reason: Any) -> str:
    """The reason when there is one (it names the status), else the status in words.

    >>> status_text("not_enough_data", None), status_text("ok", "3 rows, needs 30")
    ('not enough data', '3 rows, needs 30')
    """
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
