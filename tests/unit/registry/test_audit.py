from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.registry.audit import (
    AuditEntry,
    AuditLog,
    champion_stack,
    dangling_intents,
    previous_champion,
)

pytestmark = pytest.mark.unit


def move(action: str, to: str, frm: str | None = None, alias: str = "champion") -> AuditEntry:
    return AuditEntry(
        model="m",
        alias=alias,
        action=action,
        from_version=frm,
        to_version=to,
        reason="r",  # type: ignore[arg-type]
    )


def test_append_and_read_back(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "sub" / "audit.jsonl")
    assert log.entries() == []
    first = move("register", "1")
    log.append(first)
    log.append(move("promote", "2", "1"))
    entries = log.entries("m")
    assert [e.to_version for e in entries] == ["1", "2"]
    assert entries[0] == first
    assert log.entries("other") == []


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(move("register", "1"))
    with log.path.open("a", encoding="utf-8") as handle:
        handle.write('{"model": "m", "alias": "champ')
    assert [e.to_version for e in log.entries()] == ["1"]


def test_rollback_walks_back_the_promotion_history() -> None:
    entries = [move("register", "1"), move("promote", "2", "1"), move("promote", "3", "2")]
    assert previous_champion(entries, "3") == "2"
    entries.append(move("rollback", "2", "3"))
    assert champion_stack(entries) == ["1", "2"]
    assert previous_champion(entries, "2") == "1"
    entries.append(move("rollback", "1", "2"))
    assert previous_champion(entries, "1") is None


def test_challenger_moves_do_not_affect_the_champion_history() -> None:
    entries = [move("register", "1"), move("register", "2", alias="challenger")]
    assert champion_stack(entries) == ["1"]
    assert previous_champion(entries, "1") is None


@given(st.lists(st.sampled_from(["promote", "rollback"]), max_size=30))
def test_rollback_never_returns_the_current_champion(actions: list[str]) -> None:
    entries = [move("register", "1")]
    current, next_version = "1", 2
    for action in actions:
        if action == "promote":
            entries.append(move("promote", str(next_version), current))
            current, next_version = str(next_version), next_version + 1
        else:
            previous = previous_champion(entries, current)
            if previous is None:
                continue
            entries.append(move("rollback", previous, current))
            current = previous
        assert champion_stack(entries)[-1] == current
        assert previous_champion(entries, current) != current


def test_intents_are_not_history(tmp_path: Path) -> None:
    """Only ``done`` entries are moves; an intent (a crash mid-move) is not replayed."""
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(move("register", "1"))
    log.append(replace(move("promote", "2", "1"), phase="intent"))
    assert [e.to_version for e in log.entries("m")] == ["1"]
    assert len(log.records("m")) == 2
    assert champion_stack(log.records("m")) == ["1"]


def test_dangling_intents_are_those_never_closed() -> None:
    finished = replace(move("promote", "2", "1"), phase="intent")
    aborted = replace(move("promote", "3", "1"), phase="intent")
    dangling = replace(move("promote", "4", "1"), phase="intent")
    records = [
        finished,
        replace(finished, phase="done"),
        aborted,
        replace(aborted, phase="aborted"),
        dangling,
    ]
    assert dangling_intents(records) == [dangling]


def test_an_old_log_without_phases_reads_as_done(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(
        '{"action": "register", "actor": "a", "alias": "champion", "forced": false, '
        '"from_version": null, "model": "m", "reason": "r", "time": "t", "to_version": "1"}\n'
    )
    (entry,) = AuditLog(path).entries("m")
    assert entry.phase == "done"
    assert entry.move_id


def test_a_move_closed_twice_counts_once(tmp_path: Path) -> None:
    """Two workers reconciling the same intent at start-up both write its done entry."""
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(move("register", "1"))
    promoted = move("promote", "2", "1")
    log.append(promoted)
    log.append(promoted)
    assert [e.to_version for e in log.entries("m")] == ["1", "2"]
    assert previous_champion(log.entries("m"), "2") == "1"


def test_a_line_written_before_rollouts_still_parses_and_rollout_entries_round_trip(
    tmp_path: Path,
) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    old = (
        '{"action": "promote", "actor": "a@h", "alias": "champion", "forced": false, '
        '"from_version": "1", "model": "m", "move_id": "x", "phase": "done", '
        '"reason": "r", "time": "2026-01-01T00:00:00+00:00", "to_version": "2"}\n'
    )
    log.path.write_text(old, encoding="utf-8")
    rollout = replace(
        move("rollout", "3", "2", alias="challenger"),
        rollout_id="r1", event="advance", evidence={"to": {"status": "running", "stage": 1}},
    )  # fmt: skip
    log.append(rollout)
    first, second = log.entries("m")
    assert (first.to_version, first.rollout_id, first.evidence, first.is_rollout) == (
        "2", None, None, False
    )  # fmt: skip
    assert second == rollout and second.is_rollout
    assert champion_stack(log.entries("m")) == ["2"]  # a rollout's own entry moves nothing
