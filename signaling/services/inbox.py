"""The inbox: list sections and their counts, search, and a conversation's sync (history since a seq)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from signaling.domain.errors import Forbidden, Invalid
from signaling.domain.models import Conversation, parse_iso
from signaling.services.conversations import ChatSettings
from signaling.services.principal import Principal
from signaling.services.timeline import Timeline
from signaling.storage.base import ConversationQuery

SECTIONS = ("unassigned", "mine", "team", "done")


def encode_cursor(conv: Conversation) -> str:
    raw = f"{conv.updated_at.isoformat()}|{conv.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, conv_id = raw.split("|", 1)
        parsed = parse_iso(stamp)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("bad cursor", field="cursor") from None
    if parsed is None:
        raise Invalid("bad cursor", field="cursor")
    return parsed, conv_id


class InboxService:
    """Read-only views of conversations for agents (sections, counts, search) and customers (their own)."""

    def __init__(self, timeline: Timeline, settings: ChatSettings | None = None) -> None:
        self.timeline = timeline
        self.store = timeline.store
        self.settings = settings or ChatSettings()

    async def sync(self, principal: Principal, conversation_id: str, after_seq: int) -> dict[str, Any]:
        conv = await self.timeline.conversation_for(principal, conversation_id)
        limit = 1000
        messages = await self.store.list_messages(
            conv.id, after_seq=after_seq, include_notes=principal.is_agent, limit=limit + 1
        )
        has_more = len(messages) > limit
        messages = messages[:limit]
        requests = await self.store.list_requests(conv.id)
        wire = await self.timeline.wire(conv)
        if principal.is_customer:
            wire = self.timeline.customer_view(wire)
        return {
            "conversation": wire,
            "messages": [m.to_wire() for m in messages],
            "requests": [r.to_wire() for r in requests],
            "has_more": has_more,
        }

    async def list_section(
        self, principal: Principal, section: str, cursor: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        query = self._section_query(principal, section, limit)
        if cursor:
            query.before = decode_cursor(cursor)
        rows = await self.store.list_conversations(query)
        out = await self.timeline.wire_many(rows)
        if principal.is_customer:
            out = [self.timeline.customer_view(c) for c in out]
        next_cursor = encode_cursor(rows[-1]) if len(rows) == query.limit else None
        return {"conversations": out, "cursor": next_cursor}

    def _section_query(self, principal: Principal, section: str, limit: int | None) -> ConversationQuery:
        """The store query of a list section (a customer has one: their own conversations)."""
        if principal.is_customer:
            assert principal.visitor is not None
            query = ConversationQuery(visitor_id=principal.visitor.id, limit=limit or self.settings.page_size)
        else:
            agent = principal.agent
            assert agent is not None
            if section not in SECTIONS:
                raise Invalid(f"section must be one of {', '.join(SECTIONS)}", field="section")
            team_ids = None if agent.is_admin else list(agent.team_ids)
            query = ConversationQuery(team_ids=team_ids, limit=limit or self.settings.page_size)
            if section == "unassigned":
                query.status, query.assignee_id = "open", None
            elif section == "mine":
                query.status, query.assignee_id, query.team_ids = "open", agent.id, None
            elif section == "team":
                query.status = "open"
            else:
                query.status = "done"
        return query

    async def counts(self, principal: Principal) -> dict[str, dict[str, int]]:
        """Per section: how many conversations and how many unread customer messages (first page)."""
        result: dict[str, dict[str, int]] = {}
        for section in SECTIONS[:3]:
            counted = await self.store.count_conversations(self._section_query(principal, section, 200))
            result[section] = {"count": counted.count, "unread": counted.unread}
        return result

    async def search(self, principal: Principal, q: str) -> list[dict[str, Any]]:
        agent = principal.agent
        if agent is None:
            raise Forbidden("only agents search")
        q = q.strip()
        if len(q) < 2:
            raise Invalid("the query needs at least 2 characters", field="q")
        if agent.is_admin:
            team_ids = [t.id for t in await self.store.list_teams()]
        else:
            team_ids = list(agent.team_ids)
        rows = await self.store.search_conversations(team_ids, q, include_notes=True)
        return await self.timeline.wire_many(rows)


__all__ = ["InboxService", "SECTIONS", "decode_cursor", "encode_cursor"]
