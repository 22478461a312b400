"""Messages: sending (text, attachments, chat blocks, articles, flows, flow answers), notes, text blocks."""

from __future__ import annotations

from typing import Any

from signaling.domain import textblocks
from signaling.domain.errors import Conflict, Forbidden, Invalid, NotFound
from signaling.domain.models import (
    ATTACHMENT_KINDS,
    CLIENT_MESSAGE_KINDS,
    Agent,
    Conversation,
    Message,
)
from signaling.services.conversations import ConversationService
from signaling.services.principal import Principal
from signaling.storage.base import AppendResult

CUSTOMER_KINDS = frozenset({"text", "image", "video", "audio", "file", "flow_answer"})
AGENT_KINDS = frozenset(CLIENT_MESSAGE_KINDS) - {"flow_answer"}


class MessageService:
    """What people write in a conversation; a customer's message reopens a done one (life cycle)."""

    def __init__(self, conversations: ConversationService) -> None:
        self.conversations = conversations
        self.timeline = conversations.timeline
        self.store = conversations.store
        self.settings = conversations.settings

    async def send(
        self,
        principal: Principal,
        conversation_id: str,
        client_id: str,
        kind: str,
        body: str = "",
        *,
        attachment_id: str | None = None,
        article_id: str | None = None,
        flow_id: str | None = None,
        textblock_id: str | None = None,
        flow_answer: dict[str, Any] | None = None,
    ) -> Message:
        agent = principal.agent
        if agent is not None and kind == "text" and isinstance(body, str):
            text = body.strip()
            if text and len(text) <= self.settings.message_max_chars:
                return await self._send_agent_text(principal, agent, conversation_id, client_id, text)
        # Below, ``conv`` serves for its id and visitor only (for a customer it may be a remembered copy).
        conv = await self.timeline.conversation_to_append(principal, conversation_id)
        allowed = AGENT_KINDS if principal.is_agent else CUSTOMER_KINDS
        if kind not in allowed:
            raise Invalid(f"kind {kind!r} cannot be sent here", field="kind")
        data: dict[str, Any] = {}
        body = body.strip() if isinstance(body, str) else ""
        if kind == "text":
            if not body:
                raise Invalid("body is empty", field="body")
        elif kind in ATTACHMENT_KINDS:
            if not attachment_id:
                raise Invalid("attachment_id is required", field="attachment_id")
            att = await self.store.get_attachment(attachment_id)
            if att is None or att.conversation_id != conv.id:
                raise NotFound("no such attachment", field="attachment_id")
            if kind != "file" and att.kind != kind:
                raise Invalid(f"the attachment is a {att.kind}, not a {kind}", field="kind")
            data["attachment"] = att.to_wire()
        elif kind == "chatblock":
            if not textblock_id:
                raise Invalid("textblock_id is required", field="textblock_id")
            block = await self.store.get_textblock(textblock_id)
            if block is None:
                raise NotFound("no such text block", field="textblock_id")
            body = textblocks.fill(block.body, await self.variables(principal, conv))
            data["textblock_id"] = block.id
        elif kind == "article":
            if not article_id:
                raise Invalid("article_id is required", field="article_id")
            article = await self.store.get_article(article_id)
            if article is None:
                raise NotFound("no such article", field="article_id")
            data["article"] = article.to_wire()
            body = body or article.title
        elif kind == "flow":
            if not flow_id:
                raise Invalid("flow_id is required", field="flow_id")
            flow = await self.store.get_flow(flow_id)
            if flow is None:
                raise NotFound("no such flow", field="flow_id")
            data["flow"] = flow.to_wire()
            body = body or flow.name
        elif kind == "flow_answer":
            data["flow_answer"] = await self._flow_answer(conv, flow_answer, body)
            body = data["flow_answer"]["answer"]
        message = self.conversations.new_message(principal, conv.id, kind, body, client_id, data)
        result = await self.timeline.append(message, skip_sid=None)
        reopen = principal.is_customer and result.conversation.status == "done"  # appends keep the status
        stored = self._own_replay(principal, result)
        if result.created and reopen:
            await self.conversations.reopen(result.conversation)
        return stored

    async def _send_agent_text(
        self, principal: Principal, agent: Agent, conversation_id: str, client_id: str, body: str
    ) -> Message:
        """An agent's valid text message, in one store call: the access check (:meth:`Timeline.may_access`)
        travels with the append as an :class:`AccessRule` instead of a conversation read before it (on
        Redis, one round trip instead of two). Errors are the same as :meth:`send`'s: ``not_found`` for a
        conversation that is missing or not the agent's, replays included; ``conflict`` for a client_id
        taken by someone else or by a note."""
        message = self.conversations.new_message(principal, conversation_id, "text", body, client_id)
        result = await self.timeline.append(message, skip_sid=None, access=self.timeline.append_rule(agent))
        return self._own_replay(principal, result)

    @staticmethod
    def _own_replay(principal: Principal, result: AppendResult) -> Message:
        """The stored message; ``conflict`` when a replayed client_id belongs to someone else or to a note."""
        stored = result.message
        if result.created is False and (
            stored.author.kind != principal.kind or stored.author.id != principal.id or stored.is_note
        ):
            raise Conflict("client_id already used by someone else or by a note", field="client_id")
        return stored

    async def _flow_answer(
        self, conv: Conversation, answer: dict[str, Any] | None, body: str
    ) -> dict[str, Any]:
        if not isinstance(answer, dict):
            raise Invalid("flow_answer {flow_id, step_id, answer} is required", field="flow_answer")
        flow_id, step_id = answer.get("flow_id"), answer.get("step_id")
        text = answer.get("answer", body)
        if not isinstance(flow_id, str) or not isinstance(step_id, str) or not isinstance(text, str):
            raise Invalid("flow_answer needs string flow_id, step_id and answer", field="flow_answer")
        text = text.strip()
        if not text:
            raise Invalid("the answer is empty", field="flow_answer")
        flow = await self.store.get_flow(flow_id)
        step = next((s for s in flow.steps if s.get("id") == step_id), None) if flow else None
        if flow is None or step is None:
            raise NotFound("no such flow step", field="flow_answer")
        buttons = step.get("buttons") or []
        if buttons and text not in buttons and not step.get("free_text"):
            raise Invalid("the answer is not one of the step's buttons", field="flow_answer")
        return {"flow_id": flow_id, "step_id": step_id, "question": step.get("question", ""), "answer": text}

    async def variables(self, principal: Principal, conv: Conversation) -> dict[str, str]:
        visitor = await self.store.get_visitor(conv.visitor_id)
        assignee = await self.store.get_agent(conv.assignee_id) if conv.assignee_id else None
        agent = principal.agent or assignee
        return {
            "customer.name": (visitor.name if visitor else "") or "",
            "customer.email": (visitor.email if visitor else "") or "",
            "agent.name": agent.name if agent else "",
            "agent.email": agent.email if agent else "",
            "conversation.id": conv.id,
        }

    async def add_note(
        self, principal: Principal, conversation_id: str, body: str, client_id: str | None = None
    ) -> Message:
        if not principal.is_agent:
            raise Forbidden("only agents write notes")
        conv = await self.timeline.conversation_for(principal, conversation_id)
        body = body.strip()
        if not body:
            raise Invalid("body is empty", field="body")
        if len(body) > self.settings.message_max_chars:
            raise Invalid("note too long", field="body")
        result = await self.timeline.note(conv, principal.author(), body, client_id)
        stored = result.message
        if not result.created and (not stored.is_note or stored.author.id != principal.id):
            raise Conflict("client_id already used by another message", field="client_id")
        return stored

    async def search_textblocks(
        self, principal: Principal, q: str, conversation_id: str | None = None
    ) -> list[dict[str, Any]]:
        if principal.agent is None:
            raise Forbidden("only agents use text blocks")
        language = None
        if conversation_id:
            conv = await self.timeline.conversation_for(principal, conversation_id)
            language = conv.language or None
        blocks = [
            b
            for b in await self.store.list_textblocks()
            if b.team_id is None or principal.agent.is_admin or b.team_id in principal.agent.team_ids
        ]
        found = textblocks.search(blocks, q, language=language or principal.agent.locale, limit=10)
        return [b.to_wire() for b in found]


__all__ = ["AGENT_KINDS", "CUSTOMER_KINDS", "MessageService"]
