"""The prediction service without HTTP: a real ONNX runtime of a small fitted pipeline and a
real SQLite ledger in tmp_path. Waiting is never timed: a ledger whose writer has not been
started holds every submission, so what is queued and what is written is decided, not raced.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from loopml.errors import InputError
from loopml.features.pipeline import MISSING
from loopml.ledger import (
    DuplicateRequest,
    FeedbackResult,
    Ledger,
    LedgerFull,
    LedgerQuery,
    LedgerRecord,
)
from loopml.ledger.sqlite import SqliteBackend
from loopml.registry.artifact import build_serving_artifact
from loopml.registry.runtime import Outputs, feature_arrays, load_runtime
from loopml.serve.service import MAX_REQUEST_ID, Deployment, Prediction, PredictionService
from loopml.serve.table import Table
from tests.unit.registry.models import native_scores, package

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Served:
    """Two versions of one binary model (different seeds) and rows to score."""

    v1: Deployment
    v2: Deployment
    holdout: pd.DataFrame


def deploy(folder: Path, version: str, task: str, seed: int) -> tuple[Deployment, pd.DataFrame]:
    pkg, holdout = package("linear", task, seed=seed)  # type: ignore[arg-type]
    build_serving_artifact(pkg, holdout, folder / version)
    return Deployment.of("toy", version, load_runtime(folder / version)), holdout


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    folder = tmp_path_factory.mktemp("binary")
    v1, holdout = deploy(folder, "1", "binary", seed=0)
    v2, _ = deploy(folder, "2", "binary", seed=5)
    return Served(v1, v2, holdout.drop(columns="y"))


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> tuple[Deployment, pd.DataFrame]:
    deployment, holdout = deploy(tmp_path_factory.mktemp("regression"), "1", "regression", 0)
    return deployment, holdout.drop(columns="y")


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as a JSON client sends them (null for a missing value)."""
    return [
        {
            "num": None if math.isnan(num) else float(num),
            "cat": cat if isinstance(cat, str) else None,
        }
        for num, cat in zip(frame["num"], frame["cat"], strict=True)
    ]


def table(frame: pd.DataFrame) -> Table:
    return Table.from_records(records(frame))


def expected(deployment: Deployment, frame: pd.DataFrame) -> Outputs:
    """What the deployment's runtime says about the frame, without the service."""
    return deployment.runtime.predict(feature_arrays(frame, deployment.runtime.contract))


def new_ledger(path: Path, **kwargs: Any) -> Ledger:
    """A ledger that is not started: submissions wait in its queue until ``start``."""
    options = {"queue_size": 1_000, "batch_rows": 100, "retry_after": 2} | kwargs
    return Ledger(SqliteBackend(path / "ledger.db"), **options)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with new_ledger(tmp_path) as started:
        yield started


def recorded(ledger: Ledger) -> list[LedgerRecord]:
    """Every committed row, read on a connection of its own."""
    with ledger.backend.reader() as reader:
        return [r for chunk in reader.chunks(LedgerQuery(), 1_000) for r in chunk]


def durably(service: PredictionService, rows: Table, request_id: str | None = None) -> Prediction:
    """Predict in durable mode and wait for the commit, as the server's event loop does."""

    async def run() -> Prediction:
        prediction = service.predict(rows, request_id, durable=True)
        assert prediction.committed is not None
        await prediction.committed
        return prediction

    return asyncio.run(run())


# --- predictions --------------------------------------------------------------------


def test_predictions_are_the_runtimes_and_need_no_ledger(served: Served) -> None:
    service = PredictionService(served.v1, None)
    prediction = service.predict(table(served.holdout))
    want = expected(served.v1, served.holdout)

    assert prediction.deployment is served.v1 and prediction.n_rows == len(served.holdout)
    assert prediction.outputs.labels == want.labels
    assert {type(v) for v in prediction.outputs.labels} == {int}
    assert np.array_equal(prediction.outputs.probabilities, want.probabilities)
    assert prediction.committed is None and prediction.unseen == {}
    assert served.v1.classes == ("0", "1") and served.v1.task == "binary"


