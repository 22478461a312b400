"""Conversations: their life cycle (start, routing, assignment, status) and receipts.

Messages, notes and text blocks are :mod:`~signaling.services.messages`; lists, counts, search and sync
are :mod:`~signaling.services.inbox`.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from signaling.domain import routing
from signaling.domain.errors import Conflict, Forbidden, Invalid, NotFound
from signaling.domain.models import Conversation, Message, new_id, utcnow
from signaling.services.fanout import Audience
from signaling.services.principal import Principal
from signaling.services.timeline import Timeline
from signaling.storage.base import ConversationQuery


@dataclass(frozen=True, slots=True)
class ChatSettings:
    message_max_chars: int = 10_000
    page_size: int = 50


class ConversationService:
    """A conversation's life cycle: start, routing to agents, assignment, status, typing and receipts."""

    def __init__(self, timeline: Timeline, settings: ChatSettings | None = None) -> None:
        self.timeline = timeline
        self.store = timeline.store
        self.fanout = timeline.fanout
        self.settings = settings or ChatSettings()
        self.on_done: list[Any] = []
        """Callbacks ``async f(conversation)`` run when a conversation is resolved (ends requests)."""

    def _routing_lock(self, team_id: str) -> AbstractAsyncContextManager[None]:
        """Per team: one auto-assignment decision at a time on every node, so concurrent starts see each
        other's loads (otherwise they all pick the same agent, past its capacity)."""
        return self.store.lock(f"routing:{team_id}")

    def _conversation_lock(self, conversation_id: str) -> AbstractAsyncContextManager[None]:
        """One read-modify-write of a conversation at a time on every node: ``update_conversation``
        writes every field, so two concurrent changes from stale reads (assign vs status) would undo each
        other. Locks order: a team's routing lock before a conversation's; nothing waits on a team lock
        while holding a conversation's."""
        return self.store.lock(f"conversation:{conversation_id}")

    # -- start ----------------------------------------------------------------------------------------
    async def start(
        self,
        principal: Principal,
        *,
        team_id: str | None,
        body: str | None,
        page_url: str = "",
        client_id: str | None = None,
        language: str = "",
    ) -> Conversation:
        assert principal.visitor is not None
        if team_id:
            team = await self.store.get_team(team_id)
            if team is None:
                raise NotFound("no such team", field="team_id")
        else:
            teams = await self.store.list_teams()
            if not teams:
                raise NotFound("no team exists yet")
            team = teams[0]
        start_key = f"start:{principal.visitor.id}:{client_id}" if client_id else None
        if start_key:
            # A retried start (its ack was lost) returns the conversation the first one created.
            existing_id = await self.store.get_meta(start_key)
            existing = await self.store.get_conversation(existing_id) if existing_id else None
            if existing is not None and existing.visitor_id == principal.visitor.id:
                return existing
        now = utcnow()
        conv = Conversation(
            id=new_id("cv"),
            visitor_id=principal.visitor.id,
            team_id=team.id,
            created_at=now,
            updated_at=now,
            page_url=page_url[:2000],
            language=(language or principal.visitor.locale)[:16],
        )
        conv = await self.store.create_conversation(conv)
        if start_key:
            await self.store.set_meta(start_key, conv.id)
        if body:
            result = await self.timeline.append(self.new_message(principal, conv.id, "text", body, client_id))
            conv = result.conversation
        await self._route_new(conv)
        return await self.store.get_conversation(conv.id) or conv

    async def _route_new(self, conv: Conversation) -> None:
        """Ring whoever may take ``conv`` now; on an ``auto`` team, assign it first if someone is free."""
        team = await self.store.get_team(conv.team_id)
        if team is not None and team.routing == "auto" and conv.assignee_id is None:
            assigned = await self._auto_assign(conv)
            if assigned is not None:
                return
        wire = await self.timeline.wire(conv)
        targets = [Audience.team(conv.team_id)]
        if conv.assignee_id and conv.assignee_id in await self.store.presence_online():
            targets = [Audience.agent(conv.assignee_id)]  # an assignee who is here takes it back
        await self.fanout.emit("conversation.new", {"conversation": wire, "ring": True}, targets)

    # -- auto routing ---------------------------------------------------------------------------------
    async def _auto_assign(self, conv: Conversation) -> Conversation | None:
        async with self._routing_lock(conv.team_id):
            claimed = await self._claim_for_least_busy(conv)
        if claimed is None:
            return None
        conv, chosen = claimed
        agent = await self.store.get_agent(chosen)
        await self.timeline.system(
            conv, "conversation.assigned", agent_id=chosen, agent_name=agent.name if agent else ""
        )
        wire = await self.timeline.broadcast_conversation(conv)
        await self.fanout.emit(
            "conversation.new", {"conversation": wire, "ring": True}, [Audience.agent(chosen)]
        )
        return conv

    async def _claim_for_least_busy(self, conv: Conversation) -> tuple[Conversation, str] | None:
        """Choose the assignee and claim ``conv`` for them (compare-and-set); None if nobody or too late."""
        members = await self.store.list_agents(conv.team_id)
        if not members:
            return None
        online = await self.store.presence_online()
        loads = await self.store.count_open_assigned([a.id for a in members])
        candidates = [
            routing.Candidate(
                agent_id=a.id,
                online=a.id in online,
                in_team=True,
                load=loads.get(a.id, 0),
                capacity=a.capacity,
                status=a.status if a.status == "away" else "online",
            )
            for a in members
        ]
        last = await self.store.get_meta(f"rr:{conv.team_id}")
        chosen = routing.choose_assignee(candidates, last)
        if chosen is None:
            return None
        async with self._conversation_lock(conv.id):
            current = await self.store.get_conversation(conv.id)
            if (
                current is None
                or current.status != "open"
                or current.assignee_id is not None
                or current.team_id != conv.team_id
            ):
                return None  # taken, resolved or redirected since it was queued
            conv = current
            conv.assignee_id = chosen
            conv.updated_at = utcnow()
            try:
                conv = await self.store.update_conversation(conv, expected_assignee=None)
            except Conflict:
                return None
        await self.store.set_meta(f"rr:{conv.team_id}", chosen)
        return conv, chosen

    async def drain_queue(self, team_ids: list[str] | None = None) -> int:
        """Assign queued conversations of ``auto`` teams to agents who are free now; returns how many."""
        assigned = 0
        for team in await self.store.list_teams():
            if team.routing != "auto" or (team_ids is not None and team.id not in team_ids):
                continue
            queued = await self.store.list_conversations(
                ConversationQuery(team_ids=[team.id], status="open", assignee_id=None, limit=200)
            )
            for conv in sorted(queued, key=lambda c: (c.created_at, c.id)):
                if await self._auto_assign(conv) is None:
                    current = await self.store.get_conversation(conv.id)
                    if current is not None and current.status == "open" and current.assignee_id is None:
                        break  # nobody is free: the rest stays queued
                    continue  # taken or resolved meanwhile: try the next one
                assigned += 1
        return assigned

    # -- new messages (the start's first one, and MessageService's) -----------------------------------
    def new_message(
        self,
        principal: Principal,
        conversation_id: str,
        kind: str,
        body: str,
        client_id: str | None,
        data: dict[str, Any] | None = None,
    ) -> Message:
        """A message of ``principal`` in the conversation, not stored yet (seq 0); checks the body length."""
        if len(body) > self.settings.message_max_chars:
            raise Invalid(f"body is longer than {self.settings.message_max_chars} characters", field="body")
        return Message(
            id=self.timeline.ids.new("msg"),
            conversation_id=conversation_id,
            seq=0,
            client_id=client_id or self.timeline.ids.new("c"),
            author=principal.author(),
            kind=kind,
            body=body,
            data=data or {},
            created_at=utcnow(),
        )

    # -- assignment -----------------------------------------------------------------------------------
    async def assign(
        self,
        principal: Principal,
        conversation_id: str,
        *,
        agent_id: str | None = None,
        team_id: str | None = None,
        note: str | None = None,
    ) -> Conversation:
        if not principal.is_agent or principal.agent is None:
            raise Forbidden("only agents assign conversations")
        async with self._conversation_lock(conversation_id):
            conv = await self._assign(
                principal, conversation_id, agent_id=agent_id, team_id=team_id, note=note
            )
        if conv.assignee_id is None:
            await self.drain_queue([conv.team_id])
        return conv

    async def _assign(
        self,
        principal: Principal,
        conversation_id: str,
        *,
        agent_id: str | None,
        team_id: str | None,
        note: str | None,
    ) -> Conversation:
        me = principal.agent
        assert me is not None
        conv = await self.timeline.conversation_for(principal, conversation_id)
        previous = conv.assignee_id
        old_team = conv.team_id
        if agent_id is None and team_id is None:
            if previous == me.id:
                return conv
            if previous is not None:
                raise Conflict("this conversation is already assigned", assignee_id=previous)
            conv.assignee_id = me.id
            conv.updated_at = utcnow()
            conv = await self.store.update_conversation(conv, expected_assignee=None)
            await self.timeline.system(conv, "conversation.assigned", agent_id=me.id, agent_name=me.name)
            await self.timeline.broadcast_conversation(conv)
            return conv
        if previous is not None and previous != me.id and not me.is_admin:
            raise Forbidden("only the assignee or an admin may redirect this conversation")
        notify: list[Audience]
        if agent_id is not None:
            target = await self.store.get_agent(agent_id)
            if target is None:
                raise NotFound("no such agent", field="agent_id")
            if team_id is not None and team_id not in target.team_ids:
                raise Invalid("that agent is not in that team", field="team_id")
            conv.assignee_id = target.id
            if team_id is not None:
                conv.team_id = team_id
            elif conv.team_id not in target.team_ids and target.team_ids:
                conv.team_id = target.team_ids[0]
            code, params = "conversation.redirected_agent", {"agent_id": target.id, "agent_name": target.name}
            notify = [Audience.agent(target.id)]
        else:
            assert team_id is not None
            team = await self.store.get_team(team_id)
            if team is None:
                raise NotFound("no such team", field="team_id")
            conv.team_id = team.id
            conv.assignee_id = None
            code, params = "conversation.redirected_team", {"team_id": team.id, "team_name": team.name}
            notify = [Audience.team(team.id)]
        conv.updated_at = utcnow()
        conv = await self.store.update_conversation(conv, expected_assignee=previous)
        if note and note.strip():
            await self.timeline.note(
                conv, principal.author(), note.strip()[: self.settings.message_max_chars]
            )
        await self.timeline.system(conv, code, **params)
        extra = [Audience.team(old_team)] if old_team != conv.team_id else []
        if previous and previous != conv.assignee_id:
            extra.append(Audience.agent(previous))
        wire = await self.timeline.broadcast_conversation(conv, extra_agents=extra)
        await self.fanout.emit(
            "conversation.new",
            {"conversation": wire, "ring": True, "redirected": True, "note": (note or "").strip()},
            notify,
        )
        return conv

    # -- status ---------------------------------------------------------------------------------------
    async def set_status(self, principal: Principal, conversation_id: str, status: str) -> Conversation:
        if status not in ("open", "done"):
            raise Invalid("status must be open or done", field="status")
        async with self._conversation_lock(conversation_id):
            conv = await self.timeline.conversation_for(principal, conversation_id)
            if conv.status == status:
                return conv
            conv.status = status
            conv.updated_at = utcnow()
            conv = await self.store.update_conversation(conv)
            if status == "done":
                for callback in self.on_done:
                    await callback(conv)
                await self.timeline.system(conv, "conversation.done")
            else:
                await self.timeline.system(conv, "conversation.reopened")
            await self.timeline.broadcast_conversation(conv)
        if status == "done":
            await self.drain_queue([conv.team_id])
        return conv

    async def reopen(self, conv: Conversation) -> None:
        """Reopen ``conv`` if it is still done (a customer wrote in it), then ring whoever may take it."""
        async with self._conversation_lock(conv.id):
            current = await self.store.get_conversation(conv.id)
            if current is None or current.status != "done":
                return  # reopened meanwhile (another message, another tab): ring once
            conv = current
            conv.status = "open"
            conv.updated_at = utcnow()
            conv = await self.store.update_conversation(conv)
            await self.timeline.system(conv, "conversation.reopened")
            await self.timeline.broadcast_conversation(conv)
        await self._route_new(conv)

    # -- typing and receipts --------------------------------------------------------------------------
    async def typing(self, principal: Principal, conversation_id: str, typing: bool) -> None:
        conv = await self.timeline.conversation_for(principal, conversation_id)
        payload = {"conversation_id": conv.id, "author": principal.author().to_wire(), "typing": bool(typing)}
        await self.fanout.emit("typing", payload, self.timeline.everyone(conv), skip_sid=principal.sid)

    async def receipt(
        self, principal: Principal, conversation_id: str, *, delivered_seq: int = 0, read_seq: int = 0
    ) -> Conversation:
        conv = await self.timeline.conversation_for(principal, conversation_id)
        side = "agent" if principal.is_agent else "customer"
        delivered_seq = min(delivered_seq, conv.last_seq)
        read_seq = min(read_seq, conv.last_seq)
        conv = await self.store.mark_receipt(conv.id, side, delivered_seq=delivered_seq, read_seq=read_seq)
        payload = {
            "conversation_id": conv.id,
            "side": side,
            "delivered_seq": conv.agent_delivered_seq if side == "agent" else conv.customer_delivered_seq,
            "read_seq": conv.agent_read_seq if side == "agent" else conv.customer_read_seq,
        }
        await self.fanout.emit("conversation.receipt", payload, self.timeline.everyone(conv))
        if side == "agent":
            wire = await self.timeline.wire(conv)
            await self.fanout.emit(
                "conversation.updated", {"conversation": wire}, self.timeline.agents_of(conv)
            )
        return conv


__all__ = ["ConversationService", "ChatSettings"]
