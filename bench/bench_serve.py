"""Benchmark: `loopml serve` side by side with the servers a team would otherwise use.

Not a test. Method: docs/benchmark-method.md. Builds a bench project (generated feed table,
`loopml init`, a small LightGBM-only `loopml train`), then serves its champion with every
peer, each server pinned to core 1 and wrk to core 0, one thread per library pool:

  mlflow models serve --env-manager local (the project's environment; the pyfunc needs
  loopml) · MLServer + mlserver-sklearn, in-process, with and without adaptive batching ·
  a hand-written FastAPI + orjson endpoint · loopml serve with the ledger durable, async
  and off. MLServer and FastAPI live in bench/.venvs/ (made from bench/serve/requirements-*).

The peers are started one by one (cold start: process start to first good prediction),
then stay up together, idle but for their turn: for 1-row requests at c=1 and c=64 and
1,000-row requests at c=8, each gets a warm-up run, then N runs (median, min–max), the runs
interleaved peer by peer so that the noise of a shared machine falls on all of them alike.
Then `loopml score` and a hand-written pandas script on the same 1M-row Parquet file.
Prints the tables and writes the Serving section of docs/benchmarks.md.

Run: .venv/bin/python bench/bench_serve.py            (about 18 min)
     .venv/bin/python bench/bench_serve.py --quick    (a few minutes, for development)
Targets (issue 3): loopml ≥ 10× mlflow serve and ≥ 2× MLServer req/s at c=64, p50 ≤ 0.5 ms
at c=1, ledger overhead ≤ 10 %, `loopml score` ≥ 500k rows/s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from serve.harness import (
    Launch,
    Measure,
    Server,
    StartError,
    WrkRun,
    contains_close,
    post,
    run_wrk,
    timed_run,
    tree_cpu_seconds,
)
from serve.peers import (
    PEERS,
    Context,
    Peer,
    Row,
    ensure_venv,
    free_port,
    loopml_missing,
    venv_env,
)
from serve.render import render_section
from serve.report import PeerResult, ScoreResult, write_section

ROOT = Path(__file__).resolve().parent.parent
BULK_ROWS = 1_000
BULK_CONNECTIONS = 8
TRAIN_ENV = {
    "LOOPML_TRAIN__CANDIDATES": "[lightgbm]",
    "LOOPML_TRAIN__TUNING__TRIALS": "3",
    "LOOPML_TRAIN__BOOTSTRAP": "20",
}


@dataclass(frozen=True)
class Plan:
    """Durations of one scenario: a warm-up run, then ``runs`` runs of ``seconds``."""

    warmup: float
    runs: int
    seconds: float


def log(message: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s warm-up, 3 runs of 3 s")
    parser.add_argument("--warmup", type=float, default=10.0, help="warm-up seconds")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--peers", default=",".join(p.key for p in PEERS),
                        help="comma-separated peer keys, in order")  # fmt: skip
    parser.add_argument("--train-rows", type=int, default=200_000)
    parser.add_argument("--score-rows", type=int, default=1_000_000, help="0 skips scoring")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "serve")
    parser.add_argument("--reuse", action="store_true", help="reuse the bench project if built")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-docs", action="store_true", help="print only")
    args = parser.parse_args()
    if args.quick:
        args.warmup, args.runs, args.seconds = 2.0, 3, 3.0
    return args


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"'{' '.join(argv)}' failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def prepare_project(folder: Path, tools: Path, rows: int, reuse: bool) -> None:
    """A loopml project whose champion is a LightGBM pipeline trained on the feed table."""
    loopml = str(tools / "loopml")
    if reuse and (folder / ".loopml" / "mlflow.db").is_file():
        log(f"reusing the project in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        log(f"generating {rows:,} feed rows, init, train (lightgbm only) in {folder}")
        run([loopml, "data", "feed", "--rows", str(rows), "--seed", "7", "--out", "feed.parquet"],
            folder)  # fmt: skip
        run([loopml, "init", "--data", "feed.parquet", "--target", "engaged"], folder)
        run([loopml, "train"], folder, {**os.environ, **TRAIN_ENV})
    # Versions registered before serving artifacts existed lack one; loopml serve needs it.
    build = [loopml, "models", "build-artifact"]
    done = subprocess.run(build, cwd=folder, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log(f"'{' '.join(build[1:])}' failed (loopml serve may not start): "
            f"{(done.stderr or done.stdout).strip()[-300:]}")  # fmt: skip


def make_context(project_dir: Path, workdir: Path) -> Context:
    """Download the champion's files, so every peer loads the very same pipeline file."""
    import mlflow.artifacts

    from loopml.config import load_project
    from loopml.train import tracking

    project = load_project(project_dir / "loopml.yaml", environ={})
    store = tracking.resolve_store(project)
    tracking.connect(store)
    model_dir = workdir / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{project.name}@champion", dst_path=str(model_dir)
    )
    return Context(
        project=project_dir,
        model_name=project.name,
        pipeline=Path(local) / "artifacts" / "package" / "pipeline.joblib",
        tracking_uri=store.tracking_uri,
        workdir=workdir,
        venvs=ROOT / "bench" / ".venvs",
        tools=Path(sys.executable).parent,
    )


