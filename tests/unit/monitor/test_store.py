"""The monitor store, the same tests over SQLite and a real throwaway PostgreSQL."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.config import AlertRule
from loopml.monitor.alerts import AlertEvent, AlertKey, AlertState, WindowView, evaluate
from loopml.monitor.results import PerformanceReport, WindowReport
from loopml.monitor.sinks import Delivery
from loopml.monitor.store import MonitorError, MonitorStore, StoredWindow, WindowCursor

pytestmark = pytest.mark.unit

RULES = [
    AlertRule(
        name="drift", metric="drift_share", above=0.5, min_rows=1, raise_after=1, clear_after=1
    ),
    AlertRule(name="missing", metric="missing_increase.*", above=0.1, min_rows=1),
]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite:///state/monitor.db"  # relative: resolved against the root
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def store(url: str, tmp_path: Path) -> Iterator[MonitorStore]:
    with MonitorStore.open(url, tmp_path) as opened:
        yield opened


def report(model: str, version: str, arm: str, index: int, complete: bool) -> WindowReport:
    return WindowReport(
        model=model, version=version, arm=arm, window="1000 rows", index=index,
        start_ts=1000.0 + 60 * index, end_ts=1060.0 + 60 * index, rows=1000, status="ok",
        reason=None, features=[], prediction=None, drift_share=None, drifted_features=[],
        dataset_drift=False, performance=PerformanceReport(0, {}, {}, {"roc_auc": 0.8}),
        metrics={"rows": 1000.0}, complete=complete,
    )  # fmt: skip


def stored(
    index: int,
    *,
    version: str = "3",
    arm: str = "champion",
    model: str = "feed",
    complete: bool = True,
    spec: str = "1000 rows",
) -> StoredWindow:
    return StoredWindow(
        model=model, version=version, arm=arm, spec=spec, index=index,
        start_ts=1000.0 + 60 * index, end_ts=1060.0 + 60 * index, rows=1000,
        complete=complete, report=report(model, version, arm, index, complete=complete),
        end_request_id=f"req-{index}", end_row=index % 3,
    )  # fmt: skip


def alerts_over(
    shares: list[float], states: dict[AlertKey, AlertState] | None = None, *, arm: str = "champion"
) -> tuple[dict[AlertKey, AlertState], list[AlertEvent]]:
    current = dict(states or {})
    events: list[AlertEvent] = []
    for index, share in enumerate(shares):
        view = WindowView(
            "feed", "3", arm, index, 1000.0 + 60 * index, 1060.0 + 60 * index, 1000, 0,
            {"drift_share": share, "missing_increase.age": share / 4},
        )  # fmt: skip
        current, new = evaluate(RULES, view, current, {"top": [{"feature": "age", "p": 1e-9}]})
        events.extend(new)
    return current, events


def test_states_events_and_windows_round_trip(store: MonitorStore) -> None:
    states, events = alerts_over([0.9, 0.1, 0.8])
    assert [e.state for e in events] == ["raised", "cleared", "raised"]
    ids = store.commit("feed", states, events, [stored(i) for i in range(3)])
    assert len(ids) == 3 and ids == sorted(ids)
    assert store.load_states("feed") == states
    assert store.load_states("other") == {}
    assert [a.key for a in store.active_alerts("feed")] == [
        AlertKey("feed", "champion", "drift", "drift_share")
    ]
    assert store.active_alerts("feed")[0].raised_value == 0.8  # kept as JSON, no new column
    found = store.events("feed")
    assert [e.id for e in found] == ids[::-1]  # newest first
    assert [e.event for e in found] == events[::-1]
    assert found[0].deliveries == []
    assert [e.event.state for e in store.events(state="cleared")] == ["cleared"]
    assert [e.id for e in store.events(since=1120.0)] == ids[:0:-1]
    assert [e.id for e in store.events(limit=1)] == [ids[-1]]
    assert store.events("other") == []
    assert found[0].to_dict()["id"] == ids[-1]
    assert found[0].to_dict()["message"] == events[-1].message


def test_windows_cursor_latest_and_order(store: MonitorStore) -> None:
    windows = [stored(i) for i in range(4)]
    windows += [stored(i, version="4") for i in range(2)]
    windows += [stored(0, arm="shadow"), stored(5, complete=False)]
    windows += [stored(9, spec="1h")]
    store.commit("feed", {}, [], windows)
    cursor = store.last_window("feed", "3", "champion", "1000 rows")
    assert cursor == WindowCursor(index=3, end_ts=1240.0, end_request_id="req-3", end_row=0)
    assert store.last_window("feed", "3", "champion", "5000 rows") is None
    assert store.last_window("feed", "9", "champion", "1000 rows") is None
    series = store.windows("feed", version="3", arm="champion", spec="1000 rows")
    assert [w.index for w in series] == [0, 1, 2, 3, 5]
    assert [w.index for w in store.windows("feed", version="3", spec="1000 rows", limit=2)] == [
        3,
        5,
    ]
    assert len(store.windows("feed")) == 9
    assert store.windows("other") == []
    latest = {(w.version, w.arm): w.index for w in store.latest_windows("feed")}
    assert latest == {("3", "champion"): 9, ("4", "champion"): 1, ("3", "shadow"): 0}
    by_spec = store.latest_windows("feed", spec="1000 rows")
    assert {(w.version, w.arm): w.index for w in by_spec} == {
        ("3", "champion"): 3,  # the incomplete window 5 is not the latest complete one
        ("4", "champion"): 1,
        ("3", "shadow"): 0,
    }


def test_an_incomplete_window_is_replaced_and_a_complete_one_is_not(store: MonitorStore) -> None:
    store.commit("feed", {}, [], [stored(0), stored(1, complete=False)])
    store.commit("feed", {}, [], [stored(1), stored(2, complete=False)])
    assert [(w.index, w.complete) for w in store.windows("feed")] == [
        (0, True),
        (1, True),
        (2, False),
    ]
    with pytest.raises(MonitorError, match="cannot write to the monitor store"):
        store.commit("feed", {}, [], [stored(1)])


def test_commit_is_all_or_nothing(store: MonitorStore) -> None:
    states, events = alerts_over([0.9])
    first_ids = store.commit("feed", states, events, [stored(0)])
    later_states, later_events = alerts_over([0.1, 0.1, 0.9, 0.9], states)
    assert later_events and later_states != states
    # Window 0 is stored complete already: the commit fails after writing states and
    # windows 1-2, and nothing of it may stay.
    broken = [stored(1), stored(2), stored(0)]
    with pytest.raises(MonitorError) as caught:
        store.commit("feed", later_states, later_events, broken)
    assert caught.value.detail  # the database's own words
    assert store.load_states("feed") == states
    assert [e.id for e in store.events()] == first_ids
    assert [w.index for w in store.windows("feed")] == [0]
    # The store is still usable afterwards.
    store.commit("feed", later_states, later_events, [stored(1), stored(2)])
    assert store.load_states("feed") == later_states


def test_commit_replaces_the_models_states_only(store: MonitorStore) -> None:
    feed_states, _ = alerts_over([0.9, 0.9])
    other = AlertState("other", "champion", "drift", "drift_share", status="raised")
    store.commit("feed", feed_states, [], [])
    store.commit("other", {other.key: other}, [], [])
    kept = {k: v for k, v in feed_states.items() if k.rule == "drift"}
    store.commit("feed", kept, [], [])
    assert store.load_states("feed") == kept
    assert store.load_states("other") == {other.key: other}
    assert {a.model for a in store.active_alerts()} == {"feed", "other"}
    with pytest.raises(ValueError, match="model 'other' committed for model 'feed'"):
        store.commit("feed", {other.key: other}, [], [])


def test_deliveries_are_recorded_per_event(store: MonitorStore) -> None:
    states, events = alerts_over([0.9])
    (event_id,) = store.commit("feed", states, events, [])
    deliveries = [
        Delivery("log", events[0], ok=True),
        Delivery("webhook", events[0], ok=False, attempts=3, error="cannot reach the webhook"),
    ]
    store.record_deliveries(event_id, deliveries)
    assert store.events()[0].deliveries == [d.to_dict() for d in deliveries]
    with pytest.raises(MonitorError, match="no alert event #999999"):
        store.record_deliveries(999_999, deliveries)


def test_reopening_keeps_everything(url: str, tmp_path: Path) -> None:
    states, events = alerts_over([0.9, 0.9])
    with MonitorStore.open(url, tmp_path) as first:
        ids = first.commit("feed", states, events, [stored(0), stored(1)])
    with MonitorStore.open(url, tmp_path) as again:
        assert again.load_states("feed") == states
        assert [e.id for e in again.events()] == ids[::-1]
        assert [w.index for w in again.windows("feed")] == [0, 1]


def test_a_relative_sqlite_path_lives_under_the_root(tmp_path: Path) -> None:
    with MonitorStore.open("sqlite:///a/b/monitor.db", tmp_path) as opened:
        opened.commit("feed", {}, [], [stored(0)])
    assert (tmp_path / "a" / "b" / "monitor.db").is_file()
    absolute = tmp_path / "abs" / "m.db"
    MonitorStore.open(f"sqlite:///{absolute}", tmp_path / "elsewhere").close()
    assert absolute.is_file()


@pytest.mark.parametrize(
    ("bad", "headline"),
    [
        ("mysql://user@db/monitor", "unsupported monitor store URL"),
        ("sqlite://", "bad SQLite monitor store URL"),
        ("sqlite:///:memory:", "bad SQLite monitor store URL"),
        ("not a url", "bad monitor store URL"),
    ],
)
def test_bad_urls_say_how_to_fix_them(bad: str, headline: str, tmp_path: Path) -> None:
    with pytest.raises(MonitorError) as caught:
        MonitorStore.open(bad, tmp_path)
    assert caught.value.headline.startswith(headline)
    assert "monitor.store" in caught.value.fix


def test_an_unreachable_postgres_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(MonitorError) as caught:
        MonitorStore.open(f"postgresql://me:s3cret@127.0.0.1:{port}/monitor", tmp_path)
    error = caught.value
    assert error.headline == (
        f"cannot connect to the monitor store postgresql://me:***@127.0.0.1:{port}/monitor"
    )
    assert "s3cret" not in str(error)
    assert "running and reachable" in error.fix
    assert error.exit_code == 2


def test_a_store_from_a_newer_loopml_is_refused(tmp_path: Path) -> None:
    MonitorStore.open("sqlite:///m.db", tmp_path).close()
    with sqlite3.connect(tmp_path / "m.db") as conn:
        conn.execute("UPDATE monitor_meta SET value = '2' WHERE key = 'schema_version'")
    with pytest.raises(MonitorError, match="written by a newer loopml"):
        MonitorStore.open("sqlite:///m.db", tmp_path)
