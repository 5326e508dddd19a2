"""The feed's world: who the users are and which posts they are shown, when.

Vocabularies, traffic and mix tables, and the seeded draws of the user pool, the
impression times and everything about each impression (including the uniform that later
decides its label). Whether a user engages is :mod:`loopml.data.feed.engagement`'s job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

__all__ = [
    "CATEGORIES",
    "COUNTRIES",
    "DAYS",
    "DEVICES",
    "HOUR_US",
    "MEDIA",
    "SPAN_US",
    "USERS_PER_ROW",
    "Array",
    "Columns",
    "Impressions",
    "Users",
    "draw_impressions",
    "draw_times",
    "draw_users",
    "see_users",
]

Array = np.ndarray[Any, Any]
DAYS = 30
HOUR_US = 3_600_000_000
SPAN_US = DAYS * 24 * HOUR_US
USERS_PER_ROW = 1 / 20

COUNTRIES = ("US", "GB", "DE", "FR", "BR", "IN", "JP", "MX", "CA", "ES", "ID", "NG")
DEVICES = ("ios", "android", "web")
CATEGORIES = (
    *("news", "sports", "music", "gaming", "food"),
    *("travel", "fashion", "tech", "comedy", "pets"),
)
MEDIA = ("text", "image", "video", "link")

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


def draw_users(rng: np.random.Generator, n: int, first: int, *, newcomers: bool) -> Users:
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


def draw_times(rng: np.random.Generator, n: int, lo_us: int, start_weekday: int) -> Array:
    """``n`` sorted times in [lo_us, end), with hour-of-day and weekday traffic."""
    hours = np.arange(DAYS * 24)
    weights = _HOUR_TRAFFIC[hours % 24] * _WEEKDAY_TRAFFIC[(start_weekday + hours // 24) % 7]
    begin = np.maximum(hours * HOUR_US, lo_us)
    width = np.clip((hours + 1) * HOUR_US - begin, 0, None)
    # Multinomial counts per hour, then uniform within the hour: nearly sorted already.
    counts = rng.multinomial(n, weights * width / np.sum(weights * width))
    hour = np.repeat(hours, counts)
    times = begin[hour] + (rng.random(n) * width[hour]).astype(np.int64)
    return np.sort(times, kind="stable")


def see_users(rng: np.random.Generator, activity: Array, n: int) -> Array:
    """Which user sees each of ``n`` impressions: users are seen as often as they log in."""
    counts = rng.multinomial(n, activity / activity.sum())
    return rng.permutation(np.repeat(np.arange(len(activity)), counts))


def draw_impressions(rng: np.random.Generator, time_us: Array, users: Users) -> Impressions:
    """Everything about the impressions at ``time_us``; users are seen by their activity."""
    n = len(time_us)
    category = _pick(rng, _CATEGORY_MIX, n)
    media = _pick_rows(rng, _MEDIA_BY_CATEGORY, category)
    decay = 0.93  # a reader scrolls on with this probability: earlier slots are seen more
    u = rng.random(n) * (1.0 - decay**50)
    position = 1 + np.floor(np.log1p(-u) / np.log(decay)).astype(np.int64)
    return Impressions(
        time_us=time_us,
        user=see_users(rng, users.activity, n),
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
