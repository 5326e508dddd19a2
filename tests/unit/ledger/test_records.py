from __future__ import annotations

import pytest

from loopml.errors import InputError, LoopmlError
from loopml.ledger import (
    DuplicateRequest,
    LedgerClosed,
    LedgerError,
    LedgerFull,
    PredictionRow,
)
from loopml.ledger.backend import (
    FeedbackOp,
    PredictionOp,
    prediction_runs,
    where_clause,
)
from loopml.ledger.records import LedgerQuery

pytestmark = pytest.mark.unit


def test_a_duplicate_is_a_409_input_error_naming_the_request_id() -> None:
    error = DuplicateRequest("abc")
    assert isinstance(error, InputError)
    assert error.status == 409
    body = error.to_body()
    assert body["error"] == "duplicate_request_id"
    assert body["field"] == "request_id"
    assert "'abc'" in str(body["reason"])


def test_ledger_full_carries_retry_after_and_every_error_is_actionable() -> None:
    full = LedgerFull(10, 10, 2)
    assert full.retry_after == 2
    for error in (full, LedgerClosed(), LedgerError("x", fix="y")):
        assert isinstance(error, LoopmlError)
        assert error.headline
        assert error.fix


def test_an_unknown_arm_is_refused() -> None:
    with pytest.raises(ValueError, match="canary"):
        PredictionRow("r", 0, 0.0, "m", "1", "canary", None, "{}", "{}", 0.0)


def test_runs_group_consecutive_ops_of_one_kind() -> None:
    ops = [PredictionOp([]), PredictionOp([]), FeedbackOp([]), PredictionOp([])]
    assert list(prediction_runs(ops)) == [(True, [0, 1]), (False, [2]), (True, [3])]
    assert list(prediction_runs([])) == []


def test_where_clause_only_filters_what_is_asked() -> None:
    assert where_clause(LedgerQuery(), "%s") == ("", [])
    sql, params = where_clause(LedgerQuery(since=1.0, until=2.0, version="v"), "%s")
    assert sql == " WHERE p.ts >= %s AND p.ts < %s AND p.version = %s"
    assert params == [1.0, 2.0, "v"]