def test_durable_rows_are_committed_before_the_awaitable_resolves(
    served: Served, tmp_path: Path
) -> None:
    ledger = new_ledger(tmp_path, mode="durable")
    service = PredictionService(served.v1, ledger)
    frame = served.holdout
    null_num, null_cat = frame["num"].isna(), frame["cat"].isna()
    rows = pd.concat([frame[null_num & ~null_cat][:1], frame[null_cat & ~null_num][:1],
                      frame[~null_num & ~null_cat][:1]])  # fmt: skip
    assert rows.isna().sum().tolist() == [1, 1]  # one null number, one null category

    async def run() -> Prediction:
        prediction = service.predict(table(rows), "req-1", durable=True)
        assert prediction.committed is not None
        await asyncio.sleep(0)
        assert not prediction.committed.done()  # the writer has not started: nothing written
        assert recorded(ledger) == []
        ledger.start()
        await prediction.committed
        assert len(recorded(ledger)) == 3  # resolved means readable by anyone
        return prediction

    try:
        prediction = asyncio.run(run())
    finally:
        ledger.close()
    found = recorded(ledger)
    assert [(r.request_id, r.row) for r in found] == [("req-1", 0), ("req-1", 1), ("req-1", 2)]
    assert {(r.model, r.version, r.arm) for r in found} == {("toy", "1", "champion")}
    probabilities = prediction.outputs.probabilities
    assert probabilities is not None
    for record, given, label, probs in zip(
        found, records(rows), prediction.outputs.labels, probabilities.tolist(), strict=True
    ):
        features = orjson.loads(record.features)
        assert features["num"] == given["num"]  # a null number is stored as null
        assert features["cat"] == (MISSING if given["cat"] is None else given["cat"])
        assert orjson.loads(record.outputs) == {"label": label, "proba_0": probs[0],
                                                "proba_1": probs[1]}  # fmt: skip
        assert record.latency_ms > 0 and record.label is None


def test_async_rows_are_queued_and_not_waited_for(served: Served, tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path, mode="async")
    service = PredictionService(served.v1, ledger, arm="challenger")
    prediction = service.predict(table(served.holdout.head(4)), "req-a")

    assert prediction.committed is None
    assert ledger.stats().queue_rows == 4 and recorded(ledger) == []  # answered, not written
    ledger.start()
    ledger.close()  # drains the queue
    found = recorded(ledger)
    assert [(r.request_id, r.row, r.arm) for r in found] == [
        ("req-a", i, "challenger") for i in range(4)
    ]
    assert ledger.stats().committed_rows == 4


def test_regression_outputs_values(
    regression: tuple[Deployment, pd.DataFrame], ledger: Ledger
) -> None:
    deployment, frame = regression
    service = PredictionService(deployment, ledger)
    prediction = durably(service, table(frame.head(5)))
    want = expected(deployment, frame.head(5))

    assert prediction.outputs.probabilities is None and prediction.outputs.values is not None
    assert np.array_equal(prediction.outputs.values, want.values)
    outputs = [orjson.loads(r.outputs) for r in recorded(ledger)]
    assert outputs == [{"value": v} for v in want.labels]


# --- request ids --------------------------------------------------------------------


def test_a_given_request_id_is_used_and_recorded(served: Served, ledger: Ledger) -> None:
    service = PredictionService(served.v1, ledger)
    longest = "x" * MAX_REQUEST_ID
    assert durably(service, table(served.holdout.head(2)), longest).request_id == longest
    assert {r.request_id for r in recorded(ledger)} == {longest}


def test_a_request_without_id_gets_a_fresh_one(served: Served, ledger: Ledger) -> None:
    service = PredictionService(served.v1, ledger)
    first = durably(service, table(served.holdout.head(1))).request_id
    second = durably(service, table(served.holdout.head(1))).request_id

    assert first != second
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in (first, second))
    assert sorted(r.request_id for r in recorded(ledger)) == sorted([first, second])


@pytest.mark.parametrize("bad", ["", "x" * (MAX_REQUEST_ID + 1), "tab\there", 42])
def test_a_bad_request_id_is_refused_before_anything_is_queued(
    served: Served, tmp_path: Path, bad: Any
) -> None:
    ledger = new_ledger(tmp_path)
    service = PredictionService(served.v1, ledger)
    with pytest.raises(InputError) as caught:
        service.predict(table(served.holdout.head(1)), bad)
    assert (caught.value.error, caught.value.field) == ("bad_request_id", "request_id")
    assert ledger.stats().queue_rows == 0
    ledger.close()


