"""Bad input through the CLI: a headline, the detail, a fix, a non-zero exit, no traceback
(the ``cli`` fixture asserts that), and no run or registry entry left behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.integration.conftest import Cli, Result, run_count, version_count

pytestmark = pytest.mark.integration


def table(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(rows)],
            "x": x,
            "color": rng.choice(["red", "green", "blue"], size=rows),
            "y": (x + rng.normal(scale=0.5, size=rows) > 0).astype(int),
        }
    )


def assert_actionable(result: Result, *needles: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    assert any(line.startswith("fix: ") for line in lines), result.stderr
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in:\n{result.stderr}"


def assert_nothing_written(folder: Path) -> None:
    assert run_count(folder) == 0
    assert version_count(folder) == 0


@pytest.mark.parametrize(
    ("name", "content", "needles"),
    [
        ("missing.csv", None, ["missing.csv"]),
        ("empty.csv", b"", ["empty.csv"]),
        ("header.csv", b"x,y\n", ["no rows"]),
        ("latin1.csv", "x,y\n1,caf\xe9\n".encode("latin-1"), ["UTF-8", "line 2"]),
        ("ragged.csv", b'x,y\n1,2\n3,"4\n', ["ragged.csv"]),
        ("table.txt", b"x,y\n1,2\n", [".csv", ".parquet"]),
    ],
)
def test_unreadable_tables_exit_2(
    cli: Cli, tmp_path: Path, name: str, content: bytes | None, needles: list[str]
) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    result = cli("init", "--data", name, "--target", "y", check=2)
    assert_actionable(result, *needles)
    assert not (tmp_path / "loopml.yaml").exists()


def test_missing_target_column(cli: Cli, tmp_path: Path) -> None:
    table().to_csv(tmp_path / "t.csv", index=False)
    result = cli("init", "--data", "t.csv", "--target", "label", check=1)
    assert_actionable(result, "label", "x, color")
    assert not (tmp_path / "loopml.yaml").exists()


def test_single_class_target(cli: Cli, tmp_path: Path) -> None:
    frame = table().assign(y=1)
    frame.to_csv(tmp_path / "t.csv", index=False)
    result = cli("init", "--data", "t.csv", "--target", "y", "--task", "binary", check=1)
    assert_actionable(result, "single class")
    assert not (tmp_path / "loopml.yaml").exists()


def test_all_null_column(cli: Cli, tmp_path: Path) -> None:
    frame = table().assign(empty=np.nan)
    frame.to_csv(tmp_path / "t.csv", index=False)
    result = cli("init", "--data", "t.csv", "--target", "y", check=1)
    assert_actionable(result, "empty", "data.drop")


def test_training_table_that_breaks_its_contract(cli: Cli, tmp_path: Path) -> None:
    table().to_csv(tmp_path / "t.csv", index=False)
    cli("init", "--data", "t.csv", "--target", "y")
    broken = table(seed=1).astype({"x": object})
    broken.loc[[3, 17], "x"] = "twelve"
    broken.to_csv(tmp_path / "t.csv", index=False)
    result = cli("train", check=1)
    assert_actionable(result, "breaks its data contract", "'x'", "loopml validate")
    assert_nothing_written(tmp_path)
    report = cli("validate", "t.csv", "--json", check=1).json()
    bad = next(v for v in report["violations"] if v["column"] == "x")
    assert bad["kind"] == "type_mismatch" and bad["count"] == 2 and bad["rows"] == [3, 17]


def test_a_new_target_class_is_an_error_for_validate_and_train_alike(
    cli: Cli, tmp_path: Path
) -> None:
    table().to_csv(tmp_path / "t.csv", index=False)
    cli("init", "--data", "t.csv", "--target", "y")
    changed = table(seed=1)
    changed.loc[[4, 9], "y"] = 2
    changed.to_csv(tmp_path / "t.csv", index=False)
    report = cli("validate", "t.csv", "--json", check=1).json()
    found = [v for v in report["violations"] if v["kind"] == "unknown_class"]
    assert [(v["column"], v["severity"], v["rows"]) for v in found] == [("y", "error", [4, 9])]
    headline = "target 'y' holds 1 label(s) the contract does not know"
    assert headline in found[0]["message"]
    result = cli("train", check=1)
    assert_actionable(result, "breaks its data contract", headline, "loopml contract update")
    assert_nothing_written(tmp_path)


def test_what_validate_only_warns_about_exits_0(cli: Cli, tmp_path: Path) -> None:
    table().to_csv(tmp_path / "t.csv", index=False)
    cli("init", "--data", "t.csv", "--target", "y")
    changed = table(seed=1).assign(bonus=1).astype({"x": object})
    changed.loc[5, "x"] = "n/a"  # pandas reads it as null; x had none in training
    changed.to_csv(tmp_path / "new.csv", index=False)
    report = cli("validate", "new.csv", "--json").json()
    kinds = {(v["kind"], v["column"], v["severity"]) for v in report["violations"]}
    assert {("unexpected_null", "x", "warning"), ("extra_column", "bonus", "warning")} <= kinds
    assert report["ok"] is True


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (
            lambda text: text + "trian:\n  seed: 1\n",
            ["unknown key 'trian'", "did you mean 'train'"],
        ),
        (lambda text: text.replace("holdout: 0.2", "holdout: 2"), ["split.holdout"]),
        (lambda text: text.replace("task: binary", "task: ranking"), ["data.task", "ranking"]),
    ],
)
def test_bad_project_file(cli: Cli, tmp_path: Path, edit: object, needles: list[str]) -> None:
    table().to_csv(tmp_path / "t.csv", index=False)
    cli("init", "--data", "t.csv", "--target", "y")
    project = tmp_path / "loopml.yaml"
    project.write_text(edit(project.read_text()))  # type: ignore[operator]
    result = cli("train", check=2)
    assert_actionable(result, *needles)
    assert_nothing_written(tmp_path)


def test_missing_project_file(cli: Cli) -> None:
    assert_actionable(cli("train", check=2), "no project file", "loopml init")


def test_unreachable_tracking_uri(cli: Cli, tmp_path: Path) -> None:
    table().to_csv(tmp_path / "t.csv", index=False)
    cli("init", "--data", "t.csv", "--target", "y")
    result = cli("train", env={"LOOPML_TRACKING__URI": "http://127.0.0.1:9"}, check=2)
    assert_actionable(result, "cannot reach the MLflow tracking store", "tracking.uri")
    assert_nothing_written(tmp_path)


def test_unknown_version_and_empty_history(cli: Cli, tmp_path: Path) -> None:
    table().to_csv(tmp_path / "t.csv", index=False)
    cli("init", "--data", "t.csv", "--target", "y")
    assert_actionable(cli("promote", "7", "--reason", "x", check=2), "no version 7")
    assert_actionable(cli("rollback", "--reason", "x", check=2), "no previous champion")
    assert "no alias moves yet" in cli("audit").stdout


def test_unknown_candidate_fails_before_any_run(cli: Cli, tmp_path: Path) -> None:
    table().to_csv(tmp_path / "t.csv", index=False)
    cli("init", "--data", "t.csv", "--target", "y")
    env = {"LOOPML_TRAIN__CANDIDATES": "[lightgbm, catboost]"}
    assert_actionable(cli("train", env=env, check=2), "catboost", "lightgbm")
    assert_nothing_written(tmp_path)


def test_interrupted_training_leaves_no_run_behind(tmp_path: Path) -> None:
    """Ctrl-C in the middle of tuning: exit 130, and the half-made run is deleted."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    table(rows=3000).to_csv(tmp_path / "t.csv", index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    command = [sys.executable, "-c", "from loopml.cli.main import run; run()"]
    subprocess.run([*command, "init", "--data", "t.csv", "--target", "y"], cwd=tmp_path,
                   env=env, check=True, capture_output=True)  # fmt: skip
    env |= {"LOOPML_TRAIN__TUNING__TRIALS": "500", "LOOPML_TRAIN__TUNING__TIMEOUT_SECONDS": "60"}
    # A background job of a non-interactive shell (as CI may run us) inherits SIGINT
    # ignored; give the child the default disposition a terminal user's process has.
    proc = subprocess.Popen(
        [*command, "train"], cwd=tmp_path, env=env, stderr=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )  # fmt: skip
    db = tmp_path / ".loopml" / "mlflow.db"
    deadline = time.monotonic() + 120
    runs = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            with sqlite3.connect(db) as conn:
                runs = conn.execute(
                    "SELECT COUNT(*) FROM runs WHERE status = 'FINISHED'"
                ).fetchone()[0]
            if runs >= 2:  # both baselines' child runs are written: tuning has begun
                break
        time.sleep(0.2)
    assert runs >= 2, "training never reached tuning"
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"loopml train ignored Ctrl-C for 3 minutes; stderr:\n{stderr}")
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert_nothing_written(tmp_path)


@pytest.mark.slow
def test_sql_source_validates_and_trains(cli: Cli, tmp_path: Path) -> None:
    """The project's table can be a SQL query; 'loopml validate' with no path checks it."""
    import sqlite3

    frame = table(rows=600)
    frame.to_csv(tmp_path / "t.csv", index=False)
    cli("init", "--data", "t.csv", "--target", "y")
    with sqlite3.connect(tmp_path / "t.db") as conn:
        frame.to_sql("events", conn, index=False)
    project = tmp_path / "loopml.yaml"
    project.write_text(
        project.read_text().replace(
            "path: t.csv", "sql: SELECT * FROM events\n    url: sqlite:///t.db"
        )
    )
    assert "the query on sqlite:///t.db" in cli("validate").stdout
    trained = cli("train", "--json", env={"LOOPML_GATE__MARGIN": "0"}, check=None)
    assert trained.code in (0, 1), trained.stderr
    assert trained.json()["leaderboard"]
    bad = project.read_text().replace("FROM events", "FROM nowhere")
    project.write_text(bad)
    assert_actionable(cli("validate", check=2), "nowhere")
