"""A seeded social-feed engagement table drawn from a known generative model.

One row is one impression: a post shown to a user at a feed position. Users come from a
pool with fixed attributes (so user features repeat per ``user_id``), posts are drawn per
impression, and the label ``engaged`` is a Bernoulli draw from a logistic model with
interactions (category x age, category x country, video x mobile, position decay, log
followers, freshness, hour of day). It is the demo, the benchmark workload and the ground
truth for testing the loop; nothing in loopml may be tuned to it.

A *scenario* changes only the impressions after ``onset`` (a fraction of the 30-day range);
rows before it are identical, value for value, to the ``stationary`` table of the same seed.

Null ages are ``pd.NA`` in a nullable ``Int64`` column (the user never gave one); the label
still uses the user's true age. ``ts`` is naive UTC, ``datetime64[us]``.

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
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loopml.errors import ConfigError

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
CATEGORIES = ("news", "sports", "music", "gaming", "food", "travel", "fashion", "tech")
CATEGORIES += ("comedy", "pets")
MEDIA = ("text", "image", "video", "link")

_COUNTRY_MIX = np.array([28, 9, 7, 6, 11, 13, 6, 5, 6, 4, 4, 1], float)
# Covariate shift: a launch campaign brings users from a country that was rare (NG).
_NEW_COUNTRY_MIX = np.array([6, 2, 2, 2, 10, 18, 1, 4, 1, 1, 13, 40], float)
_ANDROID = np.array([0.40, 0.45, 0.60, 0.55, 0.80, 0.88, 0.35, 0.78, 0.42, 0.62, 0.85, 0.88])
_WEB = 0.12
_CATEGORY_MIX = np.array([16, 13, 11, 10, 9, 8, 8, 9, 9, 7], float)
_MEDIA_BY_CATEGORY = np.array(  # text, image, video, link
    [[40, 25, 15, 20], [15, 30, 45, 10], [10, 25, 55, 10], [10, 25, 55, 10], [10, 55, 30, 5]]
    + [[10, 55, 30, 5], [5, 60, 30, 5], [35, 20, 20, 25], [20, 30, 45, 5], [5, 50, 43, 2]],
    float,
)
_TEXT_MEDIAN = np.array([220.0, 60.0, 45.0, 90.0])
_HASHTAG_RATE = np.array([0.6, 1.5, 1.8, 1.6, 2.8, 3.2, 3.5, 1.0, 1.2, 2.5])
# Traffic by clock hour (night trough, lunch bump, evening peak) and by weekday (Mon=0).
_HOUR_TRAFFIC = np.array([30, 18, 11, 8, 7, 9, 18, 34, 46, 50, 52, 56, 62, 58, 52, 50, 54, 60])
_HOUR_TRAFFIC = np.concatenate([_HOUR_TRAFFIC, [70, 82, 88, 84, 68, 48]]).astype(float)
_WEEKDAY_TRAFFIC = np.array([1.0, 0.97, 0.97, 1.0, 1.05, 1.15, 1.12])
_HOUR_EFFECT = np.where(np.arange(24) >= 19, 0.25, np.where(np.arange(24) <= 5, -0.2, 0.0))
_BASE_LOGIT = -2.35
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
    """Parallel arrays; one element per row. Subclasses only add fields."""

    def take(self, index: Array) -> Any:
        """The rows at ``index`` (an integer array), as the same type."""
        return type(self)(**{f.name: getattr(self, f.name)[index] for f in _fields(self)})

    def concat(self, other: Any) -> Any:
        """These rows followed by ``other``'s."""
        return type(self)(
            **{
                f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                for f in _fields(self)
            }
        )

    def __len__(self) -> int:
        return len(getattr(self, _fields(self)[0].name))


def _fields(obj: Columns) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(obj)


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
    found = np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right")
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
    ios = 1.0 - _WEB - android
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


def _label(users: Users, rows: Impressions, prefs: Preferences, start_weekday: int) -> Array:
    """Draw ``engaged`` from the logistic model; ``rows.draw`` is the randomness."""
    logit = _logit(users, rows, prefs, start_weekday)
    return (rows.draw * (1.0 + np.exp(-logit)) < 1.0).astype(np.int64)


def _logit(users: Users, rows: Impressions, prefs: Preferences, start_weekday: int) -> Array:
    """The log-odds of engagement for each impression, from the true (world) values.

    Effects of small integer codes are looked up in tables (one gather per row instead
    of arithmetic per row): that is most of why a million rows label in a few ms.
    """
    user, cat = rows.user, rows.category
    per_user = 0.3 * np.log(users.activity) + np.where(users.tenure < 30, 0.3, 0.0)
    age_z = (users.age - 35.0) / 15.0
    hours = np.arange(DAYS * 24)
    per_hour = _HOUR_EFFECT[hours % 24] + 0.1 * ((start_weekday + hours // 24) % 7 >= 5)
    country_cat = prefs.country.ravel()[users.country[user] * len(CATEGORIES) + cat]
    text = rows.media == MEDIA.index("text")
    text_fit = np.zeros(len(rows))
    text_fit[text] = np.log(rows.text_length[text] / 150.0) ** 2
    return (
        _BASE_LOGIT
        + per_user[user]
        + prefs.category[cat]
        + prefs.age_slope[cat] * age_z[user]
        + country_cat
        + _DEVICE_MEDIA_EFFECT[users.device[user], rows.media]
        + _POSITION_EFFECT[rows.position]
        + _followers_effect(rows.followers)
        - 0.35 * np.log1p(rows.post_age)
        + per_hour[rows.time_us // _HOUR_US]
        - 0.3 * text_fit
        + _HASHTAG_EFFECT[rows.hashtags]
    )


def _followers_effect(followers: Array) -> Array:
    """Reach helps up to ~300k followers; beyond that, brand accounts engage less."""
    log_followers = np.log10(followers)
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
    return pd.array(strings, dtype="str")


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
    users, rows, n = draw.users, draw.rows, len(draw.rows)
    user = rows.user
    start_us = np.datetime64(start, "us").astype(np.int64)
    user_ids = _ids("u-", users.number, 8).take(pa.array(user))
    columns: dict[str, Any] = {
        FEED_KEY: pd.array(_ids("imp-", np.arange(n), 12), dtype="str"),
        FEED_TIME: (start_us + rows.time_us).astype("datetime64[us]"),
        "user_id": pd.array(user_ids, dtype="str"),
        "user_age": pd.arrays.IntegerArray(users.age[user], ~users.age_known[user]),
        "user_country": _strings(users.country[user], COUNTRIES),
        "user_device": _strings(users.device[user], DEVICES),
        "user_tenure_days": users.tenure[user],
        "user_activity": users.activity[user],
        "post_category": _strings(rows.category, CATEGORIES),
        "media_type": _strings(rows.media, MEDIA),
        "text_length": rows.text_length,
        "hashtag_count": rows.hashtags,
        "author_followers": rows.followers,
        "post_age_hours": rows.post_age,
        "hour": (rows.time_us // _HOUR_US) % 24,
        "weekday": (draw.start_weekday + rows.time_us // (24 * _HOUR_US)) % 7,
        "feed_position": rows.position,
        FEED_TARGET: draw.engaged,
    }
    columns.update(draw.reported)
    return pd.DataFrame(columns, copy=False)


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
    >>> a.equals(b), a[FEED_TARGET].isin([0, 1]).all()
    (True, True)
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
