"""Drift scenarios: the registry and the five built-in ways the feed changes at the onset.

A scenario is a function from a :class:`FeedDraw` (the world plus what was recorded of
it) and its own random stream to a new draw; it may change only the rows after the onset.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from loopml.data.feed.engagement import (
    BASE_PREFERENCES,
    DRIFTED_PREFERENCES,
    Preferences,
    draw_labels,
)
from loopml.data.feed.world import (
    Array,
    Impressions,
    Users,
    draw_impressions,
    draw_times,
    draw_users,
    see_users,
)
from loopml.errors import ConfigError

__all__ = [
    "LABEL_SHIFT_FACTOR",
    "SCENARIOS",
    "FeedDraw",
    "Scenario",
    "ScenarioFn",
    "describe_scenarios",
    "register_scenario",
]

LABEL_SHIFT_FACTOR = 2.0


@dataclass(frozen=True)
class FeedDraw:
    """The world plus what was recorded of it; what a scenario function transforms."""

    users: Users
    rows: Impressions
    post: Array  # rows after the onset
    engaged: Array
    onset_us: int
    start_weekday: int
    reported: Mapping[str, Array] = field(default_factory=dict)  # column -> as reported


ScenarioFn = Callable[[FeedDraw, np.random.Generator], FeedDraw]


@dataclass(frozen=True)
class Scenario:
    """A registered scenario: the function that applies it and a one-line description."""

    name: str
    description: str
    apply: ScenarioFn


_REGISTRY: dict[str, Scenario] = {}
SCENARIOS: Mapping[str, Scenario] = MappingProxyType(_REGISTRY)


def register_scenario(name: str, apply: ScenarioFn, description: str) -> None:
    """Add a scenario to :data:`SCENARIOS`; a name can be registered once."""
    if name in _REGISTRY:
        raise ConfigError(
            f"feed scenario {name!r} is already registered",
            fix="give the new scenario another name",
        )
    _REGISTRY[name] = Scenario(name=name, description=description, apply=apply)


def describe_scenarios() -> dict[str, str]:
    """Scenario name -> one-line description, in registration order (for CLI help)."""
    return {name: scenario.description for name, scenario in _REGISTRY.items()}


def _relabel_post(draw: FeedDraw, users: Users, rows: Impressions, prefs: Preferences) -> Array:
    """``engaged`` with the post-onset rows redrawn (same uniforms) under ``prefs``."""
    post = np.flatnonzero(draw.post)
    engaged = draw.engaged.copy()
    engaged[post] = draw_labels(users, rows.take(post), prefs, draw.start_weekday)
    return engaged


def _stationary(draw: FeedDraw, rng: np.random.Generator) -> FeedDraw:
    return draw


def _covariate_shift(draw: FeedDraw, rng: np.random.Generator) -> FeedDraw:
    post = np.flatnonzero(draw.post)
    old = len(draw.users)
    newcomers = draw_users(rng, max(1, old // 2), old, newcomers=True)
    users = draw.users.concat(newcomers)
    # 60% of the later impressions go to the newcomers; the model of the world is unchanged.
    to_new = post[rng.random(len(post)) < 0.6]
    user = draw.rows.user.copy()
    user[to_new] = old + see_users(rng, newcomers.activity, len(to_new))
    rows = dataclasses.replace(draw.rows, user=user)
    engaged = _relabel_post(draw, users, rows, BASE_PREFERENCES)
    return dataclasses.replace(draw, users=users, rows=rows, engaged=engaged)


def _concept_drift(draw: FeedDraw, rng: np.random.Generator) -> FeedDraw:
    engaged = _relabel_post(draw, draw.users, draw.rows, DRIFTED_PREFERENCES)
    return dataclasses.replace(draw, engaged=engaged)


def _label_shift(draw: FeedDraw, rng: np.random.Generator) -> FeedDraw:
    """Importance resampling by label: P(x | y) is kept, P(y) is multiplied.

    The post-onset rows plus fresh post-onset draws from the same world are candidates;
    positives and negatives are each sampled uniformly from their class, in the counts
    that give the new prevalence, then put back in time order.
    """
    pre, post = np.flatnonzero(~draw.post), np.flatnonzero(draw.post)
    if len(post) == 0:
        return draw
    rate = float(draw.engaged[post].mean())
    positives = round(min(LABEL_SHIFT_FACTOR * rate, 0.9) * len(post))
    rows, labels = draw.rows.take(post), draw.engaged[post]
    for _ in range(100):  # each round adds ~all the positives still missing; 1-2 suffice
        missing = positives - int(labels.sum())
        if missing <= 0:
            break
        extra_n = max(1024, math.ceil(1.2 * missing / max(rate, 0.01)))
        extra = draw_impressions(
            rng, draw_times(rng, extra_n, draw.onset_us, draw.start_weekday), draw.users
        )
        rows = rows.concat(extra)
        labels = np.concatenate(
            [labels, draw_labels(draw.users, extra, BASE_PREFERENCES, draw.start_weekday)]
        )
    keep = np.concatenate(
        [
            rng.choice(np.flatnonzero(labels == 1), positives, replace=False),
            rng.choice(np.flatnonzero(labels == 0), len(post) - positives, replace=False),
        ]
    )
    keep = keep[np.argsort(rows.time_us[keep], kind="stable")]
    return dataclasses.replace(
        draw,
        rows=draw.rows.take(pre).concat(rows.take(keep)),
        engaged=np.concatenate([draw.engaged[pre], labels[keep]]),
    )


def _broken_feature(draw: FeedDraw, rng: np.random.Generator) -> FeedDraw:
    """The pipe breaks, not the world: the label keeps the true values."""
    post = np.flatnonzero(draw.post)
    activity = draw.users.activity[draw.rows.user]
    activity[post[rng.random(len(post)) < 0.3]] = np.nan
    followers = draw.rows.followers.copy()
    followers[post] = np.rint(followers[post] / 1000.0).astype(np.int64)
    reported = {"user_activity": activity, "author_followers": followers}
    return dataclasses.replace(draw, reported=reported)


register_scenario("stationary", _stationary, "nothing changes after the onset")
register_scenario(
    "covariate_shift",
    _covariate_shift,
    "new users arrive (mostly NG/IN/ID, android, low tenure); P(engaged | features) is unchanged",
)
register_scenario(
    "concept_drift",
    _concept_drift,
    "category preferences change (news fades, tech and travel rise); inputs are unchanged",
)
register_scenario(
    "label_shift",
    _label_shift,
    "engagement prevalence doubles by resampling on the label; P(features | engaged) is kept",
)
register_scenario(
    "broken_feature",
    _broken_feature,
    "upstream bug: user_activity ~30% null, author_followers in thousands; the label is not",
)
