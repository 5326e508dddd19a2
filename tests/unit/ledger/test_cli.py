from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loopml.cli.main import run
from loopml.config import LedgerConfig
from loopml.ledger import Feedback, PredictionRow, open_ledger

pytestmark = pytest.mark.unit

DAY = 86_400.0
BASE = 1_714_521_600.0  # 2024-05-01T00:00:00Z


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "loopml.yaml").write_text(
        "name: demo\n"
        "data: {source: {path: t.csv}, target: y, task: binary}\n"
        "serve: {ledger: {url: 'sqlite:///.loopml/ledger.db'}}\n"
    )
    with open_ledger(LedgerConfig(), tmp_path) as ledger:
        rows = [
            PredictionRow(f"r{i}", 0, BASE + i * DAY, "demo", str(1 + i % 2),
                          "champion" if i < 3 else "shadow", None, f'{{"x": {i}}}',
                          '{"label": 1}', 0.5)
            for i in range(4)
        ]  # fmt: skip
        ledger.submit(rows).result(timeout=30)
        ledger.submit_feedback([Feedback("r1", 0, "0", BASE + 9 * DAY)]).result(timeout=30)
    return tmp_path / "loopml.yaml"


def loopml(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["loopml", *args])
    with pytest.raises(SystemExit) as done:
        run()
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


def test_stats_counts_rows_labels_and_groups(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = loopml(monkeypatch, capsys, "-p", str(project), "ledger", "stats", "--json")
    assert code == 0
    stats = json.loads(out)
    assert (stats["rows"], stats["labelled"], stats["shadow_rows"]) == (4, 1, 1)
    assert stats["first"] == "2024-05-01T00:00:00+00:00"
    assert stats["last"] == "2024-05-04T00:00:00+00:00"
    assert stats["by_version_arm"] == [
        {"version": "1", "arm": "champion", "rows": 2},
        {"version": "2", "arm": "champion", "rows": 1},
        {"version": "2", "arm": "shadow", "rows": 1},
    ]

    code, out, _ = loopml(monkeypatch, capsys, "-p", str(project), "ledger", "stats")
    assert code == 0
    assert "4 predictions, 1 labelled (25.0%), 1 scored in shadow" in out


def test_export_filters_and_reports(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out_file = tmp_path / "x.parquet"
    code, out, _ = loopml(
        monkeypatch, capsys, "-p", str(project), "ledger", "export", "--out", str(out_file),
        "--since", "2024-05-02", "--until", "2024-05-04T00:00", "--json",
    )  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert (result["rows"], result["labelled"]) == (2, 1)
    assert result["since"] == "2024-05-02T00:00:00+00:00"
    table = pq.read_table(out_file)
    assert table.column("request_id").to_pylist() == ["r1", "r2"]
    assert table.column("label").to_pylist() == [0, None]

    code, out, _ = loopml(
        monkeypatch, capsys, "-p", str(project), "ledger", "export", "-o", str(out_file),
        "--version", "2",
    )  # fmt: skip
    assert code == 0
    assert "1 predictions, 1 labelled" in out  # what was answered: not the shadow row

    code, out, _ = loopml(
        monkeypatch, capsys, "-p", str(project), "ledger", "export", "-o", str(out_file),
        "--arm", "shadow",
    )  # fmt: skip
    assert code == 0
    assert "1 predictions, 0 labelled" in out
    assert pq.read_table(out_file).column("request_id").to_pylist() == ["r3"]


def test_a_bad_time_is_a_clear_error_not_a_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = loopml(
        monkeypatch, capsys, "-p", str(project), "ledger", "export", "-o", "x.parquet",
        "--since", "last tuesday",
    )  # fmt: skip
    assert code == 2
    assert "cannot read 'last tuesday' as a time" in err
    assert "Traceback" not in err


def test_a_correction_shows_in_stats_and_in_the_label_history_export(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    with open_ledger(LedgerConfig(), project.parent) as ledger:
        correction = Feedback("r1", 0, "1", BASE + 10 * DAY, "admin", source="review")
        ledger.submit_feedback([correction]).result(timeout=30)
    code, out, _ = loopml(monkeypatch, capsys, "-p", str(project), "ledger", "stats", "--json")
    assert code == 0
    assert (json.loads(out)["labelled"], json.loads(out)["label_versions"]) == (1, 2)
    code, out, _ = loopml(monkeypatch, capsys, "-p", str(project), "ledger", "stats")
    assert "1 labelled (25.0%) (1 corrections kept in the history)" in out

    out_file = tmp_path / "history.parquet"
    code, out, _ = loopml(
        monkeypatch, capsys, "-p", str(project), "ledger", "export", "--label-history",
        "--out", str(out_file),
    )  # fmt: skip
    assert code == 0 and "2 label versions, 1 of them current" in out
    history = pq.read_table(out_file).to_pydict()
    assert history["label"] == [0, 1] and history["current"] == [False, True]
    assert history["scope"] == ["unknown", "admin"] and history["source"] == [None, "review"]
