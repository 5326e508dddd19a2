"""The key that keeps a client on one arm of a rollout, read from the request.

The key is the first row's value of ``rollout.sticky_key`` when it is set and the request
carries it (a column requests may hold even when the model does not read it: it is taken
from the decoded table before validation, and not counted as an ignored field); else the
first row's entity key (the project's key column); else the request id, so a client
without either is routed per request.

>>> from loopml.serve.table import Table
>>> sticky_value(Table.from_records([{"user": 7, "x": 1.0}]), "user")
'7'
>>> sticky_value(Table.from_records([{"x": 1.0}]), "user") is None
True
>>> [request_key(s, k, "r-1") for s, k in (("u-1", ["e-1"]), (None, ["e-1"]), (None, None))]
['u-1', 'e-1', 'r-1']
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import orjson
import pandas as pd

from loopml.serve.table import ABSENT, Table

__all__ = ["request_key", "sticky_value"]


def sticky_value(table: Table, column: str | None) -> str | None:
    """The first row's ``column`` as text; None when unset, absent or null."""
    if column is None or column not in table.columns or table.n_rows == 0:
        return None
    values = table.columns[column]
    first = values.iloc[0] if isinstance(values, pd.Series) else values[0]
    return key_text(first)


def key_text(value: object) -> str | None:
    """A key value as text: ``7``, ``7.0`` and ``"7"`` are the same key."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # a NumPy scalar of a typed tensor or a frame
    if value is None or value is ABSENT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


def request_key(sticky: str | None, entity_keys: Sequence[str | None] | None, rid: str) -> str:
    """The routing key: the sticky column's value, else the entity key, else the id."""
    if sticky is not None:
        return sticky
    if entity_keys and entity_keys[0] is not None:
        return entity_keys[0]
    return rid
