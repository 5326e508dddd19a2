"""The alert state machine: minimum rows, hysteresis, de-duplication, identity."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.config import AlertRule, MonitorConfig, default_alerts
from loopml.monitor.alerts import (
    AlertEvent,
    AlertKey,
    AlertState,
    WindowView,
    active,
    concrete_metrics,
    evaluate,
)
from loopml.monitor.results import PerformanceReport, WindowReport

pytestmark = pytest.mark.unit

States = dict[AlertKey, AlertState]


def rule(**changes: Any) -> AlertRule:
    values: dict[str, Any] = {
        "name": "drift",
        "metric": "drift_share",
        "above": 0.5,
        "min_rows": 100,
        "raise_after": 2,
        "clear_after": 2,
    }
    values.update(changes)
    return AlertRule(**values)


def window(
    index: int,
    metrics: Mapping[str, float],
    *,
    rows: int = 1000,
    labelled: int = 0,
    version: str = "3",
    arm: str = "champion",
) -> WindowView:
    return WindowView(
        model="feed",
        version=version,
        arm=arm,
        index=index,
        start_ts=1000.0 + 60 * index,
        end_ts=1060.0 + 60 * index,
        rows=rows,
        labelled_rows=labelled,
        metrics=dict(metrics),
    )


def run(
    rules: Sequence[AlertRule], windows: Sequence[WindowView], states: States | None = None
) -> tuple[States, list[AlertEvent]]:
    current: States = dict(states or {})
    events: list[AlertEvent] = []
    for view in windows:
        current, new = evaluate(rules, view, current)
        events.extend(new)
    return current, events


def shares(values: Sequence[float], **kwargs: Any) -> list[WindowView]:
    return [window(i, {"drift_share": v}, **kwargs) for i, v in enumerate(values)]


KEY = AlertKey("feed", "champion", "drift", "drift_share")


def test_raises_after_consecutive_breaches_and_is_pending_meanwhile() -> None:
    states, events = run([rule()], shares([0.7]))
    assert events == []
    assert states[KEY].status == "pending"
    assert states[KEY].breach_streak == 1
    states, events = run([rule()], shares([0.7, 0.8]))
    assert [e.state for e in events] == ["raised"]
    event = events[0]
    assert (event.window, event.first_window, event.windows) == (1, 0, 2)
    assert (event.value, event.threshold, event.direction) == (0.8, 0.5, "above")
    assert event.ts == event.window_end == 1120.0
    assert event.first_window_start == 1000.0
    assert event.streak_rows == 2000
    assert states[KEY].status == "raised"
    assert states[KEY].raised_at == 1120.0


def test_a_healthy_window_resets_the_breach_streak() -> None:
    states, events = run([rule()], shares([0.7, 0.1, 0.7, 0.1, 0.7]))
    assert events == []
    assert states[KEY].status == "pending"
    assert states[KEY].breach_streak == 1


def test_raised_once_until_cleared_and_cleared_after_healthy_windows() -> None:
    values = [0.7, 0.8, 0.9, 0.9, 0.2, 0.9, 0.2, 0.1, 0.2, 0.6, 0.6]
    states, events = run([rule()], shares(values))
    assert [(e.state, e.window, e.windows) for e in events] == [
        ("raised", 1, 2),
        ("cleared", 7, 2),  # the healthy window 4 was reset by the breach at 5
        ("raised", 10, 2),
    ]
    assert events[1].first_window == 6
    assert states[KEY].status == "raised"


def test_too_few_rows_neither_raises_nor_clears() -> None:
    small = {"rows": 99}
    views = [
        window(0, {"drift_share": 0.9}),
        window(1, {"drift_share": 0.9}, rows=99),  # does not count, does not break the streak
        window(2, {"drift_share": 0.9}),
    ]
    states, events = run([rule()], views)
    assert [(e.state, e.windows, e.first_window, e.window) for e in events] == [("raised", 2, 0, 2)]
    before = states[KEY]
    states, events = run([rule()], [window(3, {"drift_share": 0.0}, **small)], states)
    assert events == []
    assert states[KEY] == before


def test_realized_metrics_count_labelled_rows() -> None:
    perf = rule(name="perf", metric="realized_drop.*", above=0.05, min_rows=200, raise_after=1)
    few_labels = window(0, {"realized_drop.auc": 0.2}, rows=10_000, labelled=150)
    states, events = run([perf], [few_labels])
    assert (states, events) == ({}, [])
    enough = window(1, {"realized_drop.auc": 0.2}, rows=150, labelled=250)
    _, events = run([perf], [enough])
    assert [e.metric for e in events] == ["realized_drop.auc"]
    assert "(250 labelled rows)" in events[0].message


@pytest.mark.parametrize("metrics", [{}, {"drift_share": math.nan}, {"drift_share": math.inf}])
def test_absent_or_not_finite_metric_changes_nothing(metrics: dict[str, float]) -> None:
    states, _ = run([rule()], shares([0.9]))
    after, events = run([rule()], [window(1, metrics)], states)
    assert events == []
    assert after == states


def test_a_raised_alert_whose_metric_disappears_stays_raised() -> None:
    missing = rule(name="missing", metric="missing_increase.*", above=0.1, raise_after=1)
    states, events = run([missing], [window(0, {"missing_increase.age": 0.5})])
    assert [e.state for e in events] == ["raised"]
    later = [window(i, {"missing_increase.city": 0.0}) for i in range(1, 6)]
    states, events = run([missing], later, states)
    assert events == []
    assert [a.metric for a in active(states)] == ["missing_increase.age"]


def test_wildcard_rules_make_one_alert_per_feature() -> None:
    missing = rule(name="missing", metric="missing_increase.*", above=0.1, raise_after=1)
    metrics = {
        "missing_increase.age": 0.5,
        "missing_increase.city": 0.0,
        "missing_increase.user.tier": 0.3,  # a dotted feature name
        "missing_rate.age": 0.9,
        "drift_share": 0.9,
    }
    states, events = run([missing], [window(0, metrics)])
    assert [e.metric for e in events] == ["missing_increase.age", "missing_increase.user.tier"]
    assert sorted(k.metric for k in states) == [
        "missing_increase.age",
        "missing_increase.city",
        "missing_increase.user.tier",
    ]
    assert all(k.rule == "missing" and k.arm == "champion" for k in states)


def test_concrete_metrics_keeps_the_family_apart() -> None:
    metrics = {"drift.age": 1.0, "drift_score.age": 0.3, "drift_share": 0.5, "rows": 9.0}
    assert concrete_metrics("drift.*", metrics) == ["drift.age"]
    assert concrete_metrics("drift*.age", metrics) == ["drift.age", "drift_score.age"]
    assert concrete_metrics("drift.a?e", metrics) == ["drift.age"]
    assert concrete_metrics("rows", {}) == ["rows"]


def test_arms_are_separate_alerts_and_versions_are_not() -> None:
    views = [
        window(0, {"drift_share": 0.9}, arm="champion"),
        window(0, {"drift_share": 0.9}, arm="challenger"),
        window(1, {"drift_share": 0.9}, arm="champion"),
    ]
    states, events = run([rule()], views)
    assert [(e.arm, e.state) for e in events] == [("champion", "raised")]
    assert states[AlertKey("feed", "challenger", "drift", "drift_share")].status == "pending"
    assert all("version" not in k._fields for k in states)


def test_a_new_version_restarts_the_streaks_but_stays_raised() -> None:
    states, _ = run([rule()], shares([0.9]))
    states, events = run([rule()], [window(0, {"drift_share": 0.9}, version="4")], states)
    assert events == []  # window 0 of v3 and window 0 of v4 are not consecutive
    assert states[KEY].breach_streak == 1
    states, events = run([rule()], shares([0.9, 0.9, 0.9], version="5"), states)
    assert [(e.state, e.version) for e in events] == [("raised", "5")]
    states, events = run([rule()], [window(0, {"drift_share": 0.1}, version="6")], states)
    assert events == []
    assert states[KEY].status == "raised"
    states, events = run([rule()], [window(1, {"drift_share": 0.1}, version="6")], states)
    assert [(e.state, e.first_window, e.window) for e in events] == [("cleared", 0, 1)]


def test_the_same_window_fed_twice_counts_once() -> None:
    views = shares([0.9])
    states, events = run([rule()], [views[0], views[0]])
    assert events == []
    assert states[KEY].breach_streak == 1


def test_below_rules_breach_under_the_threshold() -> None:
    floor = rule(name="floor", metric="estimated.auc", above=None, below=0.7, raise_after=1)
    views = [window(i, {"estimated.auc": v}) for i, v in enumerate([0.71, 0.7, 0.69, 0.75])]
    states, events = run([floor], views)
    assert [(e.state, e.window, e.direction) for e in events] == [("raised", 2, "below")]
    floor_state = states[AlertKey("feed", "champion", "floor", "estimated.auc")]
    assert (floor_state.status, floor_state.healthy_streak) == ("raised", 1)
    assert "estimated.auc 0.69 < 0.7 in window 2" in events[0].message


def test_the_message_is_one_human_line() -> None:
    drift = rule(name="prediction-drift", metric="prediction_drift", above=0.5)
    views = [window(i, {"prediction_drift": 1.0}, rows=5000) for i in (7, 8)]
    raised, events = run([drift], views)
    assert events[0].message == (
        "prediction-drift raised on feed champion v3: the prediction drifted for 2 "
        "consecutive windows (windows 7-8, 10,000 rows)"
    )
    views = [window(i, {"prediction_drift": 0.0}, rows=5000, version="b7") for i in (0, 1)]
    _, cleared = run([drift], views, raised)
    assert cleared[0].message.startswith(
        "prediction-drift cleared on feed champion b7: the prediction does not drift for 2"
    )
    assert "\n" not in cleared[0].message


def test_events_carry_severity_and_evidence_and_are_json_safe() -> None:
    critical = rule(raise_after=1, severity="critical")
    evidence = {"drifted_features": [{"feature": "age", "p": math.nan}], "rows": (1, 2)}
    _, events = evaluate([critical], window(0, {"drift_share": 0.9}), {}, evidence)
    data = events[0].to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["evidence"] == {
        "drifted_features": [{"feature": "age", "p": None}],
        "rows": [1, 2],
    }
    assert data["severity"] == "critical"
    assert AlertEvent.from_dict(json.loads(text)).message == events[0].message


def test_states_round_trip_and_unknown_status_is_refused() -> None:
    states, _ = run([rule()], shares([0.9, 0.9, 0.1]))
    state = states[KEY]
    assert AlertState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    with pytest.raises(ValueError, match="unknown alert status"):
        AlertState.from_dict({**state.to_dict(), "status": "firing"})


def test_a_raised_alert_keeps_the_value_and_window_that_raised_it() -> None:
    states, _ = run([rule(severity="critical")], shares([0.9, 0.8, 0.7]))
    state = states[KEY]
    assert (state.status, state.raised_value, state.raised_window) == ("raised", 0.8, 1)
    assert (state.last_value, state.last_window, state.severity) == (0.7, 2, "critical")
    assert AlertState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    cleared, _ = run([rule()], shares([0.1, 0.1], version="3"), states)
    assert cleared[KEY].status == "raised"  # windows 0 and 1 were counted already
    cleared, _ = run([rule()], [window(i, {"drift_share": 0.1}) for i in (3, 4)], states)
    assert (cleared[KEY].status, cleared[KEY].raised_value, cleared[KEY].raised_window) == (
        "ok", None, None,
    )  # fmt: skip


def test_a_state_stored_before_the_raised_value_reads_back_without_it() -> None:
    states, _ = run([rule()], shares([0.9, 0.9]))
    old = {k: v for k, v in states[KEY].to_dict().items()
           if k not in {"raised_value", "raised_window", "severity"}}  # fmt: skip
    state = AlertState.from_dict(old)
    assert (state.status, state.raised_value, state.raised_window, state.severity) == (
        "raised", None, None, None,
    )  # fmt: skip


def test_from_report_reads_labelled_rows_from_performance() -> None:
    perf = PerformanceReport(labelled_rows=42, realized={}, estimated={}, reference={})
    report = WindowReport(
        model="feed", version="3", arm="shadow", window="5000 rows", index=4, start_ts=1.0,
        end_ts=2.0, rows=5000, status="ok", reason=None, features=[], prediction=None,
        drift_share=0.1, drifted_features=[], dataset_drift=False, performance=perf,
        metrics={"drift_share": 0.1},
    )  # fmt: skip
    view = WindowView.from_report(report)
    assert (view.labelled_rows, view.rows, view.index, view.arm) == (42, 5000, 4, "shadow")
    assert view.metrics == {"drift_share": 0.1}


def test_default_alerts_evaluate() -> None:
    rules = MonitorConfig().rules
    assert [r.name for r in rules] == [r.name for r in default_alerts()]
    assert {r.min_rows for r in rules} == {MonitorConfig().min_rows}
    metrics = {
        r.metric.replace("*", "age"): (r.above + 0.01 if r.above is not None else -1.0)
        for r in rules
    }
    enough = max(r.min_rows or 0 for r in rules)
    views = [window(i, metrics, rows=enough, labelled=enough) for i in range(3)]
    states, events = run(rules, views)
    assert sorted(e.rule for e in events) == sorted(r.name for r in rules)
    assert len(active(states)) == len(rules)
    few = min(r.min_rows or 0 for r in rules) - 1
    _, none = run(rules, [window(i, metrics, rows=few, labelled=few) for i in range(3)])
    assert none == []


def test_a_rule_that_leaves_min_rows_to_the_monitor_is_resolved_before_evaluate() -> None:
    unresolved = AlertRule(name="drift", metric="drift_share", above=0.5)
    with pytest.raises(ValueError, match="MonitorConfig.rules"):
        evaluate([unresolved], window(0, {"drift_share": 0.9}), {})


def test_cusum_counts_labelled_rows() -> None:
    cusum = rule(name="concept", metric="performance_cusum", above=4.0, raise_after=1)
    _, none = run([cusum], [window(0, {"performance_cusum": 9.0}, rows=1000, labelled=99)])
    _, raised = run([cusum], [window(0, {"performance_cusum": 9.0}, rows=1000, labelled=100)])
    assert (none, [e.state for e in raised]) == ([], ["raised"])


# --- properties -------------------------------------------------------------------------

METRICS = ("drift_share", "missing_increase.age", "missing_increase.city", "realized_drop.auc")


@st.composite
def rule_sets(draw: st.DrawFn) -> list[AlertRule]:
    def counts() -> dict[str, int]:
        return {"raise_after": draw(st.integers(1, 3)), "clear_after": draw(st.integers(1, 3))}

    return [
        rule(name="share", metric="drift_share", above=0.5, **counts()),
        rule(name="missing", metric="missing_increase.*", above=0.3, **counts()),
        rule(name="perf", metric="realized_drop.*", above=0.2, min_rows=200, **counts()),
        rule(name="floor", metric="drift_share", above=None, below=0.2, **counts()),
    ]


@st.composite
def window_runs(draw: st.DrawFn, high: float = 1.0) -> list[WindowView]:
    """Windows of two versions and two arms, in time order, some small, some incomplete."""
    values = st.one_of(st.none(), st.just(math.nan), st.floats(0.0, high))
    count = draw(st.integers(0, 30))
    next_index: dict[tuple[str, str], int] = {}
    views = []
    for i in range(count):
        version = draw(st.sampled_from(["1", "2"]))
        arm = draw(st.sampled_from(["champion", "champion", "shadow"]))
        index = next_index.get((version, arm), 0)
        next_index[(version, arm)] = index + 1
        metrics = {m: v for m in METRICS if (v := draw(values)) is not None}
        views.append(
            WindowView(
                model="feed", version=version, arm=arm, index=index, start_ts=60.0 * i,
                end_ts=60.0 * i + 60, rows=draw(st.sampled_from([50, 500, 5000])),
                labelled_rows=draw(st.sampled_from([0, 150, 300])), metrics=metrics,
            )
        )  # fmt: skip
    return views


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_stationary_healthy_stream_never_raises(data: st.DataObject) -> None:
    rules = [r for r in data.draw(rule_sets()) if r.above is not None]
    # Every value at or under the lowest "above" threshold: breach probability 0.
    views = data.draw(window_runs(high=min(r.above or 0.0 for r in rules)))
    states, events = run(rules, views)
    assert events == []
    assert all(s.status == "ok" and s.breach_streak == 0 for s in states.values())


@settings(max_examples=100, deadline=None)
@given(rule_sets(), window_runs())
def test_events_alternate_per_key_starting_with_raised(
    rules: list[AlertRule], views: list[WindowView]
) -> None:
    states, events = run(rules, views)
    by_key: dict[AlertKey, list[str]] = {}
    for event in events:
        by_key.setdefault(event.key, []).append(event.state)
    for kinds in by_key.values():
        assert kinds == ["raised", "cleared"] * (len(kinds) // 2) + ["raised"] * (len(kinds) % 2)
    raised_now = {k for k, kinds in by_key.items() if kinds[-1] == "raised"}
    assert {s.key for s in active(states)} == raised_now


@settings(max_examples=100, deadline=None)
@given(rule_sets(), window_runs())
def test_an_event_covers_at_least_raise_after_or_clear_after_windows(
    rules: list[AlertRule], views: list[WindowView]
) -> None:
    by_name = {r.name: r for r in rules}
    _, events = run(rules, views)
    for event in events:
        needed = by_name[event.rule]
        expected = needed.raise_after if event.state == "raised" else needed.clear_after
        assert event.windows >= expected
        assert event.first_window <= event.window or event.windows == 1


@settings(max_examples=100, deadline=None)
@given(rule_sets(), window_runs())
def test_states_carried_through_json_give_the_same_events(
    rules: list[AlertRule], views: list[WindowView]
) -> None:
    in_memory, expected = run(rules, views)
    stored: dict[str, Any] = {"states": []}
    events: list[AlertEvent] = []
    for view in views:  # one run per window, states stored as JSON in between
        loaded = [AlertState.from_dict(d) for d in json.loads(json.dumps(stored["states"]))]
        states, new = evaluate(rules, view, {s.key: s for s in loaded})
        stored["states"] = [s.to_dict() for s in states.values()]
        events.extend(AlertEvent.from_dict(json.loads(json.dumps(e.to_dict()))) for e in new)
    assert events == expected
    assert {s.key: s for s in map(AlertState.from_dict, stored["states"])} == in_memory
