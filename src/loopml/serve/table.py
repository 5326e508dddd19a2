"""The decoded request: one column of raw values per field, as a dialect delivered them.

Every dialect (``/predict`` records, MLflow ``/invocations`` payloads, Open Inference
Protocol tensors, a batch-scoring DataFrame) decodes to a :class:`Table`; validation
(:mod:`loopml.serve.validation`) turns it into model-ready arrays. A column is a list or
tuple of Python values, a NumPy array (typed tensors), or a pandas Series (frames keep
their dtypes, which is what makes batch validation vectorised).

``origin`` says how far the value types can be trusted: ``"json"`` values carry the type
the client chose (a string in a numeric field is an error), ``"frame"`` values were typed
by a file reader (a CSV column of numbers in a string field is read as text, as
:func:`loopml.features.pipeline.feature_frame` does).

>>> t = Table.from_records([{"a": 1, "b": "x"}, {"a": 2}])
>>> t.n_rows, list(t.columns), t.columns["b"][1] is ABSENT
(2, ['a', 'b'], True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

import numpy as np
import pandas as pd

from loopml.errors import InputError

Origin = Literal["json", "frame"]
Column = Sequence[Any] | np.ndarray[Any, Any] | pd.Series
"""One field's values, one per row."""


class _Absent:
    """The value of a field a record did not have (distinct from an explicit null)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()
"""Marks a field missing from one record of a records payload (``missing_field`` there)."""


@dataclass(frozen=True)
class Table:
    """Raw input columns (field -> values), all ``n_rows`` long, in the order received."""

    columns: dict[str, Column]
    n_rows: int
    origin: Origin = "json"

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> Table:
        """Columns from a list of JSON objects; a field absent from a record is :data:`ABSENT`.

        Raises :class:`InputError` (``malformed_request``, with the row) when an item is
        not an object.
        """
        n = len(records)
        if n == 1:
            first = records[0]
            if not isinstance(first, dict):
                raise _not_a_record(first, 0)
            return cls({key: [value] for key, value in first.items()}, 1)
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                raise _not_a_record(record, row)
        if n == 0:
            return cls({}, 0)
        keys = list(records[0])
        width = len(keys)
        if width and all(size == width for size in map(len, records)):
            # The common case, transposed at C speed: same size and every key of the first
            # record means the same keys (a KeyError means they differ after all).
            try:
                if width == 1:  # itemgetter of one key returns the value, not a tuple
                    return cls({keys[0]: [record[keys[0]] for record in records]}, n)
                values = zip(*map(itemgetter(*keys), records), strict=True)
                return cls(dict(zip(keys, values, strict=True)), n)
            except KeyError:
                pass
        every: dict[str, None] = {}
        for record in records:
            every.update(dict.fromkeys(record))
        return cls({key: [r.get(key, ABSENT) for r in records] for key in every}, n)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Table:
        """A frame's columns as Series (dtypes kept), rows by position, names as strings."""
        if not frame.columns.is_unique:
            dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
            raise InputError(
                f"the table has duplicate columns: {', '.join(dupes)}; each field must appear once",
                error="malformed_request",
                field=dupes[0],
                status=422,
            )
        columns: dict[str, Column] = {
            str(name): series.reset_index(drop=True) for name, series in frame.items()
        }
        return cls(columns, len(frame), "frame")

    @classmethod
    def from_columns(cls, columns: Mapping[str, Column], origin: Origin = "json") -> Table:
        """Columns given by name; raises ``malformed_request`` when lengths differ."""
        lengths = {name: len(values) for name, values in columns.items()}
        sizes = set(lengths.values())
        if len(sizes) > 1:
            shown = ", ".join(f"{name}: {size}" for name, size in list(lengths.items())[:6])
            raise InputError(
                f"every field needs the same number of values, got {shown}",
                error="malformed_request",
                status=422,
            )
        return cls(dict(columns), sizes.pop() if sizes else 0, origin)


@dataclass(frozen=True)
class DecodedRequest:
    """A decoded request body: the table and the client's request id, if it sent one."""

    table: Table
    request_id: str | None = None


def _not_a_record(value: object, row: int) -> InputError:
    return InputError(
        f"each record must be a JSON object (field -> value), got {json_kind(value)}",
        error="malformed_request",
        row=row,
        status=422,
    )


def json_kind(value: object) -> str:
    """How a JSON value reads in a message: ``an object``, ``the string 'abc'`` ..."""
    if value is None or value is ABSENT:
        return "null" if value is None else "nothing"
    if isinstance(value, bool | np.bool_):
        return f"the boolean {str(bool(value)).lower()}"
    for kinds, name in _KINDS:
        if isinstance(value, kinds):
            return name if name.startswith("an ") else f"{name} {truncate(value)}"
    return f"a {type(value).__name__} value"


_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (str, "the string"),
    ((int, float, np.number), "the number"),
    (dict, "an object"),
    ((list, tuple), "an array"),
)


def truncate(value: object, limit: int = 40) -> str:
    """``repr`` of a value, cut to ``limit`` characters (values end up in error bodies).

    Bounded in time too: a client's 8 MB string or 1,000-deep array is never ``repr``-ed
    whole (an array or object is described by its size, a huge integer by its digits).

    >>> truncate("x" * 10_000_000, 12), truncate([[[]]]), truncate(10**5000)
    ("'xxxxxxxx...", '(an array of 1 item)', '(an integer of about 5,001 digits)')
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        text = repr(value[: limit + 1])
    elif isinstance(value, list | tuple | dict):
        what, unit = ("an object", "key") if isinstance(value, dict) else ("an array", "item")
        text = f"({what} of {len(value):,} {unit}{'' if len(value) == 1 else 's'})"
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        text = f"(an integer of about {int(value.bit_length() * 0.30103) + 1:,} digits)"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def field_name(name: str, limit: int = 100) -> str:
    """A client-chosen field name as an error body's ``field``: at most ``limit`` characters."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def value_at(values: Column, row: int) -> object:
    """The raw value of one cell (by position), for error messages."""
    if isinstance(values, pd.Series):
        return values.iloc[row]
    return values[row]