def test_a_duplicate_request_id_fails_and_keeps_the_first(served: Served, ledger: Ledger) -> None:
    service = PredictionService(served.v1, ledger)
    durably(service, table(served.holdout.head(2)), "same")
    service.swap(served.v2)

    with pytest.raises(DuplicateRequest) as caught:
        durably(service, table(served.holdout.head(3)), "same")
    assert caught.value.status == 409 and caught.value.error == "duplicate_request_id"
    found = recorded(ledger)
    assert [(r.request_id, r.row, r.version) for r in found] == [("same", 0, "1"), ("same", 1, "1")]
    assert ledger.stats().duplicate_rows == 3


# --- feedback -----------------------------------------------------------------------


def test_feedback_is_recorded_and_unknown_ids_are_reported(served: Served, ledger: Ledger) -> None:
    service = PredictionService(served.v1, ledger)
    durably(service, table(served.holdout.head(3)), "r1")
    items = [
        {"request_id": "r1", "row": 0, "label": 1},
        {"request_id": "r1", "row": 2, "label": 0},
        {"request_id": "nobody", "label": 1},
        {"request_id": "r1", "row": 9, "label": 1},
    ]

    async def run() -> FeedbackResult:
        return await service.feedback(items)

    result = asyncio.run(run())
    assert result.recorded == 2 and result.unknown == [("nobody", 0), ("r1", 9)]
    labels = {(r.request_id, r.row): r.label for r in recorded(ledger)}
    # Stored as the class's own name, whatever JSON type the client sent.
    assert labels == {("r1", 0): '"1"', ("r1", 1): None, ("r1", 2): '"0"'}


@pytest.mark.parametrize(
    ("items", "error", "field", "row"),
    [
        ([{"request_id": "r", "label": 7}], "unknown_class", "label", 0),
        ([{"request_id": "r", "label": 1}, {"request_id": "r", "row": 1}], "missing_field",
         "label", 1),
        ([{"request_id": "r", "row": -1, "label": 1}], "invalid_input", "row", 0),
        ([{"request_id": "r", "row": True, "label": 1}], "invalid_input", "row", 0),
        ([{"request_id": "r", "row": 2**63, "label": 1}], "invalid_input", "row", 0),
        ([{"request_id": "r", "label": 10**400}], "unknown_class", "label", 0),
        ([{"request_id": "r", "label": [[[[1]]]]}], "unknown_class", "label", 0),
        (["not an object"], "wrong_type", None, 0),
        ([{"request_id": "", "label": 1}], "bad_request_id", "request_id", None),
        ([{"request_id": "r", "label": 1, "source": 7}], "invalid_input", "source", 0),
        ([{"request_id": "r", "label": 1, "source": "x" * 129}], "invalid_input", "source", 0),
        ([{"request_id": "r", "label": 1, "source": "a\nb"}], "invalid_input", "source", 0),
    ],
)  # fmt: skip
def test_bad_feedback_is_an_input_error_naming_field_and_item(
    served: Served, tmp_path: Path, items: list[Any], error: str, field: str | None, row: int | None
) -> None:
    ledger = new_ledger(tmp_path)
    service = PredictionService(served.v1, ledger)
    with pytest.raises(InputError) as caught:
        service.feedback(items)
    assert (caught.value.error, caught.value.field, caught.value.row) == (error, field, row)
    assert ledger.stats().queue_rows == 0  # one bad label: nothing of the batch is queued
    ledger.close()


def test_regression_feedback_takes_finite_numbers_only(
    regression: tuple[Deployment, pd.DataFrame], ledger: Ledger
) -> None:
    deployment, frame = regression
    service = PredictionService(deployment, ledger)
    durably(service, table(frame.head(1)), "r")
    for bad in ("high", math.nan, math.inf, True, 10**400, [1.0]):
        with pytest.raises(InputError) as caught:
            service.feedback([{"request_id": "r", "label": bad}])
        assert (caught.value.error, caught.value.field) == ("wrong_type", "label")

    async def run() -> FeedbackResult:
        return await service.feedback([{"request_id": "r", "label": 2}])

    assert asyncio.run(run()).recorded == 1
    assert recorded(ledger)[0].label == "2.0"


def test_a_label_is_stored_as_its_class_whatever_json_type_it_came_in(
    served: Served, ledger: Ledger
) -> None:
    service = PredictionService(served.v1, ledger)
    durably(service, table(served.holdout.head(4)), "r")
    spellings = [1, 1.0, "1", True]

    async def run() -> FeedbackResult:
        items = [{"request_id": "r", "row": i, "label": v} for i, v in enumerate(spellings)]
        return await service.feedback(items)

    assert asyncio.run(run()).recorded == 4
    assert {r.label for r in recorded(ledger)} == {'"1"'}


