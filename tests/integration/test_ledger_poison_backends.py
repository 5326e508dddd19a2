"""Random poison among good submissions, on both backends and in both serving modes
(issue 12, problem 1): every good submission is committed, no poisoned one is, and nothing
acknowledged is lost.

- *durable*: the server answers once the submission's future is done, so "acknowledged"
  means the future succeeded; every good one must succeed (a poisoned neighbour in the
  same commit group must not fail it);
- *async*: the server answers at once, so every good submission is acknowledged the
  moment it is queued; after a clean close every one of them must be in the database.

The PostgreSQL runs share one schema across Hypothesis examples, so each example writes
under its own request-id prefix and reads back only those.
"""

from __future__ import annotations

import itertools
import sqlite3
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.ledger import Feedback, Ledger, PredictionRow, open_backend

pytestmark = pytest.mark.integration

POISON = 2**63  # one past a 64-bit integer: the database (or its driver) refuses it
KINDS = st.sampled_from(["prediction", "label", "poison-label", "poison-prediction"])
EXAMPLES = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db?busy_timeout_ms=60000"
    return str(request.getfixturevalue("postgres_schema_url"))


def prediction(request_id: str, index: int = 0) -> PredictionRow:
    return PredictionRow(
        request_id, index, 1_715_000_000.0, "feed", "1", "champion", None,
        '{"x": 1}', '{"label": 1}', 0.4,
    )  # fmt: skip


def submit_all(ledger: Ledger, prefix: str, kinds: list[str]) -> list[tuple[str, str, Future[Any]]]:
    """Submit ``kinds`` in order; (kind, request id, future) for each."""
    out: list[tuple[str, str, Future[Any]]] = []
    last = None  # the latest good prediction, for labels to point at
    for n, kind in enumerate(kinds):
        rid = f"{prefix}-{n}"
        if kind == "prediction":
            out.append((kind, rid, ledger.submit([prediction(rid), prediction(rid, 1)])))
            last = rid
        elif kind == "poison-prediction":
            out.append((kind, rid, ledger.submit([prediction(rid), prediction(rid, POISON)])))
        elif kind == "label":
            target = last or rid
            out.append((kind, target, ledger.submit_feedback([Feedback(target, 0, "1", 1.0)])))
        else:
            target = last or rid
            poisoned = Feedback(target, POISON, "1", 1.0)
            out.append((kind, target, ledger.submit_feedback([poisoned])))
    return out


def stored_ids(url: str, prefix: str) -> set[str]:
    sql = "SELECT DISTINCT request_id FROM predictions WHERE request_id LIKE ?"
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///").split("?")[0]
        with sqlite3.connect(path) as conn:
            return {r for (r,) in conn.execute(sql, (f"{prefix}-%",))}
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(sql.replace("?", "%s"), (f"{prefix}-%",))
        return {r for (r,) in rows}


@pytest.mark.parametrize("mode", ["durable", "async"])
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kinds=st.lists(KINDS, min_size=1, max_size=30))
def test_poison_never_costs_a_good_submission(url: str, mode: str, kinds: list[str]) -> None:
    prefix = f"{mode}{next(EXAMPLES)}"
    ledger = Ledger(open_backend(url, Path(".")), queue_size=1_000, batch_rows=64)
    with ledger:
        submitted = submit_all(ledger, prefix, kinds)
        if mode == "durable":
            for kind, _, future in submitted:
                if kind.startswith("poison"):
                    assert future.exception(timeout=60) is not None, "a poison was accepted"
                else:
                    future.result(timeout=60)  # a good submission never fails
    stats = ledger.stats()  # after the close: every submission has been written or failed
    # async: nothing was waited for; the clean close must have committed every good row.
    good = {rid for kind, rid, _ in submitted if kind == "prediction"}
    poisoned = {rid for kind, rid, _ in submitted if kind == "poison-prediction"}
    stored = stored_ids(url, prefix)
    assert good <= stored, f"acknowledged predictions lost: {sorted(good - stored)}"
    assert not (poisoned & stored), "a poisoned submission was half-written"
    # The writer drops the rows of poisoned predictions and nothing else.
    assert stats.failed_rows == 2 * len(poisoned)
