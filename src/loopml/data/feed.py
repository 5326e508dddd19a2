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
:func:`_label_shift`); ``broken_feature`` corrupts only what is recorded, rounding
``author_followers`` to whole thousands so every scenario has the same schema.

Dtypes: strings are pandas ``str``; ``user_age`` is a nullable ``Int64`` whose ~2% nulls
are users who never gave an age (the label still uses their true age); ``ts`` is naive
UTC ``datetime64[us]``; other integers are ``int64`` and the rest ``float64``.

>>> frame = generate_feed(1_000, seed=7)
>>> frame.shape, frame[FEED_KEY].is_unique, frame[FEED_TIME].is_monotonic_increasing
((1000, 18), True, True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any, Self

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import ConfigError, DataError

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

FEED_TARGET = "engaged"
FEED_KEY = "impression_id"
FEED_TIME = "ts"

Array = np.ndarray[Any, Any]
DAYS = 30
_HOUR_US = 3_600_000_000
_SPAN_US = DAYS * 24 * _HOUR_US
USERS_PER_ROW = 1 / 20
LABEL_SHIFT_FACTOR = 2.0

COUNTRIES = ("US", "GB", "DE", "FR", "BR", "IN", "JP", "MX", "CA", "ES", "ID", "NG")
DEVICES = ("ios", "android", "web")
CATEGORIES = (
    *("news", "sports", "music", "gaming", "food"),
    *("travel", "fashion", "tech", "comedy", "pets"),
)
MEDIA = ("text", "image", "video", "link")
FEED_COLUMNS = (
    *(FEED_KEY, FEED_TIME, "user_id", "user_age", "user_country", "user_device"),
    *("user_tenure_days", "user_activity", "post_category", "media_type", "text_length"),
    *("hashtag_count", "author_followers", "post_age_hours", "hour", "weekday"),
    *("feed_position", FEED_TARGET),
)

_COUNTRY_MIX = np.array([28, 9, 7, 6, 11, 13, 6, 5, 6, 4, 4, 1], float)
# Covariate shift: a launch campaign brings users from a country that was rare (NG).
_NEW_COUNTRY_MIX = np.array([6, 2, 2, 2, 10, 18, 1, 4, 1, 1, 13, 40], float)
_ANDROID = np.array([0.40, 0.45, 0.60, 0.55, 0.80, 0.88, 0.35, 0.78, 0.42, 0.62, 0.85, 0.88])
_WEB = 0.12
_CATEGORY_MIX = np.array([16, 13, 11, 10, 9, 8, 8, 9, 9, 7], float)
_MEDIA_BY_CATEGORY = np.array(  # weights of text, image, video, link per category
    [[40, 25, 15, 20], [15, 30, 45, 10], [10, 25, 55, 10], [10, 25, 55, 10], [10, 55, 30, 5],
     [10, 55, 30, 5], [5, 60, 30, 5], [35, 20, 20, 25], [20, 30, 45, 5], [5, 50, 43, 2]],
    float,
)  # fmt: skip
_TEXT_MEDIAN = np.array([220.0, 60.0, 45.0, 90.0])
_HASHTAG_RATE = np.array([0.6, 1.5, 1.8, 1.6, 2.8, 3.2, 3.5, 1.0, 1.2, 2.5])
# Traffic by clock hour (night trough, lunch bump, evening peak) and by weekday (Mon=0).
_HOUR_TRAFFIC = np.array([30, 18, 11, 8, 7, 9, 18, 34, 46, 50, 52, 56, 62, 58, 52, 50, 54, 60])
_HOUR_TRAFFIC = np.concatenate([_HOUR_TRAFFIC, [70, 82, 88, 84, 68, 48]]).astype(float)
_WEEKDAY_TRAFFIC = np.array([1.0, 0.97, 0.97, 1.0, 1.05, 1.15, 1.12])
_HOUR_EFFECT = np.where(np.arange(24) >= 19, 0.25, np.where(np.arange(24) <= 5, -0.2, 0.0))
_BASE_LOGIT = -2.25
# [device, media]: video engages on a phone and bores on the web.
_DEVICE_MEDIA_EFFECT = np.array([-0.25, 0.15, 0.3, -0.4]) + np.array(
    [[0, 0, 0.7, 0]] * 2 + [[0, 0, -0.7, 0]]
)
_POSITION_EFFECT = -0.55 * np.log(np.arange(51).clip(1))
_HASHTAG_EFFECT = 0.12 * np.minimum(np.arange(31), 3) - 0.2 * np.maximum(np.arange(31) - 3, 0)


@dataclass(frozen=True)
class Preferences:
    """The part of the engagement model a concept drift changes: taste per category."""

    category: Array  # base effect per category
    age_slope: Array  # per category, times (age - 35) / 15
    country: Array  # [country, category] boost


def _country_boosts(pairs: Mapping[tuple[str, str], float]) -> Array:
    table = np.zeros((len(COUNTRIES), len(CATEGORIES)))
    for (country, category), boost in pairs.items():
        table[COUNTRIES.index(country), CATEGORIES.index(category)] = boost
    return table


BASE_PREFERENCES = Preferences(
    category=np.array([-0.3, 0.0, 0.1, 0.0, 0.15, 0.05, -0.1, -0.2, 0.35, 0.4]),
    age_slope=np.array([0.8, 0.1, -0.55, -1.0, 0.3, 0.25, -0.5, 0.0, -0.3, 0.15]),
    country=_country_boosts(
        {("GB", "sports"): 0.9, ("BR", "sports"): 1.0, ("ES", "sports"): 0.9}
        | {("FR", "food"): 0.8, ("JP", "food"): 0.8, ("JP", "gaming"): 0.9}
        | {("FR", "fashion"): 0.8, ("DE", "news"): 0.6, ("MX", "music"): 0.8}
        | {("NG", "music"): 0.9, ("IN", "tech"): 0.8, ("US", "tech"): 0.3}
        | {("NG", "comedy"): 0.6, ("IN", "sports"): 0.5}
    ),
)
# Concept drift: news fatigue, a tech and travel wave, gaming goes mainstream (no age
# slope), pets and comedy fade, the regional sports and food tastes flip.
DRIFTED_PREFERENCES = Preferences(
    category=np.array([-1.0, -0.2, 0.1, 0.3, -0.3, 0.7, -0.1, 0.7, -0.2, -0.4]),
    age_slope=np.array([0.1, 0.05, -0.35, 0.0, 0.2, 0.4, 0.3, 0.3, -0.2, 0.1]),
    country=_country_boosts(
        {("US", "food"): 0.6, ("IN", "travel"): 0.6, ("DE", "gaming"): 0.5}
        | {("BR", "tech"): 0.5, ("GB", "fashion"): 0.5, ("MX", "news"): 0.4}
    ),
)


@dataclass(frozen=True)
class Columns:
    """Parallel arrays, one element per row; subclasses declare the arrays as fields."""

    def _map(self, how: Callable[[str], Array]) -> Self:
        return type(self)(**{f.name: how(f.name) for f in dataclasses.fields(self)})

    def take(self, index: Array) -> Self:
        """The rows at ``index`` (an integer array)."""
        return self._map(lambda name: getattr(self, name)[index])

    def concat(self, other: Self) -> Self:
        """These rows followed by ``other``'s."""
        return self._map(lambda name: np.concatenate([getattr(self, name), getattr(other, name)]))

    def __len__(self) -> int:
        return len(getattr(self, dataclasses.fields(self)[0].name))


@dataclass(frozen=True)
class Users(Columns):
    """The user pool: fixed attributes, one element per user."""

    number: Array  # becomes the user_id
    age: Array  # true age; the label uses it even when the age is not reported
    age_known: Array
    country: Array
    device: Array
    tenure: Array
    activity: Array  # sessions per week, also how often the user is seen


@dataclass(frozen=True)
class Impressions(Columns):
    """The world's impressions, in code form (category, media as integer codes)."""

    time_us: Array  # microseconds after the start
    user: Array  # index into the user pool
    category: Array
    media: Array
    text_length: Array
    hashtags: Array
    followers: Array
    post_age: Array
    position: Array
    draw: Array  # the uniform that decides the label: shared by every scenario


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


def _pick(rng: np.random.Generator, weights: Array, n: int) -> Array:
    """``n`` draws of an index with probability proportional to ``weights``."""
    cumulative = np.cumsum(weights, dtype=float)
    found: Array = np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right")
    return np.minimum(found, len(weights) - 1)


def _pick_rows(rng: np.random.Generator, table: Array, which: Array) -> Array:
    """One draw per element of ``which`` from the weight row ``table[which]``."""
    cumulative = np.cumsum(table / table.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(len(which))
    found = np.zeros(len(which), dtype=np.int64)
    for column in range(table.shape[1] - 1):  # a pass per choice, never per row
        found += u > cumulative[which, column]
    return found


def _draw_users(rng: np.random.Generator, n: int, first: int, *, newcomers: bool) -> Users:
    """``n`` users numbered from ``first``; newcomers have the shifted mix and low tenure."""
    country = _pick(rng, _NEW_COUNTRY_MIX if newcomers else _COUNTRY_MIX, n)
    android = np.full(n, 0.85) if newcomers else _ANDROID[country]
    ios = np.clip(1.0 - _WEB - android, 0.0, None)
    device_table = np.stack([ios, android, np.full(n, _WEB)], axis=1)
    age = np.minimum(13 + rng.gamma(2.0, 10.0, n), 80.0).astype(np.int64)
    tenure = rng.exponential(25.0, n) if newcomers else rng.lognormal(np.log(400), 1.1, n)
    return Users(
        number=np.arange(first, first + n, dtype=np.int64),
        age=age,
        age_known=rng.random(n) >= 0.02,
        country=country,
        device=_pick_rows(rng, device_table, np.arange(n)),
        tenure=np.minimum(tenure, 6000).astype(np.int64),
        activity=np.round(np.clip(rng.lognormal(np.log(4.0), 0.8, n), 0.1, 100.0), 2),
    )


def _draw_times(rng: np.random.Generator, n: int, lo_us: int, start_weekday: int) -> Array:
    """``n`` sorted times in [lo_us, end), with hour-of-day and weekday traffic."""
    hours = np.arange(DAYS * 24)
    weights = _HOUR_TRAFFIC[hours % 24] * _WEEKDAY_TRAFFIC[(start_weekday + hours // 24) % 7]
    begin = np.maximum(hours * _HOUR_US, lo_us)
    width = np.clip((hours + 1) * _HOUR_US - begin, 0, None)
    # Multinomial counts per hour, then uniform within the hour: nearly sorted already.
    counts = rng.multinomial(n, weights * width / np.sum(weights * width))
    hour = np.repeat(hours, counts)
    times = begin[hour] + (rng.random(n) * width[hour]).astype(np.int64)
    return np.sort(times, kind="stable")


def _see_users(rng: np.random.Generator, activity: Array, n: int) -> Array:
    """Which user sees each of ``n`` impressions: users are seen as often as they log in."""
    counts = rng.multinomial(n, activity / activity.sum())
    return rng.permutation(np.repeat(np.arange(len(activity)), counts))


def _draw_impressions(rng: np.random.Generator, time_us: Array, users: Users) -> Impressions:
    """Everything about the impressions at ``time_us``; users are seen by their activity."""
    n = len(time_us)
    category = _pick(rng, _CATEGORY_MIX, n)
    media = _pick_rows(rng, _MEDIA_BY_CATEGORY, category)
    decay = 0.93  # a reader scrolls on with this probability: earlier slots are seen more
    u = rng.random(n) * (1.0 - decay**50)
    position = 1 + np.floor(np.log1p(-u) / np.log(decay)).astype(np.int64)
    return Impressions(
        time_us=time_us,
        user=_see_users(rng, users.activity, n),
        category=category,
        media=media,
        text_length=np.clip(rng.lognormal(np.log(_TEXT_MEDIAN[media]), 0.7), 1, 5000).astype(
            np.int64
        ),
        hashtags=np.minimum(rng.poisson(_HASHTAG_RATE[category]), 30),
        followers=np.clip(rng.lognormal(np.log(1500.0), 2.0, n), 1, 2e8).astype(np.int64),
        post_age=np.round(np.clip(rng.lognormal(np.log(8.0), 1.2, n), 0.05, 336.0), 2),
        position=np.clip(position, 1, 50),
        draw=rng.random(n),
    )


@dataclass(frozen=True)
class Features(Columns):
    """What the engagement model reads, per impression (string columns as integer codes)."""

    country: Array
    device: Array
    age: Array
    activity: Array
    tenure: Array
    category: Array
    media: Array
    text_length: Array
    hashtags: Array
    followers: Array
    post_age: Array
    position: Array
    hour: Array
    weekday: Array


def _features(users: Users, rows: Impressions, start_weekday: int) -> Features:
    """The true feature values of the world's impressions."""
    user = rows.user
    return Features(
        country=users.country[user],
        device=users.device[user],
        age=users.age[user],
        activity=users.activity[user],
        tenure=users.tenure[user],
        category=rows.category,
        media=rows.media,
        text_length=rows.text_length,
        hashtags=rows.hashtags,
        followers=rows.followers,
        post_age=rows.post_age,
        position=rows.position,
        hour=(rows.time_us // _HOUR_US) % 24,
        weekday=(start_weekday + rows.time_us // (24 * _HOUR_US)) % 7,
    )


def _label(users: Users, rows: Impressions, prefs: Preferences, start_weekday: int) -> Array:
    """Draw ``engaged`` from the logistic model; ``rows.draw`` is the randomness."""
    logit = _logit(_features(users, rows, start_weekday), prefs)
    return (rows.draw * (1.0 + np.exp(-logit)) < 1.0).astype(np.int64)


def _logit(x: Features, prefs: Preferences) -> Array:
    """The log-odds of engagement. Effects of integer codes are table look-ups (fast)."""
    text = x.media == MEDIA.index("text")
    text_fit = np.zeros(len(x))
    text_fit[text] = np.log(x.text_length[text] / 150.0) ** 2
    logit: Array = (
        _BASE_LOGIT
        + 0.3 * np.log(x.activity)
        + np.where(x.tenure < 30, 0.3, 0.0)
        + prefs.category[x.category]
        + prefs.age_slope[x.category] * ((x.age - 35.0) / 15.0)
        + prefs.country.ravel()[x.country * len(CATEGORIES) + x.category]
        + _DEVICE_MEDIA_EFFECT[x.device, x.media]
        + _POSITION_EFFECT[x.position]
        + _followers_effect(x.followers)
        - 0.35 * np.log1p(x.post_age)
        + _HOUR_EFFECT[x.hour]
        + 0.1 * (x.weekday >= 5)
        - 0.3 * text_fit
        + _HASHTAG_EFFECT[x.hashtags]
    )
    return logit


def _followers_effect(followers: Array) -> Array:
    """Reach helps up to ~300k followers; beyond that, brand accounts engage less."""
    log_followers: Array = np.log10(np.maximum(followers, 1))
    return 0.45 * np.clip(log_followers - 2.0, 0.0, 3.5) - 0.6 * np.maximum(log_followers - 5.5, 0)


def _relabel_post(draw: FeedDraw, users: Users, rows: Impressions, prefs: Preferences) -> Array:
    """``engaged`` with the post-onset rows redrawn (same uniforms) under ``prefs``."""
    post = np.flatnonzero(draw.post)
    engaged = draw.engaged.copy()
    engaged[post] = _label(users, rows.take(post), prefs, draw.start_weekday)
    return engaged


def _stationary(draw: FeedDraw, rng: np.random.Generator) -> FeedDraw:
    return draw


def _covariate_shift(draw: FeedDraw, rng: np.random.Generator) -> FeedDraw:
    post = np.flatnonzero(draw.post)
    old = len(draw.users)
    newcomers = _draw_users(rng, max(1, old // 2), old, newcomers=True)
    users = draw.users.concat(newcomers)
    # 60% of the later impressions go to the newcomers; the model of the world is unchanged.
    to_new = post[rng.random(len(post)) < 0.6]
    user = draw.rows.user.copy()
    user[to_new] = old + _see_users(rng, newcomers.activity, len(to_new))
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
        extra = _draw_impressions(
            rng, _draw_times(rng, extra_n, draw.onset_us, draw.start_weekday), draw.users
        )
        rows = rows.concat(extra)
        labels = np.concatenate(
            [labels, _label(draw.users, extra, BASE_PREFERENCES, draw.start_weekday)]
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


def _strings(codes: Array, labels: tuple[str, ...]) -> pd.api.extensions.ExtensionArray:
    """A pandas ``str`` column from integer codes, built in Arrow (no Python objects)."""
    strings = pa.array(labels, type=pa.large_string()).take(pa.array(codes.astype(np.int32)))
    column: pd.api.extensions.ExtensionArray = pd.array(strings, dtype="str")
    return column


def _ids(prefix: str, numbers: Array, digits: int) -> pa.LargeStringArray:
    """Fixed-width ids like ``imp-000000000123``, written as bytes straight into Arrow."""
    width = len(prefix) + digits
    text = np.empty((len(numbers), width), dtype=np.uint8)
    text[:, : len(prefix)] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    rest = numbers.astype(np.int64)
    for column in range(width - 1, len(prefix) - 1, -1):  # one pass per digit, not per row
        rest, digit = np.divmod(rest, 10)
        text[:, column] = 48 + digit
    offsets = np.arange(0, width * (len(numbers) + 1), width, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(len(numbers), pa.py_buffer(offsets), pa.py_buffer(text))


def _frame(draw: FeedDraw, start: date) -> pd.DataFrame:
    """The table as recorded: codes become strings, reported overrides replace true values."""
    users, rows = draw.users, draw.rows
    x = _features(users, rows, draw.start_weekday)
    start_us = np.datetime64(start, "us").astype(np.int64)
    columns: dict[str, Any] = {
        FEED_KEY: pd.array(_ids("imp-", np.arange(len(rows)), 12), dtype="str"),
        FEED_TIME: (start_us + rows.time_us).astype("datetime64[us]"),
        "user_id": pd.array(_ids("u-", users.number, 8).take(pa.array(rows.user)), dtype="str"),
        "user_age": pd.arrays.IntegerArray(x.age, ~users.age_known[rows.user]),
        "user_country": _strings(x.country, COUNTRIES),
        "user_device": _strings(x.device, DEVICES),
        "user_tenure_days": x.tenure,
        "user_activity": x.activity,
        "post_category": _strings(x.category, CATEGORIES),
        "media_type": _strings(x.media, MEDIA),
        "text_length": x.text_length,
        "hashtag_count": x.hashtags,
        "author_followers": x.followers,
        "post_age_hours": x.post_age,
        "hour": x.hour,
        "weekday": x.weekday,
        "feed_position": x.position,
        FEED_TARGET: draw.engaged,
    }
    columns.update(draw.reported)
    return pd.DataFrame(columns, copy=False)


def _codes(frame: pd.DataFrame, column: str, labels: tuple[str, ...]) -> Array:
    found = pc.index_in(pa.array(frame[column].astype("str")), value_set=pa.array(labels))
    codes: Array = found.fill_null(-1).to_numpy().astype(np.int64)
    if (codes < 0).any():
        raise DataError(
            f"column {column!r} holds nulls or values the feed generator never makes",
            detail=f"expected one of: {', '.join(labels)}",
            fix="pass a table made by generate_feed",
        )
    return codes


def engagement_probability(frame: pd.DataFrame, *, drifted: bool = False) -> Array:
    """The generator's true P(engaged = 1) for each row of a feed table, from its columns.

    This is the ground truth a model can at best learn: its ROC-AUC on a table is the
    ceiling for any model trained on it. ``drifted`` uses the preferences that
    ``concept_drift`` switches to after the onset. The values are read as recorded: a
    missing age counts as 35 and a missing activity as 4 sessions a week, so rows with
    nulls (and any table a scenario broke) get an approximation.

    >>> frame = generate_feed(2_000, seed=3)
    >>> p = engagement_probability(frame)
    >>> bool(abs(p.mean() - frame[FEED_TARGET].mean()) < 0.03)
    True
    """
    missing = [name for name in FEED_COLUMNS if name not in frame.columns]
    if missing:
        raise DataError(
            "not a feed table: columns are missing",
            detail=f"missing: {', '.join(missing)}",
            fix="pass a table made by generate_feed",
        )

    def numbers(column: str, fill: float = 0.0) -> Array:
        return frame[column].to_numpy(dtype=np.float64, na_value=fill)

    x = Features(
        country=_codes(frame, "user_country", COUNTRIES),
        device=_codes(frame, "user_device", DEVICES),
        age=numbers("user_age", 35.0),
        activity=np.maximum(numbers("user_activity", 4.0), 0.01),
        tenure=numbers("user_tenure_days"),
        category=_codes(frame, "post_category", CATEGORIES),
        media=_codes(frame, "media_type", MEDIA),
        text_length=np.maximum(numbers("text_length"), 1.0),
        hashtags=np.clip(numbers("hashtag_count"), 0, 30).astype(np.int64),
        followers=numbers("author_followers"),
        post_age=np.maximum(numbers("post_age_hours"), 0.0),
        position=np.clip(numbers("feed_position"), 1, 50).astype(np.int64),
        hour=np.clip(numbers("hour"), 0, 23).astype(np.int64),
        weekday=numbers("weekday"),
    )
    logit = _logit(x, DRIFTED_PREFERENCES if drifted else BASE_PREFERENCES)
    probability: Array = 1.0 / (1.0 + np.exp(-logit))
    return probability


def _check_args(rows: int, seed: int, scenario: str, onset: float, start: str) -> date:
    """Validate the arguments; returns the parsed start date."""
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows < 1:
        raise ConfigError(f"rows must be a whole number >= 1, got {rows!r}", fix="pass rows=1000")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(
            f"seed must be a whole number >= 0, got {seed!r}", fix="pass e.g. seed=42"
        )
    if scenario not in _REGISTRY:
        raise ConfigError(
            f"unknown feed scenario {scenario!r}",
            detail=f"available scenarios: {', '.join(_REGISTRY)}",
            fix="pick one of the available scenarios",
        )
    if not isinstance(onset, int | float | np.floating) or not 0.0 <= onset < 1.0:
        raise ConfigError(
            f"onset must be a fraction in [0, 1) of the {DAYS}-day range, got {onset!r}",
            fix="pass e.g. onset=0.5 for a change half-way through the range",
        )
    try:
        return date.fromisoformat(start)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"start must be an ISO date like 2026-01-01, got {start!r}",
            fix="pass the first day of the feed as YYYY-MM-DD",
        ) from exc


def generate_feed(
    rows: int,
    seed: int,
    scenario: str = "stationary",
    onset: float = 0.5,
    start: str = "2026-01-01",
    *,
    progress: Callable[[float], None] | None = None,
) -> pd.DataFrame:
    """A seeded table of ``rows`` feed impressions over 30 days from ``start``.

    ``scenario`` (see :func:`describe_scenarios`) changes only rows whose ``ts`` is at or
    after ``start + onset * 30 days``. The same arguments give the same frame; ``progress``
    (optional) is called with the fraction done, for progress bars on large tables.

    >>> a = generate_feed(500, seed=1, scenario="broken_feature", onset=0.25)
    >>> b = generate_feed(500, seed=1, scenario="broken_feature", onset=0.25)
    >>> a.equals(b), sorted(a[FEED_TARGET].unique().tolist())
    (True, [0, 1])
    """
    first_day = _check_args(rows, seed, scenario, onset, start)
    report = progress or (lambda _fraction: None)
    # Independent streams: the base world is the same whatever the scenario draws.
    times_rng, users_rng, rows_rng, scenario_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4)
    )
    weekday = first_day.weekday()
    time_us = _draw_times(times_rng, int(rows), 0, weekday)
    users = _draw_users(users_rng, max(1, round(rows * USERS_PER_ROW)), 0, newcomers=False)
    impressions = _draw_impressions(rows_rng, time_us, users)
    report(0.4)
    onset_us = int(onset * _SPAN_US)
    draw = FeedDraw(
        users=users,
        rows=impressions,
        post=time_us >= onset_us,
        engaged=_label(users, impressions, BASE_PREFERENCES, weekday),
        onset_us=onset_us,
        start_weekday=weekday,
    )
    draw = _REGISTRY[scenario].apply(draw, scenario_rng)
    report(0.6)
    frame = _frame(draw, first_day)
    report(1.0)
    return frame
