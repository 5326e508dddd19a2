from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.train.evaluate import Evaluation, Interval, SliceResult
from loopml.train.report import (
    DataSummary,
    LeaderboardRow,
    ReportData,
    fmt,
    fmt_ci,
    render_report,
)

pytestmark = pytest.mark.unit

# The smallest valid PNG (1x1); the report only embeds or links the bytes.
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@dataclass(frozen=True)
class Gate:
    passed: bool
    metric: str
    margin: float
    reason: str


def _data(tmp_path: Path, *, passed: bool = True, chosen: str = "lgbm") -> ReportData:
    plot_dir = tmp_path / "plots"
    plot_dir.mkdir(exist_ok=True)
    plots = {}
    for name in ("roc", "calibration", "feature_importance"):
        plots[name] = plot_dir / f"{name}.png"
        plots[name].write_bytes(TINY_PNG)
    evaluation = Evaluation(
        task="binary",
        rows=4000,
        metrics={"roc_auc": 0.78123, "log_loss": 0.45, "pr_auc": math.nan},
        intervals={"roc_auc": Interval(0.77912, 0.78341)},
        slices=(
            SliceResult("country", "US", 2000, {"roc_auc": 0.80}),
            SliceResult("country", "FR", 1000, {"roc_auc": 0.70}),
            SliceResult("device", "<ios>", 900, {"roc_auc": math.nan}),
            SliceResult("device", "android", 1100, {"roc_auc": 0.75}),
        ),
        classes=("no", "yes"),
    )
    leaderboard = [
        LeaderboardRow("prior", "baseline", {"roc_auc": 0.5, "log_loss": 0.69}, {}, 0.01),
        LeaderboardRow(
            chosen, "candidate", evaluation.metrics, evaluation.intervals, 12.34, tuning_trials=30
        ),
        LeaderboardRow("logreg", "candidate", {"roc_auc": 0.74, "log_loss": 0.5}, {}, 1.0),
    ]
    return ReportData(
        model_name="engagement",
        run_id="run-42",
        task="binary",
        target="engaged",
        created_at="2026-01-02 03:04:05 UTC",
        data_summary=DataSummary(20000, 16000, 4000, 18, "sha256:0123abcd"),
        leaderboard=leaderboard,
        chosen=chosen,
        gate=Gate(passed, "roc_auc", 0.01, "lgbm roc_auc=0.7812 beats every baseline"),
        evaluation=evaluation,
        plots=plots,
        importance=pd.Series(
            np.arange(30, 0, -1, dtype=float), index=[f"feat_{i}" for i in range(30)], name="gain"
        ),
    )


def test_formatting() -> None:
    assert fmt(0.781234) == "0.7812"
    assert fmt(math.nan) == "n/a" and fmt(None) == "n/a"
    assert fmt_ci(0.7812, Interval(0.7791, 0.7834)) == "0.7812 [0.7791, 0.7834]"
    assert fmt_ci(0.7812, None) == "0.7812"
    assert fmt_ci(math.nan, Interval(0.1, 0.2)) == "n/a"


def test_html_report_reads_top_down(tmp_path: Path) -> None:
    html_path, md_path = render_report(_data(tmp_path), tmp_path / "out")
    assert html_path.name == "report.html" and md_path.name == "report.md"
    html = html_path.read_text(encoding="utf-8")
    assert "Registered: lgbm as engagement" in html
    assert "beats every baseline" in html
    # Verdict, then leaderboard, metrics, slices, plots, importance, data.
    order = ["Registered", "Leaderboard", "Metrics of", "Slices", "Plots", "Feature importance",
             "sha256:0123abcd"]  # fmt: skip
    positions = [html.index(marker) for marker in order]
    assert positions == sorted(positions)
    for name in ("prior", "lgbm", "logreg"):
        assert f"<td>{name}" in html
    # Leaderboard best first by the gate metric: lgbm, logreg, prior.
    assert html.index("<td>lgbm") < html.index("<td>logreg") < html.index("<td>prior")
    assert "0.7812 [0.7791, 0.7834]" in html
    assert "n/a" in html  # the NaN PR AUC


def test_html_is_self_contained(tmp_path: Path) -> None:
    html = render_report(_data(tmp_path), tmp_path / "out")[0].read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3
    assert all(base64.b64decode(img) == TINY_PNG for img in images)
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html and "<script" not in html


def test_slices_worst_first_with_nan_last(tmp_path: Path) -> None:
    md = render_report(_data(tmp_path), tmp_path / "out")[1].read_text(encoding="utf-8")
    section = md[md.index("## Slices") : md.index("## Plots")]
    rows = [line for line in section.splitlines() if line.startswith("| country") or
            line.startswith("| device")]  # fmt: skip
    assert [r.split("|")[2].strip() for r in rows] == ["FR", "android", "US", "&lt;ios&gt;"]
    assert "| 0.7000 | -0.0812 |" in rows[0]


def test_failed_gate_says_not_registered(tmp_path: Path) -> None:
    html = render_report(_data(tmp_path, passed=False), tmp_path / "out")[0].read_text()
    assert "Not registered: lgbm did not pass the gate" in html
    assert 'class="verdict fail"' in html


def test_names_are_escaped(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>|x"
    html_path, md_path = render_report(_data(tmp_path, chosen=evil), tmp_path / "out")
    html = html_path.read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;|x" in html
    assert "&lt;ios&gt;" in html  # slice values too
    md = md_path.read_text(encoding="utf-8")
    assert "<script>" not in md
    assert r"&lt;script&gt;alert(1)&lt;/script&gt;\|x" in md  # a pipe would break the table


def test_markdown_links_images_relatively(tmp_path: Path) -> None:
    md = render_report(_data(tmp_path), tmp_path)[1].read_text(encoding="utf-8")
    assert "![ROC curve](plots/roc.png)" in md
    assert "![Calibration](plots/calibration.png)" in md
    assert "![Feature importance](plots/feature_importance.png)" in md
    assert "base64" not in md
    assert str(tmp_path) not in md


def test_importance_table_shows_the_top_twenty(tmp_path: Path) -> None:
    md = render_report(_data(tmp_path), tmp_path)[1].read_text(encoding="utf-8")
    section = md[md.index("## Feature importance") : md.index("## Data")]
    assert "| 1 | feat\\_0 |" not in section  # underscores are left alone
    assert "| 1 | feat_0 | 30.0000 |" in section
    assert "| 20 | feat_19 | 11.0000 |" in section
    assert "feat_20" not in section


def test_rendering_again_overwrites_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "out"
    render_report(_data(tmp_path, passed=False), out)
    render_report(_data(tmp_path, passed=True), out)
    assert "Registered: lgbm" in (out / "report.md").read_text(encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md"]
