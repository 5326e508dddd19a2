"""``loopml ledger export``: predictions with their labels, as one Parquet file.

The file is written in chunks (never the whole ledger in memory) to a temporary file that
is renamed into place at the end, so a reader never sees half a file. Two passes over one
database snapshot: the first learns every feature and output key and its type (a model
version may add a feature), the second writes.

Columns: ``request_id, row, ts`` (UTC timestamp), ``model, version, arm, entity_key,
latency_ms``, one column per feature, one per output (``prediction`` for the predicted
label, ``proba_<class>``, ``value``), then ``label`` (from feedback, null if none) and
``labelled_at`` (the *current* label: the latest version sent). A feature whose name
collides with one of those is named ``feature_<name>``; an output that collides,
``output_<name>``.

With ``label_history=True`` the file holds the label history instead: one row per label
version of the matching predictions, in the order they arrived — ``request_id, row,
label_version`` (1, 2, ... per prediction), ``current`` (the version the default export
and the monitor read), ``label, labelled_at``, and where it came from: ``scope`` (the
token it was sent with: ``feedback``, ``admin``, ``anonymous``; ``before-history`` for the
labels of a ledger older than the history), ``client`` (address) and ``source`` (what the
client named).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.errors import DataError, LoopmlError
from loopml.ledger.backend import LedgerBackend, LedgerReader
from loopml.ledger.columns import JsonColumns, ValueColumn
from loopml.ledger.connect import open_backend
from loopml.ledger.records import LedgerQuery, LedgerRecord
from loopml.progress import Progress, progress_or_silent

META_COLUMNS = ("request_id", "row", "ts", "model", "version", "arm", "entity_key", "latency_ms")
LABEL_COLUMNS = ("label", "labelled_at")
HISTORY_TEXT = ("scope", "client", "source")
OUTPUT_NAMES = {"label": "prediction"}
CHUNK_ROWS = 50_000
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


@dataclass(frozen=True, slots=True)
class ExportResult:
    """``rows`` written and how many of them are ``labelled`` (with ``label_history``:
    label versions written, and how many of them are current)."""

    rows: int
    labelled: int
    path: Path
    columns: tuple[str, ...] = ()


def parse_time(text: str, now: datetime) -> datetime:
    """An ISO date / datetime, or a duration before ``now`` such as ``30m``, ``24h``, ``7d``.

    Times without a zone are UTC.

    >>> now = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    >>> parse_time("24h", now).isoformat()
    '2024-05-09T12:00:00+00:00'
    >>> parse_time("2024-05-01", now).isoformat()
    '2024-05-01T00:00:00+00:00'
    >>> parse_time("2024-05-01T08:30+02:00", now).isoformat()
    '2024-05-01T06:30:00+00:00'
    """
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = float(relative.group(1)), _UNITS[relative.group(2)]
        return now - timedelta(**{unit: amount})
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise LoopmlError(
            f"cannot read {text!r} as a time",
            detail="expected an ISO date or datetime (2024-05-01, 2024-05-01T08:30, "
            "2024-05-01T08:30+02:00) or a duration back from now (30m, 24h, 7d, 2w)",
            fix="pass e.g. --since 24h or --since 2024-05-01",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def export_ledger(
    source: LedgerBackend | str,
    out: Path,
    *,
    root: Path = Path("."),
    since: datetime | None = None,
    until: datetime | None = None,
    version: str | None = None,
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
    label_history: bool = False,
    arm: str | None = None,
) -> ExportResult:
    """Write the predictions with ``since <= ts < until`` (and ``version``, ``arm``) to
    Parquet: what was answered, or with ``arm="shadow"`` the rows scored in shadow (each
    with the label of the champion's answer to the same request).

    ``source`` is a backend, or a ledger URL (a relative SQLite path is taken from
    ``root``), opened and closed here.

    >>> import pathlib, tempfile
    >>> from loopml.ledger.sqlite import SqliteBackend
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> backend = SqliteBackend(folder / "ledger.db")
    >>> export_ledger(backend, folder / "out.parquet").rows
    0
    >>> backend.close()
    """
    if isinstance(source, str):
        backend = open_backend(source, root)
        try:
            return export_ledger(
                backend, out, since=since, until=until, version=version,
                progress=progress, chunk_rows=chunk_rows, label_history=label_history, arm=arm,
            )  # fmt: skip
        finally:
            backend.close()
    query = LedgerQuery(
        since=since.timestamp() if since else None,
        until=until.timestamp() if until else None,
        version=version,
        arm=arm,
    )
    report = progress_or_silent(progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with source.reader() as reader:
            if label_history:
                result = _write_history(temp, reader, query, chunk_rows, report)
            else:
                result = _write_predictions(temp, reader, query, chunk_rows, report)
        os.replace(temp, out)
    except OSError as exc:
        raise DataError(
            f"cannot write {out}", detail=str(exc), fix="check the folder and free space"
        ) from exc
    finally:
        temp.unlink(missing_ok=True)
    return replace(result, path=out)


def _write_predictions(
    path: Path, reader: LedgerReader, query: LedgerQuery, chunk_rows: int, report: Progress
) -> ExportResult:
    """Write to ``path`` (a temporary name; ``out`` in the result is fixed by the caller)."""
    total = reader.count(query)
    report.stage("reading column types", total=total)
    layout = _Layout()
    for chunk in reader.chunks(query, chunk_rows):
        layout.learn(chunk)
        report.advance(len(chunk))
    report.stage(f"writing {_final_name(path)}", total=total)
    rows, labelled = _write(path, layout, reader.chunks(query, chunk_rows), report)
    return ExportResult(rows, labelled, path, tuple(layout.schema().names))


def _final_name(temp: Path) -> str:
    """``out.parquet`` from its temporary name ``.out.parquet.<hex>.tmp``."""
    return temp.name[1:].rsplit(".", 2)[0]


def _write_history(
    path: Path, reader: LedgerReader, query: LedgerQuery, chunk_rows: int, report: Progress
) -> ExportResult:
    """The label history of the matching predictions (see the module doc)."""
    report.stage("reading label types")
    label = ValueColumn()
    for chunk in reader.label_history(query, chunk_rows):
        label.learn(v.label for v in chunk)
    text = pa.string()
    schema = pa.schema(
        [("request_id", text), ("row", pa.int64()), ("label_version", pa.int64()),
         ("current", pa.bool_()), ("label", label.arrow_type()),
         ("labelled_at", pa.timestamp("us", tz="UTC")), ("scope", text), ("client", text),
         ("source", text)]
    )  # fmt: skip
    report.stage(f"writing {_final_name(path)}")
    versions = current = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for chunk in reader.label_history(query, chunk_rows):
            columns = [
                pa.array([v.request_id for v in chunk], text),
                pa.array([v.row for v in chunk], pa.int64()),
                pa.array([v.version for v in chunk], pa.int64()),
                pa.array([v.current for v in chunk], pa.bool_()),
                label.array([v.label for v in chunk]),
                _timestamps([v.ts for v in chunk]),
                *(pa.array([getattr(v, n) for v in chunk], text) for n in HISTORY_TEXT),
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            versions += len(chunk)
            current += sum(v.current for v in chunk)
            report.advance(len(chunk))
        if versions == 0:
            writer.write_table(schema.empty_table())
    return ExportResult(versions, current, path, tuple(schema.names))


def _write(
    path: Path, layout: _Layout, chunks: Iterable[list[LedgerRecord]], report: Progress
) -> tuple[int, int]:
    schema = layout.schema()
    rows = labelled = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for chunk in chunks:
            table = layout.table(chunk)
            writer.write_table(table)
            rows += len(chunk)
            labelled += sum(1 for r in chunk if r.label is not None)
            report.advance(len(chunk))
        if rows == 0:
            writer.write_table(schema.empty_table())
    return rows, labelled


class _Layout:
    """Feature, output and label columns learned from the rows, in first-seen order."""

    def __init__(self) -> None:
        self.features = JsonColumns()
        self.outputs = JsonColumns()
        self.label = ValueColumn()
        self._schema: pa.Schema | None = None  # fixed once learning is over

    def learn(self, chunk: list[LedgerRecord]) -> None:
        self.features.learn([r.features for r in chunk])
        self.outputs.learn([r.outputs for r in chunk])
        self.label.learn(r.label for r in chunk)

    def names(self) -> tuple[list[str], list[str]]:
        """Export names of (features, outputs), each unique and apart from the fixed ones."""
        taken = set(META_COLUMNS) | set(LABEL_COLUMNS)
        # The renamed outputs ('label' -> 'prediction') choose first, whatever came first.
        keys = sorted(self.outputs.kinds, key=lambda k: k not in OUTPUT_NAMES)
        chosen = {k: _unique(OUTPUT_NAMES.get(k, k), f"output_{k}", taken) for k in keys}
        outputs = [chosen[k] for k in self.outputs.kinds]
        features = [_unique(k, f"feature_{k}", taken) for k in self.features.kinds]
        return features, outputs

    def schema(self) -> pa.Schema:
        if self._schema is None:
            self._schema = self._build_schema()
        return self._schema

    def _build_schema(self) -> pa.Schema:
        stamp = pa.timestamp("us", tz="UTC")
        features, outputs = self.names()
        fields = [
            pa.field("request_id", pa.string()),
            pa.field("row", pa.int64()),
            pa.field("ts", stamp),
            *(pa.field(n, pa.string()) for n in ("model", "version", "arm", "entity_key")),
            pa.field("latency_ms", pa.float64()),
            *map(pa.field, features, self.features.types()),
            *map(pa.field, outputs, self.outputs.types()),
            pa.field("label", self.label.arrow_type()),
            pa.field("labelled_at", stamp),
        ]
        return pa.schema(fields)

    def table(self, chunk: list[LedgerRecord]) -> pa.Table:
        columns: list[pa.Array] = [
            pa.array([r.request_id for r in chunk], pa.string()),
            pa.array([r.row for r in chunk], pa.int64()),
            _timestamps([r.ts for r in chunk]),
            *(pa.array([getattr(r, n) for r in chunk], pa.string()) for n in META_COLUMNS[3:7]),
            pa.array([r.latency_ms for r in chunk], pa.float64()),
            *self.features.arrays([r.features for r in chunk]),
            *self.outputs.arrays([r.outputs for r in chunk]),
            self.label.array([r.label for r in chunk]),
            _timestamps([r.labelled_at for r in chunk]),
        ]
        return pa.Table.from_arrays(columns, schema=self.schema())


def _unique(name: str, fallback: str, taken: set[str]) -> str:
    """``name``, else ``fallback``, else ``fallback_2``, ...; then marked as taken."""
    candidate, n = (name if name not in taken else fallback), 1
    while candidate in taken:
        n += 1
        candidate = f"{fallback}_{n}"
    taken.add(candidate)
    return candidate


def _timestamps(seconds: list[float | None]) -> pa.Array:
    """Unix seconds to a UTC microsecond timestamp column (None stays null)."""
    values = np.array([np.nan if s is None else s for s in seconds], dtype=np.float64)
    mask = np.isnan(values)
    micros = np.round(np.where(mask, 0.0, values) * 1e6).astype(np.int64)
    return pa.array(micros, type=pa.int64(), mask=mask).cast(pa.timestamp("us", tz="UTC"))
