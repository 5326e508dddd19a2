"""The monitor section: one meaning of min_rows, and settings no window could meet refused
at load time, naming the rule and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loopml.config import (
    CUSUM_LIMIT,
    AlertRule,
    MonitorConfig,
    ProjectConfig,
    default_alerts,
    load_project,
    parse_project,
)
from loopml.config.monitor import window_rows
from loopml.errors import ConfigError

pytestmark = pytest.mark.unit


def project(monitor: dict[str, Any]) -> ProjectConfig:
    raw = {
        "name": "demo",
        "data": {"source": {"path": "t.csv"}, "target": "y", "task": "binary"},
        "monitor": monitor,
    }
    return parse_project(raw, root=Path("."), source="loopml.yaml")


def refused(monitor: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        project(monitor)
    return info.value


def test_rules_without_min_rows_take_the_monitors() -> None:
    monitor = project(
        {
            "min_rows": 250,
            "alerts": [
                {"name": "share", "metric": "drift_share", "above": 0.5},
                {"name": "perf", "metric": "realized_drop", "above": 0.1, "min_rows": 400},
            ],
        }
    ).monitor
    assert [(r.name, r.min_rows) for r in monitor.rules] == [("share", 250), ("perf", 400)]
    assert monitor.alerts is not None and monitor.alerts[0].min_rows is None  # as written
    assert {r.min_rows for r in MonitorConfig(min_rows=70).rules} == {70}


def test_the_default_rules() -> None:
    rules = {r.name: r for r in default_alerts()}
    assert list(rules) == [
        "dataset-drift", "prediction-drift", "feature-drift", "missing-values",
        "unseen-categories", "performance-drop", "estimated-performance-drop", "concept-drift",
    ]  # fmt: skip
    assert all(r.min_rows is None for r in rules.values())
    concept = rules["concept-drift"]
    assert (concept.metric, concept.above, concept.raise_after, concept.clear_after) == (
        "performance_cusum", CUSUM_LIMIT, 1, 2,
    )  # fmt: skip
    critical = {n for n, r in rules.items() if r.severity == "critical"}
    assert critical == {"dataset-drift", "performance-drop", "concept-drift"}
    assert rules["performance-drop"].counts_labelled and concept.counts_labelled
    assert not rules["missing-values"].counts_labelled


def test_a_rule_that_can_never_fire_is_refused_naming_the_rule_and_the_fix() -> None:
    rules = [
        {"name": "share", "metric": "drift_share", "above": 0.5},
        {"name": "performance-drop", "metric": "realized_drop", "above": 0.05, "min_rows": 500},
    ]
    error = refused({"window": 400, "alerts": rules})
    assert error.headline == (
        "loopml.yaml: alert rule 'performance-drop' can never fire: it needs at least 500 "
        "labelled rows per window (min_rows) but monitor.window is 400 rows"
    )
    assert error.fix == "lower monitor.alerts[1].min_rows to 400 or less, or raise monitor.window"
    assert "monitor.min_rows is the smallest window evaluated at all" in error.detail


def test_every_unreachable_rule_is_named() -> None:
    rules = [
        {"name": "a", "metric": "drift_share", "above": 0.5, "min_rows": 600},
        {"name": "b", "metric": "drift_share", "above": 0.5, "min_rows": 300},
        {"name": "c", "metric": "drift_share", "above": 0.5, "min_rows": 700},
    ]
    error = refused({"window": "400 rows", "alerts": rules})
    assert "'a' can never fire: it needs windows of at least 600 rows" in error.headline
    assert error.headline.endswith("(and likewise alert rule 'c')")


def test_monitor_min_rows_above_the_window_is_refused() -> None:
    error = refused({"window": 400, "min_rows": 500})
    assert error.headline == (
        "loopml.yaml: monitor.min_rows (500) is more than monitor.window (400 rows): every "
        "window would be 'not enough data' and no alert could ever fire"
    )
    assert error.fix == "lower monitor.min_rows to 400 or less, or raise monitor.window"


def test_a_rule_cannot_ask_for_fewer_rows_than_the_monitor() -> None:
    rule = {"name": "perf", "metric": "realized_drop", "above": 0.05, "min_rows": 50}
    error = refused({"min_rows": 100, "alerts": [rule]})
    assert "alert rule 'perf' has min_rows 50, less than monitor.min_rows (100)" in error.headline
    assert "remove monitor.alerts[0].min_rows" in error.fix


def test_windows_that_fit_and_duration_windows_pass() -> None:
    rule = {"name": "perf", "metric": "realized_drop", "above": 0.05, "min_rows": 400}
    assert project({"window": 400, "alerts": [rule]}).monitor.window == "400"
    big = {**rule, "min_rows": 20_000}
    assert project({"window": "1h", "min_rows": 10_000, "alerts": [big]}).monitor.rules
    assert (window_rows("5000"), window_rows("5000 rows"), window_rows("30m")) == (5000, 5000, None)


def test_an_environment_override_of_the_window_is_checked(tmp_path: Path) -> None:
    file = tmp_path / "loopml.yaml"
    file.write_text(
        "name: demo\ndata: {source: {path: t.csv}, target: y, task: binary}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"monitor.min_rows \(100\) is more than"):
        load_project(file, environ={"LOOPML_MONITOR__WINDOW": "50"})


def test_an_overriding_window_is_checked_the_same_way() -> None:
    rule = {"name": "perf", "metric": "drift_share", "above": 0.05, "min_rows": 500}
    monitor = project({"window": 1000, "alerts": [rule]}).monitor
    monitor.check_window("1000")
    monitor.check_window("1h")
    with pytest.raises(ConfigError) as info:
        monitor.check_window("300")
    assert info.value.headline == (
        "alert rule 'perf' can never fire: it needs windows of at least 500 rows (min_rows) "
        "but --window is 300 rows"
    )
    assert (
        info.value.fix
        == "lower monitor.alerts[0].min_rows to 300 or less, or pass a larger --window"
    )
    with pytest.raises(ConfigError, match=r"monitor.min_rows \(100\) is more than --window"):
        monitor.check_window("99")


def test_a_rule_without_a_bound_still_fails_on_its_own() -> None:
    with pytest.raises(ValueError, match="set exactly one of 'above' or 'below'"):
        AlertRule(name="x", metric="rows")
