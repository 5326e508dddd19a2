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
import logging
import shutil
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rollout import seams
from rollout.arms import FlakyRuntime, SlowRuntime

logging.getLogger("loopml.serve").setLevel(logging.ERROR)  # the injected failures, one line each

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
    passed: list[dict[str, float]] = field(default_factory=list)  # guard values at each advance
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
    return Bench(
        folder,
        project,
        registry,
        versions,
        deployments,
        project.data.entity_key,
        project.data.target,
        tick,
        cap,
    )


def replay_rows(bench: Bench, seed: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """``cap`` fresh feed rows for ``seed``, in time order, as JSON records + labels."""
    from loopml.data.feed import generate_feed

    frame = generate_feed(bench.cap, seed=1000 + seed).sort_values("ts", kind="stable")
    labels = frame[bench.target].tolist()
    records = json.loads(frame.drop(columns=[bench.target]).to_json(orient="records"))
    return records, labels


def run_project(bench: Bench, run_dir: Path) -> Any:
    """A copy of the project for one run: its own registry (aliases, the rejected tag a
    rollback leaves), ledger and rollout state; the rollout policy stays the default."""
    from loopml.config import RolloutConfig, load_project

    shutil.rmtree(run_dir, ignore_errors=True)
    skip = shutil.ignore_patterns(
        "*.parquet", "runs", "serving-cache", "ledger.db*", "loop.db*", "reports"
    )
    shutil.copytree(bench.root, run_dir, ignore=skip)
    project = load_project(run_dir / "loopml.yaml", environ={})
    default = RolloutConfig()
    assert project.rollout == default, f"the bench uses the default policy, got {project.rollout}"
    return project


def run_case(bench: Bench, case: str, seed: int, workdir: Path, *, keep: bool = False) -> RunResult:
    result = RunResult(case, seed)
    started = time.perf_counter()
    run_dir = workdir / f"{case}-{seed}"
    try:
        asyncio.run(Rollout(bench, case, seed, run_dir, result).run())
    except Exception as exc:  # one broken run is reported, not the end of the bench
        result.outcome = "error"
        result.detail = f"{type(exc).__name__}: {exc}"[:500]
        result.detail += " | " + traceback.format_exc(limit=-3).replace("\n", " ")[-700:]
    result.wall_seconds = time.perf_counter() - started
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return result


class Rollout:
    """One run: the controller, the service and the replayed requests."""

    def __init__(
        self, bench: Bench, case: str, seed: int, run_dir: Path, result: RunResult
    ) -> None:
        self.bench, self.case, self.seed, self.result = bench, case, seed, result
        self.run_dir = run_dir
        self.clock = SimClock(time.time())
        self.window: list[dict[str, Any]] = []

    async def run(self) -> None:
        from loopml.ledger import open_ledger
        from loopml.registry.store import open_registry
        from loopml.rollout.controller import Controller
        from loopml.rollout.state import RolloutStore

        bench = self.bench
        project = run_project(bench, self.run_dir)
        version, challenger = bench.challenger(self.case, self.seed)
        records, labels = replay_rows(bench, self.seed)
        champion = bench.deployments[bench.versions.champion]
        store = RolloutStore.open(project.rollout.state, project.root)
        ledger = open_ledger(project.serve.ledger, project.root)
        ledger.start()
        service = None
        try:
            controller = Controller(
                project, open_registry(project), store, clock=self.clock, actor="bench_rollout"
            )
            started = controller.act(
                "start", version=version, reason=f"bench_rollout {self.case} seed {self.seed}"
            )
            state = started.state
            self.result.stages.append(state.current.label)
            service = seams.make_service(
                project, seams.deployment_set(state, champion, challenger), ledger, self.clock
            )
            await self._replay(
                project, controller, service, store, records, labels, (champion, challenger)
            )
        finally:
            if service is not None:
                service.shadow_jobs.stop()
            ledger.close()
            store.close()

    async def _replay(
        self,
        project: Any,
        controller: Any,
        service: Any,
        store: Any,
        records: list[dict[str, Any]],
        labels: list[Any],
        pair: tuple[Any, Any],
    ) -> None:
        from loopml.serve.table import Table

        result, bench = self.result, self.bench
        interval = project.rollout.interval_seconds
        next_step = self.clock() + interval
        for i, record in enumerate(records):
            rid = f"s{self.seed}-{i}"
            try:
                prediction = service.predict(Table.from_records([record]), rid)
            except Exception:  # the service answers for a failing challenger: never here
                result.client_errors += 1
            else:
                result.served[prediction.arm] = result.served.get(prediction.arm, 0) + 1
                if service.shadow(prediction):
                    result.shadowed += 1
                self.window.append({"request_id": rid, "row": 0, "label": labels[i]})
            result.requests = i + 1
            result.sim_seconds = result.requests * bench.tick
            self.clock.advance(bench.tick)
            if self.clock() < next_step:
                continue
            next_step += interval
            if await self._step(controller, service, store, pair):
                return
        result.outcome = "undecided"

    async def _step(self, controller: Any, service: Any, store: Any, pair: tuple[Any, Any]) -> bool:
        """Labels, counters, one controller step, the follower's swap; True once decided."""
        result = self.result
        if self.window:
            await service.feedback(self.window, scope="bench")
            self.window = []
        seams.flush(service, store)
        step = controller.step(now=self.clock())
        decision = step.decision
        kind = decision.kind if decision is not None else "none"
        result.decisions[kind] += 1
        result.last_summary = decision.summary if decision is not None else step.message
        if decision is not None:
            keep = ("breach",) if kind == "rollback" else ("pass", "breach", "wait")
            result.reasons = [r.to_dict() for r in decision.reasons if r.verdict in keep]
        if kind in ("promote", "rollback"):
            result.outcome = kind
            return True
        if kind == "advance" and step.state is not None:
            result.stages.append(f"{step.state.current.label}@{result.requests}")
            result.passed.append(
                {r.guard: r.value for r in decision.reasons if r.value is not None}
            )
        state = store.active(controller.model)
        if state is None:  # ended some other way (an operator): report what it became
            latest = store.latest(controller.model)
            result.outcome = latest.status if latest is not None else "ended"
            return True
        new = seams.deployment_set(state, *pair)
        if new.traffic != service.deployments.traffic:
            service.swap_set(new)
        return False
