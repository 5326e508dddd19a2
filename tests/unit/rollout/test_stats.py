"""``collect_stats`` over a real SQLite ledger and loop-state store, with real profiles."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from loopml.config import ProjectConfig, parse_project
from loopml.errors import RolloutError
from loopml.ledger.backend import FeedbackOp, PredictionOp
from loopml.ledger.records import Feedback, PredictionRow
from loopml.ledger.sqlite import SqliteBackend
from loopml.monitor.calibration import fit_calibration
from loopml.monitor.profile import (
    HoldoutSample,
    ReferenceProfile,
    categorical_profile,
    numeric_profile,
)
from loopml.rollout.evidence import RolloutStats, SequentialResult
from loopml.rollout.plan import RolloutState, Stage
from loopml.rollout.state import ArmCount, RolloutStore
from loopml.rollout.stats import collect_stats, quantile_range
from loopml.train.metrics import compute_metrics

pytestmark = pytest.mark.unit

START = 1_700_000_000.0  # the stage's start
NOW = START + 3600.0
N = 600


def project(root: Path, task: str = "binary", **ledger: Any) -> ProjectConfig:
    raw = {
        "name": "m",
        "data": {"source": {"path": "t.csv"}, "target": "y", "task": task},
        "serve": {"ledger": {"url": "sqlite:///ledger.db", **ledger}},
        "rollout": {"state": "sqlite:///loop.db", "alpha": 0.1},
    }
    return parse_project(raw, root=root, source="test")


def binary_profile(seed: int = 0, *, sample: bool = True) -> ReferenceProfile:
    """A binary version's profile from a holdout where higher scores mean positives."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 3000)
    p1 = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.2, 3000), 0.01, 0.99)
    scores = np.column_stack([1 - p1, p1])
    return ReferenceProfile(
        model="m", task="binary", target="y", classes=("0", "1"), features=(),
        prediction=numeric_profile("prediction", p1),
        label=categorical_profile("y", y.astype(str)),
        holdout_metrics=compute_metrics("binary", y, scores, 2), holdout_rows=3000,
        train_rows=3000, points=2048, calibration=fit_calibration("binary", scores, y),
        holdout_sample=HoldoutSample.draw("binary", y, scores) if sample else None,
        created_at=f"seed {seed}, sample {sample}",  # the monitor caches chance per profile
    )  # fmt: skip


def regression_profile() -> ReferenceProfile:
    rng = np.random.default_rng(1)
    values = rng.normal(10, 2, 3000)
    return ReferenceProfile(
        model="m", task="regression", target="y", classes=(), features=(),
        prediction=numeric_profile("prediction", values), label=numeric_profile("y", values),
        holdout_metrics={"rmse": 1.0}, holdout_rows=3000, train_rows=3000, points=2048,
    )  # fmt: skip


@dataclass
class World:
    """A project folder with its ledger and loop-state store, and the profiles."""

    root: Path
    config: ProjectConfig
    store: RolloutStore
    profiles: dict[str, ReferenceProfile] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def record(self, rows: list[PredictionRow], labels: dict[tuple[str, int], Any]) -> None:
        backend = SqliteBackend.from_url(self.config.serve.ledger.url, self.root)
        try:
            feedback = [
                Feedback(r, n, orjson.dumps(v).decode(), NOW) for (r, n), v in labels.items()
            ]
            backend.commit([PredictionOp(rows), FeedbackOp(feedback)])
        finally:
            backend.close()

    def compare(self, champion: Any, challenger: Any, **kwargs: Any) -> SequentialResult:
        self.calls.append({"champion": champion, "challenger": challenger, **kwargs})
        return SequentialResult(
            kwargs["metric"], 0.0, -1.0, 1.0, kwargs["alpha"], len(champion), len(challenger)
        )

    def stats(self, state: RolloutState, now: float = NOW) -> RolloutStats:
        return collect_stats(
            self.config, self.store, state, now, profiles=self.profiles.__getitem__,
            compare=self.compare,
        )  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    config = project(tmp_path)
    with RolloutStore.open(config.rollout.state, tmp_path) as store:
        yield World(tmp_path, config, store, {"1": binary_profile(0), "2": binary_profile(1)})


