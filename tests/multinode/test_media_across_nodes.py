"""A media session lives on one node and SDP reaches it from the other: the customer accepts a call
on node 1 (which opens and owns the session), the agent on node 2 sends its offer to node 2, which
forwards it through Redis to node 1; both aiortc peers connect to node 1's media plane and the
request goes active; ending it from node 2 closes the session on node 1."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from rtc_server.app import MEDIA
from rtc_server.cluster_media import ClusterMediaGateway
from rtc_server.media.aiortc_adapter import restrict_host_addresses
from tests.conftest import Client
from tests.media.conftest import SyntheticAudio

from .conftest import Cluster

pytestmark = pytest.mark.redis


async def call_peer(client: Client, request_id: str) -> RTCPeerConnection:
    """An aiortc peer sending audio, negotiated through ``client``'s node with ``rtc.offer``."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(SyntheticAudio(), direction="sendrecv")
    offer = await pc.createOffer()
    restrict_host_addresses(pc, ["127.0.0.1"])
    await pc.setLocalDescription(offer)
    answer = await client.ok(
        "rtc.offer", {"request_id": request_id, "sdp": pc.localDescription.sdp, "type": "offer"}
    )
    assert answer["type"] == "answer" and "m=audio" in answer["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    return pc


async def test_offer_from_the_other_node_reaches_the_session_owner(cluster: Cluster) -> None:
    """Node 2 forwards the agent's offer to node 1 (the owner); both peers connect; the request goes
    active; request.end from node 2 closes the owner's session."""
    alice = await cluster.hubs[1].agent("alice@example.com")
    customer = await cluster.hubs[0].customer(name="Caller")
    conv = (await customer.ok("conversation.start", {"body": "call me"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    request = (await alice.ok("request.create", {"conversation_id": conv["id"], "kind": "call"}))["request"]
    await customer.ok("request.respond", {"request_id": request["id"], "accept": True})

    owner: Any = cluster.nodes[0].app[MEDIA]
    other: Any = cluster.nodes[1].app[MEDIA]
    assert isinstance(owner, ClusterMediaGateway) and isinstance(other, ClusterMediaGateway)
    assert request["id"] in owner.local.sessions  # type: ignore[attr-defined]
    assert request["id"] not in other.local.sessions  # type: ignore[attr-defined]

    peers = [await call_peer(customer, request["id"]), await call_peer(alice, request["id"])]
    try:
        assert other.forwarded >= 1 and owner.served >= 1
        async with asyncio.timeout(15):
            while any(pc.connectionState != "connected" for pc in peers):
                await asyncio.sleep(0.05)
        is_active = lambda d: d["request"]["id"] == request["id"] and d["request"]["state"] == "active"  # noqa: E731
        await alice.events.wait("request.updated", is_active, timeout=15)
        await customer.events.wait("request.updated", is_active, timeout=15)
        await alice.events.wait(
            "rtc.participant", lambda d: d["type"] == "connected" and d["participant"]["kind"] == "agent"
        )

        ended = await alice.ok("request.end", {"request_id": request["id"]})
        assert ended["request"]["state"] == "ended"
        async with asyncio.timeout(10):
            while request["id"] in owner.local.sessions:  # type: ignore[attr-defined]
                await asyncio.sleep(0.05)
    finally:
        for pc in peers:
            await pc.close()


async def test_offers_without_a_live_owner_are_refused_at_once(cluster: Cluster) -> None:
    """An offer for a pending request (no session anywhere) is refused with ``conflict``; one for an
    accepted request whose owner node is gone answers ``unavailable`` at once, not after a wait; ending
    that request still works (its session went with its node)."""
    alice = await cluster.hubs[1].agent("alice@example.com")
    customer = await cluster.hubs[0].customer(name="Nobody")
    conv = (await customer.ok("conversation.start", {"body": "hi"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    request = (await alice.ok("request.create", {"conversation_id": conv["id"], "kind": "call"}))["request"]
    early = await alice.call("rtc.offer", {"request_id": request["id"], "sdp": "v=0", "type": "offer"})
    assert early["ok"] is False and early["error"]["code"] == "conflict"

    await customer.ok("request.respond", {"request_id": request["id"], "accept": True})
    owner: Any = cluster.nodes[0].app[MEDIA]
    assert owner._loop_task is not None  # stop the owner's inbox loop and its alive key, as if node 1 were gone
    await owner._stop_inbox()
    await owner._client().delete(owner._k("alive", "n1"))
    gone = await alice.call("rtc.offer", {"request_id": request["id"], "sdp": "v=0", "type": "offer"})
    assert gone["ok"] is False and gone["error"]["code"] == "unavailable"
    ended = await alice.ok("request.end", {"request_id": request["id"]})  # nothing left to close: fine
    assert ended["request"]["state"] == "ended"
