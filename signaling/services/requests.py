"""Requests (co-browse, call, video, desktop, show screen, conference) around the consent state machine.

Every change goes through :func:`signaling.domain.requests.apply` and a compare-and-set write, so two
racing triggers (cancel vs accept, two customer tabs, an answer after expiry) settle to exactly one
outcome: the loser gets ``conflict`` and nothing changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from signaling.domain import requests as sm
from signaling.domain.errors import Conflict, Forbidden, Invalid, NotFound
from signaling.domain.models import Conversation, Message, Request, new_id, utcnow
from signaling.services.fanout import Audience
from signaling.services.ports import MediaEvent, MediaGateway, Participant, SessionSpec
from signaling.services.principal import Principal
from signaling.services.timeline import KIND_LABELS, SYSTEM_AUTHOR, Timeline

log = logging.getLogger(__name__)

#: What the media plane needs to know for co-browsing: the masking policy it enforces again on the
#: server (defence in depth; the widget masks first).
COBROWSE_POLICY: dict[str, Any] = {
    "mask_text_class": "rr-mask",
    "block_class": "rr-block",
    "mask_all_inputs": True,
}


@dataclass(frozen=True, slots=True)
class RequestSettings:
    ttl: timedelta = timedelta(seconds=60)
    recordings: bool = False
    """Agents may ask for recorded calls (``record: true``); the media plane writes the files."""


class RequestService:
    def __init__(
        self, timeline: Timeline, media: MediaGateway, settings: RequestSettings | None = None
    ) -> None:
        self.timeline = timeline
        self.store = timeline.store
        self.fanout = timeline.fanout
        self.media = media
        self.settings = settings or RequestSettings()

    # -- helpers --------------------------------------------------------------------------------------
    async def _request_for(self, principal: Principal, request_id: str) -> tuple[Request, Conversation]:
        request = await self.store.get_request(request_id)
        if request is None:
            raise NotFound("no such request")
        conv = await self.store.get_conversation(request.conversation_id)
        if conv is None or not self.timeline.may_access(principal, conv):
            raise NotFound("no such request")
        return request, conv

    async def _move(
        self,
        request: Request,
        conv: Conversation,
        trigger: sm.Trigger,
        actor: sm.Actor,
        reason: str | None = None,
    ) -> Request:
        transition = sm.apply(request, trigger, actor, utcnow(), reason)
        try:
            updated = await self.store.update_request(transition.request, expected_state=request.state)
        except Conflict:
            current = await self.store.get_request(request.id)
            state = current.state if current else "gone"
            raise sm.IllegalTransition(f"the request is already {state}", state=state) from None
        await self._announce(updated, conv)
        return updated

    async def _announce(self, request: Request, conv: Conversation) -> None:
        await self.fanout.emit(
            "request.updated", {"request": request.to_wire()}, self.timeline.everyone(conv)
        )
        params: dict[str, Any] = {
            "request_id": request.id,
            "kind": request.kind,
            "kind_label": KIND_LABELS.get(request.kind, request.kind),
        }
        if request.state == "ended" and request.active_at and request.ended_at:
            params["duration_s"] = int((request.ended_at - request.active_at).total_seconds())
        if request.reason:
            params["reason"] = request.reason
        await self.timeline.system(conv, f"request.{request.state}", **params)

    # -- calls from clients ---------------------------------------------------------------------------
    async def create(
        self, principal: Principal, conversation_id: str, kind: str, record: bool = False
    ) -> Request:
        """A new ``pending`` request; ``record`` asks for the media to be recorded (``invalid`` with
        ``details.reason`` ``recordings_disabled`` when the server does not record, ``not_recordable``
        for a kind without media)."""
        if principal.agent is None:
            raise Forbidden("only agents create requests")
        if record and not self.settings.recordings:
            raise Invalid("this server does not record calls", field="record", reason="recordings_disabled")
        conv = await self.timeline.conversation_for(principal, conversation_id)
        if conv.status != "open":
            raise Conflict("the conversation is done", field="conversation_id")
        request = sm.new_request(
            conv.id, kind, principal.agent.id, utcnow(), self.settings.ttl, record=record
        )
        request = await self.store.create_request(request)
        await self._announce(request, conv)
        return request

    async def respond(self, principal: Principal, request_id: str, accept: bool) -> Request:
        if not principal.is_customer:
            raise Forbidden("only the customer answers a request")
        request, conv = await self._request_for(principal, request_id)
        trigger = sm.Trigger.ACCEPT if accept else sm.Trigger.DECLINE
        request = await self._move(request, conv, trigger, sm.Actor.CUSTOMER)
        if request.state == "accepted":
            policy = COBROWSE_POLICY if request.kind == "cobrowse" else {}
            try:
                await self.media.open_session(
                    SessionSpec(request.id, request.kind, dict(policy), record=bool(request.record))
                )
            except Exception:
                log.exception("media plane refused session %s", request.id)
        return request

    async def end(self, principal: Principal, request_id: str, reason: str | None = None) -> Request:
        request, conv = await self._request_for(principal, request_id)
        actor = sm.Actor.AGENT if principal.is_agent else sm.Actor.CUSTOMER
        if request.state == "pending":
            trigger = sm.Trigger.CANCEL if principal.is_agent else sm.Trigger.DECLINE
        else:
            trigger = sm.Trigger.END
        if reason is not None and (not isinstance(reason, str) or len(reason) > 200):
            raise Invalid("reason must be a short string", field="reason")
        request = await self._move(request, conv, trigger, actor, reason)
        await self._close_media(request.id, request.reason or "ended")
        return request

    async def _close_media(self, request_id: str, reason: str) -> None:
        """The request is ended whatever the media plane says; a failure there is logged, not returned."""
        try:
            await self.media.close_session(request_id, reason)
        except Exception:
            log.exception("media plane failed to close session %s", request_id)

    async def end_all(self, conv: Conversation, reason: str = "conversation_done") -> None:
        """End every live request of ``conv`` (on Done)."""
        for request in await self.store.list_requests(conv.id, live_only=True):
            trigger = sm.Trigger.CANCEL if request.state == "pending" else sm.Trigger.END
            try:
                await self._move(request, conv, trigger, sm.Actor.SYSTEM, reason)
            except (Conflict, Forbidden):
                continue
            await self._close_media(request.id, reason)

    async def expire_due(self) -> int:
        """Expire every pending request past its deadline; returns how many expired here."""
        expired = 0
        for request in await self.store.list_due_requests(utcnow()):
            conv = await self.store.get_conversation(request.conversation_id)
            if conv is None:
                continue
            try:
                await self._move(request, conv, sm.Trigger.EXPIRE, sm.Actor.SYSTEM)
                expired += 1
            except Conflict:
                continue
        return expired

    # -- media ----------------------------------------------------------------------------------------
    def participant(self, principal: Principal) -> Participant:
        return Participant(kind=principal.kind, id=principal.id, name=principal.name)

    async def rtc_offer(self, principal: Principal, request_id: str, sdp: str, type_: str) -> dict[str, str]:
        request, _ = await self._request_for(principal, request_id)
        if request.state not in ("accepted", "active"):
            raise Conflict(f"the request is {request.state}", state=request.state)
        if type_ != "offer":
            raise Invalid("type must be offer", field="type")
        self._check_direction(principal, request)
        return await self.media.offer(request.id, self.participant(principal), sdp, type_)

    async def rtc_answer(self, principal: Principal, request_id: str, sdp: str, type_: str) -> None:
        request, _ = await self._request_for(principal, request_id)
        if request.state not in ("accepted", "active"):
            raise Conflict(f"the request is {request.state}", state=request.state)
        if type_ != "answer":
            raise Invalid("type must be answer", field="type")
        await self.media.answer(request.id, self.participant(principal), sdp, type_)

    # -- recordings -----------------------------------------------------------------------------------------
    async def _recording_note(self, request: Request, conv: Conversation, data: dict[str, Any]) -> None:
        """Say in the timeline, to agents only (a note: never on a customer socket, in a customer's sync
        or transcript), that the recording of ``request`` can be downloaded."""
        label = KIND_LABELS.get(request.kind, request.kind)
        duration = int(data.get("duration_s") or 0)
        params: dict[str, Any] = {
            "request_id": request.id,
            "kind": request.kind,
            "kind_label": label,
            "duration_s": duration,
            "size": int(data.get("size") or 0),
            "url": f"/api/requests/{request.id}/recording",
        }
        message = Message(
            id=new_id("msg"),
            conversation_id=conv.id,
            seq=0,
            client_id=f"rec_{request.id}",
            author=SYSTEM_AUTHOR,
            kind="note",
            body=f"Recording of the {label.lower()} available ({duration // 60} min {duration % 60} s): "
            f"{params['url']}",
            data={"code": "recording.available", "params": params, "request_id": request.id},
            created_at=utcnow(),
        )
        await self.timeline.append(message)

    async def recording_of(self, principal: Principal, request_id: str) -> Request:
        """The recorded request an agent may download (``not_found`` for anyone else, a customer
        included, and for a request that was not recorded)."""
        if not principal.is_agent:
            raise NotFound("no such recording")
        request, _ = await self._request_for(principal, request_id)
        if not request.record:
            raise NotFound("no such recording")
        return request

    @staticmethod
    def _check_direction(principal: Principal, request: Request) -> None:
        """Every participant of the conversation may join its session; nothing more to check today."""
        return None

    async def on_media_event(self, event: MediaEvent) -> None:
        """Drive requests from the media plane's reports (exception-safe: logs and goes on)."""
        try:
            await self._on_media_event(event)
        except Exception:
            log.exception("media event %s for %s failed", event.type, event.request_id)

    async def _on_media_event(self, event: MediaEvent) -> None:
        request = await self.store.get_request(event.request_id)
        if request is None:
            return
        conv = await self.store.get_conversation(request.conversation_id)
        if conv is None:
            return
        if event.type == "active" and request.state == "accepted":
            try:
                await self._move(request, conv, sm.Trigger.ACTIVATE, sm.Actor.MEDIA)
            except Conflict:
                pass
        elif event.type == "closed" and request.state in ("accepted", "active"):
            reason = event.reason or "peer_dropped"
            trigger = sm.Trigger.DROP if reason == "peer_dropped" else sm.Trigger.END
            actor = sm.Actor.MEDIA if trigger is sm.Trigger.DROP else sm.Actor.SYSTEM
            try:
                await self._move(request, conv, trigger, actor, reason)
            except Conflict:
                pass
        elif event.type == "offer" and event.participant is not None:
            p = event.participant
            audience = Audience.agent(p.id) if p.kind == "agent" else Audience.visitor(p.id)
            await self.fanout.emit("rtc.offer", {"request_id": request.id, **event.data}, [audience])
        elif event.type == "recording":
            await self._recording_note(request, conv, event.data)
        elif event.type in ("connected", "participant_left", "reconnecting", "rejoined"):
            payload = {
                "request_id": request.id,
                "type": event.type,
                "participant": {
                    "kind": event.participant.kind,
                    "id": event.participant.id,
                    "name": event.participant.name,
                }
                if event.participant
                else None,
            }
            await self.fanout.emit("rtc.participant", payload, self.timeline.everyone(conv))

    # -- queries (read only) --------------------------------------------------------------------------
    async def live_for(self, principal: Principal, max_conversations: int = 500) -> dict[str, Any]:
        """``requests.live``: the live requests (pending, accepted, active) of the open conversations an
        agent may see, oldest first, with those conversations' wire shapes, so that a console that
        (re)connects knows its request chips and co-browse sessions again. Open conversations are scanned
        newest activity first, at most ``max_conversations`` of them (Done ends every live request)."""
        from signaling.storage.base import ConversationQuery  # local: this method is the only user here

        agent = principal.agent
        if agent is None:
            raise Forbidden("only agents list live requests")
        page = 100
        queries = [
            ConversationQuery(team_ids=None if agent.is_admin else list(agent.team_ids), status="open")
        ]
        if not agent.is_admin:  # conversations assigned to the agent outside their teams
            queries.append(ConversationQuery(status="open", assignee_id=agent.id))
        convs: dict[str, Conversation] = {}
        for query in queries:
            query.limit = page
            while len(convs) < max_conversations:
                rows = await self.store.list_conversations(query)
                for conv in rows:
                    convs.setdefault(conv.id, conv)
                if len(rows) < page:
                    break
                query.before = (rows[-1].updated_at, rows[-1].id)
        requests: list[Request] = []
        with_live: list[Conversation] = []
        for conv in list(convs.values())[:max_conversations]:
            if not self.timeline.may_access(principal, conv):
                continue
            live = await self.store.list_requests(conv.id, live_only=True)
            if live:
                requests.extend(live)
                with_live.append(conv)
        requests.sort(key=lambda r: (r.created_at, r.id))
        wires = await self.timeline.wire_many(with_live)
        return {"requests": [r.to_wire() for r in requests], "conversations": wires}