def payload(ctx: Context) -> tuple[list[Row], float, str]:
    """1,000 feed rows without nulls (every dialect can carry them), in JSON types; the
    champion's positive-class probability for the first; the target's name."""
    import pandas as pd

    from loopml.features.pipeline import model_features
    from loopml.registry.package import read_package
    from loopml.registry.pyfunc_model import predict_frame

    package = read_package(ctx.pipeline.parent)
    features = model_features(package.contract)
    frame = pd.read_parquet(ctx.project / "feed.parquet", columns=features).dropna()
    rows: list[Row] = json.loads(frame.head(BULK_ROWS).to_json(orient="records"))
    scored = predict_frame(package, pd.DataFrame(rows[:1]))
    expected = float(scored[f"proba_{package.meta.classes[-1]}"].iloc[0])
    return rows, expected, package.meta.target


@dataclass
class Live:
    """A peer whose server is up, with its URL and request bodies."""

    result: PeerResult
    server: Server
    url: str
    bodies: dict[bool, Path]  # bulk? -> body file


def start_peer(peer: Peer, ctx: Context, rows: list[Row], expected: float) -> Live | PeerResult:
    """Start one peer and wait for its first good prediction (its cold start)."""
    port = free_port()
    argv, extra = peer.build(ctx, port)
    bin_dir = ctx.venvs / peer.venv / "bin" if peer.venv else ctx.tools
    url = f"http://127.0.0.1:{port}{peer.path.format(model=ctx.model_name)}"
    folder = ctx.workdir / "bodies"
    folder.mkdir(exist_ok=True)
    bodies = {False: folder / f"{peer.key}-1.json", True: folder / f"{peer.key}-{len(rows)}.json"}
    bodies[False].write_bytes(peer.encode(rows[:1]))
    bodies[True].write_bytes(peer.encode(rows))
    launch = Launch(
        argv, venv_env(bin_dir, extra), ctx.project, url,
        lambda body: contains_close(body, expected), bodies[False].read_bytes(),
    )  # fmt: skip
    server = Server(launch, ctx.workdir / "logs" / f"{peer.key}.log")
    result = PeerResult(peer)
    log(f"{peer.key}: starting")
    try:
        server.start()
    except StartError as exc:
        server.stop()
        result.skipped = f"did not start: {exc}"
        log(f"{peer.key}: {result.skipped}")
        return result
    result.cold_start_s = server.cold_start_s
    log(f"{peer.key}: first good prediction after {server.cold_start_s:.1f} s")
    status, answer = post(url, bodies[True].read_bytes(), timeout=60)
    if status != 200:
        result.notes.append(f"{len(rows)}-row request: HTTP {status} {answer[:200]!r}")
        log(f"{peer.key}: {result.notes[-1]}")
    return Live(result, server, url, bodies)


SCENARIOS = (("latency", False, 1), ("throughput", False, 64), ("bulk", True, BULK_CONNECTIONS))


def measure_all(live: list[Live], plan: Plan, bulk_rows: int) -> None:
    """Every scenario for every live peer, the runs interleaved peer by peer.

    Interleaving spreads the noise of a shared machine over all peers alike, so the
    ratios hold even when the absolute figures drift.
    """
    for attr, bulk, connections in SCENARIOS:
        log(f"{attr}: c={connections}, {bulk_rows if bulk else 1} row(s) per request")
        runs: dict[str, list[WrkRun]] = {p.result.peer.key: [] for p in live}
        for round_ in range(-1 if plan.warmup > 0 else 0, plan.runs):
            for peer in [p for p in live if not p.result.skipped]:
                seconds = plan.warmup if round_ < 0 else plan.seconds
                pid = peer.server.proc.pid if peer.server.proc else 0
                cpu = tree_cpu_seconds(pid)
                try:
                    run_ = run_wrk(peer.url, peer.bodies[bulk], connections, seconds)
                except (subprocess.CalledProcessError, RuntimeError) as exc:
                    peer.result.skipped = f"wrk failed: {exc}"
                    continue
                run_ = replace(run_, cpu_s=tree_cpu_seconds(pid) - cpu)
                peer.server.wait_idle()
                if peer.server.proc is not None and peer.server.proc.poll() is not None:
                    peer.result.skipped = f"died under load: {peer.server.log_tail()}"
                elif round_ >= 0:
                    runs[peer.result.peer.key].append(run_)
        for peer in live:
            done = runs[peer.result.peer.key]
            if done and not peer.result.skipped:
                rows = bulk_rows if bulk else 1
                setattr(peer.result, attr, Measure(tuple(done), rows=rows))


