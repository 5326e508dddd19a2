from __future__ import annotations

from pathlib import Path

import pytest

from loopml.config import apply_env_overrides, load_project
from loopml.errors import ConfigError

pytestmark = pytest.mark.unit

MINIMAL = """\
name: demo
data:
  source: {path: table.csv}
  target: y
  task: binary
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "loopml.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_file_gets_defaults_and_resolves_paths(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, MINIMAL), environ={})
    assert project.name == "demo"
    assert project.train.baselines == ("dummy",)
    assert project.train.candidates == ("linear", "lightgbm", "xgboost", "hist_gradient_boosting")
    assert project.resolve(project.data.contract) == tmp_path.resolve() / "loopml.contract.yaml"
    assert project.experiment_name == "demo"


def test_unknown_key_names_the_key_and_suggests_the_fix(tmp_path: Path) -> None:
    text = MINIMAL + "train:\n  tuning:\n    trails: 3\n"
    with pytest.raises(ConfigError) as info:
        load_project(write(tmp_path, text), environ={})
    error = info.value
    assert "train.tuning.trails" in error.headline
    assert "did you mean 'trials'" in error.fix
    assert "timeout_seconds" in error.detail


def test_bad_value_names_key_and_value(tmp_path: Path) -> None:
    text = MINIMAL.replace("task: binary", "task: clustering")
    with pytest.raises(ConfigError) as info:
        load_project(write(tmp_path, text), environ={})
    assert "data.task" in info.value.headline
    assert "clustering" in info.value.detail


def test_missing_key_and_source_rules(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.target"):
        load_project(write(tmp_path, MINIMAL.replace("  target: y\n", "")), environ={})
    text = MINIMAL.replace("{path: table.csv}", "{sql: 'select 1'}")
    with pytest.raises(ConfigError, match="url"):
        load_project(write(tmp_path, text), environ={})


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no project file"):
        load_project(tmp_path / "nope.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_project(write(tmp_path, "name: [unclosed"), environ={})
    with pytest.raises(ConfigError, match="mapping"):
        load_project(write(tmp_path, "- a\n- b\n"), environ={})


def test_env_overrides_nested_keys_with_yaml_types(tmp_path: Path) -> None:
    env = {
        "LOOPML_TRAIN__TUNING__TRIALS": "3",
        "LOOPML_TRACKING__URI": "http://mlflow:5000",
        "LOOPML_PROJECT": "ignored: no double underscore",
    }
    project = load_project(write(tmp_path, MINIMAL), environ=env)
    assert project.train.tuning.trials == 3
    assert project.tracking.uri == "http://mlflow:5000"


def test_env_override_with_bad_value_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.tuning.trials"):
        load_project(write(tmp_path, MINIMAL), environ={"LOOPML_TRAIN__TUNING__TRIALS": "0"})


def test_env_override_cannot_replace_a_value_with_a_section() -> None:
    with pytest.raises(ConfigError):
        apply_env_overrides({"name": "x"}, {"LOOPML_NAME__SUB": "1"})


def test_yaml_round_trip(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, MINIMAL), environ={})
    again = load_project(write(tmp_path, project.to_yaml()), environ={})
    assert again == project


def test_ledger_queue_must_hold_the_largest_request() -> None:
    from pydantic import ValidationError

    from loopml.config import LedgerConfig, ServeConfig

    with pytest.raises(ValidationError, match="queue_size"):
        ServeConfig(max_rows=100, ledger=LedgerConfig(queue_size=10))
    assert ServeConfig(max_rows=10, ledger=LedgerConfig(queue_size=10)).max_rows == 10


def test_environment_overrides_of_text_keys_stay_text(tmp_path: Path) -> None:
    env = {"LOOPML_DATA__POSITIVE_CLASS": "no", "LOOPML_TRAIN__SEED": "7",
           "LOOPML_TRACKING__EXPERIMENT": "on"}  # fmt: skip
    project = load_project(write(tmp_path, MINIMAL), environ=env)
    assert project.data.positive_class == "no"
    assert project.tracking.experiment == "on"
    assert project.train.seed == 7


def test_margins_are_checked() -> None:
    from loopml.config import GateConfig

    with pytest.raises(ValueError, match="less than 1"):
        GateConfig(margin=1.5)
