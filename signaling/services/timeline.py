"""What both conversation and request services need: access checks, audiences, and appending to a
conversation's timeline with the right fan-out (notes to agents only)."""

from __future__ import annotations

import re
from typing import Any

from signaling.domain.errors import NotFound
from signaling.domain.models import Agent, Author, Conversation, IdPool, Message, Visitor, utcnow
from signaling.services.fanout import Audience, Fanout
from signaling.services.principal import Principal
from signaling.storage.base import AccessRule, AppendResult, Store

OWNED_CACHE_SIZE = 50_000
"""Conversations remembered per node as "this visitor's" (oldest entries go first)."""

SYSTEM_AUTHOR = Author(kind="system", id="system", name="")

#: English renderings of system message codes; clients render ``code`` + ``params`` in their language.
SYSTEM_TEXT: dict[str, str] = {
    "conversation.started": "Conversation started",
    "conversation.assigned": "{agent_name} joined the conversation",
    "conversation.redirected_agent": "Conversation redirected to {agent_name}",
    "conversation.redirected_team": "Conversation redirected to team {team_name}",
    "conversation.done": "Conversation resolved",
    "conversation.reopened": "Conversation reopened",
    "request.pending": "{kind_label} requested",
    "request.accepted": "{kind_label} accepted",
    "request.active": "{kind_label} started",
    "request.declined": "{kind_label} declined",
    "request.cancelled": "{kind_label} cancelled",
    "request.expired": "{kind_label} request expired",
    "request.ended": "{kind_label} ended",
}

KIND_LABELS = {
    "cobrowse": "Co-browsing",
    "call": "Call",
    "video": "Video call",
    "desktop": "Desktop share",
    "show_screen": "Screen share",
    "conference": "Conference call",
}

#: A preview shaped like the English text of a system message (only those are looked up in
#: :meth:`Timeline.system_previews`; a customer who typed such a text costs one read, nothing more).
SYSTEM_PREVIEW = re.compile(
    "|".join(
        "(?:" + re.sub(r"\\\{\w+\\\}", ".+", re.escape(t)) + r")(?: after \d+ min \d+ s)?"
        for t in SYSTEM_TEXT.values()
    )
)
#: How many seqs back :meth:`Timeline.system_previews` looks for the message a preview was made from.
SYSTEM_PREVIEW_LOOKBACK = 20


def render_system(code: str, params: dict[str, Any]) -> str:
    template = SYSTEM_TEXT.get(code, code)
    try:
        text = template.format(**params)
    except (KeyError, IndexError):
        text = template
    if code == "request.ended" and isinstance(params.get("duration_s"), int | float):
        secs = int(params["duration_s"])
        text += f" after {secs // 60} min {secs % 60} s"
    return text


