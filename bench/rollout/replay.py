"""One seeded rollout, driven in-process: replayed feed traffic on a simulated clock.

What a server and its controller do, in one loop and without HTTP:

- requests of one row each, in time order, from a fresh feed table (seed ``1000 + seed``,
  rows the models never saw), each with its entity key; the simulated clock advances
  ``tick`` seconds per request (50 ms: 20 req/s);
- every prediction is labelled: the labels of a window go to the ledger through the
  service's feedback path (what ``/feedback`` calls), in one batch at the end of each
  ``rollout.interval_seconds`` window of simulated time, just before the controller steps;
- predictions are queued to the ledger (not awaited one by one); awaiting the window's
  feedback batch commits every row queued before it (the writer is FIFO), so the
  controller always reads a complete ledger;
- at each window the per-arm counters go to the rollout store, ``Controller.step(now)``
  judges the stage, and the deployment set is rebuilt from the controller's state, as
  the server's follower does after a poll;
- until a ``promote`` or ``rollback``, or ``cap`` requests ("undecided").
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rollout import seams
from rollout.arms import FlakyRuntime, SlowRuntime

CASES = ("healthy", "shuffled", "errors", "slow")
BAD = frozenset({"shuffled", "errors", "slow"})
DESCRIPTION = {
    "healthy": "retrained on more data",
    "shuffled": "trained on shuffled labels",
    "errors": "5% of predict calls raise",
    "slow": "3x slower predict",
}


@dataclass
class RunResult:
    case: str
    seed: int
    outcome: str = "undecided"  # promote | rollback | undecided | error
    requests: int = 0
    sim_seconds: float = 0.0
    served: dict[str, int] = field(default_factory=dict)  # arm -> requests it answered
    shadowed: int = 0
    client_errors: int = 0  # requests that failed to the client (should be 0)
    stages: list[str] = field(default_factory=list)  # stage label at each decision
    reasons: list[dict[str, Any]] = field(default_factory=list)  # the deciding reasons
    last_summary: str = ""
    decisions: Counter[str] = field(default_factory=Counter)
    wall_seconds: float = 0.0
    detail: str = ""

    @property
    def challenger_share(self) -> float:
        """What the challenger answered over what it would have answered at full share."""
        return self.served.get("challenger", 0) / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["decisions"] = dict(self.decisions)
        out["challenger_share"] = self.challenger_share
        return out


class SimClock:
    """Simulated unix time: starts at ``start``, moves only when told."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Bench:
    """Everything loaded once: the project, the versions and their deployments."""

    root: Path
    project: Any
    registry: Any
    versions: Any
    deployments: dict[str, Any]  # version -> Deployment
    key: str
    target: str
    tick: float = 0.05
    cap: int = 150_000

    def challenger(self, case: str, seed: int) -> tuple[str, Any]:
        """The challenger's version and deployment for ``case`` (wrapped for c and d)."""
        v = self.versions
        version = v.shuffled if case == "shuffled" else v.healthy
        deployment = self.deployments[version]
        if case == "errors":
            deployment = replace(deployment, runtime=FlakyRuntime(deployment.runtime, 0.05, seed))
        elif case == "slow":
            deployment = replace(deployment, runtime=SlowRuntime(deployment.runtime, 3.0))
        return version, deployment


def load_bench(folder: Path, versions: Any, tick: float, cap: int) -> Bench:
    from loopml.config import load_project
    from loopml.registry.store import open_registry
    from loopml.serve.server import load_deployment

    project = load_project(folder / "loopml.yaml", environ={})
    registry = open_registry(project)
    cache = project.resolve(project.serve.cache_dir)
    deployments = {
        v: load_deployment(registry, v, cache, trust_pickle=False)
        for v in (versions.champion, versions.healthy, versions.shuffled)
    }
    assert project.data.entity_key, "the bench project needs an entity key"
    return Bench(folder, project, registry, versions, deployments, project.data.entity_key,
                 project.data.target, tick, cap)  # fmt: skip


