"""Conference rooms beyond the customer and the requesting agent: colleagues invited by an agent,
external participants who join with a signed, expiring link, and leaving without ending the room.

- ``invite``: an agent of the conversation asks a colleague (an agent who may see the conversation) to
  join; the colleague's consoles get ``conference.invite`` and join with ``rtc.offer`` like any agent.
- ``create_link``: an agent of the conversation mints a link token (``k = "conference_link"``, the
  request id, an expiry). Anyone holding it may exchange it (``join``) for a *guest token* carrying a
  fresh guest id, the name they typed and the request id; a guest token opens the ``/customer``
  namespace as a ``guest`` principal that may only call ``rtc.offer``, ``rtc.answer``, ``rtc.config``
  and ``request.end`` / ``rtc.leave`` (meaning: leave) for that one request.
- ``leave`` (``rtc.leave``, any call kind): a participant's peer is closed and the others go on; the media
  plane ends a conference (reason ``empty``) when the last participant has gone, and a 1:1 call when the
  customer or the last agent has gone, which ends the request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from signaling.domain import auth as tokens
from signaling.domain.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from signaling.domain.models import Conversation, Request, iso, new_id
from signaling.services.fanout import Audience
from signaling.services.ports import MediaGateway, Participant
from signaling.services.principal import Principal
from signaling.services.timeline import Timeline

#: Token kinds minted here.
LINK_KIND = "conference_link"
GUEST_KIND = "guest"
LIVE_STATES = ("accepted", "active")
#: Request kinds whose participants may leave (``rtc.leave``) without ending the request for the others.
CALL_KINDS = frozenset({"call", "video", "desktop", "show_screen", "conference"})


@dataclass(frozen=True, slots=True)
class ConferenceSettings:
    secret: bytes
    link_ttl_s: int = 2 * 3600
    """Default lifetime of a join link."""
    link_max_ttl_s: int = 7 * 24 * 3600
    guest_token_ttl_s: int = 8 * 3600
    """Lifetime of the guest token a link is exchanged for (one connection's worth of conference)."""


@dataclass(frozen=True, slots=True)
class JoinGrant:
    """What a link exchange gives a guest."""

    token: str
    guest_id: str
    name: str
    request_id: str
    expires_at: datetime


class ConferenceService:
    """Invites, join links, guests and leaving (see the module docstring)."""

    def __init__(self, timeline: Timeline, media: MediaGateway, settings: ConferenceSettings) -> None:
        self.timeline = timeline
        self.store = timeline.store
        self.fanout = timeline.fanout
        self.media = media
        self.settings = settings

    # -- helpers --------------------------------------------------------------------------------------
    async def _conference_for(
        self, principal: Principal, request_id: str, kinds: frozenset[str] = frozenset({"conference"})
    ) -> tuple[Request, Conversation]:
        """The request (a conference, or one of ``kinds``) if the caller may see its conversation."""
        request = await self.store.get_request(request_id)
        conv = await self.store.get_conversation(request.conversation_id) if request else None
        if request is None or conv is None or not self.timeline.may_access(principal, conv):
            raise NotFound("no such request")
        if request.kind not in kinds:
            message = (
                "this request is not a conference"
                if kinds == {"conference"}
                else "this request is not a call"
            )
            raise Invalid(message, field="request_id")
        return request, conv

    @staticmethod
    def participant(principal: Principal) -> Participant:
        return Participant(kind=principal.kind, id=principal.id, name=principal.name)

    # -- agents ---------------------------------------------------------------------------------------
    async def invite(self, principal: Principal, request_id: str, agent_id: str) -> None:
        """Ask a colleague to join; they get ``conference.invite`` on every console tab."""
        if principal.agent is None:
            raise Forbidden("only agents invite colleagues")
        request, conv = await self._conference_for(principal, request_id)
        if request.state not in LIVE_STATES:
            raise Conflict(f"the conference is {request.state}", state=request.state)
        if agent_id == principal.agent.id:
            raise Invalid("you are already in this conference", field="agent_id")
        invitee = await self.store.get_agent(agent_id)
        if invitee is None or not self.timeline.may_access(Principal(kind="agent", agent=invitee), conv):
            raise NotFound("no such agent in this conversation's team", field="agent_id")
        visitor = await self.store.get_visitor(conv.visitor_id)
        payload: dict[str, Any] = {
            "request": request.to_wire(),
            "conversation_id": conv.id,
            "visitor": {"id": conv.visitor_id, "name": visitor.name if visitor else ""},
            "from": {"id": principal.agent.id, "name": principal.agent.name},
        }
        await self.fanout.emit("conference.invite", payload, [Audience.agent(invitee.id)])

    async def create_link(
        self, principal: Principal, request_id: str, ttl_s: int | None = None
    ) -> tuple[str, datetime]:
        """A signed link token for external participants and when it expires."""
        if principal.agent is None:
            raise Forbidden("only agents create conference links")
        request, _ = await self._conference_for(principal, request_id)
        if request.state not in ("pending", *LIVE_STATES):
            raise Conflict(f"the conference is {request.state}", state=request.state)
        ttl = self.settings.link_ttl_s if ttl_s is None else ttl_s
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= self.settings.link_max_ttl_s:
            raise Invalid(f"ttl_s must be between 60 and {self.settings.link_max_ttl_s}", field="ttl_s")
        now = time.time()
        claims = {"k": LINK_KIND, "r": request.id, "by": principal.agent.id}
        token = tokens.sign_token(self.settings.secret, claims, ttl, now)
        return token, datetime.fromtimestamp(now + ttl, UTC)

    # -- guests ---------------------------------------------------------------------------------------
    def _link_request_id(self, link_token: Any) -> str:
        if not isinstance(link_token, str) or not link_token:
            raise Unauthorized("a link token is required")
        try:
            claims = tokens.verify_token(self.settings.secret, link_token, time.time())
        except Unauthorized as exc:
            message = "this link has expired" if exc.message == "token expired" else "this link is not valid"
            raise Unauthorized(message) from None
        request_id = claims.get("r")
        if claims.get("k") != LINK_KIND or not isinstance(request_id, str):
            raise Unauthorized("this link is not valid")
        return request_id

    async def describe_link(self, link_token: Any) -> dict[str, Any]:
        """What the join page shows before the guest joins: the room's state and who invites."""
        request_id = self._link_request_id(link_token)
        request = await self.store.get_request(request_id)
        if request is None:
            raise NotFound("this conference does not exist any more")
        agent = await self.store.get_agent(request.requested_by) if request.requested_by else None
        return {
            "request": {"id": request.id, "kind": request.kind, "state": request.state},
            "host": {"name": agent.name if agent else ""},
        }

    async def join(self, link_token: Any, name: str) -> JoinGrant:
        """Exchange a link for a guest token (a new guest each time: a link may be shared)."""
        request_id = self._link_request_id(link_token)
        name = " ".join(name.split())[:80] if isinstance(name, str) else ""
        if not name:
            raise Invalid("your name is required", field="name")
        request = await self.store.get_request(request_id)
        if request is None or request.kind != "conference":
            raise NotFound("this conference does not exist any more")
        if request.state == "pending":
            raise Conflict("the conference has not started yet: try again in a moment", state=request.state)
        if request.state not in LIVE_STATES:
            raise Conflict("this conference has ended", state=request.state)
        guest_id = new_id("gs")
        ttl = self.settings.guest_token_ttl_s
        now = time.time()
        claims = {"k": GUEST_KIND, "sub": guest_id, "r": request.id, "n": name}
        token = tokens.sign_token(self.settings.secret, claims, ttl, now)
        return JoinGrant(token, guest_id, name, request.id, datetime.fromtimestamp(now + ttl, UTC))

    async def _guest_request(self, principal: Principal, request_id: str) -> Request:
        if principal.kind != GUEST_KIND or principal.guest_request_id != request_id:
            raise NotFound("no such request")
        request = await self.store.get_request(request_id)
        if request is None:
            raise NotFound("no such request")
        if request.state not in LIVE_STATES:
            raise Conflict(f"the conference is {request.state}", state=request.state)
        return request

    async def guest_offer(
        self, principal: Principal, request_id: str, sdp: str, type_: str
    ) -> dict[str, str]:
        """A guest's ``rtc.offer`` (their one request only)."""
        request = await self._guest_request(principal, request_id)
        if type_ != "offer":
            raise Invalid("type must be offer", field="type")
        return await self.media.offer(request.id, self.participant(principal), sdp, type_)

    async def guest_answer(self, principal: Principal, request_id: str, sdp: str, type_: str) -> None:
        """A guest's ``rtc.answer`` to a server offer."""
        request = await self._guest_request(principal, request_id)
        if type_ != "answer":
            raise Invalid("type must be answer", field="type")
        await self.media.answer(request.id, self.participant(principal), sdp, type_)

    # -- everyone -------------------------------------------------------------------------------------
    async def leave(self, principal: Principal, request_id: str) -> dict[str, Any]:
        """Leave the call (the others stay); returns ``{request}`` (agents, customers) or ``{}`` (guests)."""
        if principal.kind == GUEST_KIND:
            if principal.guest_request_id != request_id:
                raise NotFound("no such request")
            await self.media.leave(request_id, self.participant(principal))
            return {}
        request, _ = await self._conference_for(principal, request_id, CALL_KINDS)
        if request.state in LIVE_STATES:
            await self.media.leave(request.id, self.participant(principal))
        return {"request": request.to_wire()}


def grant_to_wire(grant: JoinGrant) -> dict[str, Any]:
    """The join answer: the guest token and who the guest is."""
    return {
        "token": grant.token,
        "guest": {"id": grant.guest_id, "name": grant.name},
        "request_id": grant.request_id,
        "expires_at": iso(grant.expires_at),
    }