class Timeline:
    """Conversation access and appends, shared by the services."""

    def __init__(self, store: Store, fanout: Fanout) -> None:
        self.store = store
        self.fanout = fanout
        self._owned: dict[str, Conversation] = {}
        """Conversations a customer was let into, by id (see :meth:`conversation_to_append`)."""
        self._last_wire: tuple[Message, dict[str, Any]] | None = None
        """The message :meth:`publish` built a wire shape for last, and that shape (see :meth:`message_wire`)."""
        self.ids = IdPool()
        """Ids of new messages (one ``os.urandom`` read per few hundred ids)."""
        self._rules: dict[tuple[str, bool, tuple[str, ...]], AccessRule] = {}
        """:meth:`append_rule` results, by agent id, admin flag and teams."""
        self._audiences: dict[tuple[str, str | None, str, bool], list[Audience]] = {}
        """:meth:`publish`'s audiences, by team, assignee, visitor and whether the message is a note."""

    # -- access ---------------------------------------------------------------------------------------
    @staticmethod
    def may_access(principal: Principal, conv: Conversation) -> bool:
        if principal.agent is not None:
            agent = principal.agent
            return agent.is_admin or conv.team_id in agent.team_ids or conv.assignee_id == agent.id
        return principal.visitor is not None and conv.visitor_id == principal.visitor.id

    async def conversation_for(self, principal: Principal, conversation_id: str) -> Conversation:
        """The conversation if the caller may see it; ``not_found`` otherwise (existence is not leaked)."""
        conv = await self.store.get_conversation(conversation_id)
        if conv is None or not self.may_access(principal, conv):
            raise NotFound("no such conversation")
        return conv

    async def conversation_to_append(self, principal: Principal, conversation_id: str) -> Conversation:
        """:meth:`conversation_for`, for a caller about to append: a customer's own conversation seen before
        is recognised without a store read (a conversation's visitor never changes, and the append itself
        fails with ``not_found`` if the conversation is gone). The conversation returned may then be stale
        in its other fields (status, team, assignee, counters): use only ``id`` and ``visitor_id``, and take
        the rest from the append's result. Agents always get a fresh read (their access may change)."""
        visitor = principal.visitor
        if visitor is None or principal.agent is not None:
            return await self.conversation_for(principal, conversation_id)
        known = self._owned.get(conversation_id)
        if known is not None and known.visitor_id == visitor.id:
            return known
        conv = await self.conversation_for(principal, conversation_id)
        owned = self._owned
        if len(owned) >= OWNED_CACHE_SIZE:
            del owned[next(iter(owned))]
        owned[conv.id] = conv
        return conv

    # -- audiences ------------------------------------------------------------------------------------
    @staticmethod
    def agents_of(conv: Conversation) -> list[Audience]:
        audiences = [Audience.team(conv.team_id)]
        if conv.assignee_id:
            audiences.append(Audience.agent(conv.assignee_id))
        return audiences

    @classmethod
    def everyone(cls, conv: Conversation) -> list[Audience]:
        return [*cls.agents_of(conv), Audience.visitor(conv.visitor_id)]

    # -- wire shapes ----------------------------------------------------------------------------------
    async def wire(self, conv: Conversation, visitor: Visitor | None = None) -> dict[str, Any]:
        if visitor is None:
            visitor = await self.store.get_visitor(conv.visitor_id)
        out = conv.to_wire(visitor)
        if conv.assignee_id:
            agent = await self.store.get_agent(conv.assignee_id)
            out["assignee"] = agent.public() if agent else None
        else:
            out["assignee"] = None
        out["last_message_system"] = (await self.system_previews([conv])).get(conv.id)
        return out

    async def system_previews(self, convs: list[Conversation]) -> dict[str, dict[str, Any]]:
        """``{code, params}`` of the system message each conversation's ``last_message_preview`` was made
        from (the preview holds its English text), by conversation id, so that agents render it in their
        language; conversations whose preview is not a system message are left out. Read only for
        previews shaped like a system text, looking back at most :data:`SYSTEM_PREVIEW_LOOKBACK` seqs."""
        out: dict[str, dict[str, Any]] = {}
        for conv in convs:
            if not conv.last_message_preview or not SYSTEM_PREVIEW.fullmatch(conv.last_message_preview):
                continue
            recent = await self.store.list_messages(
                conv.id,
                after_seq=max(0, conv.last_seq - SYSTEM_PREVIEW_LOOKBACK),
                include_notes=False,
                limit=SYSTEM_PREVIEW_LOOKBACK,
            )
            last = recent[-1] if recent else None
            if last is not None and last.kind == "system" and last.data.get("code"):
                out[conv.id] = {"code": last.data["code"], "params": dict(last.data.get("params") or {})}
        return out

    async def wire_many(self, convs: list[Conversation]) -> list[dict[str, Any]]:
        """:meth:`wire` of each conversation, with one read for all their visitors and one for all their
        assignees (instead of two reads per conversation)."""
        if not convs:
            return []
        visitors = await self.store.get_visitors([c.visitor_id for c in convs])
        assignee_ids = [c.assignee_id for c in convs if c.assignee_id]
        agents = await self.store.get_agents(assignee_ids) if assignee_ids else {}
        systems = await self.system_previews(convs)
        out = []
        for conv in convs:
            wire = conv.to_wire(visitors.get(conv.visitor_id))
            agent = agents.get(conv.assignee_id) if conv.assignee_id else None
            wire["assignee"] = agent.public() if agent else None
            wire["last_message_system"] = systems.get(conv.id)
            out.append(wire)
        return out

    @staticmethod
    def customer_view(conv_wire: dict[str, Any]) -> dict[str, Any]:
        """What a customer may see of a conversation: no agent-side counters."""
        out = dict(conv_wire)
        out.pop("unread", None)
        out.pop("last_message_preview", None)
        out.pop("last_message_system", None)
        return out

    async def broadcast_conversation(
        self,
        conv: Conversation,
        event: str = "conversation.updated",
        extra_agents: list[Audience] | None = None,
    ) -> dict[str, Any]:
        wire = await self.wire(conv)
        await self.fanout.emit(event, {"conversation": wire}, [*self.agents_of(conv), *(extra_agents or [])])
        await self.fanout.emit(
            event, {"conversation": self.customer_view(wire)}, [Audience.visitor(conv.visitor_id)]
        )
        return wire

    # -- appends --------------------------------------------------------------------------------------
    def append_rule(self, agent: Agent) -> AccessRule:
        """:meth:`may_access` for ``agent`` as a rule the store checks atomically with an append (rules are
        immutable: one per agent id, admin flag and teams is remembered, up to :data:`OWNED_CACHE_SIZE`)."""
        key = (agent.id, agent.is_admin, tuple(agent.team_ids))
        rule = self._rules.get(key)
        if rule is None:
            if agent.is_admin:
                rule = AccessRule(everyone=True)
            else:
                rule = AccessRule(team_ids=frozenset(agent.team_ids), assignee_id=agent.id)
            if len(self._rules) >= OWNED_CACHE_SIZE:
                self._rules.clear()
            self._rules[key] = rule
        return rule

    async def append(
        self, message: Message, skip_sid: str | None = None, access: AccessRule | None = None
    ) -> AppendResult:
        """Store ``message`` and, if it is new, send ``message.new`` to who may see it. With ``access``, the
        store refuses (``NotFound("no such conversation")``) a conversation that does not pass it."""
        result = await self.store.append_message(message, access)
        if result.created:
            await self.publish(result.conversation, result.message, skip_sid=skip_sid)
        return result

    def message_wire(self, message: Message) -> dict[str, Any]:
        """``message.to_wire()``, reusing the shape :meth:`publish` built for this very object if it was the
        last one published (the ack of ``message.send`` carries the same shape as its broadcast; the shape
        is never mutated once built, and both are encoded to JSON straight away)."""
        last = self._last_wire
        if last is not None and last[0] is message:
            return last[1]
        return message.to_wire()

    async def publish(self, conv: Conversation, message: Message, skip_sid: str | None = None) -> None:
        """``message.new`` to who may see ``message``: the conversation's agents, and its visitor unless it is
        a note."""
        wire = message.to_wire()
        self._last_wire = (message, wire)
        note = message.kind == "note"
        key = (conv.team_id, conv.assignee_id, conv.visitor_id, note)
        audiences = self._audiences.get(key)
        if audiences is None:  # remembered: the same few per conversation, and never mutated
            audiences = self.agents_of(conv) if note else self.everyone(conv)
            if len(self._audiences) >= OWNED_CACHE_SIZE:
                self._audiences.clear()
            self._audiences[key] = audiences
        await self.fanout.emit("message.new", {"message": wire}, audiences, skip_sid=skip_sid)

    async def system(self, conv: Conversation, code: str, **params: Any) -> Message:
        """Append a system message (``code`` + ``params``, rendered in English in ``body``)."""
        message = Message(
            id=self.ids.new("msg"),
            conversation_id=conv.id,
            seq=0,
            client_id=self.ids.new("sys"),
            author=SYSTEM_AUTHOR,
            kind="system",
            body=render_system(code, params),
            data={"code": code, "params": params},
            created_at=utcnow(),
        )
        result = await self.append(message)
        return result.message

    async def note(
        self,
        conv: Conversation,
        author: Author,
        body: str,
        client_id: str | None = None,
        skip_sid: str | None = None,
    ) -> AppendResult:
        message = Message(
            id=self.ids.new("msg"),
            conversation_id=conv.id,
            seq=0,
            client_id=client_id or self.ids.new("note"),
            author=author,
            kind="note",
            body=body,
            created_at=utcnow(),
        )
        return await self.append(message, skip_sid=skip_sid)
