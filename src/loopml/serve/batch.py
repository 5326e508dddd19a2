"""``loopml score IN OUT``: batch scoring with the same artifact the server runs.

The input is read in chunks (CSV or Parquet), every chunk is validated against the served
version's contract, the good rows are scored and written, and the bad ones go to a side
file with their row number, field and reason — one bad row never fails the whole job.
Both files are written under temporary names and renamed at the end, so an interrupted job
leaves nothing half-written behind.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.config import ProjectConfig
from loopml.errors import DataError, InputError
from loopml.registry.runtime import Outputs, Runtime
from loopml.registry.store import open_registry
from loopml.registry.verified_runtime import open_runtime
from loopml.serve.schema import InputSchema
from loopml.serve.table import Table
from loopml.serve.validation import validate

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
REJECT_COLUMNS = ("row", "field", "error", "reason")


@dataclass(frozen=True)
class ScoreResult:
    source: Path
    out: Path
    rejected_file: Path | None
    rows: int
    scored: int
    rejected: int
    version: str
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def scoring_runtime(project: ProjectConfig, version: str | None) -> tuple[str, Runtime]:
    """The version to score with (default: the served alias) and its verified, parity-checked
    serving runtime, with every core: a batch job has the machine to itself."""
    registry = open_registry(project)
    chosen = version or registry.served_version(project.serve.alias)
    cache = project.resolve(project.serve.cache_dir)
    threads = max(1, os.cpu_count() or 1)
    runtime = open_runtime(
        registry, chosen, cache, trust_pickle=project.serve.trust_pickle, threads=threads
    )
    runtime.check_parity()
    return chosen, runtime


def table_format(path: Path) -> str:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"cannot tell the format of {path}",
            detail=f"known suffixes: {', '.join(SUFFIXES)}",
            fix="name the file with .csv or .parquet",
        )
    return kind


def rejected_path(out: Path) -> Path:
    """Where the rows that failed validation go: ``OUT.rejected.csv`` beside the output."""
    return out.with_name(out.name + ".rejected.csv")


def count_rows(source: Path) -> int | None:
    """Rows in a Parquet file (from its footer); None for CSV (not worth a pass)."""
    if table_format(source) == "parquet":
        return int(pq.ParquetFile(source).metadata.num_rows)
    return None


def read_chunks(source: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    if not source.is_file():
        raise DataError(f"no file at {source}", fix="check the path")
    try:
        if table_format(source) == "parquet":
            for batch in pq.ParquetFile(source).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        else:
            yield from pd.read_csv(source, chunksize=chunk_rows, low_memory=False)
    except (pa.ArrowException, pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(
            f"cannot read {source}",
            detail=str(exc).splitlines()[0][:300],
            fix="check that the file is a valid, UTF-8 CSV or Parquet table",
        ) from exc


def prediction_columns(outputs: Outputs, classes: tuple[str, ...]) -> dict[str, Any]:
    """The columns ``mlflow.pyfunc`` returns for a loopml model: same names, same order."""
    if outputs.probabilities is None:
        return {"prediction": outputs.values}
    columns: dict[str, Any] = {"prediction": outputs.labels}
    for i, name in enumerate(classes):
        columns[f"proba_{name}"] = outputs.probabilities[:, i]
    return columns


def score_file(
    runtime: Runtime,
    version: str,
    source: Path,
    out: Path,
    *,
    chunk_rows: int = 200_000,
    progress: Callable[[int], None] | None = None,
) -> ScoreResult:
    """Score ``source`` into ``out`` (format by suffix); rejected rows to a side file."""
    started = time.perf_counter()
    kind = table_format(out)
    schema = InputSchema.from_contract(runtime.contract)
    classes = tuple(runtime.meta.classes)
    rejects = rejected_path(out)
    tmp_out, tmp_rejects = _temp(out), _temp(rejects)
    writer = _Writer(tmp_out, kind)
    counts = {"rows": 0, "scored": 0, "rejected": 0}
    try:
        with open(tmp_rejects, "w", encoding="utf-8", newline="") as reject_file:
            for chunk in read_chunks(source, chunk_rows):
                offset = counts["rows"]
                scored, bad = _score_chunk(chunk, schema, runtime, classes, offset)
                writer.write(scored)
                _write_rejects(reject_file, chunk, bad, offset, first=counts["rejected"] == 0)
                counts["rows"] += len(chunk)
                counts["scored"] += len(scored)
                counts["rejected"] += len(bad)
                if progress is not None:
                    progress(len(chunk))
        writer.close()
        os.replace(tmp_out, out)
        if counts["rejected"]:
            os.replace(tmp_rejects, rejects)
        else:
            tmp_rejects.unlink()
    finally:
        writer.abort()
        for tmp in (tmp_out, tmp_rejects):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return ScoreResult(
        source,
        out,
        rejects if counts["rejected"] else None,
        counts["rows"],
        counts["scored"],
        counts["rejected"],
        version,
        time.perf_counter() - started,
    )


def _score_chunk(
    chunk: pd.DataFrame,
    schema: InputSchema,
    runtime: Runtime,
    classes: tuple[str, ...],
    offset: int,
) -> tuple[pd.DataFrame, list[InputError]]:
    checked = validate(Table.from_frame(chunk), schema, reject_rows=True)
    kept = chunk if checked.kept is None else chunk.iloc[checked.kept]
    clash = [c for c in ("prediction", *(f"proba_{k}" for k in classes)) if c in chunk.columns]
    if clash:
        raise DataError(
            f"{', '.join(clash)} already in the input: the output would overwrite it",
            fix="rename or drop those columns in the input",
        )
    rejected = [_shift(e, offset) for e in checked.rejected]
    if checked.n_rows == 0:
        return kept.reset_index(drop=True), rejected
    outputs = runtime.predict(checked.features)
    scored = kept.reset_index(drop=True).assign(**prediction_columns(outputs, classes))
    return scored, rejected


def _shift(error: InputError, offset: int) -> InputError:
    row = None if error.row is None else error.row + offset
    return InputError(error.reason, error=error.error, field=error.field, row=row)


def _write_rejects(
    handle: object, chunk: pd.DataFrame, bad: list[InputError], offset: int, *, first: bool
) -> None:
    if not bad:
        return
    rows = [e.row - offset if e.row is not None else 0 for e in bad]
    frame = chunk.iloc[rows].reset_index(drop=True)
    info = pd.DataFrame([{c: getattr(e, c) for c in REJECT_COLUMNS} for e in bad])
    pd.concat([info, frame], axis=1).to_csv(handle, header=first, index=False)  # type: ignore[call-overload]


def _temp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


class _Writer:
    """Appends scored chunks to a CSV or Parquet file."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self._parquet: pq.ParquetWriter | None = None
        self._wrote = False

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == "csv":
            frame.to_csv(self.path, mode="a" if self._wrote else "w", header=not self._wrote,
                         index=False)  # fmt: skip
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        self._wrote = True

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        elif not self._wrote:
            self.path.write_text("", encoding="utf-8")

    def abort(self) -> None:
        if self._parquet is not None:
            with contextlib.suppress(Exception):
                self._parquet.close()
            self._parquet = None