def available(peers: list[Peer], ctx: Context) -> dict[str, str]:
    """Why each peer that cannot run is skipped (environment not installable, no command)."""
    reasons: dict[str, str] = {}
    serve_missing = loopml_missing(ctx.tools, "serve")
    for peer in peers:
        if peer.group == "loopml" and serve_missing:
            reasons[peer.key] = serve_missing
        elif peer.venv:
            try:
                ensure_venv(ctx.venvs, peer.venv, ctx.workdir / "logs" / f"venv-{peer.venv}.log")
            except RuntimeError as exc:
                reasons[peer.key] = str(exc)
    return reasons


def score_input(ctx: Context, rows: int, target: str) -> Path:
    """An N-row feed table without its label (what a batch job scores), made once."""
    import pandas as pd

    path = ctx.workdir / f"score-{rows}.parquet"
    if not path.is_file():
        raw = ctx.workdir / "score-raw.parquet"
        run([str(ctx.tools / "loopml"), "data", "feed", "--rows", str(rows), "--seed", "8",
             "--out", str(raw)], ctx.workdir)  # fmt: skip
        pd.read_parquet(raw).drop(columns=[target]).to_parquet(path)
        raw.unlink()
    return path


def run_scores(ctx: Context, rows: int, runs: int, target: str) -> list[ScoreResult]:
    """`loopml score` and a hand-written pandas + pipeline script on the same file."""
    source = score_input(ctx, rows, target)
    out = ctx.workdir / "scored.parquet"
    logs = ctx.workdir / "logs"
    for old in ctx.workdir.glob("scored.parquet*"):
        old.unlink()
    ours = ScoreResult("`loopml score`", rows, skipped=loopml_missing(ctx.tools, "score"))
    theirs = ScoreResult("hand-written pandas + `pipeline.predict_proba` script", rows)
    jobs = [
        (ours, [str(ctx.tools / "loopml"), "score", str(source), str(out)], ctx.tools),
        (theirs, [str(ctx.venvs / "fastapi" / "bin" / "python"),
                  str(ROOT / "bench" / "serve" / "batch_pipeline.py"),
                  str(ctx.pipeline), str(source), str(out)], ctx.venvs / "fastapi" / "bin"),
    ]  # fmt: skip
    for result, argv, bin_dir in jobs:
        for _ in range(runs if not result.skipped else 0):
            log(f"scoring {rows:,} rows: {result.label}")
            log_path = logs / f"score-{len(result.seconds)}-{argv[1].rsplit('/', 1)[-1]}.log"
            seconds, rss, code = timed_run(argv, ctx.project, venv_env(bin_dir), log_path)
            if code == 1 and out.with_name(out.name + ".rejected.csv").is_file():
                result.note = "exit 1: some rows rejected (see OUT.rejected.csv)"
            elif code != 0:
                tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-4:])
                result.skipped = f"exit {code}: {tail}"
                result.seconds.clear()
                break
            result.seconds.append(seconds)
            result.peak_rss_mb = (
                rss if math.isnan(result.peak_rss_mb) else max(result.peak_rss_mb, rss)
            )
    return [ours, theirs]


def main() -> None:
    args = parse_args()
    os.sched_setaffinity(0, {0})  # this process, and wrk, stay off the server's core
    workdir = args.workdir.resolve()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    project_dir = workdir / "project"
    started = time.time()
    args.load_before = os.getloadavg()
    prepare_project(project_dir, Path(sys.executable).parent, args.train_rows, args.reuse)
    ctx = make_context(project_dir, workdir)
    rows, expected, target = payload(ctx)
    peers = [next(p for p in PEERS if p.key == key) for key in args.peers.split(",") if key]
    skipped = available(peers, ctx)
    results, live = [], []
    for peer in peers:
        if peer.key in skipped:
            log(f"{peer.key}: skipped: {skipped[peer.key]}")
            results.append(PeerResult(peer, skipped=skipped[peer.key]))
            continue
        started_peer = start_peer(peer, ctx, rows, expected)
        if isinstance(started_peer, Live):
            live.append(started_peer)
            results.append(started_peer.result)
        else:
            results.append(started_peer)
    try:
        measure_all(live, Plan(args.warmup, args.runs, args.seconds), len(rows))
    finally:
        for up in live:
            up.server.stop()
            up.result.peak_rss_mb = up.server.peak_rss_mb
    scores = (
        run_scores(ctx, args.score_rows, 1 if args.quick else 3, target) if args.score_rows else []
    )
    args.load_after = os.getloadavg()
    section = render_section(ctx, args, results, scores, minutes=(time.time() - started) / 60)
    print(section)
    if not args.no_docs:
        write_section(args.docs, section)
        log(f"wrote the Serving section of {args.docs}")


if __name__ == "__main__":
    if platform.system() != "Linux" or not shutil.which("taskset"):
        sys.exit("bench_serve.py needs Linux with taskset (util-linux)")
    if not shutil.which("wrk"):
        sys.exit("bench_serve.py needs wrk: apt-get install -y wrk")
    main()
