from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from loopml.errors import ConfigError, TrackingError, TrainingError
from loopml.train.compare import compare
from loopml.train.evaluate import (
    MISSING,
    Evaluation,
    Interval,
    SliceResult,
    evaluate,
)
from loopml.train.metrics import compute_metrics

pytestmark = pytest.mark.unit


def _binary(n: int, seed: int = 0, positive_rate: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positive_rate).astype(int)
    p = 1 / (1 + np.exp(-(1.5 * (2 * y - 1) + rng.normal(0, 1.5, n))))
    return y, np.column_stack([1 - p, p])


def _run(y: np.ndarray, proba: np.ndarray, **kwargs: object) -> Evaluation:
    args: dict[str, object] = {
        "classes": ["no", "yes"],
        "frame": None,
        "slice_columns": [],
        "bootstrap": 100,
        "seed": 7,
    }
    args.update(kwargs)
    return evaluate("binary", y, proba, **args)  # type: ignore[arg-type]


def _width(iv: Interval) -> float:
    return iv.high - iv.low


def test_point_metrics_and_intervals_contain_them() -> None:
    y, proba = _binary(3000)
    ev = _run(y, proba)
    assert ev.rows == 3000 and ev.classes == ("no", "yes") and ev.task == "binary"
    assert ev.metrics == compute_metrics("binary", y, proba, 2)
    assert set(ev.intervals) == set(ev.metrics)
    for name, value in ev.metrics.items():
        iv = ev.intervals[name]
        assert iv.low <= value <= iv.high, name
        assert iv.low < iv.high, name


def test_intervals_shrink_with_more_rows() -> None:
    small = _run(*_binary(500, seed=1))
    large = _run(*_binary(8000, seed=1))
    for name in ("roc_auc", "log_loss", "accuracy"):
        # Four times the rows * sampling error about halved; allow plenty of noise.
        assert _width(large.intervals[name]) < 0.7 * _width(small.intervals[name]), name


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    y, proba = _binary(400)
    assert _run(y, proba, seed=3).intervals == _run(y, proba, seed=3).intervals
    assert _run(y, proba, seed=3).intervals != _run(y, proba, seed=4).intervals


def test_bootstrap_is_stratified_by_class() -> None:
    # Resamples keep each class's count, so a constant "always no" model has the same
    # accuracy in every resample; an unstratified bootstrap would make it vary.
    y = np.array([1] * 30 + [0] * 270)
    proba = np.column_stack([np.full(300, 0.8), np.full(300, 0.2)])
    ev = _run(y, proba, bootstrap=100)
    assert ev.intervals["accuracy"] == Interval(0.9, 0.9)


def test_auc_interval_is_defined_with_very_few_positives() -> None:
    y, proba = _binary(300, seed=2, positive_rate=0.0)
    y[:2] = 1
    iv = _run(y, proba, bootstrap=50).intervals["roc_auc"]
    assert math.isfinite(iv.low) and math.isfinite(iv.high)


def test_no_bootstrap_means_no_intervals_and_progress_is_reported() -> None:
    y, proba = _binary(100)
    assert _run(y, proba, bootstrap=0).intervals == {}
    calls: list[tuple[int, int]] = []
    _run(y, proba, bootstrap=5, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 5) for i in range(1, 6)]


def test_multiclass_and_regression() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    proba = rng.dirichlet(np.ones(3), 600)
    ev = evaluate(
        "multiclass", y, proba, classes=["a", "b", "c"], frame=None, slice_columns=[],
        bootstrap=50, seed=0,
    )  # fmt: skip
    assert set(ev.intervals) == {"f1_macro", "accuracy", "log_loss"}
    target = rng.normal(size=600)
    ev = evaluate(
        "regression", target, target + rng.normal(0, 0.5, 600), classes=[], frame=None,
        slice_columns=[], bootstrap=50, seed=0,
    )  # fmt: skip
    assert ev.intervals["rmse"].low <= ev.metrics["rmse"] <= ev.intervals["rmse"].high
    assert ev.classes == ()


def test_slices_respect_min_rows_max_count_and_missing() -> None:
    n = 1000
    y, proba = _binary(n, seed=5)
    country = np.array(["US"] * 500 + ["FR"] * 250 + ["DE"] * 150 + [None] * 100, dtype=object)
    device = np.array([f"d{i % 10}" for i in range(n)], dtype=object)
    frame = pd.DataFrame({"country": country, "device": device})
    ev = _run(
        y, proba, frame=frame, slice_columns=["country", "device"], bootstrap=0,
        min_slice_rows=100, max_slices_per_column=3,
    )  # fmt: skip
    by_column = {
        col: [(s.value, s.rows) for s in ev.slices if s.column == col]
        for col in ("country", "device")
    }
    assert by_column["country"] == [("US", 500), ("FR", 250), ("DE", 150)]
    assert len(by_column["device"]) == 3 and all(rows == 100 for _, rows in by_column["device"])

    ev = _run(
        y, proba, frame=frame, slice_columns=["country"], bootstrap=0, min_slice_rows=100,
    )  # fmt: skip
    values = [s.value for s in ev.slices]
    assert values == ["US", "FR", "DE", MISSING]
    missing = ev.slices[-1]
    mask = pd.isna(country)
    assert missing.metrics == compute_metrics("binary", y[mask], proba[mask], 2)

    ev = _run(y, proba, frame=frame, slice_columns=["country"], bootstrap=0, min_slice_rows=200)
    assert [s.value for s in ev.slices] == ["US", "FR"]


def test_slice_on_a_missing_column_is_a_config_error() -> None:
    y, proba = _binary(50)
    with pytest.raises(ConfigError, match="nope"):
        _run(y, proba, frame=pd.DataFrame({"a": range(50)}), slice_columns=["nope"])


