"""The rejoin grace of 1:1 calls, end to end: a real server on port 0 (hub, services, aiortc media plane
on loopback), real Socket.IO clients and real aiortc peers signalling through ``rtc.offer``.

A participant whose peer connection drops is ``reconnecting`` for the other side; an offer from a new
peer connection within the grace brings the media back (``rejoined``) and the request stays active;
past the grace the request ends with ``peer_dropped``, and the timeline says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Client, Hub, hub_on
from tests.media.conftest import HubPeer, SyntheticAudio, SyntheticVideo, wait_for


async def video_call(hub: Hub) -> tuple[Client, Client, dict[str, Any], str]:
    """Alice and a new customer in an accepted ``video`` request: (agent, customer, conversation, id)."""
    agent = await hub.agent("alice@example.com")
    customer = await hub.customer(name="Ann")
    conv = (await customer.ok("conversation.start", {"body": "help"}))["conversation"]
    await agent.ok("conversation.assign", {"conversation_id": conv["id"]})
    request = (await agent.ok("request.create", {"conversation_id": conv["id"], "kind": "video"}))["request"]
    await customer.ok("request.respond", {"request_id": request["id"], "accept": True})
    return agent, customer, conv, request["id"]


async def join(client: Client, request_id: str, size: tuple[int, int]) -> HubPeer:
    peer = HubPeer(client, request_id)
    peer.send(SyntheticAudio())
    peer.send(SyntheticVideo(*size))
    await peer.connect()
    return peer


def participant_event(kind: str, type_: str) -> Any:
    return lambda d: d["type"] == type_ and d["participant"]["kind"] == kind


async def request_state(agent: Client, request_id: str) -> str:
    got = [
        d["request"]["state"] for d in agent.events.of("request.updated") if d["request"]["id"] == request_id
    ]
    return got[-1] if got else ""


async def timeline(agent: Client, conv: dict[str, Any], request_id: str) -> list[dict[str, Any]]:
    sync = await agent.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    return [
        m
        for m in sync["messages"]
        if m["kind"] == "system" and m.get("params", {}).get("request_id") == request_id
    ]


@pytest.fixture
def grace() -> float:
    """The server's rejoin grace, in seconds (tests parametrize it)."""
    return 10.0


@pytest.fixture
async def hub_grace(tmp_path: Path, grace: float) -> AsyncIterator[Hub]:
    """A server whose rejoin grace is ``grace``."""
    async with hub_on(tmp_path, media_rejoin_grace_s=grace) as h:
        yield h


async def test_a_dropped_customer_rejoins_within_the_grace(hub_grace: Hub) -> None:
    """The customer's peer connection is closed abruptly: the agent gets ``rtc.participant``
    ``reconnecting``, the request stays ``active``; the customer offers from a new peer connection,
    the agent gets ``rejoined`` and decodes the customer's video again (a keyframe came at once)."""
    agent, customer, conv, rid = await video_call(hub_grace)
    a = await join(agent, rid, (320, 240))
    c = await join(customer, rid, (256, 192))
    peers = [a, c]
    try:
        await wait_for(lambda: a.video_frames() >= 10 and c.video_frames() >= 10, 15)
        await agent.events.wait("request.updated", lambda d: d["request"]["state"] == "active", 5)
        await c.close()  # no request.end, no rtc.leave: the connection just goes
        await agent.events.wait("rtc.participant", participant_event("customer", "reconnecting"), 10)
        before = a.video_frames()
        c2 = await join(customer, rid, (256, 192))
        peers.append(c2)
        await agent.events.wait("rtc.participant", participant_event("customer", "rejoined"), 10)
        await wait_for(lambda: a.video_frames() >= before + 10 and c2.video_frames() >= 10, 15)
        assert {(256, 192)} <= {s for r in a.readers if r.track.kind == "video" for s in r.sizes}
        assert await request_state(agent, rid) == "active"
        assert not agent.events.of("rtc.participant") or not [
            d for d in agent.events.of("rtc.participant") if d["type"] == "participant_left"
        ]
        codes = [m["code"] for m in await timeline(agent, conv, rid)]
        assert "request.ended" not in codes
    finally:
        for peer in peers:
            await peer.close()


@pytest.mark.parametrize("grace", [1.0])
async def test_a_customer_who_never_comes_back_ends_the_call_after_the_grace(hub_grace: Hub) -> None:
    """Past a short grace without a new offer the request ends (``peer_dropped``), both sides are
    told, and the timeline has ``request.ended`` with that reason."""
    agent, customer, conv, rid = await video_call(hub_grace)
    a = await join(agent, rid, (320, 240))
    c = await join(customer, rid, (256, 192))
    try:
        await wait_for(lambda: a.video_frames() >= 5, 15)
        await c.close()
        await agent.events.wait("rtc.participant", participant_event("customer", "reconnecting"), 10)
        ended = await agent.events.wait(
            "request.updated", lambda d: d["request"]["id"] == rid and d["request"]["state"] == "ended", 10
        )
        assert ended["request"]["reason"] == "peer_dropped"
        await customer.events.wait("request.updated", lambda d: d["request"]["state"] == "ended", 5)
        await agent.events.wait("rtc.participant", participant_event("customer", "participant_left"), 5)
        ends = [m for m in await timeline(agent, conv, rid) if m["code"] == "request.ended"]
        assert ends and ends[0]["params"]["reason"] == "peer_dropped"
    finally:
        await a.close()
        await c.close()


async def test_hanging_up_during_the_grace_ends_at_once(hub_grace: Hub) -> None:
    """While the customer is away the agent hangs up: the request ends then (no waiting for the
    grace), and a late offer from the customer is refused."""
    agent, customer, conv, rid = await video_call(hub_grace)
    a = await join(agent, rid, (320, 240))
    c = await join(customer, rid, (256, 192))
    try:
        await wait_for(lambda: a.video_frames() >= 5, 15)
        await c.close()
        await agent.events.wait("rtc.participant", participant_event("customer", "reconnecting"), 10)
        res = await agent.ok("request.end", {"request_id": rid, "reason": "hangup"})
        assert res["request"]["state"] == "ended"
        late = HubPeer(customer, rid)
        late.send(SyntheticAudio())
        offer = await late.pc.createOffer()
        await late.pc.setLocalDescription(offer)
        refused = await customer.call("rtc.offer", {"request_id": rid, "sdp": offer.sdp, "type": "offer"})
        assert refused["ok"] is False and refused["error"]["code"] == "conflict"
        await late.close()
        await asyncio.sleep(0)
    finally:
        await a.close()
        await c.close()
