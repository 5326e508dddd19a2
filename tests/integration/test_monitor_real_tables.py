"""``loopml monitor run`` on scikit-learn's bundled tables, served for real, with labels.

A new user's path: a CSV of the table in a folder, ``loopml init``, a quick ``loopml
train``, ``loopml serve`` on a free port, predictions and their labels through the HTTP
API, then ``loopml monitor run`` with the small windows a small table calls for
(``monitor.window: 100``, ``monitor.min_rows: 100`` and the default alert rules with their
``min_rows`` lowered to the window). Half of each table is kept out of training: it
is the production traffic, rows like the holdout the model never saw.

- stationary traffic with labels raises no alert (diabetes regression, breast cancer);
- iris: one null in a window is not dataset drift, petals shifted by several standard
  deviations are, and a window whose labels hold one class is not scored as if the two
  absent classes had F1 0;
- breast cancer: its main size features shifted are flagged and alerted;
- a window smaller than a rule's ``min_rows`` is refused, naming the rule.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.integration.serving import TRAIN_ENV, Project, Server, loopml
from tests.integration.test_real_tables import bundled as bundled_table

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW = 100
ASIDE = 0.5  # the share of each table kept out of training: the production traffic
BATCH = 50


@dataclass(frozen=True)
class Table:
    """A trained project on a bundled table, and the rows it never saw."""

    project: Project
    target: str
    frame: pd.DataFrame  # the whole table
    aside: pd.DataFrame  # the rows kept out of training

    @property
    def features(self) -> list[str]:
        return [c for c in self.frame.columns if c != self.target]


def bundled(name: str) -> tuple[pd.DataFrame, str]:
    """The training tests' bundled table; diabetes in dollar-like units (a cost per
    patient), so a threshold in the target's units would be wrong."""
    frame, target = bundled_table(name)
    if name == "diabetes":
        frame[target] = frame[target] * 1000.0
    return frame, target


def set_monitor(folder: Path, **settings: Any) -> None:
    """Edit ``monitor:`` in the project file as a user would."""
    path = folder / "loopml.yaml"
    config = yaml.safe_load(path.read_text())
    config["monitor"] = {**config.get("monitor", {}), **settings}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def build(folder: Path, name: str, seed: int = 0) -> Table:
    folder.mkdir(parents=True, exist_ok=True)
    frame, target = bundled(name)
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(len(frame) * ASIDE)
    aside = frame.iloc[order[:cut]].reset_index(drop=True)
    frame.iloc[order[cut:]].to_csv(folder / "table.csv", index=False)
    loopml(folder, "init", "--data", "table.csv", "--target", target, "--name", name)
    # The settings a user with a small table picks; the default rules follow them.
    set_monitor(folder, window=WINDOW, min_rows=WINDOW, interval_seconds=0)
    loopml(folder, "train")
    return Table(Project(folder, folder / "table.csv"), target, frame, aside)


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> Table:
    return build(tmp_path_factory.mktemp("diabetes"), "diabetes")


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Table:
    return build(tmp_path_factory.mktemp("iris"), "iris")


@pytest.fixture(scope="module")
def breast_cancer(tmp_path_factory: pytest.TempPathFactory) -> Table:
    return build(tmp_path_factory.mktemp("breast_cancer"), "breast_cancer")


# -- traffic ---------------------------------------------------------------------------


