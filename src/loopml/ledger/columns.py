"""JSON text in the ledger to typed Arrow columns, for the export.

Each key of a JSON-object column (features, outputs) gets one *kind* over all the rows
exported: ``bool``, ``int``, ``float`` (ints and floats mixed), ``str``, or ``text`` when a
key's values disagree (say a number here, a string there) or are lists / objects — those
are written as their JSON text. A key that is always null is a string column of nulls.

Parsing goes through Arrow's C++ JSON reader, one chunk at a time; a chunk it cannot
take (mixed types inside the chunk, a ``text`` key, odd JSON) goes through Python instead,
with the same result, only slower.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json as pa_json

_ARROW_TYPES = {
    "null": pa.string(),
    "bool": pa.bool_(),
    "int": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
    "text": pa.string(),
}
_INT64 = range(-(2**63), 2**63)


def loads(text: str) -> Any:
    """Parse JSON text, also what Python's ``json`` writes for NaN and infinities."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def unify(old: str, new: str) -> str:
    """The kind of a key seen as ``old`` and then as ``new``.

    >>> unify("int", "float"), unify("null", "str"), unify("bool", "int")
    ('float', 'str', 'text')
    """
    if new in (old, "null"):
        return old
    if old == "null":
        return new
    if {old, new} == {"int", "float"}:
        return "float"
    return "text"


def kind_of(value: Any) -> str:
    """The kind of one Python value parsed from JSON.

    >>> [kind_of(v) for v in (None, True, 3, 2**70, 1.5, "a", [1])]
    ['null', 'bool', 'int', 'float', 'float', 'str', 'text']
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if value in _INT64 else "float"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else "text"


def _arrow_kind(kind: pa.DataType) -> str:
    if pa.types.is_null(kind):
        return "null"
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind):
        return "int"
    if pa.types.is_floating(kind):
        return "float"
    if pa.types.is_string(kind) or pa.types.is_timestamp(kind):  # timestamps: strings seen
        return "str"
    return "text"


def _read(texts: list[str], schema: pa.Schema | None) -> pa.Table | None:
    """The texts as a table through Arrow's JSON reader, or None if it cannot."""
    data = "\n".join(texts).encode()
    options = pa_json.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="infer" if schema is None else "ignore"
    )
    try:
        table = pa_json.read_json(
            io.BytesIO(data),
            read_options=pa_json.ReadOptions(block_size=max(len(data), 1 << 16) + 1),
            parse_options=options,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == len(texts) else None  # a text held a raw newline


class JsonColumns:
    """The keys of one JSON-object column, in first-seen order, and their kinds.

    >>> columns = JsonColumns()
    >>> columns.learn(['{"a": 1, "b": "x"}', '{"a": 2.5}'])
    >>> columns.kinds
    {'a': 'float', 'b': 'str'}
    >>> [a.to_pylist() for a in columns.arrays(['{"a": 1}', '{"b": "y"}'])]
    [[1.0, None], [None, 'y']]
    """

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}

    def learn(self, texts: list[str]) -> None:
        """Widen the kinds with one chunk of JSON texts."""
        table = _read(texts, None)
        if table is not None:
            for found in table.schema:
                self._see(found.name, _arrow_kind(found.type))
            return
        for document in map(loads, texts):
            if isinstance(document, dict):
                for key, value in document.items():
                    self._see(key, kind_of(value))

    def _see(self, key: str, kind: str) -> None:
        old = self.kinds.get(key)
        self.kinds[key] = kind if old is None else unify(old, kind)

    def types(self) -> list[pa.DataType]:
        return [_ARROW_TYPES[kind] for kind in self.kinds.values()]

    def arrays(self, texts: list[str]) -> list[pa.Array]:
        """One array per key for these rows (null where a row lacks the key)."""
        if not self.kinds:
            return []
        if "text" not in self.kinds.values():
            schema = pa.schema(list(zip(self.kinds, self.types(), strict=True)))
            table = _read(texts, schema)
            if table is not None:
                return [table.column(key).combine_chunks() for key in self.kinds]
        documents = [loads(text) for text in texts]
        return [_array([_get(d, key) for d in documents], kind) for key, kind in self.kinds.items()]


class ValueColumn:
    """A column of single JSON values (the labels), nulls where there is none."""

    def __init__(self) -> None:
        self.kind = "null"

    def learn(self, texts: Iterable[str | None]) -> None:
        for text in texts:
            if text is not None:
                self.kind = unify(self.kind, kind_of(loads(text)))

    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES[self.kind]

    def array(self, texts: list[str | None]) -> pa.Array:
        return _array([None if t is None else loads(t) for t in texts], self.kind)


def _array(values: list[Any], kind: str) -> pa.Array:
    if kind == "text":
        values = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
    elif kind == "null":
        values = [None] * len(values)
    return pa.array(values, type=_ARROW_TYPES[kind])


def _get(document: Any, key: str) -> Any:
    return document.get(key) if isinstance(document, dict) else None
