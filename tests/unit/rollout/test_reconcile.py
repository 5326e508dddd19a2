"""``recover``: what a crash between two writes of a rollout change leaves, and the one
consistent way out of it (pure: rows, aliases and intents as values)."""

from __future__ import annotations

from typing import Any

import pytest

from loopml.registry.audit import AuditEntry
from loopml.rollout.plan import RolloutState, Stage
from loopml.rollout.reconcile import Aliases, Recovery, recover, where

pytestmark = pytest.mark.unit

RUNNING = RolloutState(
    "r1", "feed", "1", "2", "canary", (Stage("shadow", 0.0), Stage("traffic", 1.0)), stage=1
)


def intent(event: str, before: RolloutState | None, after: RolloutState) -> AuditEntry:
    evidence: dict[str, Any] = {"from": where(before), "to": where(after)}
    return AuditEntry(
        model="feed", alias="challenger", action="rollout", from_version="1", to_version="2",
        reason="why", phase="intent", rollout_id="r1", event=event, evidence=evidence,
    )  # fmt: skip


def outcome(found: Recovery) -> tuple[str | None, str | None]:
    return found.close, found.finish


@pytest.mark.parametrize(
    ("event", "after", "expected"),
    [
        ("rollback", RUNNING.at(status="rolled_back"), ("done", "rolled_back")),
        ("abort", RUNNING.at(status="aborted"), ("done", "aborted")),
        ("advance", RUNNING.at(stage=2), ("aborted", None)),
        ("pause", RUNNING.at(status="paused"), ("aborted", None)),
    ],
)
def test_a_change_that_never_reached_the_row(
    event: str, after: RolloutState, expected: tuple[str, str | None]
) -> None:
    """Rollback and abort are finished (all traffic back is always safe); the others
    never took effect and are closed as aborted."""
    found = recover(RUNNING, Aliases("1", "2"), [intent(event, RUNNING, after)])
    assert outcome(found) == expected


def test_a_promotion_is_finished_only_once_the_champion_moved() -> None:
    promote = intent("promote", RUNNING, RUNNING.at(status="promoted"))
    assert outcome(recover(RUNNING, Aliases("2", "2"), [promote])) == ("done", "promoted")
    assert outcome(recover(RUNNING, Aliases("1", "2"), [promote])) == ("aborted", None)


def test_a_change_that_reached_the_row_is_completed() -> None:
    ended = RUNNING.at(status="rolled_back")
    found = recover(ended, Aliases("1", None), [intent("rollback", RUNNING, ended)])
    assert outcome(found) == ("done", None) and found.message.startswith("completed")


def test_a_start_that_never_stored_its_row_is_aborted() -> None:
    found = recover(None, Aliases("1", "2"), [intent("start", None, RUNNING.at(stage=0))])
    assert outcome(found) == ("aborted", None) and "never stored" in found.message


def test_an_intent_the_row_has_moved_past_is_superseded_and_older_ones_closed() -> None:
    old = intent("pause", RUNNING, RUNNING.at(status="paused"))
    later = intent("advance", RUNNING.at(stage=0), RUNNING)
    moved_on = RUNNING.at(status="paused", stage=1)
    found = recover(moved_on.at(status="aborted"), Aliases("1", None), [old, later])
    assert outcome(found) == ("aborted", None) and found.stale == (old,)
    assert "superseded" in found.message


@pytest.mark.parametrize(
    ("aliases", "finish"),
    [
        (Aliases("1", "2"), None),
        (Aliases("2", None), "promoted"),
        (Aliases("5", "2"), "aborted"),
        (Aliases("1", None), "aborted"),
        (Aliases("1", "7"), "aborted"),
    ],
)
def test_an_active_rollout_must_agree_with_the_aliases(
    aliases: Aliases, finish: str | None
) -> None:
    found = recover(RUNNING, aliases, [])
    assert found.finish == finish and found.needed == (finish is not None)
    assert not recover(RUNNING.at(status="promoted"), Aliases("2", None), []).needed
