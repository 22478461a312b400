"""Who is calling: an authenticated agent or customer (visitor)."""

from __future__ import annotations

from dataclasses import dataclass

from signaling.domain.models import Agent, Author, Visitor


@dataclass(slots=True)
class Principal:
    kind: str
    """``agent``, ``customer`` or ``guest`` (a conference participant who joined by link: ``visitor`` holds
    their minted id and name, never a stored visitor)."""
    agent: Agent | None = None
    visitor: Visitor | None = None
    sid: str | None = None
    """The Socket.IO session of the call, when it came over the hub."""
    guest_request_id: str | None = None
    """For a guest: the one conference request the guest may take part in."""

    @property
    def id(self) -> str:
        if self.agent is not None:
            return self.agent.id
        assert self.visitor is not None
        return self.visitor.id

    @property
    def name(self) -> str:
        if self.agent is not None:
            return self.agent.name
        assert self.visitor is not None
        return self.visitor.name or "Visitor"

    @property
    def is_agent(self) -> bool:
        return self.kind == "agent"

    @property
    def is_customer(self) -> bool:
        return self.kind == "customer"

    def author(self) -> Author:
        return Author(kind=self.kind, id=self.id, name=self.name)