def test_an_error_message_never_repeats_unbounded_input(served: Served, ledger: Ledger) -> None:
    service = PredictionService(served.v1, ledger)
    deep: Any = 1
    for _ in range(5_000):  # deeper than Python's repr can go
        deep = [deep]
    for label in (deep, "x" * 1_000_000, 10**4000, 10**5000):
        with pytest.raises(InputError) as caught:
            service.feedback([{"request_id": "r", "label": label}])
        assert len(str(caught.value)) < 300


def test_more_labels_than_a_request_may_hold_is_413_not_a_retry(
    served: Served, ledger: Ledger
) -> None:
    service = PredictionService(served.v1, ledger, max_rows=3)
    items = [{"request_id": "r", "row": i, "label": 1} for i in range(4)]
    with pytest.raises(InputError) as caught:
        service.feedback(items)
    assert (caught.value.status, caught.value.error) == (413, "too_many_rows")
    assert "at most 3" in str(caught.value)


def test_feedback_without_a_ledger_is_refused(served: Served) -> None:
    service = PredictionService(served.v1, None)
    with pytest.raises(InputError) as caught:
        service.feedback([{"request_id": "r", "label": 1}])
    assert (caught.value.error, caught.value.status) == ("no_ledger", 409)


# --- input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "error", "field", "row"),
    [
        ([{"num": 1.0}], "missing_field", "cat", None),
        ([{"num": 1.0, "cat": "red"}] * 2 + [{"num": "abc", "cat": "red"}], "wrong_type",
         "num", 2),
        ([{"num": 1.0, "cat": "red"}, {"num": 2.0, "cat": 3}], "wrong_type", "cat", 1),
        ([], "empty", None, None),
    ],
)  # fmt: skip
def test_bad_input_is_an_input_error_with_field_and_row(
    served: Served,
    tmp_path: Path,
    rows: list[dict[str, Any]],
    error: str,
    field: str | None,
    row: int | None,
) -> None:
    ledger = new_ledger(tmp_path)
    service = PredictionService(served.v1, ledger)
    with pytest.raises(InputError) as caught:
        service.predict(Table.from_records(rows), durable=False)
    assert (caught.value.error, caught.value.field, caught.value.row) == (error, field, row)
    assert ledger.stats().queue_rows == 0  # a refused request writes nothing
    ledger.close()


def test_unseen_categories_are_served_and_counted(served: Served) -> None:
    service = PredictionService(served.v1, None)
    rows = [{"num": 0.5, "cat": c} for c in ("red", "purple", None, "purple", "teal")]
    prediction = service.predict(Table.from_records(rows))
    assert prediction.n_rows == 5 and len(prediction.outputs.labels) == 5
    assert prediction.unseen == {"cat": 3}
    assert service.predict(Table.from_records(rows[:1] + rows[2:3])).unseen == {}


def test_nulls_where_training_had_none_are_served_imputed_and_counted(tmp_path: Path) -> None:
    pkg, holdout = package("linear", "binary", seed=3, nulls=False)
    assert not any(spec.nullable for spec in pkg.contract.features)
    build_serving_artifact(pkg, holdout, tmp_path / "1")
    runtime = load_runtime(tmp_path / "1")
    assert runtime.format == "onnx"
    frame = holdout.drop(columns="y").head(4).astype(object)
    frame.loc[[0, 2], "num"] = None
    frame.loc[2, "cat"] = None
    service = PredictionService(Deployment.of("toy", "1", runtime), None)
    prediction = service.predict(Table.from_records(frame.to_dict("records")))
    assert prediction.n_rows == 4 and prediction.nulls == {"num": 2, "cat": 1}
    # the pipeline fills them in: the served graph agrees with the native pipeline
    native = native_scores(pkg, frame.astype({"num": float}))
    assert prediction.outputs.probabilities is not None
    np.testing.assert_allclose(prediction.outputs.probabilities, native, atol=1e-5)


def test_unknown_fields_and_the_target_are_served_and_listed(served: Served) -> None:
    service = PredictionService(served.v1, None)
    rows = [{"num": 1.0, "cat": "red", "y": 1, "surprise": "x"}, {"num": 2.0, "cat": "red"}]
    prediction = service.predict(Table.from_records(rows))
    assert prediction.n_rows == 2 and prediction.ignored == ("surprise",)
    assert prediction.nulls == {}


