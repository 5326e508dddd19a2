"""Hostile clients against a real server (issue 12): one poisoned label must not break the
ledger for anyone else, in durable and in async mode."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from tests.integration.serving import Project, running

pytestmark = pytest.mark.integration

POISON = {"request_id": "r-1", "row": 9223372036854775808, "label": 1}  # 2**63


@pytest.mark.parametrize("mode", ["durable", "async"])
def test_a_poisoned_label_breaks_nothing_for_innocent_clients(
    served_project: Project, mode: str
) -> None:
    record = served_project.records(1)[0]
    with running(served_project, f"poison-{mode}", LOOPML_SERVE__LEDGER__MODE=mode) as server:
        statuses: list[int] = []
        acknowledged: list[str] = []
        poison_answers: list[int] = []
        lock = threading.Lock()

        def innocent(client: int) -> None:
            for i in range(25):
                request_id = f"c{client}-{i}"
                status, _ = server.post_json(
                    "/predict", {"records": [record], "request_id": request_id}
                )
                with lock:
                    statuses.append(status)
                    if status == 200:
                        acknowledged.append(request_id)

        def attacker() -> None:
            for _ in range(5):
                status, body = server.post_feedback(POISON)
                poison_answers.append(status)
                assert "row" in json.dumps(body)

        threads = [threading.Thread(target=innocent, args=(c,)) for c in range(6)]
        threads.append(threading.Thread(target=attacker))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(poison_answers) == {422}, poison_answers  # refused at the door
        assert statuses == [200] * 150, f"innocent requests refused: {sorted(set(statuses))}"
        status, _ = server.post_json("/predict", {"records": [record], "request_id": "after"})
        assert status == 200
        assert server.stop() == 0
        stored = {r for r, _ in server.ledger_ids()}
        assert set(acknowledged) | {"after"} <= stored  # nothing acknowledged was lost
        assert len(acknowledged) == 150


def test_the_ledger_itself_refuses_a_poisoned_row_without_holding_its_lock(
    served_project: Project,
) -> None:
    """Below the door's check: a value SQLite cannot hold raises inside the commit; the
    transaction is rolled back and the next writer gets the lock."""
    from loopml.ledger.backend import FeedbackOp
    from loopml.ledger.records import Feedback
    from loopml.ledger.sqlite import SqliteBackend

    with running(served_project, "poison-direct") as server:
        backend = SqliteBackend(server.ledger_path)
        with pytest.raises(OverflowError):
            backend.commit([FeedbackOp([Feedback("r-1", 2**63, "1", 0.0)])])
        record = served_project.records(1)[0]
        status, _ = server.post_json("/predict", {"records": [record], "request_id": "next"})
        assert status == 200
        backend.close()
        with sqlite3.connect(server.ledger_path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM predictions").fetchone() == (1,)


def test_a_feedback_batch_over_the_row_limit_is_413_not_a_retry(served_project: Project) -> None:
    """Problem 7: a batch that can never fit is a permanent 413 naming the limit, never
    503 + Retry-After (which a client would retry forever); one that fits is recorded."""
    records = served_project.records(20)
    with running(served_project, "feedback-limit", LOOPML_SERVE__MAX_ROWS="20") as server:
        status, _ = server.post_json("/predict", {"records": records, "request_id": "lim-1"})
        assert status == 200
        labels = [{"request_id": "lim-1", "row": n, "label": 1} for n in range(21)]
        status, headers, body = server.request(
            "POST", "/feedback", json.dumps(labels).encode(),
            {"content-type": "application/json", **server.bearer("feedback")},
        )  # fmt: skip
        answer = json.loads(body)
        assert (status, answer["error"]) == (413, "too_many_rows"), answer
        assert "20" in answer["reason"] and "retry-after" not in {h.lower() for h in headers}
        status, answer = server.post_feedback(labels[:20])
        assert status == 200 and answer["recorded"] == 20, answer
        assert server.stop() == 0