def draw(rows: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` rows in a random order, each row once before any row comes twice.

    Resampling a hundred rows with replacement repeats some and shares the quirks of one
    small set across windows: the drift tests then see drift that is not there.
    """
    rng = np.random.default_rng(seed)
    picks = np.concatenate([rng.permutation(len(rows)) for _ in range(-(-n // len(rows)))])
    return rows.iloc[picks[:n]].reset_index(drop=True)


def shifted(
    rows: pd.DataFrame, reference: pd.DataFrame, columns: Sequence[str], sds: float
) -> pd.DataFrame:
    """The world moved: ``columns`` read ``sds`` standard deviations (of the table) higher."""
    out = rows.copy()
    for column in columns:
        out[column] = out[column] + sds * reference[column].std()
    return out


def predict_and_label(server: Server, table: Table, rows: pd.DataFrame) -> None:
    """Every row through ``/predict``, then its true label through ``/feedback``."""
    for start in range(0, len(rows), BATCH):
        chunk = rows.iloc[start : start + BATCH]
        features = chunk[table.features].astype(object)
        # Every digit: to_json keeps 10, and a value the reference held must stay that value.
        records = features.where(features.notna(), None).to_dict(orient="records")
        status, body = server.post_json("/predict", {"records": records})
        assert status == 200, body
        labels = [
            {"request_id": body["request_id"], "row": i, "label": label}
            for i, label in enumerate(chunk[table.target].tolist())
        ]
        status, answer = server.post_feedback({"labels": labels})
        assert status == 200, answer
        assert answer["recorded"] == len(labels) and answer["unknown"] == [], answer


# -- monitoring ------------------------------------------------------------------------


@dataclass
class Monitoring:
    """One served session: its own ledger, monitor store, alert file and reports."""

    table: Table
    server: Server
    env: dict[str, str]

    def run(self) -> dict[str, Any]:
        """``loopml monitor run --json`` (exit 1 while an alert is raised)."""
        proc = monitor_cli(self.table.project.folder, self.env)
        assert proc.returncode in (0, 1), f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr, proc.stderr
        result: dict[str, Any] = json.loads(proc.stdout)
        assert result["errors"] == [], result["errors"]
        return result


Serve = Callable[[Table], Monitoring]


def monitor_cli(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    return subprocess.run(
        [sys.executable, "-c", "from loopml.cli.main import run; run()", "monitor", "run",
         "--json", *args],
        cwd=folder, env=full | TRAIN_ENV | env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture
def monitoring(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Serve]:
    """``monitoring(table)`` serves ``table`` for this test and returns its session."""
    started: list[Server] = []

    def start(table: Table) -> Monitoring:
        name = request.node.name.replace("[", "-").replace("]", "")
        env = {
            "LOOPML_MONITOR__STORE": f"sqlite:///{tmp_path / 'monitor.db'}",
            "LOOPML_MONITOR__ALERT_LOG": str(tmp_path / "alerts.jsonl"),
            "LOOPML_MONITOR__REPORTS_DIR": str(tmp_path / "reports"),
        }
        server = Server(table.project, name, env=dict(env)).start()
        started.append(server)
        env["LOOPML_SERVE__LEDGER__URL"] = f"sqlite:///{server.ledger_path}"
        return Monitoring(table, server, env)

    yield start
    for server in started:
        server.kill()


def describe(run: dict[str, Any]) -> str:
    """What a failing assertion prints: each window's verdicts, then the alert events."""
    lines = []
    for w in run["windows"]:
        perf = w["performance"]
        tested = [f["name"] for f in w["features"] if f["drift"]["status"] == "ok"]
        untested = {
            f["name"]: f["drift"]["reason"] for f in w["features"] if f["drift"]["status"] != "ok"
        }
        prediction = (w["prediction"] or {}).get("drift") or {}
        lines.append(
            f"window #{w['index']} ({w['rows']} rows, {w['status']}, {w['reason']}): "
            f"drift share {w['drift_share']}, dataset drift {w['dataset_drift']}, "
            f"drifted {w['drifted_features']}, tested {len(tested)}, untested {untested}; "
            f"prediction {prediction.get('test')} {prediction.get('statistic')} "
            f"drifted {prediction.get('drifted')}; "
            f"realized {perf['realized']}, estimated {perf['estimated']}, "
            f"holdout {perf['reference']}, labelled {perf['labelled_rows']}, "
            f"performance note {perf['reason']}"
        )
    lines += [f"event {e['state']} {e['rule']} ({e['metric']}): {e['message']}" for e in
              run["events"]]  # fmt: skip
    lines += [f"active {a['rule']} ({a['metric']}) last value {a['last_value']}" for a in
              run["active"]]  # fmt: skip
    return "\n".join(lines)


def complete(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for w in run["windows"] if w["complete"]]


def raised(run: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["rule"], e["metric"]) for e in run["events"] if e["state"] == "raised"}


def assert_quiet(run: dict[str, Any], windows: int) -> None:
    """``windows`` complete windows were evaluated and not one alert is pending or up."""
    assert len(complete(run)) == windows, describe(run)
    assert all(w["status"] == "ok" for w in complete(run)), describe(run)
    assert run["events"] == [] and run["active"] == [], (
        "stationary traffic raised alerts:\n" + describe(run)
    )


# -- 1. diabetes regression ------------------------------------------------------------


def test_diabetes_stationary_traffic_with_labels_raises_no_alert(
    diabetes: Table, monitoring: Serve
) -> None:
    """Realized RMSE in each window wanders around the holdout's by sampling noise alone;
    a drop of 0.05 in the target's units (dollars here) is not a drop."""
    session = monitoring(diabetes)
    predict_and_label(session.server, diabetes, draw(diabetes.aside, 2 * WINDOW, seed=1))
    run = session.run()
    for w in complete(run):
        assert w["performance"]["labelled_rows"] == WINDOW, describe(run)
        realized, holdout = w["performance"]["realized"], w["performance"]["reference"]
        # The traffic is stationary: within the noise of 100 rows (and of the holdout's).
        assert 0.8 < realized["rmse"] / holdout["rmse"] < 1.25, describe(run)
    assert ("performance-drop", "realized_drop") not in raised(run), (
        "performance-drop raised on stationary regression traffic:\n" + describe(run)
    )
    assert_quiet(run, windows=2)


# -- 2. iris multiclass ----------------------------------------------------------------


def test_iris_one_null_in_a_window_is_not_dataset_drift(iris: Table, monitoring: Serve) -> None:
    """100 distinct rows of the table (iris has 150; the model trained on some, which makes
    the drift tests no stricter), one of them without its sepal width: the window is
    still in distribution, and 99 values are still enough to test that column."""
    session = monitoring(iris)
    rows = draw(iris.frame, WINDOW, seed=2)
    rows.loc[17, "sepal width (cm)"] = None
    predict_and_label(session.server, iris, rows)
    run = session.run()
    [window] = complete(run)
    assert not window["dataset_drift"], "one null made dataset drift:\n" + describe(run)
    assert window["drift_share"] is not None and window["drift_share"] < 0.5, describe(run)
    [sepal] = [f for f in window["features"] if f["name"] == "sepal width (cm)"]
    assert sepal["missing_rate"] == pytest.approx(1 / WINDOW), describe(run)
    assert sepal["drift"]["status"] == "ok", (
        "one null in 100 rows took 'sepal width (cm)' out of the drift share:\n" + describe(run)
    )
    assert run["events"] == [], describe(run)


def test_iris_shifted_petals_are_dataset_drift_and_alerted(iris: Table, monitoring: Serve) -> None:
    session = monitoring(iris)
    petals = ["petal length (cm)", "petal width (cm)"]
    rows = shifted(draw(iris.frame, 2 * WINDOW, seed=3), iris.frame, petals, sds=4.0)
    predict_and_label(session.server, iris, rows)
    run = session.run()
    windows = complete(run)
    assert len(windows) == 2, describe(run)
    for w in windows:
        assert w["dataset_drift"], "petals 4 sd away not called dataset drift:\n" + describe(run)
        assert set(petals) <= set(w["drifted_features"]), describe(run)
    assert ("dataset-drift", "dataset_drift") in raised(run), (
        "two drifted windows did not raise dataset-drift:\n" + describe(run)
    )
    [event] = [e for e in run["events"] if e["rule"] == "dataset-drift"]
    named = {d["feature"] for d in event["evidence"]["drifted_features"]}
    assert set(petals) <= named, event["evidence"]


def test_iris_macro_f1_of_a_one_class_window_ignores_the_absent_classes(
    iris: Table, monitoring: Serve
) -> None:
    """A window of setosa only, almost all predicted right: F1 of the two classes that
    never occur is undefined, not 0, so macro F1 does not read 1/3."""
    session = monitoring(iris)
    setosa = iris.frame[iris.frame[iris.target] == "setosa"]
    predict_and_label(session.server, iris, draw(setosa, WINDOW, seed=4))
    run = session.run()
    [window] = complete(run)
    realized = window["performance"]["realized"]
    assert realized.get("accuracy") is not None and realized["accuracy"] >= 0.95, describe(run)
    f1 = realized.get("f1_macro")
    assert f1 is None or f1 > 0.9, (
        f"macro F1 {f1} on a window of accuracy {realized['accuracy']} whose labels hold one "
        "class: the absent classes were scored 0\n" + describe(run)
    )
    drop = window["metrics"].get("realized_drop.f1_macro")
    assert drop is None or drop < 0.1, describe(run)


# -- 3. breast cancer binary -----------------------------------------------------------

SIZE = ["mean radius", "mean perimeter", "mean area", "worst radius", "worst perimeter",
        "worst area"]  # fmt: skip


def test_breast_cancer_stationary_traffic_with_labels_raises_no_alert(
    breast_cancer: Table, monitoring: Serve
) -> None:
    """Nothing moved, so nothing is raised: not the features, not the model's confidence
    (most probabilities sit at 0 or 1, as on the holdout), not its quality."""
    session = monitoring(breast_cancer)
    rows = draw(breast_cancer.aside, 2 * WINDOW, seed=5)
    predict_and_label(session.server, breast_cancer, rows)
    run = session.run()
    for w in complete(run):
        assert w["performance"]["labelled_rows"] == WINDOW, describe(run)
        assert not w["dataset_drift"], describe(run)
    assert_quiet(run, windows=2)


def test_breast_cancer_shifted_size_features_are_flagged_and_alerted(
    breast_cancer: Table, monitoring: Serve
) -> None:
    """The six size features (radius, perimeter, area; mean and worst) read 4 standard
    deviations larger, as from a scanner calibrated differently."""
    session = monitoring(breast_cancer)
    rows = draw(breast_cancer.aside, 2 * WINDOW, seed=6)
    predict_and_label(session.server, breast_cancer, shifted(rows, breast_cancer.frame, SIZE, 4))
    run = session.run()
    windows = complete(run)
    assert len(windows) == 2, describe(run)
    for w in windows:
        assert set(SIZE) <= set(w["drifted_features"]), describe(run)
    alerted = raised(run)
    missing = [name for name in SIZE if ("feature-drift", f"drift.{name}") not in alerted]
    assert not missing, f"no feature-drift alert for {missing}:\n" + describe(run)


# -- 4. a window smaller than a rule's min_rows ----------------------------------------


def test_a_window_smaller_than_a_rules_min_rows_is_refused(diabetes: Table, tmp_path: Path) -> None:
    """A rule that can never see enough rows would never raise: say so, do not run."""
    folder = tmp_path / "project"
    shutil.copytree(
        diabetes.project.folder, folder, ignore=shutil.ignore_patterns("ledger-*", "monitor*")
    )
    rule = {"name": "slow-drift", "metric": "dataset_drift", "above": 0.5, "min_rows": 500}
    set_monitor(folder, window=400, min_rows=100, alerts=[rule])
    proc = monitor_cli(folder, {})
    said = " ".join((proc.stdout + proc.stderr).split())  # Rich wraps lines
    assert proc.returncode != 0, f"accepted a 400-row window for a 500-row rule: {said}"
    assert "slow-drift" in said and "min_rows" in said, said
    assert "Traceback" not in proc.stderr, proc.stderr
