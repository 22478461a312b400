"""The Socket.IO namespaces ``/agent`` and ``/customer``: authenticate at connect, then for every
event decode -> service -> ack ``{ok: true, ...}`` or ``{ok: false, error: {code, message}}``.

Event names are dotted (``message.send``), so dispatch goes through a table instead of ``on_<event>``
methods. Every event is authorised by the service it reaches, not only the connect.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from signaling.domain.errors import DomainError, Invalid, RateLimited, Unauthorized
from signaling.hub import payloads as P
from signaling.services.container import Services
from signaling.services.principal import Principal
from signaling.services.ratelimit import AbuseLimits

log = logging.getLogger(__name__)

Handler = Callable[[Principal, dict[str, Any]], Awaitable[dict[str, Any]]]


class HubNamespace(socketio.AsyncNamespace):
    """What both namespaces share: the connect check, the dispatch table and the error envelope."""

    kind = ""

    def __init__(self, namespace: str, services: Services) -> None:
        super().__init__(namespace)
        self.services = services
        self.principals: dict[str, Principal] = {}
        self.handlers: dict[str, Handler] = self.build_handlers()
        self.limits: AbuseLimits | None = None
        """Abuse limits (set by the HTTP layer, shared by both namespaces); None: no limits."""

    def build_handlers(self) -> dict[str, Handler]:
        raise NotImplementedError

    # -- connect / disconnect -------------------------------------------------------------------------
    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        address = self.limits.address_of(environ) if self.limits is not None else ""
        try:
            if self.limits is not None and not self.limits.allow("connects", address):
                raise RateLimited("too many connections from this address; retry later")
            origin_ok = self.services.origin_allowed(environ.get("HTTP_ORIGIN"))
            if not origin_ok:
                raise Unauthorized("origin not allowed")
            principal = await self.services.auth.authenticate(
                token, expected_kind=self.kind, allow_guest=self.kind == "customer")
        except DomainError as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.message, exc.to_wire()) from None
        principal.sid = sid
        self.principals[sid] = principal
        if self.limits is not None:
            self.limits.track(sid, address)
        await self.joined(sid, principal)

    async def joined(self, sid: str, principal: Principal) -> None:
        """Join rooms and record presence (per namespace)."""

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        principal = self.principals.pop(sid, None)
        if self.limits is not None:
            self.limits.untrack(sid)
        if principal is not None:
            try:
                await self.left(sid, principal)
            except Exception:
                log.exception("disconnect handling failed for %s", sid)

    async def left(self, sid: str, principal: Principal) -> None:
        """Undo :meth:`joined`."""

    # -- events ---------------------------------------------------------------------------------------
    async def trigger_event(self, event: str, *args: Any) -> Any:
        sid = args[0] if args else None
        if event in ("connect", "disconnect"):
            # The server calls these while the socket is connecting or disconnecting (not yet / no longer
            # "connected"); an event of that name from a connected client is a spoof, not a life cycle.
            if not (isinstance(sid, str) and self.server.manager.is_connected(sid, self.namespace)):
                return await (self.on_connect(*args) if event == "connect" else self.on_disconnect(*args))
            return {"ok": False, "error": {"code": "invalid", "message": f"unknown event {event!r}"}}
        payload = args[1] if len(args) > 1 else None
        principal = self.principals.get(sid) if isinstance(sid, str) else None
        if principal is None:
            return {"ok": False, "error": {"code": "unauthorized", "message": "not connected"}}
        if self.limits is not None and not self.limits.allow_event(str(sid)):
            return {"ok": False, "error": RateLimited("too many calls; slow down").to_wire()}
        table = self.guest_handlers() if principal.kind == "guest" else self.handlers
        handler = table.get(event) if isinstance(event, str) else None
        if handler is None:
            return {"ok": False, "error": {"code": "invalid", "message": f"unknown event {str(event)[:60]!r}"}}
        self.services.metrics.count_event(self.kind, event)
        try:
            result = await handler(principal, P.obj(payload))
        except DomainError as exc:
            return {"ok": False, "error": exc.to_wire()}
        except Exception:
            log.exception("event %s failed", event)
            self.services.metrics.count_error(event)
            return {"ok": False, "error": {"code": "internal", "message": "internal error"}}
        return {"ok": True, **result}

    # -- handlers both namespaces have ----------------------------------------------------------------
    def common_handlers(self) -> dict[str, Handler]:
        return {
            "message.send": self.message_send,
            "conversation.sync": self.conversation_sync,
            "typing": self.typing,
            "message.delivered": self.message_delivered,
            "message.read": self.message_read,
            "request.end": self.request_end,
            "rtc.offer": self.rtc_offer,
            "rtc.answer": self.rtc_answer,
            "rtc.config": self.rtc_config,
            "rtc.leave": self.rtc_leave,
            # customers only; routed on both namespaces so an agent gets a clear ``forbidden``
            "request.respond": self.request_respond,
        }

    async def message_send(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        kind = P.string(p, "kind", required=False, default="text", max_len=20)
        flow_answer = p.get("flow_answer")
        if flow_answer is not None:
            if not isinstance(flow_answer, dict):
                raise Invalid("flow_answer must be an object", field="flow_answer")
            flow_answer = {k: P.string(flow_answer, k, required=False, max_len=self.services.message_max_chars)
                           for k in ("flow_id", "step_id", "answer") if k in flow_answer}
        message = await self.services.messages.send(
            who,
            P.string(p, "conversation_id"),
            P.string(p, "client_id", max_len=100),
            kind,
            P.string(p, "body", required=False, default="", max_len=self.services.message_max_chars),
            attachment_id=P.string(p, "attachment_id", required=False),
            article_id=P.string(p, "article_id", required=False),
            flow_id=P.string(p, "flow_id", required=False),
            textblock_id=P.string(p, "textblock_id", required=False),
            flow_answer=flow_answer,
        )
        return {"message": self.services.timeline.message_wire(message)}

    async def conversation_sync(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        return await self.services.inbox.sync(
            who, P.string(p, "conversation_id"), P.integer(p, "after_seq"))

    async def typing(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        await self.services.conversations.typing(who, P.string(p, "conversation_id"), P.boolean(p, "typing"))
        return {}

    async def message_delivered(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        await self.services.conversations.receipt(
            who, P.string(p, "conversation_id"), delivered_seq=P.integer(p, "seq"))
        return {}

    async def message_read(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        await self.services.conversations.receipt(
            who, P.string(p, "conversation_id"), read_seq=P.integer(p, "seq"))
        return {}

    async def request_end(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        request = await self.services.requests.end(
            who, P.string(p, "request_id"), P.string(p, "reason", required=False))
        return {"request": request.to_wire()}

    async def rtc_offer(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        return await self.services.requests.rtc_offer(
            who, P.string(p, "request_id"), P.string(p, "sdp", max_len=200_000),
            P.string(p, "type", max_len=10))

    async def rtc_answer(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        await self.services.requests.rtc_answer(
            who, P.string(p, "request_id"), P.string(p, "sdp", max_len=200_000),
            P.string(p, "type", max_len=10))
        return {}

    async def rtc_config(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        return {"ice_servers": self.services.media.ice_servers(),
                "recordings": self.services.requests.settings.recordings}

    def guest_handlers(self) -> dict[str, Handler]:
        """All a conference guest (``/customer`` with a guest token) may call: media of their one request
        (``request.end`` means leave)."""
        return {
            "rtc.offer": self.guest_offer,
            "rtc.answer": self.guest_answer,
            "rtc.config": self.rtc_config,
            "request.end": self.rtc_leave,
            "rtc.leave": self.rtc_leave,
        }

    async def guest_offer(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        return await self.services.conference.guest_offer(
            who, P.string(p, "request_id"), P.string(p, "sdp", max_len=200_000), P.string(p, "type", max_len=10))

    async def guest_answer(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        await self.services.conference.guest_answer(
            who, P.string(p, "request_id"), P.string(p, "sdp", max_len=200_000), P.string(p, "type", max_len=10))
        return {}

    async def rtc_leave(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        return await self.services.conference.leave(who, P.string(p, "request_id"))

    async def request_respond(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        request = await self.services.requests.respond(
            who, P.string(p, "request_id"), P.boolean(p, "accept"))
        return {"request": request.to_wire()}


class AgentNamespace(HubNamespace):
    kind = "agent"

    def build_handlers(self) -> dict[str, Handler]:
        return {
            **self.common_handlers(),
            "conversations.list": self.conversations_list,
            "conversations.counts": self.conversations_counts,
            "conversations.search": self.conversations_search,
            "conversation.assign": self.conversation_assign,
            "conversation.status": self.conversation_status,
            "note.add": self.note_add,
            "textblocks.search": self.textblocks_search,
            "articles.search": self.articles_search,
            "flows.list": self.flows_list,
            "agents.list": self.agents_list,
            "teams.list": self.teams_list,
            "agent.status": self.agent_status,
            "request.create": self.request_create,
            "conference.invite": self.conference_invite,
            "requests.live": lambda who, p: self.services.requests.live_for(who),
        }

    async def joined(self, sid: str, principal: Principal) -> None:
        agent = principal.agent
        assert agent is not None
        team_ids = list(agent.team_ids)
        if agent.is_admin:
            team_ids = [t.id for t in await self.services.store.list_teams()]
        for team_id in team_ids:
            await self.enter_room(sid, f"team:{team_id}")
        await self.enter_room(sid, f"agent:{agent.id}")
        await self.services.presence.connected(agent, sid)

    async def left(self, sid: str, principal: Principal) -> None:
        assert principal.agent is not None
        await self.services.presence.disconnected(principal.agent, sid)

    async def conversations_list(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        return await self.services.inbox.list_section(
            who, P.string(p, "section", max_len=20), P.string(p, "cursor", required=False, max_len=400))

    async def conversations_counts(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        return {"counts": await self.services.inbox.counts(who)}

    async def conversations_search(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        return {"conversations": await self.services.inbox.search(who, P.string(p, "q", max_len=200))}

    async def conversation_assign(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        conv = await self.services.conversations.assign(
            who, P.string(p, "conversation_id"),
            agent_id=P.string(p, "agent_id", required=False),
            team_id=P.string(p, "team_id", required=False),
            note=P.string(p, "note", required=False, max_len=self.services.message_max_chars))
        return {"conversation": await self.services.timeline.wire(conv)}

    async def conversation_status(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        conv = await self.services.conversations.set_status(
            who, P.string(p, "conversation_id"), P.string(p, "status", max_len=10))
        return {"conversation": await self.services.timeline.wire(conv)}

    async def note_add(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        message = await self.services.messages.add_note(
            who, P.string(p, "conversation_id"),
            P.string(p, "body", max_len=self.services.message_max_chars),
            P.string(p, "client_id", required=False, max_len=100))
        return {"message": message.to_wire()}

    async def textblocks_search(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        blocks = await self.services.messages.search_textblocks(
            who, P.string(p, "q", required=False, default="", max_len=200),
            P.string(p, "conversation_id", required=False))
        return {"textblocks": blocks}

    async def articles_search(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        language = P.string(p, "language", required=False, max_len=16) or (who.agent.locale if who.agent else None)
        articles = await self.services.catalog.search_articles(
            P.string(p, "q", required=False, default="", max_len=200), language)
        return {"articles": [a.to_wire() for a in articles]}

    async def flows_list(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        return {"flows": [f.to_wire() for f in await self.services.store.list_flows()]}

    async def agents_list(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        return {"agents": await self.services.presence.list_agents()}

    async def teams_list(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        return {"teams": [t.to_wire() for t in await self.services.store.list_teams()]}

    async def agent_status(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        assert who.agent is not None
        agent = await self.services.presence.set_status(who.agent, P.string(p, "status", max_len=10))
        who.agent = agent
        return {"agent": agent.to_wire()}

    async def request_create(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        request = await self.services.requests.create(
            who, P.string(p, "conversation_id"), P.string(p, "kind", max_len=20),
            record=P.boolean(p, "record", required=False))
        return {"request": request.to_wire()}

    async def conference_invite(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        await self.services.conference.invite(who, P.string(p, "request_id"), P.string(p, "agent_id"))
        return {}


class CustomerNamespace(HubNamespace):
    kind = "customer"

    def build_handlers(self) -> dict[str, Handler]:
        return {
            **self.common_handlers(),
            "conversation.start": self.conversation_start,
            "conversations.list": self.conversations_list,
        }

    async def joined(self, sid: str, principal: Principal) -> None:
        await self.enter_room(sid, f"visitor:{principal.id}")

    async def conversation_start(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        conv = await self.services.conversations.start(
            who,
            team_id=P.string(p, "team_id", required=False),
            body=P.string(p, "body", required=False, max_len=self.services.message_max_chars),
            page_url=P.string(p, "page_url", required=False, default="", max_len=2000),
            client_id=P.string(p, "client_id", required=False, max_len=100),
            language=P.string(p, "language", required=False, default="", max_len=16),
        )
        wire = self.services.timeline.customer_view(await self.services.timeline.wire(conv))
        return {"conversation": wire}

    async def conversations_list(self, who: Principal, p: dict[str, Any]) -> dict[str, Any]:
        return await self.services.inbox.list_section(
            who, "mine", P.string(p, "cursor", required=False, max_len=400))
