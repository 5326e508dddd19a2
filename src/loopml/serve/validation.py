"""Validating a decoded request against the served model's data contract.

:func:`validate` turns a :class:`~loopml.serve.table.Table` into *model-ready arrays*: one
1-D array per contract feature, in contract order — numeric features float64 with NaN
for null, string and boolean features ``object`` arrays of ``str`` spelled exactly as
:func:`loopml.features.pipeline.feature_frame` spells them (nulls as ``MISSING``).

What is refused and what is served is the table of :mod:`loopml.data.severity`, the
one ``loopml validate`` reports by: what it calls an error is refused, what it calls a
warning is served. Each refusal is an :class:`~loopml.errors.InputError` naming field,
row and a reason in that table's words (:mod:`loopml.serve.refusals` writes them):

================== ==== ==========================================================
error              HTTP when
================== ==== ==========================================================
empty              422  the request has no rows
too_many_rows      413  more rows than ``max_rows``
too_long           422  a text longer than ``max_chars`` in a string feature or the
                        entity key (longer than the longest category, if that is more)
missing_field      422  a feature is absent (``row`` None), or one record lacks it
wrong_type         422  a value of the wrong type (below), a fractional number in an
                        integer feature, or any object / array
non_finite         422  ``inf`` / ``-inf`` (or an integer beyond float range)
================== ==== ==========================================================

Served, as ``loopml validate`` only warns about them, and counted in :class:`ModelInput`:

- a **null** (or NaN) in a feature that had none in training (the pipeline imputes it),
  per feature in :attr:`ModelInput.nulls`;
- an **unseen category**, in :attr:`ModelInput.unseen` (below);
- a **field the contract does not know**: ignored, listed in :attr:`ModelInput.ignored`.
  The entity key, the target, the time column, dropped and non-input contract columns
  are accepted and ignored too.

Types follow the cell rules of :mod:`loopml.data.cells`, the rules ``loopml validate``
checks tables by. NaN in a numeric feature *is* null, as in pandas and in training. JSON
values (``origin="json"``) must have the feature's type: numbers (not booleans, not text)
for numeric features, strings for string features; boolean features take ``true`` /
``false`` and the spellings of :data:`loopml.data.cells.BOOL_TEXT` (``"true"``, ``"0"``,
``1``, ``1.0`` ...). Frames (``origin="frame"``, typed by a file reader) are read the way
``feature_frame`` reads them: numeric text is a number (as pandas reads it) and any scalar
is a string key — only stricter where ``loopml validate`` is (a fraction in an integer
feature, a boolean feature's unreadable text). Unseen categories are not errors: they are
served (the model encodes them as unknown) and counted in :attr:`ModelInput.unseen`, for
features whose contract kept every category (as ``loopml validate`` does). The entity key
may be a string, an integer or a whole float, or null (or absent); it comes back as text.

``reject_rows=False`` (serving) raises the first failure: fields first, then the lowest
row, then contract order (the entity key last). ``reject_rows=True`` (batch scoring)
raises only when a feature column is absent; every bad row becomes one ``InputError`` in
:attr:`ModelInput.rejected`, and the features (and the counts) hold the kept rows only.

Two readers, each kept because it is clearly faster where it is used. Measured with
``bench/bench_validation.py`` (validate() per call, µs, median of 7 interleaved rounds;
the generated feed's 15-feature contract; shared 2-core machine, 2026-12):

===================== ========= =========== ========================================
table                 per value column-wise used
===================== ========= =========== ========================================
JSON, 1 record              9.4         143 per value, one-record shortcut (12.3 µs
                                            without it)
JSON, 10 records             26         153 per value (6x faster)
JSON, 100 records           140         225 per value (1.6x)
JSON, 256 records           340         340 either: :data:`SMALL_ROWS`, the crossover
JSON, 10,000 records     14,700       7,100 column-wise (2.1x faster)
frame, 10,000 rows       15,500       2,150 column-wise (7x; the per-value reader
                                            takes JSON only: its figure is for the
                                            same rows as records)
===================== ========= =========== ========================================

JSON tables up to :data:`SMALL_ROWS` rows are read value by value
(:func:`loopml.serve.values.read_values`, with a shortcut for one well-typed record, the
usual request); larger ones, and every frame, a column at a time
(:func:`loopml.serve.columns.read_columns`). On JSON tables both give identical results
(property tests hold them to it, one record and many).

>>> from loopml.data.contract import ColumnSpec, Contract
>>> c = Contract(rows=2, target="y", task="regression", columns=(
...     ColumnSpec(name="a", type="integer", nullable=True, null_rate=0.5, n_unique=1),
...     ColumnSpec(name="y", type="float", role="target", nullable=False,
...                null_rate=0.0, n_unique=2)))
>>> validate(Table.from_records([{"a": 3}, {"a": None}]), InputSchema.from_contract(c)).features
{'a': array([ 3., nan])}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from loopml.errors import InputError
from loopml.serve.columns import read_columns
from loopml.serve.refusals import (
    cell_error,
    check_fields,
    check_lengths,
    empty_request,
    too_many_rows,
)
from loopml.serve.schema import Array, CellCode, InputSchema, Read
from loopml.serve.table import Table
from loopml.serve.values import read_values

Method = Literal["auto", "loop", "vector"]
SMALL_ROWS = 256
"""JSON tables up to this many rows are read value by value (the crossover, measured)."""


@dataclass(frozen=True)
class ModelInput:
    """A validated request: model-ready arrays of the rows that will be scored."""

    features: dict[str, Array]
    n_rows: int
    unseen: dict[str, int]
    """feature -> scored rows holding a category the contract never saw (only counts > 0)."""
    rejected: list[InputError] = field(default_factory=list)
    kept: Array | None = None
    """Positions of the scored rows when rows were rejected; None means every row."""
    ignored: tuple[str, ...] = ()
    """Fields the contract does not know, which were ignored."""
    keys: list[str | None] | pd.Series | None = field(default=None, repr=False)
    """The entity keys as read: a list (of the scored rows), or a frame's text column."""
    nulls: dict[str, int] = field(default_factory=dict)
    """feature -> scored rows holding a null in a feature that had none in training
    (served: the pipeline imputes it; only counts > 0)."""

    @cached_property
    def entity_keys(self) -> list[str | None] | None:
        """The entity key of each scored row as text; None without a key column.

        A frame's text column is turned into a list on first use only: a million keys
        cost a tenth of a second that batch scoring does not need to spend.
        """
        if self.keys is None or isinstance(self.keys, list):
            return self.keys
        values = cast(Any, self.keys).to_numpy(dtype=object, na_value=None)
        return list((values if self.kept is None else values[self.kept]).tolist())


