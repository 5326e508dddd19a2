"""The engagement model: whether a user engages with an impression.

A logistic model with interactions (category x age, category x country, video x mobile,
position decay, non-monotone followers, freshness, hour of day). The part a concept drift
changes is the :class:`Preferences`; the rest of the model is fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from loopml.data.feed.world import (
    CATEGORIES,
    COUNTRIES,
    HOUR_US,
    MEDIA,
    Array,
    Columns,
    Impressions,
    Users,
)

__all__ = [
    "BASE_PREFERENCES",
    "DRIFTED_PREFERENCES",
    "Features",
    "Preferences",
    "draw_labels",
    "log_odds",
    "true_features",
]

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


def true_features(users: Users, rows: Impressions, start_weekday: int) -> Features:
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
        hour=(rows.time_us // HOUR_US) % 24,
        weekday=(start_weekday + rows.time_us // (24 * HOUR_US)) % 7,
    )


def draw_labels(users: Users, rows: Impressions, prefs: Preferences, start_weekday: int) -> Array:
    """Draw ``engaged`` from the logistic model; ``rows.draw`` is the randomness."""
    logit = log_odds(true_features(users, rows, start_weekday), prefs)
    return (rows.draw * (1.0 + np.exp(-logit)) < 1.0).astype(np.int64)


def log_odds(x: Features, prefs: Preferences) -> Array:
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
