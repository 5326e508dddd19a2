"""The loop-state database: one active rollout per model, compare-and-set updates,
counters summed over replicas, and asking about a rollout never creates the database."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.config import RolloutConfig
from loopml.errors import RolloutError
from loopml.rollout.plan import RolloutState, stages_of
from loopml.rollout.state import ArmCount, RolloutStore, running_rollout

URL = "sqlite:///.loopml/loop.db"


def rollout(rollout_id: str = "r1", model: str = "feed") -> RolloutState:
    return RolloutState(rollout_id, model, "1", "2", "canary", stages_of(RolloutConfig()),
                        started_at=1.0, stage_started_at=1.0)  # fmt: skip


def test_one_active_rollout_per_model_is_kept_by_the_database(tmp_path: Path) -> None:
    with RolloutStore.open(URL, tmp_path) as store:
        store.insert(rollout())
        with pytest.raises(RolloutError, match="already running") as refused:
            store.insert(rollout("r2"))
        assert "rollout abort" in refused.value.fix
        store.insert(rollout("r3", model="other"))  # another model is free
        ended = rollout().at(status="aborted")
        assert store.update(ended, expect=rollout())
        store.insert(rollout("r2"))  # the first one ended: a new one may start
        assert store.active("feed") == rollout("r2")


def test_an_update_from_a_stale_state_writes_nothing(tmp_path: Path) -> None:
    with RolloutStore.open(URL, tmp_path) as store:
        store.insert(rollout())
        assert store.update(rollout().at(stage=1), expect=rollout())
        assert not store.update(rollout().at(stage=2), expect=rollout())  # stage 0 is gone
        found = store.get("r1")
        assert found is not None and found.stage == 1


def test_counters_replace_a_replicas_last_values_and_sum_over_replicas(tmp_path: Path) -> None:
    with RolloutStore.open(URL, tmp_path) as store:
        store.put_counts("r1", 0, "a", {"shadow": ArmCount("shadow", "2", 10, 1, 2)})
        store.put_counts("r1", 0, "a", {"shadow": ArmCount("shadow", "2", 12, 1, 2)})
        store.put_counts("r1", 0, "b", {"shadow": ArmCount("shadow", "2", 5, 0, 0)})
        assert store.counts("r1", 0) == {"shadow": ArmCount("shadow", "2", 17, 1, 2)}
        assert store.counts("r1", 1) == {}


def test_asking_about_a_rollout_never_creates_the_database(tmp_path: Path) -> None:
    assert running_rollout(URL, tmp_path, "feed") is None
    assert not (tmp_path / ".loopml" / "loop.db").exists()
    with RolloutStore.open(URL, tmp_path) as store:
        store.insert(rollout())
    assert running_rollout(URL, tmp_path, "feed") == rollout()
    assert running_rollout(URL, tmp_path, "other") is None
