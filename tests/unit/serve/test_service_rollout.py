"""The service routing over a deployment set: plain-object runtimes (a runtime is anything
with ``predict``, ``meta`` and ``contract``), the real router, validation and counters.

The shadow queue's worker is started only where a test wants the shadow scored, so what is
queued, dropped and scored is decided, not raced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopml.data.contract import ColumnSpec, Contract
from loopml.ledger import PredictionRow
from loopml.registry.runtime import Outputs
from loopml.rollout.plan import TrafficPlan
from loopml.rollout.router import route
from loopml.rollout.state import ArmCount, RolloutStore
from loopml.serve.deployments import Deployment, DeploymentSet
from loopml.serve.schema import InputSchema
from loopml.serve.server import flush_counts, replica_id
from loopml.serve.service import PredictionService
from loopml.serve.table import Table

pytestmark = pytest.mark.unit

CONTRACT = Contract(
    rows=10, target="y", task="regression", entity_key="user",
    columns=(
        ColumnSpec(name="user", type="string", role="key", nullable=False, null_rate=0.0,
                   n_unique=10),
        ColumnSpec(name="num", type="float", nullable=False, null_rate=0.0, n_unique=10),
        ColumnSpec(name="y", type="float", role="target", nullable=False, null_rate=0.0,
                   n_unique=10),
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Meta:
    classes: tuple[str, ...] = ()
    task: str = "regression"


@dataclass
class FakeRuntime:
    """Answers ``num + offset``; raises when ``broken``."""

    offset: float
    broken: bool = False
    calls: int = 0
    meta: Meta = field(default_factory=Meta)
    contract: Contract = CONTRACT

    def predict(self, features: Mapping[str, Any]) -> Outputs:
        self.calls += 1
        if self.broken:
            raise RuntimeError("the challenger's model exploded")
        values = np.asarray(features["num"], dtype=np.float64) + self.offset
        return Outputs(values.tolist(), values=values)


@dataclass
class Submitted:
    """A ledger as far as the service sees it: what was submitted, in order."""

    rows: list[PredictionRow] = field(default_factory=list)

    def submit(self, rows: Sequence[PredictionRow]) -> None:
        self.rows.extend(rows)

    def arms(self) -> list[tuple[str, str, str]]:
        return [(r.request_id, r.arm, r.version) for r in self.rows]


def deployment(version: str, runtime: FakeRuntime) -> Deployment:
    return Deployment("toy", version, runtime, InputSchema.from_contract(CONTRACT))  # type: ignore[arg-type]


def service(
    plan: TrafficPlan, *, broken: bool = False, queue: int = 10, sticky: str | None = None
) -> tuple[PredictionService, Submitted, list[tuple[str, str, str]]]:
    ledger, events = Submitted(), []
    deployments = DeploymentSet(
        deployment("1", FakeRuntime(0.0)), deployment("2", FakeRuntime(100.0, broken)), plan
    )
    svc = PredictionService(
        deployments, ledger, sticky_key=sticky, shadow_queue=queue,  # type: ignore[arg-type]
        clock=lambda: 1_000.0, on_arm_event=lambda *e: events.append(e),
    )  # fmt: skip
    return svc, ledger, events


def rows(user: str | None, **extra: Any) -> Table:
    record: dict[str, Any] = {"num": 1.0, **extra}
    if user is not None:
        record["user"] = user
    return Table.from_records([record])


def canary(share: float) -> TrafficPlan:
    return TrafficPlan("1", "2", share=share, rollout_id="r1", strategy="canary", stage=1)


def keys_on(plan: TrafficPlan, arm: str, n: int = 400) -> list[str]:
    return [k for k in (f"user-{i}" for i in range(n)) if route(plan, k) == arm]


def test_champion_only_answers_with_the_champion() -> None:
    svc, ledger, _ = service(TrafficPlan("1"))
    svc.deployments.challenger.runtime.broken = True  # type: ignore[union-attr]
    p = svc.record(svc.score(rows("user-1"), "r-1"))
    assert (p.arm, p.deployment.version, p.outputs.labels) == ("champion", "1", [1.0])
    assert ledger.arms() == [("r-1", "champion", "1")]
    assert ledger.rows[0].ts == 1_000.0  # the clock seam stamps the rows


def test_the_challenger_answers_its_share_of_keys_with_its_own_version() -> None:
    plan = canary(0.25)
    svc, ledger, _ = service(plan)
    on_challenger, on_champion = keys_on(plan, "challenger"), keys_on(plan, "champion")
    assert 60 < len(on_challenger) < 140  # ~25% of 400 keys
    p = svc.record(svc.score(rows(on_challenger[0]), "r-c"))
    assert (p.arm, p.deployment.version, p.outputs.labels) == ("challenger", "2", [101.0])
    q = svc.record(svc.score(rows(on_champion[0]), "r-p"))
    assert (q.arm, q.deployment.version) == ("champion", "1")
    assert ledger.arms() == [("r-c", "challenger", "2"), ("r-p", "champion", "1")]
    counts = svc.counters.snapshot()[("r1", 1)]
    assert (counts["challenger"].requests, counts["champion"].requests) == (1, 1)


def test_a_key_keeps_its_arm_across_requests_and_when_the_share_grows() -> None:
    svc, _, _ = service(canary(0.25))
    keys = [f"user-{i}" for i in range(200)]
    first = {k: svc.score(rows(k)).arm for k in keys}
    assert first == {k: svc.score(rows(k)).arm for k in keys}
    svc.swap_set(DeploymentSet(svc.deployments.champion, svc.deployments.challenger, canary(0.5)))
    grown = {k: svc.score(rows(k)).arm for k in keys}
    assert all(grown[k] == "challenger" for k in keys if first[k] == "challenger")
    assert sum(a == "challenger" for a in grown.values()) > sum(
        a == "challenger" for a in first.values()
    )


def test_a_failing_challenger_is_counted_and_the_champion_answers() -> None:
    plan = canary(0.25)
    svc, ledger, events = service(plan, broken=True)
    key = keys_on(plan, "challenger")[0]
    p = svc.record(svc.score(rows(key), "r-1"))
    assert (p.arm, p.deployment.version, p.outputs.labels) == ("champion", "1", [1.0])
    assert ledger.arms() == [("r-1", "champion", "1")]
    assert events == [("error", "challenger", "2")]
    counts = svc.counters.snapshot()[("r1", 1)]
    assert (counts["challenger"].errors, counts["challenger"].requests) == (1, 1)
    assert counts["champion"].requests == 1


def test_bad_input_is_refused_before_any_model_runs() -> None:
    from loopml.errors import InputError

    svc, _, events = service(canary(1.0), broken=True)
    with pytest.raises(InputError):
        svc.score(Table.from_records([{"num": "not a number", "user": "u"}]))
    assert events == [] and svc.counters.snapshot() == {}


def test_the_sticky_key_routes_even_when_it_is_not_a_feature() -> None:
    plan = canary(0.5)
    svc, _, _ = service(plan, sticky="session")
    session = keys_on(plan, "challenger")[0]
    # the entity key alone would send every one of these to the champion
    users = keys_on(plan, "champion")[:5]
    answered = [svc.score(rows(u, session=session)) for u in users]
    assert {p.arm for p in answered} == {"challenger"}
    assert all(p.ignored == () for p in answered)  # routed by, not an ignored field
    # without the column in the request, the entity key routes
    assert {svc.score(rows(u)).arm for u in users} == {"champion"}


def test_without_a_sticky_key_or_an_entity_key_the_request_id_routes() -> None:
    plan = canary(0.5)
    svc, _, _ = service(plan)
    for rid in keys_on(plan, "challenger")[:3] + keys_on(plan, "champion")[:3]:
        assert svc.score(rows(None), rid).arm == route(plan, rid)


def test_a_pinned_request_is_answered_by_the_champion() -> None:
    svc, _, _ = service(canary(1.0))
    assert svc.score(rows("u"), pinned=True).arm == "champion"
    assert svc.score(rows("u")).arm == "challenger"


def shadow_plan() -> TrafficPlan:
    return TrafficPlan("1", "2", shadow=True, rollout_id="r1", strategy="shadow", stage=0)


def test_shadow_scores_the_same_rows_only_after_the_answer() -> None:
    svc, ledger, _ = service(shadow_plan())
    challenger = svc.deployments.challenger.runtime  # type: ignore[union-attr]
    p = svc.record(svc.score(rows("u-1"), "r-1"))
    assert (p.arm, p.deployment.version) == ("champion", "1")
    assert challenger.calls == 0 and ledger.arms() == [("r-1", "champion", "1")]
    assert svc.shadow(p)  # the route does this once the answer is sent
    assert challenger.calls == 0  # queued, not scored on the caller's thread
    svc.shadow_jobs.start()
    try:
        svc.shadow_jobs.drain()
    finally:
        svc.shadow_jobs.stop()
    assert ledger.arms() == [("r-1", "champion", "1"), ("r-1", "shadow", "2")]
    shadow_row = ledger.rows[1]
    assert shadow_row.ts == 1_000.0 and shadow_row.features == ledger.rows[0].features
    assert svc.counters.snapshot()[("r1", 0)]["shadow"].requests == 1


def test_a_full_shadow_queue_drops_and_counts() -> None:
    svc, ledger, events = service(shadow_plan(), queue=2)
    offered = [svc.shadow(svc.score(rows(f"u-{i}"), f"r-{i}")) for i in range(5)]
    assert offered == [True, True, False, False, False]
    assert events == [("dropped", "shadow", "2")] * 3
    counts = svc.counters.snapshot()[("r1", 0)]
    assert (counts["shadow"].dropped, counts["champion"].requests) == (3, 5)
    svc.shadow_jobs.start()
    svc.shadow_jobs.stop()  # runs what was queued first
    assert [a for a in ledger.arms() if a[1] == "shadow"] == [
        ("r-0", "shadow", "2"), ("r-1", "shadow", "2")
    ]  # fmt: skip


def test_a_failing_shadow_counts_an_error_and_records_nothing() -> None:
    svc, ledger, events = service(shadow_plan(), broken=True)
    p = svc.record(svc.score(rows("u"), "r-1"))
    svc.shadow(p)
    svc.shadow_jobs.start()
    svc.shadow_jobs.stop()
    assert ledger.arms() == [("r-1", "champion", "1")]
    assert events == [("error", "shadow", "2")]
    assert svc.counters.snapshot()[("r1", 0)]["shadow"].errors == 1


def test_swap_keeps_the_old_api() -> None:
    svc, _, _ = service(canary(0.5))
    old = svc.swap(deployment("3", FakeRuntime(5.0)))
    assert old.version == "1" and svc.deployment.version == "3"
    assert svc.deployments.versions == ("3", None)
    assert svc.score(rows("u")).arm == "champion"


def test_a_plan_with_a_challenger_needs_it_loaded() -> None:
    with pytest.raises(ValueError, match="challenger loaded"):
        DeploymentSet(deployment("1", FakeRuntime(0.0)), None, canary(0.5))


def test_the_counters_keep_two_stages_and_reach_the_state_database(tmp_path: Path) -> None:
    svc, _, _ = service(canary(1.0))
    for stage in (1, 2, 3):
        plan = TrafficPlan("1", "2", share=1.0, rollout_id="r1", strategy="canary", stage=stage)
        svc.swap_set(DeploymentSet(svc.deployment, svc.deployments.challenger, plan))
        for _ in range(stage):
            svc.score(rows("u"))
    assert set(svc.counters.snapshot()) == {("r1", 2), ("r1", 3)}
    with RolloutStore.open("sqlite:///loop.db", tmp_path) as store:
        replica = replica_id()
        flush_counts(store, svc, replica)
        flush_counts(store, svc, replica)  # absolute values: a second write never adds
        assert store.counts("r1", 3)["challenger"] == ArmCount("challenger", "2", 3, 0, 0)
        assert store.counts("r1", 2)["challenger"].requests == 2
