from __future__ import annotations

from dataclasses import replace

import pytest

from loopml.registry.audit import AuditEntry
from loopml.registry.reconcile import resolve

pytestmark = pytest.mark.unit

INTENT = AuditEntry(
    model="m",
    alias="champion",
    action="promote",
    from_version="1",
    to_version="2",
    reason="r",
    phase="intent",
)


def test_the_alias_where_the_intent_said_completes_the_move() -> None:
    found = resolve(INTENT, "2")
    assert found.outcome == "complete"
    assert "completed the interrupted promote of m@champion 1 -> 2" in found.message


def test_the_alias_where_it_was_aborts_the_move() -> None:
    assert resolve(INTENT, "1").outcome == "abort"


def test_a_retire_that_never_happened_is_aborted_and_one_that_did_completes() -> None:
    retire = replace(INTENT, action="retire", to_version=None)
    assert resolve(retire, "1").outcome == "abort"
    assert resolve(retire, None).outcome == "complete"


def test_an_alias_elsewhere_is_reported_with_what_to_do() -> None:
    found = resolve(INTENT, "7")
    assert found.outcome == "report"
    assert "left 'champion' at 7" in found.message
    assert "loopml promote VERSION --force" in found.message


def test_a_later_finished_move_supersedes_the_intent() -> None:
    assert resolve(INTENT, "7", superseded=True).outcome == "abort"
