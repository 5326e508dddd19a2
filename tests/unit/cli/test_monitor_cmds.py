"""``loopml monitor run`` on settings no window could meet: a one-line error naming the
rule and the fix, exit code 2, no traceback, nothing run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from loopml.cli.main import run
from loopml.errors import EXIT_UNUSABLE

pytestmark = pytest.mark.unit

PROJECT = """\
name: demo
data: {source: {path: t.csv}, target: y, task: binary}
monitor:
  window: WINDOW
  store: sqlite:///monitor.db
  alerts:
  - {name: share, metric: drift_share, above: 0.5}
  - {name: performance-drop, metric: realized_drop, above: 0.05, min_rows: 500}
"""


def loopml(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["loopml", *args])
    with pytest.raises(SystemExit) as done:
        run()
    return int(done.value.code or 0), capsys.readouterr().err


def write(tmp_path: Path, window: int) -> Path:
    file = tmp_path / "loopml.yaml"
    file.write_text(PROJECT.replace("WINDOW", str(window)), encoding="utf-8")
    return file


def test_a_rule_the_window_can_never_meet_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, 400)
    code, err = loopml(monkeypatch, capsys, "-p", str(file), "monitor", "run")
    lines = err.strip().splitlines()
    assert code == EXIT_UNUSABLE
    assert lines[0] == (
        f"error: {file}: alert rule 'performance-drop' can never fire: it needs at least 500 "
        "labelled rows per window (min_rows) but monitor.window is 400 rows"
    )
    assert lines[-1] == (
        "fix: lower monitor.alerts[1].min_rows to 400 or less, or raise monitor.window"
    )
    assert "Traceback" not in err
    assert not (tmp_path / "monitor.db").exists()


def test_an_overriding_window_is_checked_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, 1000)
    code, err = loopml(monkeypatch, capsys, "-p", str(file), "monitor", "run", "--window", "300")
    lines = err.strip().splitlines()
    assert code == EXIT_UNUSABLE
    assert lines[0].startswith("error: alert rule 'performance-drop' can never fire")
    assert lines[0].endswith("but --window is 300 rows")
    assert lines[-1].endswith("or pass a larger --window")
    assert not (tmp_path / "monitor.db").exists()
