"""Benchmark: what the deployment set and the router cost a real `loopml serve` (issue 13).

Not a test. Method: docs/benchmark-method.md (Serving): each server pinned to core 1, wrk
to core 0, one thread per library pool, closed loop; the servers' runs interleaved round
by round so that the noise of the shared machine falls on all of them alike.

Four servers of the same project (the rollout bench's: champion version 1, the healthy
challenger version 2), each in its own copy of the project folder (its own ledger, durable
— the default — and its own rollout state):

- **today**: the server before any rollout work, commit 905f3ef (a detached git worktree
  the script makes in bench/out/router/today, run with its ``src`` on ``PYTHONPATH``);
- **champion only**: the new server, no rollout;
- **canary 25%**: the new server, a running canary at its 25% step;
- **shadow**: the new server, the shadow stage (the champion answers every request, the
  challenger scores it after the answer).

The stage is set by writing the rollout state row with ``RolloutStore`` and ``POST
/admin/reload`` (admin token from .loopml/admin.token), and checked on the answers'
``x-loopml-arm`` header. ``rollout.interval_seconds`` is 0 in these servers (judged only
on demand), so no controller pass moves the stage under load. Every request carries a new
entity key (bench/serve/keyed.lua), so the canary's sticky router sends about 25% of them
to the challenger.

Run: .venv/bin/python bench/bench_router.py            (about 8 min)
     .venv/bin/python bench/bench_router.py --quick    (about 3 min)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rollout.project import build_project, log
from rollout.report import table, write_section
from serve.harness import (
    Launch,
    Server,
    StartError,
    WrkRun,
    contains_close,
    run_wrk,
    tree_cpu_seconds,
)
from serve.peers import THREAD_ENV, free_port
from serve.render import machine, wrk_version

ROOT = Path(__file__).resolve().parent.parent
OLD_COMMIT = "905f3ef"
OLD_TREE = ROOT / "bench" / "out" / "router" / "today"
KEYED = ROOT / "bench" / "serve" / "keyed.lua"
TITLE = "## Rollout: the router's cost in `loopml serve`"
ROLLOUT_ID = "bench-router"


@dataclass
class Config:
    key: str
    label: str
    src: Path
    stage: int | None  # None: no rollout; else the stage index of the default canary
    folder: Path = Path()
    server: Server | None = None
    url: str = ""
    runs: dict[int, list[WrkRun]] = field(default_factory=dict)  # connections -> runs
    arms: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s warm-up, 3 runs of 3 s")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "router")
    parser.add_argument(
        "--project",
        type=Path,
        default=ROOT / "bench" / "out" / "rollout" / "project",
        help="the rollout bench's project (built if missing)",
    )
    parser.add_argument(
        "--new-src",
        type=Path,
        default=ROOT / "src",
        help="the new server's source folder (default: this checkout's)",
    )
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.warmup, args.runs, args.seconds = 2.0, 3, 3.0
    return args


def old_tree() -> Path:
    if not (OLD_TREE / "src" / "loopml").is_dir():
        log(f"git worktree add {OLD_TREE} {OLD_COMMIT}")
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(OLD_TREE), OLD_COMMIT],
            check=True,
            capture_output=True,
        )
    return OLD_TREE / "src"


def copy_project(source: Path, dest: Path, champion: str, challenger: str, *, old: bool) -> None:
    """A copy of the project with its own (empty) ledger and rollout state; for today's
    server without the ``rollout:`` section, which it does not know (and refuses)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(
        source,
        dest,
        ignore=shutil.ignore_patterns("runs", "ledger.db*", "loop.db*", "serving-cache"),
    )
    from loopml.config import load_project
    from loopml.registry.store import CHALLENGER, CHAMPION, open_registry

    registry = open_registry(load_project(dest / "loopml.yaml", environ={}))
    registry.reconcile()
    if registry.alias(CHAMPION) != champion:
        registry.move_alias(CHAMPION, champion, action="rollback", reason="bench_router setup")
    if registry.alias(CHALLENGER) != challenger:
        registry.move_alias(CHALLENGER, challenger, action="register", reason="bench_router setup")
    if old:
        import yaml

        file = dest / "loopml.yaml"
        raw = yaml.safe_load(file.read_text())
        raw.pop("rollout", None)
        file.write_text(yaml.safe_dump(raw, sort_keys=False))