def test_non_finite_predictions_are_a_training_error() -> None:
    y, proba = _binary(50)
    proba[3] = np.nan
    with pytest.raises(TrainingError) as info:
        _run(y, proba)
    assert "rows 3" in info.value.detail


def test_round_trip_through_json_keeps_everything() -> None:
    n = 600
    y, proba = _binary(n, seed=9)
    frame = pd.DataFrame({"device": np.where(np.arange(n) % 2 == 0, "ios", None)})
    ev = _run(y, proba, frame=frame, slice_columns=["device"], bootstrap=20, min_slice_rows=10)
    ev = Evaluation(
        ev.task, ev.rows, {**ev.metrics, "pr_auc": math.nan}, ev.intervals, ev.slices, ev.classes
    )
    text = json.dumps(ev.to_dict(), allow_nan=False)  # strict JSON: NaN stored as null
    back = Evaluation.from_dict(json.loads(text))
    assert back.to_dict() == ev.to_dict()
    assert math.isnan(back.metrics["pr_auc"])
    assert back.intervals == ev.intervals and back.slices == ev.slices
    assert back.classes == ("no", "yes") and back.rows == n


@pytest.mark.parametrize("bad", [{}, {"task": "binary"}, {"task": "ranking", "rows": 1}, []])
def test_malformed_stored_evaluation_is_a_tracking_error(bad: object) -> None:
    with pytest.raises(TrackingError):
        Evaluation.from_dict(bad)  # type: ignore[arg-type]


def _ev(
    value: float,
    interval: tuple[float, float] | None = None,
    slices: dict[tuple[str, str], float] | None = None,
    metric: str = "roc_auc",
    task: str = "binary",
) -> Evaluation:
    return Evaluation(
        task=task,  # type: ignore[arg-type]
        rows=1000,
        metrics={metric: value},
        intervals={metric: Interval(*interval)} if interval else {},
        slices=tuple(
            SliceResult(col, val, 300, {metric: v}) for (col, val), v in (slices or {}).items()
        ),
    )


def test_clearly_better_model_beats() -> None:
    result = compare(
        _ev(0.85, (0.84, 0.86)), _ev(0.80, (0.79, 0.81)), "roc_auc", slice_tolerance=0.01
    )
    assert result.beats
    assert result.delta == pytest.approx(0.05)
    assert result.higher_is_better and result.slice_regressions == ()
    assert "excludes" in result.reason


def test_equal_model_does_not_beat() -> None:
    result = compare(
        _ev(0.80, (0.79, 0.81)), _ev(0.80, (0.79, 0.81)), "roc_auc", slice_tolerance=0.01
    )
    assert not result.beats and result.delta == 0.0


def test_better_within_the_interval_does_not_beat() -> None:
    result = compare(_ev(0.805, (0.79, 0.82)), _ev(0.80), "roc_auc", slice_tolerance=0.01)
    assert not result.beats
    assert "not significant" in result.reason


def test_lower_is_better_is_mirrored() -> None:
    def reg(v: float, iv: tuple[float, float]) -> Evaluation:
        return _ev(v, iv, metric="rmse", task="regression")

    assert compare(reg(1.0, (0.95, 1.05)), reg(1.2, (1.15, 1.25)), "rmse", slice_tolerance=0).beats
    assert not compare(
        reg(1.2, (1.15, 1.25)), reg(1.0, (0.95, 1.05)), "rmse", slice_tolerance=0
    ).beats
    assert not compare(reg(1.1, (0.9, 1.3)), reg(1.2, (1.1, 1.3)), "rmse", slice_tolerance=0).beats


def test_without_interval_point_estimates_decide_and_nan_never_beats() -> None:
    assert compare(_ev(0.81), _ev(0.80), "roc_auc", slice_tolerance=0).beats
    assert not compare(_ev(math.nan), _ev(0.80), "roc_auc", slice_tolerance=0).beats
    assert not compare(_ev(0.9), _ev(math.nan), "roc_auc", slice_tolerance=0).beats


def test_slice_regressions_are_reported_worst_first() -> None:
    new = _ev(
        0.85, (0.84, 0.86),
        slices={("country", "FR"): 0.70, ("country", "US"): 0.86, ("device", "ios"): 0.75,
                ("device", "new"): 0.10, ("country", "DE"): math.nan},
    )  # fmt: skip
    old = _ev(
        0.80, (0.79, 0.81),
        slices={("country", "FR"): 0.80, ("country", "US"): 0.80, ("device", "ios"): 0.77,
                ("device", "gone"): 0.99, ("country", "DE"): 0.9},
    )  # fmt: skip
    result = compare(new, old, "roc_auc", slice_tolerance=0.01)
    assert result.beats  # the headline can beat while a slice regresses
    assert [(r.column, r.value) for r in result.slice_regressions] == [
        ("country", "FR"),
        ("device", "ios"),
    ]
    assert result.slice_regressions[0].worse_by == pytest.approx(0.10)
    assert result.regressed_slices[0] == "country=FR 0.8000 -> 0.7000"
    loose = compare(new, old, "roc_auc", slice_tolerance=0.05)
    assert [(r.column, r.value) for r in loose.slice_regressions] == [("country", "FR")]


def test_compare_refuses_unknown_metric_and_mixed_tasks() -> None:
    with pytest.raises(ConfigError, match="no metric 'pr_auc'"):
        compare(_ev(0.8), _ev(0.7), "pr_auc", slice_tolerance=0)
    with pytest.raises(ConfigError, match="regression"):
        compare(_ev(0.8), _ev(0.7, task="regression"), "roc_auc", slice_tolerance=0)
