"""The fan-out port: how services tell connected clients that something happened.

Services name an :class:`Audience` (a team's agents, one agent's sockets, one visitor's sockets);
the hub maps it to Socket.IO rooms. Notes are only ever sent to agent audiences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Audience:
    kind: str
    """``team`` (every agent socket of a team), ``agent`` (one agent's sockets), ``visitor`` (one
    customer's sockets, every tab)."""
    id: str

    @staticmethod
    def team(team_id: str) -> Audience:
        return Audience("team", team_id)

    @staticmethod
    def agent(agent_id: str) -> Audience:
        return Audience("agent", agent_id)

    @staticmethod
    def visitor(visitor_id: str) -> Audience:
        return Audience("visitor", visitor_id)

    @property
    def is_agent_side(self) -> bool:
        return self.kind in ("team", "agent")


class Fanout(Protocol):
    async def emit(
        self, event: str, payload: dict[str, Any], audiences: list[Audience], skip_sid: str | None = None
    ) -> None:
        """Deliver ``event`` to every socket of every audience (each socket at most once)."""