def replay_rows(bench: Bench, seed: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """``cap`` fresh feed rows for ``seed``, in time order, as JSON records + labels."""
    from loopml.data.feed import generate_feed

    frame = generate_feed(bench.cap, seed=1000 + seed).sort_values("ts", kind="stable")
    labels = frame[bench.target].tolist()
    records = json.loads(frame.drop(columns=[bench.target]).to_json(orient="records"))
    return records, labels


def run_project(bench: Bench, run_dir: Path) -> Any:
    """The project with this run's own ledger and rollout state (a fresh pair per run);
    the rollout policy stays the default."""
    from loopml.config import RolloutConfig

    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    p = bench.project
    ledger = p.serve.ledger.model_copy(update={"url": f"sqlite:///{run_dir}/ledger.db"})
    serve = p.serve.model_copy(update={"ledger": ledger})
    rollout = p.rollout.model_copy(update={"state": f"sqlite:///{run_dir}/loop.db"})
    default = RolloutConfig().model_copy(update={"state": rollout.state})
    assert rollout == default, f"the bench uses the default policy, got {rollout}"
    return p.model_copy(update={"serve": serve, "rollout": rollout})


def reset_aliases(bench: Bench, challenger: str) -> None:
    """champion -> the bench's champion, challenger -> this case's (a promote moved them)."""
    from loopml.registry.store import CHALLENGER, CHAMPION

    r = bench.registry
    if r.alias(CHAMPION) != bench.versions.champion:
        r.move_alias(CHAMPION, bench.versions.champion, action="rollback",
                     reason="bench_rollout: reset between seeded runs")  # fmt: skip
    if r.alias(CHALLENGER) != challenger:
        r.move_alias(CHALLENGER, challenger, action="register",
                     reason="bench_rollout: the next case's challenger")  # fmt: skip


def make_controller(project: Any, registry: Any, store: Any, clock: Callable[[], float]) -> Any:
    from loopml.rollout.controller import Controller
    from loopml.rollout.stats import collect_stats

    def collect(state: Any, now: float) -> Any:
        return collect_stats(project, store, state, now)

    return Controller(project, registry, store, collect=collect, clock=clock,
                      actor="bench_rollout")  # fmt: skip


def run_case(bench: Bench, case: str, seed: int, workdir: Path) -> RunResult:
    result = RunResult(case, seed)
    started = time.perf_counter()
    try:
        asyncio.run(_run(bench, case, seed, workdir / f"{case}-{seed}", result))
    except Exception as exc:  # one broken run is reported, not the end of the bench
        result.outcome = "error"
        result.detail = f"{type(exc).__name__}: {exc}"[:500]
        result.detail += " | " + traceback.format_exc(limit=-3).replace("\n", " ")[-700:]
    result.wall_seconds = time.perf_counter() - started
    return result


async def _run(bench: Bench, case: str, seed: int, run_dir: Path, result: RunResult) -> None:
    from loopml.ledger import open_ledger
    from loopml.rollout.state import ArmCount, RolloutStore
    from loopml.serve.table import Table

    project = run_project(bench, run_dir)
    version, challenger = bench.challenger(case, seed)
    reset_aliases(bench, version)
    records, labels = replay_rows(bench, seed)
    champion = bench.deployments[bench.versions.champion]
    clock = SimClock(time.time())
    store = RolloutStore.open(project.rollout.state, project.root)
    ledger = open_ledger(project.serve.ledger, project.root)
    ledger.start()
    try:
        controller = make_controller(project, bench.registry, store, clock)
        state = controller.act("start", version=version, reason=f"bench {case} seed {seed}").state
        plan = seams.plan_for(state, champion.version)
        service = seams.make_service(champion, challenger, plan, ledger, clock)
        interval = project.rollout.interval_seconds
        next_step = clock() + interval
        window: list[dict[str, Any]] = []
        counts: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        decision = None
        for i, record in enumerate(records):
            rid = f"s{seed}-{i}"
            key = str(record[bench.key])
            try:
                prediction = service.predict(Table.from_records([record]), rid)
            except Exception:
                result.client_errors += 1
                errors[seams.answered_arm(None, plan, key)] += 1
                prediction = None
            else:
                arm = seams.answered_arm(prediction, plan, key)
                result.served[arm] = result.served.get(arm, 0) + 1
                counts[arm] += 1
                window.append({"request_id": rid, "row": 0, "label": labels[i]})
            result.requests = i + 1
            clock.advance(bench.tick)
            if clock() < next_step:
                continue
            next_step += interval
            if window:
                await service.feedback(window, scope="bench")
                window = []
            fallback = {a: ArmCount(a, plan.challenger if a != "champion" else plan.champion,
                                    n, errors[a]) for a, n in counts.items()}  # fmt: skip
            seams.flush_counts(service, store, plan, fallback)
            step = controller.step(now=clock())
            decision = step.decision
            kind = decision.kind if decision is not None else "none"
            result.decisions[kind] += 1
            result.last_summary = decision.summary if decision is not None else step.message
            if kind in ("promote", "rollback"):
                result.outcome = kind
                result.stages.append(state.current.label if state else "?")
                result.reasons = [r.to_dict() for r in decision.reasons
                                  if kind == "promote" or r.verdict == "breach"]  # fmt: skip
                break
            new_state = step.state
            if new_state is not None and state is not None and new_state.stage != state.stage:
                counts, errors = Counter(), Counter()
            state = new_state
            new_plan = seams.plan_for(state, champion.version)
            if new_plan != plan:
                plan = new_plan
                seams.swap(service, champion, challenger, plan)
        else:
            result.reasons = [r.to_dict() for r in (decision.reasons if decision else ())
                              if r.verdict != "pass"]  # fmt: skip
        result.sim_seconds = result.requests * bench.tick
        result.shadowed = getattr(service, "shadowed", 0)
    finally:
        ledger.close()
        store.close()
