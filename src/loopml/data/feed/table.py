"""The feed table: its columns, how a draw becomes a frame, and the public entry points.

:func:`generate_feed` draws the world, applies a scenario and records the result as a
pandas frame; :func:`engagement_probability` reads a frame back into the engagement model.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data.feed.engagement import (
    BASE_PREFERENCES,
    DRIFTED_PREFERENCES,
    Features,
    draw_labels,
    log_odds,
    true_features,
)
from loopml.data.feed.scenarios import SCENARIOS, FeedDraw
from loopml.data.feed.world import (
    CATEGORIES,
    COUNTRIES,
    DAYS,
    DEVICES,
    MEDIA,
    SPAN_US,
    USERS_PER_ROW,
    Array,
    draw_impressions,
    draw_times,
    draw_users,
)
from loopml.errors import ConfigError, DataError

__all__ = [
    "FEED_COLUMNS",
    "FEED_KEY",
    "FEED_TARGET",
    "FEED_TIME",
    "engagement_probability",
    "generate_feed",
]

FEED_TARGET = "engaged"
FEED_KEY = "impression_id"
FEED_TIME = "ts"
FEED_COLUMNS = (
    *(FEED_KEY, FEED_TIME, "user_id", "user_age", "user_country", "user_device"),
    *("user_tenure_days", "user_activity", "post_category", "media_type", "text_length"),
    *("hashtag_count", "author_followers", "post_age_hours", "hour", "weekday"),
    *("feed_position", FEED_TARGET),
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
    x = true_features(users, rows, draw.start_weekday)
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
    logit = log_odds(x, DRIFTED_PREFERENCES if drifted else BASE_PREFERENCES)
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
    if scenario not in SCENARIOS:
        raise ConfigError(
            f"unknown feed scenario {scenario!r}",
            detail=f"available scenarios: {', '.join(SCENARIOS)}",
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
    time_us = draw_times(times_rng, int(rows), 0, weekday)
    users = draw_users(users_rng, max(1, round(rows * USERS_PER_ROW)), 0, newcomers=False)
    impressions = draw_impressions(rows_rng, time_us, users)
    report(0.4)
    onset_us = int(onset * SPAN_US)
    draw = FeedDraw(
        users=users,
        rows=impressions,
        post=time_us >= onset_us,
        engaged=draw_labels(users, impressions, BASE_PREFERENCES, weekday),
        onset_us=onset_us,
        start_weekday=weekday,
    )
    draw = SCENARIOS[scenario].apply(draw, scenario_rng)
    report(0.6)
    frame = _frame(draw, first_day)
    report(1.0)
    return frame
