"""Per-row losses: their mean is the registry's metric, and shadow rows pair by key."""

from __future__ import annotations

import numpy as np
import pytest

from loopml.monitor.profile import ReferenceProfile, categorical_profile, numeric_profile
from loopml.rollout.arms import ArmRows, shared_rows
from loopml.rollout.losses import paired_losses, row_losses, unpaired_losses
from loopml.train.metrics import log_loss, rmse

pytestmark = pytest.mark.unit


def test_the_mean_log_loss_of_the_rows_is_the_registrys_log_loss() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), 500)
    p[0] = [1.0, 0.0, 0.0]  # a certain and wrong answer: clipped, not infinite
    y = rng.integers(0, 3, 500)
    y[0] = 1
    losses = row_losses("multiclass", ("a", "b", "c"), p, ["abc"[k] for k in y])
    assert np.all(np.isfinite(losses))
    assert losses.mean() == pytest.approx(log_loss(y, p))


def test_squared_errors_give_the_registrys_rmse_and_skip_rows_without_a_label() -> None:
    values = np.array([1.0, 2.0, np.nan, 4.0])
    losses = row_losses("regression", (), values, [1.5, None, 3.0, "2"])
    assert np.isnan(losses[[1, 2]]).all()
    kept = losses[np.isfinite(losses)]
    assert np.sqrt(kept.mean()) == pytest.approx(rmse(np.array([1.5, 2.0]), values[[0, 3]]))


def profile() -> ReferenceProfile:
    return ReferenceProfile(
        model="m", task="binary", target="y", classes=("0", "1"), features=(),
        prediction=numeric_profile("prediction", [0.5]), label=categorical_profile("y", ["1"]),
        holdout_metrics={}, holdout_rows=1, train_rows=1, points=None,
    )  # fmt: skip


def arm(keys: list[str], p1: list[float], labels: list[object]) -> ArmRows:
    p = np.array(p1)
    return ArmRows(
        "champion", "1", profile(), keys, [0] * len(keys), np.zeros(len(keys)),
        np.arange(len(keys), dtype=float), np.column_stack([1 - p, p]), p, labels,
    )  # fmt: skip


def test_shadow_losses_pair_by_key_whatever_the_order() -> None:
    champion = arm(["a", "b", "c", "d"], [0.9, 0.8, 0.7, 0.6], [1, 1, None, 0])
    shadow = arm(["d", "x", "b", "c", "a"], [0.5, 0.5, 0.4, 0.3, 0.2], [0, 1, 1, None, 1])
    assert [champion.request_ids[i] for i in shared_rows(champion, shadow)[0]] == [
        "d", "b", "c", "a"
    ]  # fmt: skip
    first, second = paired_losses(champion, shadow)
    np.testing.assert_allclose(first, -np.log([0.4, 0.8, 0.9]))
    np.testing.assert_allclose(second, -np.log([0.5, 0.4, 0.2]))
    mine, theirs = unpaired_losses(champion, shadow)
    assert (len(mine), len(theirs)) == (3, 4)