def state(stage: int) -> RolloutState:
    return RolloutState(
        rollout_id="ro-1", model="m", champion="1", challenger="2", strategy="canary",
        stages=(Stage("shadow", 0.0), Stage("traffic", 0.25)), stage=stage, started_at=START,
        stage_started_at=START, updated_at=START,
    )  # fmt: skip


def outputs(p1: float) -> str:
    return orjson.dumps({"label": int(p1 >= 0.5), "proba_0": 1 - p1, "proba_1": p1}).decode()


def arm_rows(
    version: str, arm: str, p1: np.ndarray, *, prefix: str = "r", ts: float = START + 1.0,
    latency: float = 2.0,
) -> list[PredictionRow]:  # fmt: skip
    return [
        PredictionRow(f"{prefix}{i:05d}", 0, ts + i, "m", version, arm, None, "{}",
                      outputs(float(p)), latency + (i % 100) / 10)
        for i, p in enumerate(p1)
    ]  # fmt: skip


def holdout_like(seed: int, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.clip(0.25 + 0.5 * y + rng.normal(0, 0.2, n), 0.01, 0.99)


def test_a_shadow_stage_counts_both_arms_and_compares_the_same_rows(world: World) -> None:
    world.profiles["2"] = world.profiles["1"]  # the same model under a new version
    y, p1 = holdout_like(7)
    labels = {(f"r{i:05d}", 0): int(y[i]) for i in range(0, N, 2)}  # half labelled
    world.record(arm_rows("1", "champion", p1) + arm_rows("2", "shadow", p1), labels)
    for replica, served in (("a", 400), ("b", 200)):
        world.store.put_counts("ro-1", 0, replica, {
            "champion": ArmCount("champion", "1", served, 2),
            "shadow": ArmCount("shadow", "2", served - 10, 1, dropped=5),
        })  # fmt: skip

    stats = world.stats(state(0))

    champion, challenger = stats.champion, stats.challenger
    assert (champion.arm, champion.version, challenger.arm, challenger.version) == (
        "champion", "1", "shadow", "2"
    )  # fmt: skip
    assert (champion.predictions, challenger.predictions) == (N, N)
    assert (champion.requests, champion.errors) == (600, 4)
    assert (challenger.requests, challenger.errors) == (580, 2)
    assert stats.shadow_dropped == 10
    assert (champion.labelled, challenger.labelled) == (N // 2, N // 2)
    assert champion.latency_p99_ms == pytest.approx(np.percentile(2.0 + np.arange(100) / 10, 99))
    assert (stats.agreement, stats.agreement_rows) == (1.0, N)
    assert stats.prediction_divergence == 0.0
    assert stats.estimated_drop == 0.0
    assert champion.metrics["realized.roc_auc"] == challenger.metrics["realized.roc_auc"]
    assert "estimated.roc_auc" in champion.metrics
    assert stats.estimated_noise is not None and stats.estimated_noise > 0
    assert (stats.since, stats.now, stats.stage) == (START, NOW, 0)


def test_a_constant_challenger_diverges_disagrees_and_is_estimated_worse(world: World) -> None:
    y, p1 = holdout_like(7)
    constant = np.full(N, 0.6)
    labels = {(f"r{i:05d}", 0): int(y[i]) for i in range(N)}
    world.record(arm_rows("1", "champion", p1) + arm_rows("2", "shadow", constant), labels)

    stats = world.stats(state(0))

    assert stats.prediction_divergence is not None and stats.prediction_divergence > 0.5
    assert stats.agreement == pytest.approx(np.mean(p1 >= 0.5))
    assert stats.estimated_drop is not None and stats.estimated_drop > 0.1  # AUC of ~0.5
    assert stats.challenger.metrics["realized.roc_auc"] == 0.5


def test_the_estimated_drop_is_negative_when_the_challenger_is_the_better_one(
    world: World,
) -> None:
    _, p1 = holdout_like(7)
    world.record(arm_rows("1", "champion", np.full(N, 0.6)) + arm_rows("2", "shadow", p1), {})
    stats = world.stats(state(0))
    assert stats.estimated_drop is not None and stats.estimated_drop < -0.1
    assert stats.realized is None and world.calls == []  # no labels: nothing to compare
    assert (stats.champion.labelled, stats.challenger.labelled) == (0, 0)


def test_shadow_losses_are_paired_on_the_rows_both_arms_scored_with_a_label(
    world: World,
) -> None:
    y, p1 = holdout_like(3, 10)
    worse = np.clip(p1 * 0.5 + 0.25, 0, 1)
    rows = arm_rows("1", "champion", p1) + arm_rows("2", "shadow", worse[:8])  # 2 unshadowed
    world.record(rows, {(f"r{i:05d}", 0): int(y[i]) for i in (0, 1, 2, 3, 9)})

    stats = world.stats(state(0))

    [call] = world.calls
    assert stats.realized is not None and stats.realized.n_champion == 4
    assert (call["metric"], call["alpha"], call["limit"], call["paired"]) == (
        "log_loss", 0.1, 0.01, True
    )  # fmt: skip
    chosen = np.array([0, 1, 2, 3])

    def log_loss(p: np.ndarray) -> np.ndarray:
        return -np.log(np.where(y[chosen] == 1, p[chosen], 1 - p[chosen]))

    np.testing.assert_allclose(call["champion"], log_loss(p1))
    np.testing.assert_allclose(call["challenger"], log_loss(worse))


def test_a_traffic_stage_compares_each_arm_on_its_own_labelled_rows(world: World) -> None:
    y, p1 = holdout_like(5)
    rows = arm_rows("1", "champion", p1[:300]) + arm_rows("2", "challenger", p1[300:], prefix="c")
    labels = {(f"r{i:05d}", 0): int(y[i]) for i in range(100)}
    labels |= {(f"c{i:05d}", 0): int(y[300 + i]) for i in range(40)}
    world.record(rows + arm_rows("2", "shadow", p1[:300]), labels)  # an old shadow stage's
    world.store.put_counts("ro-1", 1, "a", {"challenger": ArmCount("challenger", "2", 310, 9)})

    stats = world.stats(state(1))

    assert (stats.challenger.arm, stats.challenger.predictions) == ("challenger", 300)
    assert (stats.challenger.requests, stats.challenger.errors) == (310, 9)
    assert (stats.champion.requests, stats.shadow_dropped) == (0, 0)
    assert (stats.agreement, stats.agreement_rows) == (None, 0)  # no shared rows
    [call] = world.calls
    assert (len(call["champion"]), len(call["challenger"]), call["paired"]) == (100, 40, False)
    assert stats.prediction_divergence is not None and stats.prediction_divergence < 0.2


def test_only_the_stage_window_and_the_two_versions_count(world: World) -> None:
    _, p1 = holdout_like(2, 50)
    rows = [
        *arm_rows("1", "champion", p1, prefix="before", ts=START - 100.0),  # before the stage
        *arm_rows("1", "champion", p1, prefix="in", ts=START),  # from its first second
        *arm_rows("1", "champion", p1, prefix="after", ts=NOW),  # at now: not yet
        *arm_rows("3", "champion", p1, prefix="other", ts=START + 5),  # another version
        *arm_rows("2", "shadow", p1[:20], prefix="in", ts=START),
    ]
    world.record(rows, {})
    stats = world.stats(state(0))
    assert (stats.champion.predictions, stats.challenger.predictions) == (50, 20)
    assert stats.agreement_rows == 20


def test_an_empty_stage_has_no_values_and_holds(world: World) -> None:
    stats = world.stats(state(0))
    assert (stats.champion.predictions, stats.challenger.predictions) == (0, 0)
    assert stats.champion.latency_p99_ms is None
    assert stats.prediction_divergence is None
    assert stats.estimated_drop is None
    assert stats.estimated_noise is None
    assert stats.agreement is None
    assert stats.realized is None


def test_no_holdout_sample_no_estimated_noise(world: World) -> None:
    world.profiles = {"1": binary_profile(0, sample=False), "2": binary_profile(1, sample=False)}
    _, p1 = holdout_like(7)
    world.record(arm_rows("1", "champion", p1) + arm_rows("2", "shadow", p1), {})
    stats = world.stats(state(0))
    assert stats.estimated_drop is not None and stats.estimated_noise is None


def test_regression_diverges_by_wasserstein_and_compares_squared_errors(tmp_path: Path) -> None:
    config = project(tmp_path, task="regression")
    with RolloutStore.open(config.rollout.state, tmp_path) as store:
        world = World(
            tmp_path, config, store, {"1": regression_profile(), "2": regression_profile()}
        )
        values = np.random.default_rng(0).normal(10, 2, 200)

        def rows(version: str, arm: str, shift: float) -> list[PredictionRow]:
            return [
                replace(r, outputs=orjson.dumps({"value": float(v + shift)}).decode())
                for r, v in zip(arm_rows(version, arm, values), values, strict=True)
            ]

        world.record(rows("1", "champion", 0.0) + rows("2", "shadow", 4.0),
                     {(f"r{i:05d}", 0): float(values[i]) + 1.0 for i in range(10)})  # fmt: skip
        stats = world.stats(state(0))
    assert stats.prediction_divergence == 1.0  # two standard deviations away: capped
    assert (stats.agreement, stats.estimated_drop) == (None, None)
    [call] = world.calls
    assert call["metric"] == "squared_error"
    np.testing.assert_allclose(call["champion"], np.ones(10))
    np.testing.assert_allclose(call["challenger"], np.full(10, 9.0))
    assert math.isclose(stats.champion.metrics["realized.rmse"], 1.0)


def test_a_disabled_ledger_is_a_rollout_error_with_a_fix(tmp_path: Path) -> None:
    config = project(tmp_path, enabled=False)
    with (
        RolloutStore.open(config.rollout.state, tmp_path) as store,
        pytest.raises(RolloutError) as caught,
    ):
        collect_stats(config, store, state(0), NOW, profiles=lambda v: binary_profile())
    assert "ledger is disabled" in caught.value.headline
    assert "serve.ledger.enabled" in (caught.value.fix or "")


def test_a_version_without_a_profile_is_a_rollout_error(world: World) -> None:
    def missing(version: str) -> ReferenceProfile:
        raise RolloutError(f"version {version} has no reference profile", fix="build it")

    with pytest.raises(RolloutError) as caught:
        collect_stats(world.config, world.store, state(0), NOW, profiles=missing)
    assert "champion (version 1)" in caught.value.headline


def multiclass_profile() -> ReferenceProfile:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 3000)
    scores = rng.dirichlet(np.ones(3), 3000) * 0.5 + np.eye(3)[y] * 0.5
    names = np.array(["a", "b", "c"])
    return ReferenceProfile(
        model="m", task="multiclass", target="y", classes=("a", "b", "c"), features=(),
        prediction=categorical_profile("prediction", names[scores.argmax(axis=1)]),
        label=categorical_profile("y", names[y]),
        holdout_metrics=compute_metrics("multiclass", y, scores, 3), holdout_rows=3000,
        train_rows=3000, points=2048, calibration=fit_calibration("multiclass", scores, y),
        created_at="multiclass",
    )  # fmt: skip


def test_multiclass_diverges_on_the_predicted_classes(tmp_path: Path) -> None:
    config = project(tmp_path, task="multiclass")
    rng = np.random.default_rng(5)
    scores = rng.dirichlet(np.ones(3), 300)
    always_a = np.tile([0.8, 0.1, 0.1], (300, 1))

    def rows(version: str, arm: str, table: np.ndarray) -> list[PredictionRow]:
        def text(p: np.ndarray) -> str:
            proba = {f"proba_{c}": float(v) for c, v in zip("abc", p, strict=True)}
            return orjson.dumps({"label": "abc"[int(p.argmax())], **proba}).decode()

        base = arm_rows(version, arm, np.zeros(len(table)))
        return [replace(r, outputs=text(p)) for r, p in zip(base, table, strict=True)]

    with RolloutStore.open(config.rollout.state, tmp_path) as store:
        world = World(
            tmp_path, config, store, {"1": multiclass_profile(), "2": multiclass_profile()}
        )
        world.record(rows("1", "champion", scores) + rows("2", "shadow", always_a), {})
        stats = world.stats(state(0))
        same = world.stats(replace(state(0), challenger="1"))  # champion against itself
    assert stats.agreement == pytest.approx(np.mean(scores.argmax(axis=1) == 0))
    assert stats.prediction_divergence is not None and stats.prediction_divergence > 0.4
    assert stats.estimated_drop is not None and stats.estimated_drop > 0  # f1_macro falls
    assert same.challenger.predictions == 0  # version 1 has no shadow rows


def test_at_full_share_the_champion_is_judged_on_its_answers_just_before_the_stage(
    world: World,
) -> None:
    _, p1 = holdout_like(3, 40)
    full = RolloutState(
        rollout_id="ro-1", model="m", champion="1", challenger="2", strategy="blue_green",
        stages=(Stage("traffic", 1.0),), stage=0, started_at=START, stage_started_at=START,
        updated_at=START,
    )  # fmt: skip
    length = NOW - START
    rows = [
        *arm_rows("1", "champion", p1, prefix="long-ago", ts=START - 2 * length - 50),
        *arm_rows("1", "champion", p1[:30], prefix="just-before", ts=START - length),
        *arm_rows("2", "challenger", p1[:25], prefix="in", ts=START),
    ]
    world.record(rows, {})
    stats = world.stats(full)
    assert (stats.champion.predictions, stats.challenger.predictions) == (30, 25)
    assert stats.champion.latency_p99_ms is not None


def test_the_p99_range_holds_the_true_p99_about_95_times_in_100() -> None:
    rng = np.random.default_rng(7)
    true_p99 = float(np.log(100.0))  # exponential(1): P(X > x) = e^-x
    inside = 0
    for _ in range(400):
        bounds = quantile_range(rng.exponential(1.0, 2000), 0.99)
        assert bounds is not None and bounds[0] <= bounds[1]
        inside += bounds[0] <= true_p99 <= bounds[1]
    assert 0.90 <= inside / 400 <= 0.99
    assert quantile_range(np.empty(0), 0.99) is None
    few = quantile_range(np.arange(10.0), 0.99)
    assert few == (9.0, 9.0) or (few is not None and few[1] == 9.0)


def test_the_stats_say_the_task_the_stage_kind_and_whether_there_is_an_estimate(
    world: World,
) -> None:
    _, p1 = holdout_like(4, 30)
    world.record(arm_rows("1", "champion", p1) + arm_rows("2", "shadow", p1), {})
    stats = world.stats(state(0))
    assert (stats.task, stats.shadow, stats.has_estimate) == ("binary", True, True)
    assert stats.champion.latency_p99_range_ms is not None
    assert world.stats(state(1)).shadow is False


def test_a_burst_of_load_weighs_on_both_arms_of_a_canary_alike(world: World) -> None:
    """Both arms answer in the same 10 minutes at 5 %; for one minute the machine is busy
    and every request takes 20 ms. Against all of the champion's requests the burst is
    1 % of the challenger's rows but 0.1 % of the champion's; matched in time, both see it."""
    rng = np.random.default_rng(11)
    n = 6000
    ts = START + np.sort(rng.uniform(0, 600, n))
    busy = (ts > START + 300) & (ts < START + 306)
    latency = np.where(busy, 20.0, rng.uniform(0.2, 0.4, n))
    to_challenger = rng.random(n) < 0.05
    rows = [
        PredictionRow(f"q{i:05d}", 0, float(ts[i]), "m", "2" if c else "1",
                      "challenger" if c else "champion", None, "{}", outputs(0.4),
                      float(latency[i]))
        for i, c in enumerate(to_challenger)
    ]  # fmt: skip
    world.record(rows, {})
    stats = world.stats(state(1))
    champion, challenger = stats.champion.latency_p99_ms, stats.challenger.latency_p99_ms
    assert champion is not None and challenger is not None
    unmatched = float(np.percentile(latency[~to_challenger], 99))
    assert challenger / unmatched > 1.5  # all of the champion: the canary looks slower
    assert challenger / champion < 1.5  # at the same moments: it is not
