"""The /escalations board: the current escalation of each finding escalated now, the most urgent first,
in bounded memory."""

from __future__ import annotations

from contextlib import suppress

import pytest

from stream.worker.web import EscalationBoard


def escalation(uid: str, priority: str = "P2", score: float = 70.0, state: str = "escalated",
               version: int = 1) -> dict:
    return {"finding_uid": uid, "state": state, "priority": priority, "score": score, "version": version}


def test_the_board_keeps_the_most_urgent_escalations_past_its_limit():
    board = EscalationBoard(limit=3)
    for index, (priority, score) in enumerate([("P3", 50), ("P1", 90), ("P2", 70), ("P3", 48), ("P1", 80)]):
        board.record({"finding_uid": f"f-{index}", "state": "escalated", "priority": priority, "score": score})
    assert [e["finding_uid"] for e in board.top(10)] == ["f-1", "f-4", "f-2"]


def test_a_newer_version_of_a_finding_replaces_the_older_one():
    board = EscalationBoard(limit=3)
    board.record(escalation("f-bucket", "P3", 50))
    board.record(escalation("f-vault", "P2", 70))

    board.record(escalation("f-bucket", "P1", 95, state="updated", version=2))

    assert [(e["finding_uid"], e["version"]) for e in board.top(10)] == [("f-bucket", 2), ("f-vault", 1)]


def test_a_resolved_finding_leaves_the_board_and_frees_its_place():
    board = EscalationBoard(limit=2)
    board.record(escalation("f-bucket", "P1", 90))
    board.record(escalation("f-vault", "P2", 70))

    board.record(escalation("f-bucket", "P1", 90, state="resolved", version=2))
    board.record(escalation("f-db", "P4", 10))
    board.record(escalation("f-never-escalated", state="resolved"))

    assert [e["finding_uid"] for e in board.top(10)] == ["f-vault", "f-db"]


def test_top_gives_at_most_n_by_priority_then_score():
    board = EscalationBoard()
    for n in range(20):
        board.record(escalation(f"f-{n}", "P1" if n % 2 else "P2", float(n)))
    assert [e["finding_uid"] for e in board.top(3)] == ["f-19", "f-17", "f-15"]


@pytest.mark.parametrize("bad", [{}, {"finding_uid": "f-bad"}, {"state": "escalated", "priority": "P1"},
                                 {"finding_uid": "f-bad", "state": "escalated", "priority": "P9", "score": 1.0},
                                 {"finding_uid": "f-bad", "state": "escalated", "priority": "P1", "score": "high"}])
def test_an_event_the_board_cannot_read_is_refused_before_it_changes_the_board(bad):
    board = EscalationBoard(limit=2)
    board.record(escalation("f-bucket", "P1", 90))

    with suppress(KeyError, ValueError):  # raised or not, the worker goes on (the agents' _show logs it)
        board.record(bad)

    assert board.top(10) == [escalation("f-bucket", "P1", 90)]