def validate(
    table: Table,
    schema: InputSchema,
    *,
    reject_rows: bool = False,
    max_rows: int | None = None,
    max_chars: int | None = None,
    method: Method = "auto",
) -> ModelInput:
    """Check a table against the schema: model-ready arrays, or :class:`InputError`.

    ``max_chars``: refuse (``too_long``) a text longer than this in a string feature or
    the entity key, unless the field knows a longer category (checked before any cell).

    ``method`` forces the per-value reader (``"loop"``, JSON tables only) or the
    column-wise one (``"vector"``), for tests and benchmarks: both give the same result.
    """
    n = table.n_rows
    if n == 0:
        raise empty_request()
    if max_rows is not None and n > max_rows:
        raise too_many_rows(n, max_rows)
    if method == "loop" and table.origin != "json":
        raise ValueError("the per-value reader reads JSON tables; read a frame column-wise")
    ignored = check_fields(table, schema)
    if max_chars is not None:
        check_lengths(table, schema, max_chars)
    by_value = method == "loop" or (method == "auto" and table.origin == "json" and n <= SMALL_ROWS)
    read = read_values(table, schema) if by_value else read_columns(table, schema)
    return _finish(read, table, schema, reject_rows, ignored)


def _finish(
    read: Read, table: Table, schema: InputSchema, reject_rows: bool, ignored: tuple[str, ...]
) -> ModelInput:
    n = table.n_rows
    if not read.bad:
        unseen = {name: len(rows) for name, rows in read.unseen.items()}
        nulls = {name: len(rows) for name, rows in read.nulls.items()}
        return ModelInput(read.features, n, unseen, [], None, ignored, read.keys, nulls)
    rows = np.concatenate([bad.rows for bad in read.bad])
    columns = np.concatenate([bad.columns for bad in read.bad])
    codes = np.concatenate([bad.codes for bad in read.bad])
    order = np.lexsort((columns, rows))
    rows, columns, codes = rows[order], columns[order], codes[order]
    if not reject_rows:
        raise cell_error(table, schema, int(rows[0]), int(columns[0]), CellCode(int(codes[0])))
    first = np.ones(rows.size, dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    rejected = [
        cell_error(table, schema, int(r), int(c), CellCode(int(k)))
        for r, c, k in zip(rows[first], columns[first], codes[first], strict=True)
    ]
    keep = np.ones(n, dtype=bool)
    keep[rows] = False
    kept = np.flatnonzero(keep)
    features = {name: values[kept] for name, values in read.features.items()}
    keys = read.keys
    if isinstance(keys, list):
        keys = [keys[i] for i in kept.tolist()]
    unseen, nulls = _kept_counts(read.unseen, keep), _kept_counts(read.nulls, keep)
    return ModelInput(features, int(kept.size), unseen, rejected, kept, ignored, keys, nulls)


def _kept_counts(rows_of: dict[str, Any], keep: Array) -> dict[str, int]:
    """Per feature, how many of its rows were kept (only counts > 0)."""
    counts = {name: int(keep[rows].sum()) for name, rows in rows_of.items()}
    return {name: count for name, count in counts.items() if count}
