"""Tests for the seeded social-feed generator and its drift scenarios."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from loopml.data.feed import (
    CATEGORIES,
    COUNTRIES,
    DEVICES,
    FEED_COLUMNS,
    FEED_KEY,
    FEED_TARGET,
    FEED_TIME,
    MEDIA,
    SCENARIOS,
    describe_scenarios,
    engagement_probability,
    generate_feed,
    register_scenario,
)
from loopml.errors import ConfigError, DataError

pytestmark = pytest.mark.unit

ROWS = 40_000
SEED = 11
ONSET = pd.Timestamp("2026-01-16")  # onset 0.5 of the 30 days from 2026-01-01
ALL_SCENARIOS = ("stationary", "covariate_shift", "concept_drift", "label_shift", "broken_feature")
STRING_COLUMNS = ("impression_id", "user_id", "user_country", "user_device")
STRING_COLUMNS += ("post_category", "media_type")
INT_COLUMNS = ("user_tenure_days", "text_length", "hashtag_count", "author_followers")
INT_COLUMNS += ("hour", "weekday", "feed_position", "engaged")


@pytest.fixture(scope="module")
def feeds() -> dict[str, pd.DataFrame]:
    return {name: generate_feed(ROWS, SEED, name) for name in ALL_SCENARIOS}


def _split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    post = frame[FEED_TIME] >= ONSET
    return frame[~post], frame[post]


def _share(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].value_counts(normalize=True)


def _category_calibration_gap(frame: pd.DataFrame, probability: np.ndarray) -> float:
    """Largest |mean predicted - observed rate| over post categories."""
    table = pd.DataFrame(
        {"c": frame["post_category"].to_numpy(), "p": probability, "y": frame[FEED_TARGET]}
    )
    means = table.groupby("c").mean()
    return float((means["p"] - means["y"]).abs().max())


def test_registry_lists_the_five_scenarios_with_one_line_descriptions() -> None:
    assert tuple(SCENARIOS) == ALL_SCENARIOS
    descriptions = describe_scenarios()
    assert tuple(descriptions) == ALL_SCENARIOS
    for text in descriptions.values():
        assert text
        assert "\n" not in text


def test_registering_a_name_twice_is_an_error() -> None:
    before = SCENARIOS["stationary"]
    with pytest.raises(ConfigError, match="already registered"):
        register_scenario("stationary", before.apply, "again")
    assert SCENARIOS["stationary"] is before


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_same_arguments_give_the_same_frame(scenario: str) -> None:
    first = generate_feed(3_000, 5, scenario, onset=0.3)
    second = generate_feed(3_000, 5, scenario, onset=0.3)
    pd.testing.assert_frame_equal(first, second)


def test_different_seeds_give_different_frames() -> None:
    first, second = generate_feed(3_000, 1), generate_feed(3_000, 2)
    assert not first[FEED_TARGET].equals(second[FEED_TARGET])
    assert not first["user_age"].equals(second["user_age"])
    assert not first[FEED_TIME].equals(second[FEED_TIME])


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_schema_is_the_same_for_every_scenario(
    feeds: dict[str, pd.DataFrame], scenario: str
) -> None:
    frame = feeds[scenario]
    assert tuple(frame.columns) == FEED_COLUMNS
    assert len(frame) == ROWS
    for name in STRING_COLUMNS:
        assert pd.api.types.is_string_dtype(frame[name].dtype), name
    for name in INT_COLUMNS:
        assert frame[name].dtype == np.int64, name
    assert frame["user_age"].dtype == "Int64"
    assert frame["user_activity"].dtype == np.float64
    assert frame["post_age_hours"].dtype == np.float64
    assert frame[FEED_TIME].dtype == "datetime64[us]"


def test_keys_are_unique_and_time_is_sorted_within_30_days(
    feeds: dict[str, pd.DataFrame],
) -> None:
    for frame in feeds.values():
        assert frame[FEED_KEY].is_unique
        assert frame[FEED_KEY].str.fullmatch(r"imp-\d{12}").all()
        assert frame[FEED_TIME].is_monotonic_increasing
        assert frame[FEED_TIME].min() >= pd.Timestamp("2026-01-01")
        assert frame[FEED_TIME].max() < pd.Timestamp("2026-01-31")


def test_hour_and_weekday_come_from_the_timestamp(feeds: dict[str, pd.DataFrame]) -> None:
    frame = feeds["stationary"]
    assert (frame["hour"] == frame[FEED_TIME].dt.hour).all()
    assert (frame["weekday"] == frame[FEED_TIME].dt.day_of_week).all()
    shifted = generate_feed(2_000, 3, start="2026-03-04")
    assert shifted[FEED_TIME].min() >= pd.Timestamp("2026-03-04")
    assert (shifted["weekday"] == shifted[FEED_TIME].dt.day_of_week).all()


def test_values_are_in_realistic_ranges(feeds: dict[str, pd.DataFrame]) -> None:
    frame = feeds["stationary"]
    ages = frame["user_age"].dropna()
    assert ages.min() >= 13
    assert ages.max() <= 80
    assert 0.005 < frame["user_age"].isna().mean() < 0.04
    assert set(frame["user_country"]) == set(COUNTRIES)
    assert set(frame["user_device"]) == set(DEVICES)
    assert set(frame["post_category"]) == set(CATEGORIES)
    assert set(frame["media_type"]) == set(MEDIA)
    assert frame["feed_position"].between(1, 50).all()
    assert (frame["user_activity"] > 0).all()
    assert (frame["post_age_hours"] > 0).all()
    assert (frame["text_length"] >= 1).all()
    assert (frame["hashtag_count"] >= 0).all()
    followers = frame["author_followers"]
    assert followers.min() >= 1
    assert followers.max() > 1000 * followers.median()  # heavy tail


def test_user_attributes_repeat_per_user(feeds: dict[str, pd.DataFrame]) -> None:
    frame = feeds["stationary"]
    per_user = frame.groupby("user_id")[
        ["user_country", "user_device", "user_tenure_days", "user_activity"]
    ].nunique()
    assert (per_user == 1).all().all()
    assert frame["user_id"].nunique() <= ROWS // 20
    assert frame["user_id"].value_counts().max() > 1


def test_traffic_peaks_in_the_evening(feeds: dict[str, pd.DataFrame]) -> None:
    hours = _share(feeds["stationary"], "hour")
    assert hours[20] > 3 * hours[4]


def test_base_rate_and_position_decay(feeds: dict[str, pd.DataFrame]) -> None:
    frame = feeds["stationary"]
    assert 0.08 <= frame[FEED_TARGET].mean() <= 0.15
    top = frame.loc[frame["feed_position"] <= 3, FEED_TARGET].mean()
    deep = frame.loc[frame["feed_position"] >= 20, FEED_TARGET].mean()
    assert top > 1.5 * deep
    counts = frame["feed_position"].value_counts()
    assert counts[1] > counts[10] > counts[40]


def test_the_label_is_learnable_but_not_trivial() -> None:
    frame = generate_feed(20_000, 4)
    features = frame.drop(columns=[FEED_KEY, FEED_TIME, "user_id", FEED_TARGET])
    for name in ("user_country", "user_device", "post_category", "media_type"):
        features[name] = features[name].astype(pd.CategoricalDtype(sorted(set(features[name]))))
    features["user_age"] = features["user_age"].astype(np.float64)
    train = np.arange(len(frame)) < 14_000
    model = HistGradientBoostingClassifier(
        max_iter=150, categorical_features="from_dtype", random_state=0
    )
    model.fit(features[train], frame.loc[train, FEED_TARGET])
    scores = model.predict_proba(features[~train])[:, 1]
    auc = roc_auc_score(frame.loc[~train, FEED_TARGET], scores)
    ceiling = roc_auc_score(frame[FEED_TARGET], engagement_probability(frame))
    assert 0.65 < auc < 0.9
    assert auc <= ceiling + 0.02


@pytest.mark.parametrize("scenario", ALL_SCENARIOS[1:])
def test_rows_before_the_onset_are_untouched(feeds: dict[str, pd.DataFrame], scenario: str) -> None:
    base_pre, base_post = _split(feeds["stationary"])
    pre, post = _split(feeds[scenario])
    pd.testing.assert_frame_equal(pre, base_pre)
    assert len(post) == len(base_post)
    assert not post.reset_index(drop=True).equals(base_post.reset_index(drop=True))


def test_stationary_model_is_calibrated_after_the_onset(feeds: dict[str, pd.DataFrame]) -> None:
    _, post = _split(feeds["stationary"])
    probability = engagement_probability(post)
    assert abs(probability.mean() - post[FEED_TARGET].mean()) < 0.01
    assert _category_calibration_gap(post, probability) < 0.035


def test_covariate_shift_moves_the_inputs_but_not_the_model(
    feeds: dict[str, pd.DataFrame],
) -> None:
    pre, post = _split(feeds["covariate_shift"])
    assert _share(pre, "user_country").get("NG", 0.0) < 0.03
    assert _share(post, "user_country")["NG"] > 0.15
    assert _share(post, "user_device")["android"] > _share(pre, "user_device")["android"] + 0.1
    # The world's P(engaged | features) is the same: the base model stays calibrated.
    probability = engagement_probability(post)
    assert abs(probability.mean() - post[FEED_TARGET].mean()) < 0.01
    assert _category_calibration_gap(post, probability) < 0.035


def test_concept_drift_changes_preferences_not_inputs(feeds: dict[str, pd.DataFrame]) -> None:
    pre, post = _split(feeds["concept_drift"])
    mix = _share(post, "post_category") - _share(pre, "post_category")
    assert mix.abs().max() < 0.015
    assert abs(post["user_age"].mean() - pre["user_age"].mean()) < 1.0
    rates = post.groupby("post_category")[FEED_TARGET].mean()
    rates_before = pre.groupby("post_category")[FEED_TARGET].mean()
    assert (rates - rates_before).abs().max() > 0.04
    assert _category_calibration_gap(post, engagement_probability(post)) > 0.05
    assert _category_calibration_gap(post, engagement_probability(post, drifted=True)) < 0.035


def test_label_shift_doubles_prevalence_and_keeps_features_given_label(
    feeds: dict[str, pd.DataFrame],
) -> None:
    frame = feeds["label_shift"]
    assert frame[FEED_TIME].is_monotonic_increasing
    pre, post = _split(frame)
    ratio = post[FEED_TARGET].mean() / pre[FEED_TARGET].mean()
    assert 1.8 < ratio < 2.2
    for label in (0, 1):
        before, after = pre[pre[FEED_TARGET] == label], post[post[FEED_TARGET] == label]
        mix = _share(after, "post_category") - _share(before, "post_category")
        assert mix.abs().max() < 0.03
        position = after["feed_position"].mean() - before["feed_position"].mean()
        assert abs(position) < 1.0
        followers = np.log10(after["author_followers"]).mean()
        assert abs(followers - np.log10(before["author_followers"]).mean()) < 0.1


def test_broken_feature_breaks_the_pipe_not_the_world(feeds: dict[str, pd.DataFrame]) -> None:
    pre, post = _split(feeds["broken_feature"])
    assert pre["user_activity"].notna().all()
    assert 0.25 < post["user_activity"].isna().mean() < 0.35
    scale = pre["author_followers"].median() / max(post["author_followers"].median(), 1)
    assert 300 < scale < 3000
    # The label still follows the true values: the engagement rate does not move, while
    # the model read off the recorded (broken) values badly underestimates it.
    assert abs(post[FEED_TARGET].mean() - pre[FEED_TARGET].mean()) < 0.015
    assert engagement_probability(post).mean() < post[FEED_TARGET].mean() - 0.03


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
@pytest.mark.parametrize(("rows", "onset"), [(1, 0.5), (7, 0.0), (60, 0.95)])
def test_tiny_tables_and_edge_onsets_work(scenario: str, rows: int, onset: float) -> None:
    frame = generate_feed(rows, 0, scenario, onset=onset)
    assert len(frame) == rows
    assert frame[FEED_KEY].is_unique
    assert frame[FEED_TIME].is_monotonic_increasing
    assert frame[FEED_TARGET].isin([0, 1]).all()


def test_progress_is_reported_up_to_done() -> None:
    seen: list[float] = []
    generate_feed(500, 0, progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": 0}, "rows"),
        ({"rows": -5}, "rows"),
        ({"rows": 2.5}, "rows"),
        ({"seed": -1}, "seed"),
        ({"scenario": "nope"}, "unknown feed scenario"),
        ({"onset": 1.0}, "onset"),
        ({"onset": -0.1}, "onset"),
        ({"onset": math.nan}, "onset"),
        ({"start": "2026-13-01"}, "start"),
        ({"start": "last monday"}, "start"),
    ],
)
def test_bad_arguments_raise_config_errors(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"rows": 100, "seed": 0} | kwargs
    with pytest.raises(ConfigError, match=message) as caught:
        generate_feed(**arguments)  # type: ignore[arg-type]
    assert caught.value.fix


def test_unknown_scenario_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        generate_feed(10, 0, "drift")
    for name in ALL_SCENARIOS:
        assert name in caught.value.detail


def test_engagement_probability_rejects_other_tables() -> None:
    with pytest.raises(DataError, match="not a feed table"):
        engagement_probability(pd.DataFrame({"a": [1, 2]}))
    frame = generate_feed(50, 0)
    frame.loc[0, "user_country"] = "XX"
    with pytest.raises(DataError, match="user_country"):
        engagement_probability(frame)