def set_stage(cfg: Config, champion: str, challenger: str) -> None:
    """Write the rollout state row of ``cfg`` (none, canary 25%, shadow) and reload."""
    if cfg.stage is None:
        return
    from loopml.config import RolloutConfig, load_project
    from loopml.rollout.plan import RolloutState, stages_of
    from loopml.rollout.state import RolloutStore

    project = load_project(cfg.folder / "loopml.yaml", environ={})
    now = time.time()
    state = RolloutState(
        ROLLOUT_ID,
        project.name,
        champion,
        challenger,
        "canary",
        stages_of(RolloutConfig()),
        stage=cfg.stage,
        started_at=now,
        stage_started_at=now,
        updated_at=now,
        reason="bench_router",
        actor="bench_router",
    )
    with RolloutStore.open(project.rollout.state, project.root) as store:
        if store.get(ROLLOUT_ID) is None:
            store.insert(state)
    token = (cfg.folder / ".loopml" / "admin.token").read_text().strip()
    base = cfg.url.rsplit("/", 1)[0]
    request = urllib.request.Request(
        f"{base}/admin/reload",
        data=b"",
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        log(f"{cfg.key}: reload {response.status} {response.read()[:200]!r}")


def read_counts(cfg: Config) -> None:
    """The rollout's per-arm counters the server flushed (requests, errors, shadow drops)."""
    if cfg.stage is None:
        return
    from loopml.config import load_project
    from loopml.rollout.state import RolloutStore

    project = load_project(cfg.folder / "loopml.yaml", environ={})
    with RolloutStore.open(project.rollout.state, project.root) as store:
        counts = store.counts(ROLLOUT_ID, cfg.stage)
    cfg.notes.extend(
        f"{arm}: {n.requests:,} requests, {n.errors} errors, {n.dropped:,} dropped"
        for arm, n in sorted(counts.items())
    )


def probe_arms(cfg: Config, body_template: bytes, n: int = 400) -> None:
    """Which arm answers ``n`` requests with fresh keys (from the x-loopml-arm header)."""
    for i in range(n):
        body = body_template.replace(b"__KEY__", f"probe{i}".encode())
        request = urllib.request.Request(
            cfg.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            arm = response.headers.get("x-loopml-arm") or "(no header)"
        cfg.arms[arm] = cfg.arms.get(arm, 0) + 1


def start(cfg: Config, body: bytes, expected: float) -> None:
    port = free_port()
    cfg.url = f"http://127.0.0.1:{port}/predict"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env |= THREAD_ENV | {"PYTHONPATH": str(cfg.src)}
    if cfg.key != "today":  # today's server has no rollout section (and refuses one)
        env["LOOPML_ROLLOUT__INTERVAL_SECONDS"] = "0"
    loopml = str(Path(sys.executable).parent / "loopml")
    argv = [loopml, "serve", "--port", str(port), "--workers", "1", "--ledger-mode", "durable"]
    launch = Launch(argv, env, cfg.folder, cfg.url, lambda b: contains_close(b, expected), body)
    (cfg.folder.parent / "logs").mkdir(exist_ok=True)
    cfg.server = Server(launch, cfg.folder.parent / "logs" / f"{cfg.key}.log")
    log(f"{cfg.key}: starting ({cfg.src})")
    cfg.server.start()
    log(f"{cfg.key}: up after {cfg.server.cold_start_s:.1f} s")


def request_body(project: Path) -> tuple[bytes, float]:
    """One feed row with a ``__KEY__`` entity key; the champion's probability for it."""
    import pandas as pd

    from loopml.config import load_project
    from loopml.registry.store import open_registry
    from loopml.serve.server import load_deployment
    from loopml.serve.table import Table
    from loopml.serve.validation import validate

    p = load_project(project / "loopml.yaml", environ={})
    frame = pd.read_parquet(project / "champion.parquet").dropna().head(1)
    record = json.loads(frame.drop(columns=[p.data.target]).to_json(orient="records"))[0]
    registry = open_registry(p)
    dep = load_deployment(
        registry,
        registry.served_version("champion"),
        p.resolve(p.serve.cache_dir),
        trust_pickle=False,
    )
    checked = validate(Table.from_records([record]), dep.schema, max_rows=10)
    expected = float(dep.runtime.predict(checked.features).probabilities[0][-1])
    record[p.data.entity_key] = "__KEY__"
    return json.dumps({"records": [record]}).encode(), expected


def measure(
    configs: list[Config], body_path: Path, connections: int, plan: argparse.Namespace
) -> None:
    log(f"c={connections}: warm-up {plan.warmup:g} s, {plan.runs} runs of {plan.seconds:g} s")
    for round_ in range(-1, plan.runs):
        for cfg in configs:
            if cfg.server is None:
                continue
            seconds = plan.warmup if round_ < 0 else plan.seconds
            pid = cfg.server.proc.pid if cfg.server.proc else 0
            cpu = tree_cpu_seconds(pid)
            run = run_wrk(cfg.url, body_path, connections, seconds, script=KEYED)
            run = WrkRun(
                run.requests,
                run.seconds,
                run.non2xx,
                run.socket_errors,
                run.p50_ms,
                run.p99_ms,
                tree_cpu_seconds(pid) - cpu,
            )
            cfg.server.wait_idle()
            if round_ >= 0:
                cfg.runs.setdefault(connections, []).append(run)


def _med(runs: list[WrkRun], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def render(args: argparse.Namespace, configs: list[Config], seconds: float) -> str:
    base = next((c for c in configs if c.runs), configs[0])
    rows = []
    for cfg in configs:
        if not cfg.runs:
            rows.append([cfg.label] + ["—"] * 9 + ["; ".join(cfg.notes) or "did not run"])
            continue
        hi, lo = cfg.runs[64], cfg.runs[1]
        rps, p50, p99, p50_1 = (
            _med(hi, "rps"),
            _med(hi, "p50_ms"),
            _med(hi, "p99_ms"),
            _med(lo, "p50_ms"),
        )
        b = base.runs
        rows.append(
            [
                cfg.label,
                f"{rps:,.0f} ({min(r.rps for r in hi):,.0f}–{max(r.rps for r in hi):,.0f})",
                f"{rps / _med(b[64], 'rps'):.2f}×",
                f"{p50:.1f} / {p99:.1f}",
                f"{p50 / _med(b[64], 'p50_ms'):.2f}× / {p99 / _med(b[64], 'p99_ms'):.2f}×",
                f"{p50_1:.2f}",
                f"{p50_1 / _med(b[1], 'p50_ms'):.2f}×",
                f"{_med(hi, 'cpu_s') / _med(hi, 'requests') * 1e3:.2f}",
                str(sum(r.non2xx + r.socket_errors for rs in cfg.runs.values() for r in rs)),
                ", ".join(f"{k} {v}" for k, v in sorted(cfg.arms.items())) or "—",
                "; ".join(cfg.notes) or "",
            ]
        )
    header = (
        "server (1 core)",
        "req/s c=64 (min–max)",
        "× today",
        "p50 / p99 ms c=64",
        "× today",
        "p50 ms c=1",
        "× today",
        "server CPU ms / request c=64",
        "non-2xx + errors",
        "arms of 400 probes (x-loopml-arm)",
        "notes",
    )
    by = {c.key: c for c in configs if c.runs}
    shadow_line = ""
    if "shadow" in by and "champion" in by:
        sh, ch = by["shadow"].runs, by["champion"].runs
        shadow_line = (
            "Shadowing and the champion's latency: p50 at c=1 "
            f"{_med(sh[1], 'p50_ms'):.2f} ms in the shadow stage vs {_med(ch[1], 'p50_ms'):.2f} "
            f"ms with the champion alone ({_med(sh[1], 'p50_ms') / _med(ch[1], 'p50_ms'):.2f}×); "
            f"at c=64 {_med(sh[64], 'p50_ms'):.1f} vs {_med(ch[64], 'p50_ms'):.1f} ms "
            f"({_med(sh[64], 'p50_ms') / _med(ch[64], 'p50_ms'):.2f}×), req/s "
            f"{_med(sh[64], 'rps') / _med(ch[64], 'rps'):.2f}×."
        )
    cmd = ".venv/bin/python bench/bench_router.py" + (" --quick" if args.quick else "")
    lines = [
        TITLE,
        "",
        "```bash",
        cmd,
        "```",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; {wrk_version()}, Python "
        f"{platform.python_version()}; {seconds / 60:.0f} min. Ledger durable (the default) in "
        f"every server. Per scenario a {args.warmup:g} s warm-up, then {args.runs} runs of "
        f"{args.seconds:g} s, the servers' runs interleaved; req/s median run (min–max), "
        'latencies the median of the runs\' p50 / p99. "Today" is commit '
        f"{OLD_COMMIT} (before any rollout work) on the same project and payload. Each "
        "request is one feed row with a new `impression_id` (the entity key).",
        "",
        table(header, rows),
        "",
        shadow_line,
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    started = time.time()
    versions = build_project(
        args.project, champion_rows=20_000, challenger_rows=150_000, reuse=True
    )
    args.workdir.mkdir(parents=True, exist_ok=True)
    new_src = args.new_src
    configs = [
        Config("today", f"today's server ({OLD_COMMIT})", old_tree(), None),
        Config("champion", "new server, champion only", new_src, None),
        Config("canary", "new server, canary 25%", new_src, 2),
        Config("shadow", "new server, shadow stage", new_src, 0),
    ]
    body, expected = request_body(args.project)
    body_path = args.workdir / "body.json"
    body_path.write_bytes(body)
    probe = body.replace(b"__KEY__", b"k0")
    try:
        for cfg in configs:
            cfg.folder = args.workdir / cfg.key / "project"
            copy_project(
                args.project,
                cfg.folder,
                versions.champion,
                versions.healthy,
                old=cfg.key == "today",
            )
            try:
                start(cfg, probe, expected)
                set_stage(cfg, versions.champion, versions.healthy)
                probe_arms(cfg, body)
                log(f"{cfg.key}: arms {cfg.arms}")
            except (StartError, OSError, subprocess.CalledProcessError) as exc:
                cfg.notes.append(f"did not start or take its stage: {exc}"[:300])
                if cfg.server is not None:
                    cfg.server.stop()
                cfg.server = None
        for connections in (64, 1):
            measure(configs, body_path, connections, args)
        time.sleep(7)  # the servers flush their counters every serve.poll_seconds (5 s)
        for cfg in configs:
            if cfg.server is not None:
                read_counts(cfg)
    finally:
        for cfg in configs:
            if cfg.server is not None:
                cfg.server.stop()
    section = render(args, configs, time.time() - started)
    print(section)
    if not args.no_docs:
        write_section(args.docs, TITLE, section)


if __name__ == "__main__":
    main()
