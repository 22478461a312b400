"""The auto-assignment policy: who gets a new conversation, and who is rung for it.

Pure functions over :class:`Candidate` snapshots (one per agent of the target team, in a stable order
chosen by the caller, e.g. by agent id). The caller gathers presence and load from its stores, asks
:func:`choose_assignee`, and then claims the conversation atomically; when the answer is ``None`` the
conversation stays queued until an agent frees up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candidate:
    """What routing needs to know about one agent at one moment."""

    agent_id: str
    online: bool
    """At least one agent socket is connected."""
    in_team: bool
    """The agent is a member of the conversation's team."""
    load: int
    """Open conversations currently assigned to the agent."""
    capacity: int
    """How many open conversations auto-routing may give the agent at once."""
    status: str
    """Presence chosen by the agent: ``online`` / ``away`` / ``offline``."""


def is_eligible(candidate: Candidate) -> bool:
    """Whether auto-routing may give ``candidate`` a conversation now.

    Online (connected), presence ``online`` (not away), member of the team, and below capacity.
    """
    return (
        candidate.online
        and candidate.status == "online"
        and candidate.in_team
        and candidate.load < candidate.capacity
    )


def may_take(candidate: Candidate) -> bool:
    """Whether ``candidate`` should be rung for a new conversation of the team.

    Every connected team member whose presence is not ``offline`` may take it by hand ("Assign to
    me"), ``away`` and full agents included: ringing is not assignment, so capacity does not apply.
    """
    return candidate.online and candidate.in_team and candidate.status != "offline"


def agents_to_ring(candidates: Sequence[Candidate]) -> list[str]:
    """The ids of the candidates :func:`may_take` accepts, in the given order, without duplicates."""
    seen: set[str] = set()
    out: list[str] = []
    for c in candidates:
        if may_take(c) and c.agent_id not in seen:
            seen.add(c.agent_id)
            out.append(c.agent_id)
    return out


def choose_assignee(candidates: Sequence[Candidate], last_assigned: str | None) -> str | None:
    """The agent auto-routing gives the next conversation to, or None when nobody is eligible.

    Among the eligible candidates (:func:`is_eligible`) the least loaded wins. Ties are broken
    round-robin over the given order: the first tied agent strictly after ``last_assigned`` in that
    order, wrapping around to the start (so ``last_assigned`` itself comes again only when it is the
    only tied agent). When ``last_assigned`` is None or not among the candidates, the first tied agent
    in order wins.
    """
    eligible = [(i, c) for i, c in enumerate(candidates) if is_eligible(c)]
    if not eligible:
        return None
    least = min(c.load for _, c in eligible)
    tied = [(i, c) for i, c in eligible if c.load == least]
    start = _position(candidates, last_assigned)
    if start is None:
        return tied[0][1].agent_id
    for i, c in tied:
        if i > start:
            return c.agent_id
    return tied[0][1].agent_id


def _position(candidates: Sequence[Candidate], agent_id: str | None) -> int | None:
    if agent_id is None:
        return None
    for i, c in enumerate(candidates):
        if c.agent_id == agent_id:
            return i
    return None
