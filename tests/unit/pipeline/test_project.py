"""``loopml init`` writes the default alert rules, commented, and they round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.config import MonitorConfig, default_alerts, load_project
from loopml.pipeline.project import InitOptions, init_project, with_default_alerts

pytestmark = pytest.mark.unit


def uncomment_alerts(text: str) -> str:
    """What a user does in an editor: uncomment 'alerts:' and the rules under it."""
    lines = text.splitlines(keepends=True)
    start = lines.index("  # alerts:\n")
    end = start + 1
    while lines[end].startswith("  # - "):
        end += 1
    uncommented = [line.replace("  # ", "  ", 1) for line in lines[start:end]]
    return "".join(lines[:start] + uncommented + lines[end:])


def init(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"x": rng.normal(size=200), "y": rng.choice(["no", "yes"], 200)})
    table.to_csv(tmp_path / "table.csv", index=False)
    file = tmp_path / "loopml.yaml"
    init_project(tmp_path / "table.csv", "y", project_file=file, options=InitOptions(name="t"))
    return file


def test_init_writes_the_default_rules_commented(tmp_path: Path) -> None:
    file = init(tmp_path)
    text = file.read_text(encoding="utf-8")
    for rule in default_alerts():
        assert f"  # - {{name: {rule.name}, metric: {rule.metric}," in text
    project = load_project(file, environ={})
    assert project.monitor.alerts is None  # commented: the defaults still apply
    assert project.monitor.rules == MonitorConfig().rules


def test_uncommenting_the_block_gives_exactly_the_defaults(tmp_path: Path) -> None:
    file = init(tmp_path)
    file.write_text(uncomment_alerts(file.read_text(encoding="utf-8")), encoding="utf-8")
    project = load_project(file, environ={})
    assert project.monitor.alerts == default_alerts()
    assert project.monitor.rules == MonitorConfig().rules


def test_the_block_needs_a_monitor_section() -> None:
    with pytest.raises(ValueError, match="no 'monitor:' section"):
        with_default_alerts("name: x\n")
    assert with_default_alerts("monitor:\n  window: '5000'\n").startswith("monitor:\n  # ")


def test_init_creates_the_admin_and_the_feedback_token_for_its_owner_only(
    tmp_path: Path,
) -> None:
    init(tmp_path)
    tokens = [tmp_path / ".loopml" / f"{scope}.token" for scope in ("admin", "feedback")]
    assert [path.stat().st_mode & 0o777 for path in tokens] == [0o600, 0o600]
    admin, feedback = (path.read_text(encoding="utf-8").strip() for path in tokens)
    assert admin != feedback and len(feedback) >= 32
    assert not (tmp_path / ".loopml" / "predict.token").exists()  # only for predict_auth
