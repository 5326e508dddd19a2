from __future__ import annotations

import orjson
import pytest

from loopml.errors import ConfigError
from loopml.ledger.records import LedgerRecord
from loopml.monitor.profile import ReferenceProfile, categorical_profile, numeric_profile
from loopml.monitor.windows import Cursor, WindowSpec, cut_windows, decode_window

pytestmark = pytest.mark.unit


def record(i: int, ts: float, features: dict[str, object] | None = None) -> LedgerRecord:
    return LedgerRecord(
        f"r{i:05d}", 0, ts, "m", "1", "champion", None,
        orjson.dumps(features or {"x": float(i), "c": "a"}).decode(),
        orjson.dumps({"label": "1", "proba_0": 0.25, "proba_1": 0.75}).decode(),
        0.1, "1" if i % 2 else None, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "rows", "seconds"),
    [("5000", 5000, None), ("250 rows", 250, None), ("90s", None, 90.0), ("30m", None, 1800.0),
     ("1h", None, 3600.0), ("1.5d", None, 129600.0)],
)  # fmt: skip
def test_window_specs(text: str, rows: int | None, seconds: float | None) -> None:
    spec = WindowSpec.parse(text)
    assert (spec.rows, spec.seconds) == (rows, seconds)


@pytest.mark.parametrize("text", ["", "0", "-5", "1w", "2.5 rows", "soon"])
def test_bad_window_specs_say_how_to_fix_them(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        WindowSpec.parse(text)
    assert "monitor.window" in info.value.fix or "whole" in info.value.headline


def test_count_windows_are_full_and_the_rest_is_still_filling() -> None:
    records = [record(i, 100.0 + i) for i in range(25)]
    windows = list(cut_windows(records, WindowSpec.parse("10"), version="1", arm="champion",
                               first_index=3, now=1e9))  # fmt: skip
    assert [(w.index, w.rows, w.complete) for w in windows] == [
        (3, 10, True),
        (4, 10, True),
        (5, 5, False),
    ]
    assert windows[1].end == Cursor(119.0, "r00019", 0)


def test_time_windows_align_to_the_clock_and_close_when_their_time_is_over() -> None:
    records = [record(i, ts) for i, ts in enumerate([3601.0, 3700.0, 7199.0, 7200.0, 9000.0])]
    spec = WindowSpec.parse("1h")
    windows = list(cut_windows(records, spec, version="1", arm="champion", first_index=0,
                               now=10_000.0))  # fmt: skip
    assert [(w.start_ts, w.end_ts, w.rows, w.complete) for w in windows] == [
        (3600.0, 7200.0, 3, True),
        (7200.0, 10_800.0, 2, False),
    ]
    later = list(cut_windows(records, spec, version="1", arm="champion", first_index=0,
                             now=10_800.0))  # fmt: skip
    assert later[-1].complete


def test_no_records_no_windows() -> None:
    spec = WindowSpec.parse("10")
    assert list(cut_windows([], spec, version="1", arm="a", first_index=0, now=0.0)) == []


def _profile() -> ReferenceProfile:
    return ReferenceProfile(
        model="m", task="binary", target="y", classes=("0", "1"),
        features=(numeric_profile("x", [1.0, 2.0]), categorical_profile("c", ["a", "b"]),
                  numeric_profile("gone", [1.0])),
        prediction=numeric_profile("prediction", [0.5]), label=categorical_profile("y", ["1"]),
        holdout_metrics={}, holdout_rows=1, train_rows=2, points=None,
    )  # fmt: skip


def test_decode_reads_features_outputs_and_labels_and_names_absent_features() -> None:
    records = [
        record(0, 1.0, {"x": 1.5, "c": "__missing__"}),
        record(1, 2.0, {"x": None, "c": "z"}),
    ]
    decoded = decode_window(records, _profile(), ["c"])
    assert decoded.features["x"].tolist()[0] == 1.5 and str(decoded.features["x"][1]) == "nan"
    assert decoded.features["c"].tolist() == [None, "z"]
    assert decoded.absent == ("gone",)
    assert decoded.scores.tolist() == [[0.25, 0.75], [0.25, 0.75]]
    assert decoded.prediction.tolist() == [0.75, 0.75]
    assert decoded.labels == [None, 1]
    assert list(decoded.slices) == ["c"]
