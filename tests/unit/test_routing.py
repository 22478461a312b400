"""Pins the auto-assignment policy: least busy wins, capacity and presence exclude, ties go round-robin
in the given order with wrap-around, nobody free means the conversation stays queued; and who is rung."""

from __future__ import annotations

import pytest

from signaling.domain.routing import Candidate, agents_to_ring, choose_assignee, is_eligible, may_take


def cand(
    agent_id: str,
    load: int = 0,
    *,
    capacity: int = 5,
    online: bool = True,
    in_team: bool = True,
    status: str = "online",
) -> Candidate:
    return Candidate(
        agent_id=agent_id, online=online, in_team=in_team, load=load, capacity=capacity, status=status
    )


def test_least_busy_wins() -> None:
    """The eligible agent with the fewest open conversations gets the next one."""
    cands = [cand("a", 3), cand("b", 1), cand("c", 2)]
    assert choose_assignee(cands, None) == "b"
    assert choose_assignee(cands, "b") == "b"


def test_agent_at_capacity_is_skipped() -> None:
    """load == capacity is full: a busier agent below capacity is chosen instead."""
    cands = [cand("a", 2, capacity=2), cand("b", 4, capacity=5)]
    assert choose_assignee(cands, None) == "b"


def test_zero_capacity_never_assigned() -> None:
    """An agent with capacity 0 opted out of auto-routing."""
    assert choose_assignee([cand("a", 0, capacity=0)], None) is None


@pytest.mark.parametrize(
    "excluded",
    [
        cand("x", 0, status="away"),
        cand("x", 0, status="offline"),
        cand("x", 0, online=False),
        cand("x", 0, in_team=False),
        cand("x", 5, capacity=5),
        cand("x", 0, status="busy"),
    ],
    ids=["away", "offline", "not-connected", "not-in-team", "full", "unknown-status"],
)
def test_ineligible_agents_excluded(excluded: Candidate) -> None:
    """Away, offline, disconnected, outside the team, full or unknown-presence agents never get one,
    even when they are the least busy."""
    assert not is_eligible(excluded)
    assert choose_assignee([excluded, cand("y", 4)], None) == "y"
    assert choose_assignee([excluded], None) is None


def test_nobody_free_returns_none() -> None:
    """No eligible agent: None, so the conversation stays queued."""
    cands = [cand("a", 5, capacity=5), cand("b", 0, status="away"), cand("c", 0, online=False)]
    assert choose_assignee(cands, "a") is None
    assert choose_assignee([], None) is None


def test_ties_go_round_robin_with_wrap_around() -> None:
    """Equal load: the first tied agent strictly after last_assigned in the given order, wrapping."""
    cands = [cand("a", 1), cand("b", 1), cand("c", 1)]
    assert choose_assignee(cands, None) == "a"
    assert choose_assignee(cands, "a") == "b"
    assert choose_assignee(cands, "b") == "c"
    assert choose_assignee(cands, "c") == "a"


def test_round_robin_skips_untied_and_ineligible() -> None:
    """Only tied eligible agents take part in the rotation; last_assigned may be anyone in the list."""
    cands = [cand("a", 1), cand("b", 2), cand("c", 0, status="away"), cand("d", 1), cand("e", 1)]
    assert choose_assignee(cands, "a") == "d"
    assert choose_assignee(cands, "b") == "d"
    assert choose_assignee(cands, "c") == "d"
    assert choose_assignee(cands, "d") == "e"
    assert choose_assignee(cands, "e") == "a"


def test_sole_tied_agent_may_repeat() -> None:
    """When last_assigned is the only least-busy agent, wrapping around reaches it again."""
    cands = [cand("a", 0), cand("b", 3)]
    assert choose_assignee(cands, "a") == "a"


def test_unknown_last_assigned_starts_at_first() -> None:
    """A last_assigned that is not among the candidates (left the team) restarts at the first tied."""
    cands = [cand("a", 2), cand("b", 1), cand("c", 1)]
    assert choose_assignee(cands, "gone") == "b"


def test_rotation_over_a_simulated_stream_is_fair() -> None:
    """Feeding each choice back (load + 1, last_assigned) spreads conversations evenly."""
    loads = {"a": 0, "b": 0, "c": 0}
    last = None
    picks = []
    for _ in range(9):
        choice = choose_assignee([cand(k, v) for k, v in loads.items()], last)
        assert choice is not None
        picks.append(choice)
        loads[choice] += 1
        last = choice
    assert picks == ["a", "b", "c"] * 3


def test_ring_online_team_members() -> None:
    """Every connected team member not offline is rung (away and full included), in order, once."""
    cands = [
        cand("a"),
        cand("b", status="away"),
        cand("c", 5, capacity=5),
        cand("d", status="offline"),
        cand("e", online=False),
        cand("f", in_team=False),
        cand("a"),
    ]
    assert agents_to_ring(cands) == ["a", "b", "c"]
    assert may_take(cands[1]) and not may_take(cands[3])
