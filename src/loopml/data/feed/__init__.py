"""A seeded social-feed engagement table drawn from a known generative model.

One row is one impression: a post shown to a user at a feed position. Users come from a
pool with fixed attributes (so user features repeat per ``user_id``) and are seen as often
as they are active; posts are drawn per impression; ``ts`` follows hour-of-day and weekday
traffic over 30 days. The label ``engaged`` is a Bernoulli draw from a logistic model with
interactions (category x age, category x country, video x mobile, position decay,
non-monotone followers, freshness, hour of day), so a boosted model beats a linear one.
:func:`engagement_probability` gives that model's true probability for any feed table.
It is the demo, the benchmark workload and the ground truth for testing the loop;
nothing in loopml may be tuned to it.

A *scenario* (:data:`SCENARIOS`) changes only the impressions at or after ``onset`` (a
fraction of the 30 days); earlier rows are identical, value for value, to the
``stationary`` table of the same seed, because every part of the world draws from its own
random stream. ``label_shift`` resamples the later rows by label (see
:mod:`loopml.data.feed.scenarios`); ``broken_feature`` corrupts only what is recorded,
rounding ``author_followers`` to whole thousands so every scenario has the same schema.

Dtypes: strings are pandas ``str``; ``user_age`` is a nullable ``Int64`` whose ~2% nulls
are users who never gave an age (the label still uses their true age); ``ts`` is naive
UTC ``datetime64[us]``; other integers are ``int64`` and the rest ``float64``.

The package, by job: :mod:`~loopml.data.feed.world` draws users, times and impressions;
:mod:`~loopml.data.feed.engagement` is the logistic model of the label;
:mod:`~loopml.data.feed.scenarios` holds the scenario registry and the built-in scenarios;
:mod:`~loopml.data.feed.table` assembles the frame and holds the public entry points.

>>> frame = generate_feed(1_000, seed=7)
>>> frame.shape, frame[FEED_KEY].is_unique, frame[FEED_TIME].is_monotonic_increasing
((1000, 18), True, True)
"""

from __future__ import annotations

from loopml.data.feed.scenarios import (
    SCENARIOS,
    FeedDraw,
    Scenario,
    ScenarioFn,
    describe_scenarios,
    register_scenario,
)
from loopml.data.feed.table import (
    FEED_COLUMNS,
    FEED_KEY,
    FEED_TARGET,
    FEED_TIME,
    engagement_probability,
    generate_feed,
)
from loopml.data.feed.world import CATEGORIES, COUNTRIES, DEVICES, MEDIA

__all__ = [
    "CATEGORIES",
    "COUNTRIES",
    "DEVICES",
    "FEED_COLUMNS",
    "FEED_KEY",
    "FEED_TARGET",
    "FEED_TIME",
    "MEDIA",
    "SCENARIOS",
    "FeedDraw",
    "Scenario",
    "ScenarioFn",
    "describe_scenarios",
    "engagement_probability",
    "generate_feed",
    "register_scenario",
]
