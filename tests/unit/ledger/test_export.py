from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.errors import LoopmlError
from loopml.ledger import LedgerQuery, LedgerRecord, PredictionRow, export_ledger, parse_time
from tests.unit.ledger.fakes import FakeBackend, FakeReader

pytestmark = pytest.mark.unit

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        (" 90s ", NOW - timedelta(seconds=90)),
        ("1.5h", NOW - timedelta(minutes=90)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T08:30", datetime(2024, 5, 1, 8, 30, tzinfo=UTC)),
        ("2024-05-01 08:30:15Z", datetime(2024, 5, 1, 8, 30, 15, tzinfo=UTC)),
        ("2024-05-01T08:30+02:00", datetime(2024, 5, 1, 6, 30, tzinfo=UTC)),
    ],
)
def test_parse_time_reads_iso_times_and_durations_back_from_now(
    text: str, expected: datetime
) -> None:
    parsed = parse_time(text, NOW)
    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("text", ["yesterday", "7 days", "-3h", "2024-13-01", "", "3y"])
def test_parse_time_explains_what_it_accepts(text: str) -> None:
    with pytest.raises(LoopmlError, match="cannot read") as caught:
        parse_time(text, NOW)
    assert "30m, 24h, 7d" in caught.value.detail
    assert "--since 24h" in caught.value.fix


def record(
    request_id: str, features: str, outputs: str, label: str | None = None, ts: float = 1e9
) -> PredictionRow:
    return PredictionRow(request_id, 0, ts, "m", "1", "champion", None, features, outputs, 1.0)


def backend_with(*rows: PredictionRow, labels: dict[str, str] | None = None) -> FakeBackend:
    backend = FakeBackend()
    backend.rows = {r.key: r for r in rows}
    backend.labels = {(k, 0): v for k, v in (labels or {}).items()}
    return backend


def test_columns_are_typed_from_every_row_and_renamed_apart_from_fixed_ones(
    tmp_path: Path,
) -> None:
    backend = backend_with(
        record("a", '{"n": 1, "mixed": 1, "flag": true, "label": "f", "ts": 3}', '{"label": "x"}'),
        record(
            "b",
            '{"n": 2.5, "mixed": "s", "obj": [1, 2], "gone": null}',
            '{"label": "y", "prediction": 7, "proba_x": 0.5}',
            ts=2e9,
        ),
        labels={"a": '"yes"', "b": "NaN"},
    )
    result = export_ledger(backend, tmp_path / "out.parquet", chunk_rows=1)
    table = pq.read_table(result.path)
    schema = {f.name: f.type for f in table.schema}
    assert result.columns == tuple(table.column_names)
    assert table.column_names[8:] == [
        "n", "mixed", "flag", "feature_label", "feature_ts", "obj", "gone",
        "prediction", "output_prediction", "proba_x", "label", "labelled_at",
    ]  # fmt: skip
    assert schema["n"] == pa.float64()
    assert schema["flag"] == pa.bool_()
    assert schema["feature_ts"] == pa.int64()
    assert schema["mixed"] == pa.string()
    assert schema["gone"] == pa.string()
    assert schema["ts"] == pa.timestamp("us", tz="UTC")
    data = table.to_pydict()
    assert data["mixed"] == ["1", "s"]
    assert data["obj"] == [None, "[1, 2]"]
    assert data["prediction"] == ["x", "y"]
    assert data["label"] == ["yes", "NaN"]  # Python's json writes NaN: read, kept as text
    assert data["ts"] == [datetime.fromtimestamp(1e9, UTC), datetime.fromtimestamp(2e9, UTC)]


def test_an_empty_selection_still_writes_a_readable_file(tmp_path: Path) -> None:
    result = export_ledger(FakeBackend(), tmp_path / "sub" / "empty.parquet")
    table = pq.read_table(result.path)
    assert (result.rows, result.labelled, table.num_rows) == (0, 0, 0)
    assert table.column_names[:3] == ["request_id", "row", "ts"]


class _Stages:
    def __init__(self) -> None:
        self.stages: list[tuple[str, int | None]] = []
        self.advanced = 0

    def stage(self, description: str, total: int | None = None) -> None:
        self.stages.append((description, total))

    def advance(self, amount: int = 1) -> None:
        self.advanced += amount


def test_progress_reports_both_passes_with_totals(tmp_path: Path) -> None:
    backend = backend_with(*(record(f"r{i}", "{}", "{}", ts=1e9 + i) for i in range(5)))
    progress = _Stages()
    since = datetime.fromtimestamp(1e9 + 1, UTC)
    result = export_ledger(backend, tmp_path / "o.parquet", since=since, progress=progress)
    assert result.rows == 4
    assert progress.stages == [("reading column types", 4), ("writing o.parquet", 4)]
    assert progress.advanced == 8


class _BrokenReader(FakeReader):
    def chunks(self, query: LedgerQuery, chunk_rows: int) -> Iterator[list[LedgerRecord]]:
        yield from super().chunks(query, chunk_rows)
        raise OSError("disk full")


class _BrokenBackend(FakeBackend):
    @contextmanager
    def reader(self) -> Iterator[FakeReader]:
        yield _BrokenReader(self)


def test_a_failed_export_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    out.write_bytes(b"previous export")
    backend = _BrokenBackend()
    backend.rows = {("a", 0): record("a", "{}", "{}")}
    with pytest.raises(LoopmlError, match="cannot write") as caught:
        export_ledger(backend, out)
    assert "disk full" in caught.value.detail
    assert out.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_a_url_is_opened_and_closed_for_the_export(tmp_path: Path) -> None:
    result = export_ledger("sqlite:///ledger.db", tmp_path / "o.parquet", root=tmp_path)
    assert result.rows == 0
    assert (tmp_path / "ledger.db").exists()
