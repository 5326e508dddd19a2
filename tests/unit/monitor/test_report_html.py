from __future__ import annotations

import json
import re
from dataclasses import replace
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from loopml.monitor.alerts import AlertEvent, AlertState
from loopml.monitor.report import MonitorReport
from loopml.monitor.report_html import render_html, write_report
from loopml.monitor.results import (
    ColumnDrift,
    FeatureReport,
    Histogram,
    PerformanceReport,
    WindowReport,
)
from loopml.monitor.store import StoredEvent

pytestmark = pytest.mark.unit

T0 = 1_714_557_600.0  # 2024-05-01 10:00:00 UTC
HOUR = 3600.0
VOID = {"meta", "br", "hr", "img", "input", "link"}
DRIFT_MESSAGE = "dataset drift: 2 of 4 features drifted (share 0.5 >= 0.5) in window #2"


class StrictParser(HTMLParser):
    """Fails on any unbalanced or misnested tag; collects the text a reader sees."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []
        self.titles: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.stack and self.stack[-1] == "title":
            self.titles.append(data)


def parse(page: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(page)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    assert "script" not in parser.tags  # no JavaScript, ever
    return parser


def assert_no_missing_markers(page: str) -> None:
    assert "nan" not in page.lower()
    assert "None" not in page
    assert "undefined" not in page


# --- building real results ------------------------------------------------------------


def numeric(name: str, statistic: float, drifted: bool, **kw: Any) -> FeatureReport:
    test, kind, threshold = kw.get("test", ("ks", "p_value", 0.05))
    drift = ColumnDrift(
        name, test, kind, threshold, statistic, drifted, reference_rows=5000, current_rows=1000
    )
    histogram = Histogram(
        labels=["[0, 1)", "[1, 2)", "[2, 3]"],
        reference=[0.2, 0.5, 0.3],
        current=[0.1, 0.4, 0.5],
        edges=[0.0, 1.0, 2.0, 3.0],
    )
    return FeatureReport(name, "numeric", drift, kw.get("missing", 0.01), 0.0, histogram=histogram)


def categorical(name: str, statistic: float, drifted: bool, **kw: Any) -> FeatureReport:
    test, kind, threshold = kw.get("test", ("chisquare", "p_value", 0.05))
    labels = kw.get("labels", ["basic", "pro", "(other)"])
    share = 1 / len(labels)
    drift = ColumnDrift(
        name, test, kind, threshold, statistic, drifted, reference_rows=5000, current_rows=1000
    )
    histogram = Histogram(
        labels=labels, reference=[share] * len(labels), current=[share] * len(labels)
    )
    return FeatureReport(
        name,
        "categorical",
        drift,
        0.0,
        0.0,
        unseen_rate=kw.get("unseen", 0.02),
        unseen_examples=kw.get("examples", ["enterprise"]),
        histogram=histogram,
    )


def classification_perf(index: int, slices: bool = False) -> PerformanceReport:
    labelled = 0 if index == 0 else 400
    realized: dict[str, float | None] = (
        {"roc_auc": None, "accuracy": None} if index == 0 else {"roc_auc": 0.8123, "accuracy": 0.75}
    )
    return PerformanceReport(
        labelled_rows=labelled,
        realized=realized,
        estimated={"roc_auc": 0.7987, "accuracy": 0.7612},
        reference={"roc_auc": 0.8345, "accuracy": 0.7801},
        slices=[
            {"column": "plan", "value": "pro", "rows": 200, "metrics": {"roc_auc": 0.9}},
            {"column": "plan", "value": "basic", "rows": 200, "metrics": {"roc_auc": 0.7011}},
        ]
        if slices
        else [],
        status="ok" if labelled else "not_enough_data",
        reason=None if labelled else "not enough data: no labels yet",
    )


def window(
    index: int, features: list[FeatureReport], perf: PerformanceReport, **kw: Any
) -> WindowReport:
    drifted = [f.name for f in features if f.drift.drifted]
    share = len(drifted) / len(features) if features else None
    return WindowReport(
        model=kw.get("model", "churn"),
        version=kw.get("version", "3"),
        arm=kw.get("arm", "stable"),
        window="1000 rows",
        index=index,
        start_ts=T0 + index * HOUR,
        end_ts=T0 + (index + 1) * HOUR - 1,
        rows=kw.get("rows", 1000),
        status=kw.get("status", "ok"),
        reason=kw.get("reason"),
        features=features,
        prediction=kw.get("prediction"),
        drift_share=share,
        drifted_features=drifted,
        dataset_drift=share is not None and share >= 0.5,
        performance=perf,
        metrics={"rows": 1000.0, "drift_share": float("nan") if share is None else share},
        complete=kw.get("complete", True),
    )


def binary_windows() -> list[WindowReport]:
    prediction = numeric("prediction", 0.3456789, True, test=("psi", "distance", 0.1))
    windows = []
    for index in range(3):
        latest = index == 2
        features = [
            numeric("age", 0.0001234 if latest else 0.2, latest),
            numeric("income", 0.5123456, False),
            categorical("plan", 0.0012345 if latest else 0.3, latest),
            categorical("region", 0.8765432, False, test=("jensenshannon", "distance", 0.1)),
        ]
        windows.append(
            window(
                index, features, classification_perf(index, slices=latest), prediction=prediction
            )
        )
    return windows


def alert_event(**kw: Any) -> StoredEvent:
    event = {
        "model": "churn", "arm": "stable", "version": "3", "rule": "dataset-drift",
        "metric": "dataset_drift", "severity": "critical", "state": "raised", "value": 1.0,
        "threshold": 0.5, "direction": "above", "ts": T0 + 3 * HOUR, "window": 2,
        "window_start": T0 + 2 * HOUR, "window_end": T0 + 3 * HOUR - 1, "first_window": 1,
        "first_window_start": T0 + HOUR, "windows": 2, "rows": 1000, "labelled_rows": 400,
        "streak_rows": 2000, "message": DRIFT_MESSAGE,
        "evidence": {"drifted": "age, plan", "drift_share": 0.5},
    }  # fmt: skip
    return StoredEvent(id=1, created_at=T0 + 3 * HOUR, event=AlertEvent(**{**event, **kw}))


def report_of(windows: list[WindowReport], **kw: Any) -> MonitorReport:
    return MonitorReport(
        project="demo",
        model=kw.get("model", "churn"),
        created_at="2024-05-01T13:05:00+00:00",
        window="1000 rows",
        windows=windows,
        alerts=kw.get("alerts", []),
        active_alerts=kw.get("active_alerts", []),
        errors=kw.get("errors", []),
        drift_share_threshold=0.5 if kw.get("threshold", True) else None,
    )


def raised_alert(**kw: Any) -> AlertState:
    state = {
        "model": "churn", "arm": "stable", "rule": "dataset-drift", "metric": "dataset_drift",
        "status": "raised", "raised_at": T0 + 3 * HOUR, "last_value": 1.0, "version": "3",
    }  # fmt: skip
    return AlertState(**{**state, **kw})


def binary_report() -> MonitorReport:
    return report_of(binary_windows(), alerts=[alert_event()], active_alerts=[raised_alert()])


# --- the normal report ------------------------------------------------------------------


def test_binary_report_shows_every_part() -> None:
    page = render_html(binary_report())
    parsed = parse(page)
    seen = " ".join("".join(parsed.text).split())
    assert_no_missing_markers(page)
    for name in ("age", "income", "plan", "region", "prediction"):
        assert f'<td class="name">{name}</td>' in page
    # statistics of the latest window, 4 significant digits
    for statistic in ("0.0001234", "0.5123", "0.001234", "0.8765", "0.3457"):
        assert f'<td class="num">{statistic}</td>' in page
    assert DRIFT_MESSAGE in seen
    assert 'class="banner critical"' in page
    assert "alerting: 1 active alert (critical)" in seen
    assert "2024-05-01 12:00:00 – 12:59:59 UTC" in seen  # latest window, human readable
    assert "Dataset drift: drift share 50% (2 of 4 tested features), threshold 50%." in seen
    assert page.count("<svg") >= 5 + 2 + 1  # 5 histograms, 2 metric charts, drift share
    # realized (solid), estimated (dashed) and the holdout reference line all drawn
    assert '<path class="realized"' in page
    assert '<path class="estimated"' in page
    assert '<line class="reference"' in page
    assert '<line class="threshold"' in page


def test_features_are_sorted_drifted_first_then_by_statistic() -> None:
    page = render_html(binary_report())
    table = page.split("<h3>Features")[1].split("<h3>Prediction")[0]
    order = re.findall(r'<td class="name">([^<]+)</td>', table)
    # age and plan drifted (age's p-value is smaller); then region (distance 0.88 vs 0.1)
    # is further past its threshold than income (p 0.51)
    assert order == ["age", "plan", "region", "income"]


def test_performance_table_is_newest_first_with_dashes_for_missing_labels() -> None:
    page = render_html(binary_report())
    table = page.split('<table class="performance">')[1].split("</table>")[0]
    windows = re.findall(r"<tr><td>(#\d+)</td>", table)
    assert windows == ["#2", "#1", "#0"]
    oldest = table.split("<tr><td>#0</td>")[1].split("</tr>")[0]
    # window 0: no labels -> realized blank, estimate and reference still shown
    assert re.findall(r'<td class="num">([^<]*)</td>', oldest) == [
        "1,000", "0", "—", "0.7987", "0.8345", "—", "0.7612", "0.7801",
    ]  # fmt: skip
    assert "not enough data: no labels yet" in oldest


def test_slices_are_listed_worst_first() -> None:
    page = render_html(binary_report())
    slices = page.split('<table class="slices">')[1]
    assert slices.index("basic") < slices.index("pro")
    assert '<td class="num">0.7011</td>' in slices


def test_the_filling_window_is_shown_apart_and_never_in_the_trends() -> None:
    windows = binary_windows()
    filling = window(
        3, [numeric("age", 0.9, True)], classification_perf(3), rows=53, complete=False
    )
    page = render_html(report_of([*windows, filling]))
    parse(page)
    assert_no_missing_markers(page)
    block = page.split('<div class="box filling">')[1].split("</div>")[0]
    assert "Window #3 is filling: 53 of 1,000 rows so far" in block
    assert "<dt>Drift share</dt><dd>100%</dd>" in block  # its own numbers, in its block
    assert "<dt>ROC AUC</dt><dd>realized 0.8123 · estimated 0.7987</dd>" in block
    assert "Features — window #2" in page
    trends = page.split("<h3>Performance over time</h3>")[1].split("<h3>Slices")[0]
    assert "window #3" not in trends and "<td>#3</td>" not in trends
    assert "window #2" in trends  # the complete windows are all there
    assert trends.count('<circle class="share"') == 3


def test_a_filling_window_alone_is_in_the_tables_but_no_trend() -> None:
    only = window(0, [numeric("age", 0.5, False)], classification_perf(1), rows=53,
                  complete=False)  # fmt: skip
    page = render_html(report_of([only]))
    parse(page)
    assert "Window #0 is filling: 53 of 1,000 rows so far" in page
    assert "No window is complete yet, so the tables below show this one" in page
    assert "No complete window yet: the trends start with the first one." in page
    assert "No window has a drift share yet." in page


def test_the_status_comes_from_the_active_alerts() -> None:
    states = [
        raised_alert(),  # critical, from its event
        raised_alert(rule="missing-values", metric="missing_increase.age", severity="warning"),
        raised_alert(rule="feature-drift", metric="drift.age"),  # no event: warning
    ]
    page = render_html(report_of(binary_windows(), alerts=[alert_event()], active_alerts=states))
    seen = " ".join("".join(parse(page).text).split())
    assert '<span class="badge critical">alerting: 3 active alerts (1 critical)</span>' in page
    assert "<dt>Status</dt><dd>alerting: 3 active alerts (1 critical)</dd>" in page
    assert "<dt>Status</dt><dd>ok</dd>" not in page  # the window's data status is apart
    assert "<dt>Window status</dt><dd>ok</dd>" in page
    assert seen.count("alerting: 3 active alerts (1 critical)") == 3  # badge, facts, banner
    warning = render_html(report_of(binary_windows(), active_alerts=states[1:]))
    assert '<span class="badge warning">warning: 2 active alerts</span>' in warning
    # the state's own severity counts even when its raised event is no longer listed
    critical = render_html(report_of(binary_windows(), active_alerts=[
        raised_alert(severity="critical")]))  # fmt: skip
    assert '<span class="badge critical">alerting: 1 active alert (critical)</span>' in critical
    quiet = render_html(report_of(binary_windows()))
    assert '<span class="badge ok">ok: no alert raised</span>' in quiet
    assert 'class="banner' not in quiet


def test_an_active_alert_shows_the_value_that_raised_it_beside_the_latest() -> None:
    state = raised_alert(metric="drift_share", raised_value=0.71, raised_window=1,
                         last_value=0.0, last_window=2)  # fmt: skip
    page = render_html(report_of(binary_windows(), active_alerts=[state]))
    row = page.split('<table class="active">')[1].split("</table>")[0]
    assert '<td class="num">0.71 in window #1</td><td class="num">0 in window #2</td>' in row
    old = render_html(report_of(binary_windows(), active_alerts=[raised_alert()]))
    assert '<td class="num">—</td><td class="num">drifted</td>' in old  # stored before: unknown


def test_a_drift_flag_reads_drifted_not_one() -> None:
    state = raised_alert(metric="drift.age", raised_value=1.0, raised_window=4,
                         last_value=0.0, last_window=5)  # fmt: skip
    page = render_html(report_of(binary_windows(), active_alerts=[state]))
    row = page.split('<table class="active">')[1].split("</table>")[0]
    assert "drifted in window #4" in row and "not drifted in window #5" in row


def test_the_drift_share_says_what_it_is_a_share_of() -> None:
    reason = "not enough data: 3 rows, the test needs 30"
    untested = FeatureReport(
        "x", "numeric", ColumnDrift("x", "ks", "p_value", 0.05, None, False,
                                    "not_enough_data", reason), 0.0, 0.0,
    )  # fmt: skip
    features = [*binary_windows()[2].features, untested]
    latest = replace(window(2, features, classification_perf(2)), drift_share=2 / 7,
                     monitored_features=7, untested_features=["x"])  # fmt: skip
    seen = " ".join("".join(parse(render_html(report_of([latest]))).text).split())
    assert (
        "drift share 28.6% (2 of 7 monitored features; 1 not tested: x — not enough data), "
        "threshold 50%." in seen
    )
    older = window(2, features, classification_perf(2))  # no denominator recorded
    seen = " ".join("".join(parse(render_html(report_of([older]))).text).split())
    assert "(2 of 4 tested features; 1 more not tested: x — not enough data)" in seen


# --- edge cases -----------------------------------------------------------------------


def test_zero_windows_says_why() -> None:
    page = render_html(report_of([]))
    parse(page)
    assert_no_missing_markers(page)
    assert "No windows yet: the ledger has fewer than 1,000 predictions for churn." in page
    with_min = render_html(replace(report_of([]), window="1h", min_rows=100))
    assert "fewer than 100 predictions for churn" in with_min


def test_zero_windows_still_shows_alerts_and_errors() -> None:
    active = raised_alert(raised_at=T0 + 3 * HOUR)  # 2024-05-01 13:00:00 UTC
    error = "version 2 has no reference profile; retrain it to monitor drift"
    page = render_html(
        report_of([], alerts=[alert_event()], active_alerts=[active], errors=[error])
    )
    parse(page)
    assert_no_missing_markers(page)
    assert "<h2>Alerts</h2>" in page
    assert 'class="banner critical"' in page
    assert '<td class="nowrap">2024-05-01 13:00:00 UTC</td>' in page  # raised at
    assert escape(DRIFT_MESSAGE) in page
    assert f"<li>{error}</li>" in page


def test_not_enough_data_window_with_no_features() -> None:
    reason = "not enough data: 12 rows, windows need 100"
    perf = PerformanceReport(0, {}, {}, {"roc_auc": 0.83}, status="not_enough_data", reason=reason)
    page = render_html(
        report_of([window(0, [], perf, rows=12, status="not_enough_data", reason=reason)])
    )
    parse(page)
    assert_no_missing_markers(page)
    assert f"No drift share: {reason}" in page
    assert f"No feature results in this window: {reason}" in page
    assert "No prediction distribution in this window." in page
    assert "No window has a drift share yet." in page
    assert 'class="badge muted">not enough data<' in page


def test_feature_that_could_not_be_tested_shows_its_reason() -> None:
    reason = "not enough data: 3 rows, the test needs 30"
    drift = ColumnDrift("score", "ks", "p_value", 0.05, None, False, "not_enough_data", reason)
    feature = FeatureReport("score", "numeric", drift, None, 0.1, histogram=None)
    page = render_html(report_of([window(0, [feature], classification_perf(1))]))
    parse(page)
    assert_no_missing_markers(page)
    row = page.split('<td class="name">score</td>')[1].split("</tr>")[0]
    assert f'<td class="reason">{reason}</td>' in row
    assert re.findall(r'<td class="num">([^<]*)</td>', row)[:2] == ["—", "0.05"]
    assert '<span class="muted">—</span>' in row  # no histogram: no chart


def test_regression_without_estimate() -> None:
    perfs = [
        PerformanceReport(300, {"rmse": 12.5, "mae": 9.25, "r2": 0.61}, {},
                          {"rmse": 11.0, "mae": 8.5, "r2": 0.66})
        for _ in range(2)
    ]  # fmt: skip
    windows = [window(i, [numeric("sqft", 0.4, False)], perfs[i]) for i in range(2)]
    page = render_html(report_of(windows))
    parse(page)
    assert_no_missing_markers(page)
    assert "<h4>RMSE</h4>" in page
    assert "No estimated performance" in page
    assert '<path class="estimated"' not in page
    assert '<path class="realized"' in page


def test_names_are_escaped_and_long_labels_truncated_with_a_tooltip() -> None:
    hostile = "<script>alert('x')</script> & co"
    long_label = "a very long category name that would not fit in a chart & more"
    features = [
        categorical(hostile, 0.01, True, labels=[long_label, "x&y", "(other)"]),
        numeric("ratio & <b>", 0.5, False),
    ]
    report = report_of(
        [window(0, features, classification_perf(1), model="m<i>")],
        model="m<i>",
        alerts=[alert_event(message="drift in <script>alert(1)</script>", model="m<i>")],
        errors=["version 2 has no reference profile; <retrain> it"],
    )
    page = render_html(report)
    parsed = parse(page)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co" in page
    assert "ratio &amp; &lt;b&gt;" in page
    assert "x&amp;y" in page
    assert "m&lt;i&gt; — monitoring report" in page
    assert "&lt;retrain&gt;" in page
    assert "a very long categ…" in page  # the chart label is cut ...
    assert any(long_label in title for title in parsed.titles)  # ... the tooltip is whole


def test_many_features_stay_readable() -> None:
    features = [numeric(f"f{n:03d}", 0.5 + n / 1000, False) for n in range(300)]
    features += [numeric("drifted_a", 0.001, True), numeric("drifted_b", 0.0001, True)]
    page = render_html(report_of([window(0, features, classification_perf(1))]))
    parse(page)
    table = page.split("<h3>Features")[1]
    names = re.findall(r'<td class="name">([^<]+)</td>', table)
    assert names[:3] == ["drifted_b", "drifted_a", "f000"]
    assert len(names) == 302  # every feature listed ...
    assert "277 more features, none drifted" in page  # ... most of them folded away
    assert page.count("<svg") < 110  # charts capped


def test_many_categories_fold_into_one_bar() -> None:
    labels = [f"cat{n}" for n in range(30)]
    page = render_html(report_of([window(0, [categorical("c", 0.5, False, labels=labels)],
                                         classification_perf(1))]))  # fmt: skip
    chart = page.split('<td class="name">c</td>')[1].split("</svg>")[0]
    assert chart.count('<rect class="cur"') == 12
    assert "(19 more)" in chart


def test_alerts_go_to_their_own_version_and_arm() -> None:
    stable = binary_windows()
    canary = [
        window(0, [numeric("age", 0.5, False)], classification_perf(1), arm="canary", version="4")
    ]
    warning = alert_event(arm="canary", version="4", severity="warning", rule="missing-values",
                          message="missing values in age rose to 30%")  # fmt: skip
    orphan = alert_event(arm="shadow", version="1", message="from a retired arm")
    page = render_html(report_of([*stable, *canary], alerts=[alert_event(), warning, orphan]))
    parse(page)
    assert "<nav><h2>Versions and arms" in page
    groups = page.split('<section class="group"')
    assert len(groups) == 3
    head, first, second = groups
    assert "version 4 · arm canary" in first and "missing values in age" in first
    assert escape(DRIFT_MESSAGE) not in first
    assert "version 3 · arm stable" in second and escape(DRIFT_MESSAGE) in second
    assert "from a retired arm" in head  # matched no group: shown above them


def test_real_alert_types_and_a_window_stored_twice() -> None:
    event = AlertEvent(
        model="churn", arm="stable", version="3", rule="missing-values",
        metric="missing_increase.age", severity="warning", state="raised", value=0.3,
        threshold=0.1, direction="above", ts=T0 + 3 * HOUR, window=2,
        window_start=T0 + 2 * HOUR, window_end=T0 + 3 * HOUR - 1, first_window=1,
        first_window_start=T0 + HOUR, windows=2, rows=1000, labelled_rows=400,
        streak_rows=2000, evidence={"missing_rate": 0.31, "nested": {"a": 1}},
        message="missing values in age rose by 30 points",
    )  # fmt: skip
    raised = AlertState(
        "churn",
        "stable",
        "missing-values",
        "missing_increase.age",
        status="raised",
        raised_at=T0 + 3 * HOUR,
        last_value=0.3,
        version="3",
    )
    cleared = AlertState("churn", "stable", "dataset-drift", "dataset_drift", status="ok")
    windows = binary_windows()
    stale = window(2, [numeric("stale_feature", 0.5, False)], classification_perf(2))
    report = report_of([stale, *windows], alerts=[StoredEvent(7, T0, event)],
                       active_alerts=[raised, cleared])  # fmt: skip
    page = render_html(report)
    parse(page)
    assert_no_missing_markers(page)
    assert page.count('class="banner ') == 1  # the "ok" state is no banner
    assert 'class="banner warning"' in page
    assert "missing values in age rose by 30 points" in page
    assert '<td class="num">#2</td><td class="num">0.3 (above 0.1)</td>' in page
    assert "missing_rate=0.31" in page and "nested" not in page
    assert "stale_feature" not in page  # the later copy of window #2 wins
    assert "<dd>3 (#0–#2)</dd>" in page


# --- files ---------------------------------------------------------------------------


def test_write_report_writes_both_files_and_the_json_round_trips(tmp_path: Path) -> None:
    report = binary_report()
    json_path, html_path = write_report(report, tmp_path / "reports" / "new", stem="run-1")
    assert json_path == tmp_path / "reports" / "new" / "run-1.json"
    assert html_path.name == "run-1.html"
    assert json.loads(json_path.read_text(encoding="utf-8")) == report.to_dict()
    assert html_path.read_text(encoding="utf-8") == render_html(report)
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["run-1.html", "run-1.json"]


def test_write_report_turns_stray_nan_into_null(tmp_path: Path) -> None:
    report = replace(report_of([]), active_alerts=[raised_alert(last_value=float("nan"))])
    json_path, html_path = write_report(report, tmp_path)
    written = json.loads(json_path.read_text(encoding="utf-8"))
    assert written["active_alerts"][0]["last_value"] is None
    assert html_path.name == "monitor.html"
