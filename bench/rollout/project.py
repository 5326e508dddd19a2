"""The rollout bench project: a champion and the challengers of issue 13, registered once.

One generated feed table (seed 7); the champion is LightGBM trained on its first
``champion_rows`` rows; the healthy challenger is the same recipe retrained on
``challenger_rows`` rows (more data); the shuffled challenger is trained on those rows with
the target permuted (seeded). The registration gate refuses a model that does not beat the
floor, and a shuffled-label model does not (or only by chance): it is registered through
:func:`loopml.pipeline.train.train_project` with the selection forced to LightGBM and the
gate marked ``forced`` — the same code path, audit entry and serving artifact as any
version, only the gate's verdict overridden. The bad challengers (c) and (d) are the
healthy version with its runtime wrapped in-process (see :mod:`rollout.arms`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# One small LightGBM with a short tuning budget: the bench measures the rollout, not training.
TRAIN_ENV = {
    "LOOPML_TRAIN__CANDIDATES": "[lightgbm]",
    "LOOPML_TRAIN__BASELINES": "[dummy]",
    "LOOPML_TRAIN__TUNING__TRIALS": "3",
    "LOOPML_TRAIN__BOOTSTRAP": "20",
}
FEED_SEED = 7


@dataclass(frozen=True)
class Versions:
    """The registered versions the bench rolls out."""

    champion: str
    healthy: str
    shuffled: str
    notes: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "healthy": self.healthy,
            "shuffled": self.shuffled,
            "notes": self.notes,
        }


def log(message: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=full | TRAIN_ENV | (env or {}),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"'{' '.join(argv)}' failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def build_project(
    folder: Path, *, champion_rows: int, challenger_rows: int, reuse: bool
) -> Versions:
    """The project in ``folder`` with its three registered versions (built once)."""
    saved = folder / "versions.json"
    if reuse and saved.is_file():
        raw = json.loads(saved.read_text())
        log(f"reusing the project in {folder}: {raw}")
        return Versions(raw["champion"], raw["healthy"], raw["shuffled"], raw["notes"])
    import numpy as np

    from loopml.data.feed import generate_feed

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    total = max(champion_rows, challenger_rows)
    log(f"generating {total:,} feed rows (seed {FEED_SEED}) in {folder}")
    frame = generate_feed(total, seed=FEED_SEED).sort_values("ts", kind="stable")
    frame.head(champion_rows).to_parquet(folder / "champion.parquet", index=False)
    more = frame.head(challenger_rows)
    more.to_parquet(folder / "more.parquet", index=False)
    shuffled = more.copy()
    rng = np.random.default_rng(FEED_SEED)
    shuffled["engaged"] = rng.permutation(shuffled["engaged"].to_numpy())
    shuffled.to_parquet(folder / "shuffled.parquet", index=False)
    del frame, more, shuffled
    loopml = str(Path(sys.executable).parent / "loopml")
    init = ["init", "--data", "champion.parquet", "--target", "engaged", "--name", "feed"]
    _run([loopml, *init], folder)
    log(f"training the champion on {champion_rows:,} rows")
    _run([loopml, "train"], folder)
    log(f"training the healthy challenger on {challenger_rows:,} rows")
    _run([loopml, "train"], folder, {"LOOPML_DATA__SOURCE__PATH": "more.parquet"})
    champion, healthy = _aliases(folder)
    log(f"training the shuffled-label challenger on {challenger_rows:,} rows (gate forced)")
    notes = train_forced(folder, "shuffled.parquet")
    _, shuffled_v = _aliases(folder)
    versions = Versions(champion, healthy, shuffled_v, notes)
    saved.write_text(json.dumps(versions.to_dict(), indent=2))
    log(f"versions: {versions.to_dict()}")
    return versions


def _aliases(folder: Path) -> tuple[str, str]:
    from loopml.config import load_project
    from loopml.registry.store import CHALLENGER, CHAMPION, open_registry

    project = load_project(folder / "loopml.yaml", environ={})
    registry = open_registry(project)
    champion, challenger = registry.alias(CHAMPION), registry.alias(CHALLENGER)
    assert champion and challenger, (champion, challenger)
    return champion, challenger


def train_forced(folder: Path, table: str) -> dict[str, Any]:
    """``train_project`` on ``table`` with the registration gate overridden (forced)."""
    import loopml.pipeline.train as train_module
    from loopml.config import load_project
    from loopml.train.gate import GateDecision
    from loopml.train.select import Selection

    real = train_module.select_model
    seen: dict[str, Any] = {}

    def forced(models: Any, *, metric: str, margin: float, proper: str | None = None) -> Any:
        honest = real(models, metric=metric, margin=margin, proper=proper)
        seen["gate_passed"] = honest.gate.passed
        seen["gate_reason"] = honest.gate.reason
        seen["scores"] = {m.name: m.metrics.get(metric) for m in models}
        reason = f"forced by bench_rollout (shuffled labels); the gate said: {honest.gate.reason}"
        return Selection("lightgbm", GateDecision(True, metric, margin, reason, forced=True))

    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env |= TRAIN_ENV | {"LOOPML_DATA__SOURCE__PATH": table}
    project = load_project(folder / "loopml.yaml", environ=env)
    train_module.select_model = forced  # type: ignore[assignment]
    cwd = Path.cwd()
    try:
        os.chdir(folder)
        train_module.train_project(project)
    finally:
        train_module.select_model = real
        os.chdir(cwd)
    return seen