def test_max_rows_bounds_a_request(served: Served) -> None:
    service = PredictionService(served.v1, None, max_rows=3)
    assert service.predict(table(served.holdout.head(3))).n_rows == 3
    with pytest.raises(InputError) as caught:
        service.predict(table(served.holdout.head(4)))
    assert (caught.value.error, caught.value.status) == ("too_many_rows", 413)


@pytest.mark.parametrize("durable", [False, True])
def test_a_full_ledger_queue_refuses_the_request(
    served: Served, tmp_path: Path, durable: bool
) -> None:
    ledger = new_ledger(tmp_path, queue_size=5)
    service = PredictionService(served.v1, ledger)

    async def run() -> None:
        service.predict(table(served.holdout.head(3)), "first", durable=durable)
        with pytest.raises(LedgerFull) as caught:
            service.predict(table(served.holdout.head(3)), "second", durable=durable)
        assert caught.value.retry_after == 2
        assert ledger.stats().queue_rows == 3  # the refused rows were not queued
        ledger.start()
        ledger.close()

    asyncio.run(run())
    assert {r.request_id for r in recorded(ledger)} == {"first"}


# --- lifecycle ------------------------------------------------------------------------


def test_a_draining_service_is_not_ready_but_still_answers(served: Served) -> None:
    service = PredictionService(served.v1, None)
    assert service.ready
    service.draining = True
    assert not service.ready
    assert service.predict(table(served.holdout.head(2))).n_rows == 2


@dataclass(frozen=True)
class Seen:
    client: int
    before_swap: bool  # finished before the swap began
    after_swap: bool  # started after the swap returned
    prediction: Prediction


def test_a_swap_under_load_is_atomic(served: Served, ledger: Ledger) -> None:
    service = PredictionService(served.v1, ledger)
    rows = served.holdout.head(3)
    want = {d.version: expected(d, rows) for d in (served.v1, served.v2)}
    assert not np.allclose(want["1"].probabilities, want["2"].probabilities)
    seen: list[Seen] = []
    errors: list[BaseException] = []
    changed = threading.Condition()
    swap_started, swapped, stop = threading.Event(), threading.Event(), threading.Event()

    def client(index: int) -> None:
        try:
            while not stop.is_set():
                after = swapped.is_set()
                prediction = service.predict(table(rows))
                before = not swap_started.is_set()
                with changed:
                    seen.append(Seen(index, before, after, prediction))
                    changed.notify_all()
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        with changed:
            assert changed.wait_for(lambda: len(seen) >= 40 or stop.is_set(), timeout=120)
        swap_started.set()
        old = service.swap(served.v2)
        swapped.set()
        with changed:
            assert changed.wait_for(
                lambda: sum(s.after_swap for s in seen) >= 40 or stop.is_set(), timeout=120
            )
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert errors == []
    assert old is served.v1 and service.deployment is served.v2
    for s in seen:
        version = s.prediction.deployment.version
        assert not (s.before_swap and version != "1")  # the old version served until the swap
        assert not (s.after_swap and version != "2")  # and the new one from then on
        got = s.prediction.outputs  # the outputs are the reported version's own: no mix
        assert np.array_equal(got.probabilities, want[version].probabilities)
    for index in range(len(threads)):
        versions = [s.prediction.deployment.version for s in seen if s.client == index]
        assert versions == sorted(versions)  # once a client saw version 2, never 1 again
    assert {s.prediction.deployment.version for s in seen} == {"1", "2"}
    ledger.close()
    by_id = {s.prediction.request_id: s.prediction.deployment.version for s in seen}
    found = recorded(ledger)
    assert len(found) == 3 * len(seen)
    assert all(r.version == by_id[r.request_id] for r in found)


def test_a_label_keeps_who_sent_it_in_the_history(served: Served, ledger: Ledger) -> None:
    service = PredictionService(served.v1, ledger)
    durably(service, table(served.holdout.head(1)), "r")

    async def run() -> FeedbackResult:
        item = {"request_id": "r", "label": 1, "source": "review-7"}
        return await service.feedback([item], "feedback", "10.1.2.3")

    assert asyncio.run(run()).recorded == 1
    with ledger.backend.reader() as reader:
        (version,) = [v for chunk in reader.label_history(LedgerQuery(), 10) for v in chunk]
    assert (version.scope, version.client, version.source) == ("feedback", "10.1.2.3", "review-7")
