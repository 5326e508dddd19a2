"""``loopml score``: the same artifact as the server, over a whole file, bad rows aside."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.integration.serving import Project

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def score(project: Project, *args: str, command: str = "score") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    return subprocess.run(
        [sys.executable, "-c", "from loopml.cli.main import run; run()", command, *args],
        cwd=project.folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_score_writes_predictions_and_sets_bad_rows_aside(
    served_project: Project, suffix: str
) -> None:
    import mlflow

    frame = pd.read_parquet(served_project.table).head(3000).drop(columns=["engaged"])
    frame["user_activity"] = frame["user_activity"].astype(object)
    frame.loc[7, "user_activity"] = "lots"  # wrong type: an error, refused
    # "n/a" (a null to pandas) where training had no null: a warning, served (imputed)
    frame.loc[11, "user_activity"] = "n/a" if suffix == ".csv" else None
    source = served_project.folder / f"to-score{suffix}"
    if suffix == ".csv":
        frame.to_csv(source, index=False)
    else:
        frame.astype({"user_activity": str}).replace({"None": None}).to_parquet(source)
    out = served_project.folder / f"scored{suffix}"
    proc = score(served_project, str(source), str(out), "--chunk-rows", "1000")
    assert proc.returncode == 1, proc.stderr  # a row was rejected
    assert "Traceback" not in proc.stderr
    assert "rejected 1 rows" in proc.stdout
    scored = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert len(scored) == 2999
    assert {"prediction", "proba_0", "proba_1"} <= set(scored.columns)
    rejected = pd.read_csv(out.with_name(out.name + ".rejected.csv"))
    assert rejected[["row", "field", "error"]].values.tolist() == [
        [7, "user_activity", "wrong_type"]
    ]

    # loopml validate says the same of the same file: row 7 an error, row 11 a warning
    report = json.loads(score(served_project, str(source), "--json", command="validate").stdout)
    found = {v["kind"]: v for v in report["violations"] if v["column"] == "user_activity"}
    assert (found["type_mismatch"]["severity"], found["type_mismatch"]["rows"]) == ("error", [7])
    assert (found["unexpected_null"]["severity"], found["unexpected_null"]["rows"]) == (
        "warning",
        [11],
    )
    assert rejected["reason"][0].split(", got")[0] in found["type_mismatch"]["message"]

    good = frame.drop(index=[7]).reset_index(drop=True)
    good["user_activity"] = pd.to_numeric(good["user_activity"], errors="coerce")
    mlflow.set_tracking_uri(f"sqlite:///{served_project.folder / '.loopml' / 'mlflow.db'}")
    native = mlflow.pyfunc.load_model("models:/feed@champion").predict(good)
    np.testing.assert_allclose(scored["proba_1"], native["proba_1"], atol=1e-5)
    assert scored["prediction"].tolist() == native["prediction"].tolist()


def test_score_refuses_an_unknown_format(served_project: Project) -> None:
    proc = score(served_project, "feed.parquet", "out.xlsx")
    assert proc.returncode == 2
    assert "cannot tell the format" in proc.stderr and "fix:" in proc.stderr
