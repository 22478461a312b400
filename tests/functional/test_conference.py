"""Conference calls through the real server: colleagues invited by an agent, signed expiring join links for
external participants, guests that may only do media for their one request, and a room that every
participant (aiortc clients publishing synthetic audio and video over the hub) receives from every other,
that people leave one by one, and that ends (request ``ended``, reason ``empty``) when the last one leaves.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import socketio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from rtc_server.media.aiortc_adapter import restrict_host_addresses
from signaling.domain import auth as tokens
from tests.conftest import Client, Hub
from tests.media.conftest import SyntheticAudio, SyntheticVideo, TrackReader, wait_for


async def conference(hub: Hub, accept: bool = True) -> tuple[Client, Client, dict[str, Any], dict[str, Any]]:
    """Alice (support) assigned to Ann's conversation, with a conference request (accepted by Ann)."""
    alice = await hub.agent("alice@example.com")
    ann = await hub.customer(name="Ann")
    conv = (await ann.ok("conversation.start", {"body": "help"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    request = (await alice.ok("request.create", {"conversation_id": conv["id"], "kind": "conference"}))[
        "request"
    ]
    if accept:
        request = (await ann.ok("request.respond", {"request_id": request["id"], "accept": True}))["request"]
    return alice, ann, conv, request


async def post(hub: Hub, path: str, body: Any, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with hub.http.post(f"{hub.server.url}{path}", json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def link_for(hub: Hub, agent: Client, request_id: str, **body: Any) -> dict[str, Any]:
    status, res = await post(hub, f"/api/conference/{request_id}/links", body, agent_token(agent))
    assert status == 201, res
    return res


def agent_token(agent: Client) -> str:
    return agent.sio.connection_auth["token"]  # type: ignore[index,no-any-return]


async def guest(hub: Hub, link: dict[str, Any], name: str) -> Client:
    status, grant = await post(hub, "/api/conference/join", {"t": link["token"], "name": name})
    assert status == 200, grant
    client = await hub.connect("/customer", grant["token"])
    client.guest = grant["guest"]  # type: ignore[attr-defined]
    return client


async def error_code(client: Client, event: str, payload: Any) -> str:
    res = await client.call(event, payload)
    assert res["ok"] is False, (event, res)
    code: str = res["error"]["code"]
    return code


class MediaClient:
    """A participant's aiortc peer driven over the hub: offers with ``rtc.offer``, answers the server's
    ``rtc.offer`` events with ``rtc.answer`` (what the pages do)."""

    def __init__(self, client: Client, request_id: str) -> None:
        self.client = client
        self.request_id = request_id
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.readers: list[TrackReader] = []
        self.streams: dict[str, dict[str, str]] = {}
        self.pc.on("track", self._on_track)
        self.pc.addTransceiver(SyntheticVideo(320, 240), direction="sendonly")
        self.pc.addTransceiver(SyntheticAudio(), direction="sendonly")
        self._lock = asyncio.Lock()
        client.sio.on("rtc.offer", self._on_server_offer, namespace=client.namespace)

    def _on_track(self, track: Any) -> None:
        reader = TrackReader(track)
        reader.start()
        self.readers.append(reader)

    async def join(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        restrict_host_addresses(self.pc, ["127.0.0.1"])
        res = await self.client.ok(
            "rtc.offer", {"request_id": self.request_id, "sdp": self.pc.localDescription.sdp, "type": "offer"}
        )
        await self.pc.setRemoteDescription(RTCSessionDescription(res["sdp"], "answer"))

    async def _on_server_offer(self, data: dict[str, Any]) -> None:
        if data.get("request_id") != self.request_id:
            return
        async with self._lock:
            self.streams.update(data.get("streams") or {})
            await self.pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self.client.ok(
                "rtc.answer",
                {"request_id": self.request_id, "sdp": self.pc.localDescription.sdp, "type": "answer"},
            )

    def decoding_videos(self, minimum: int = 5) -> int:
        return sum(1 for r in self.readers if r.track.kind == "video" and r.frames >= minimum)

    def hearing(self, minimum: int = 5) -> int:
        return sum(1 for r in self.readers if r.track.kind == "audio" and r.frames >= minimum)

    async def close(self) -> None:
        for reader in self.readers:
            await reader.stop()
        await self.pc.close()


async def test_links_are_for_agents_of_the_conversation(hub: Hub) -> None:
    """Only an agent who may see the conversation creates a link (customer 401, other team 404); only for a
    live conference (another kind 400, ended 409); the link is a signed URL to /join/ that expires."""
    alice, ann, conv, request = await conference(hub)
    before = time.time()
    link = await link_for(hub, alice, request["id"], ttl_s=600)
    assert link["url"].startswith(hub.server.url + "/join/?t=")
    assert link["url"].endswith(link["token"])
    expires = link["expires_at"]
    assert expires > time.strftime("%Y-%m-%dT%H:%M", time.gmtime(before + 590))
    assert expires < time.strftime("%Y-%m-%dT%H:%M", time.gmtime(before + 700))

    status, res = await post(hub, f"/api/conference/{request['id']}/links", {}, ann.token)  # type: ignore[attr-defined]
    assert status == 401 and res["error"]["code"] == "unauthorized"
    carol = await hub.agent("carol@example.com")
    status, res = await post(hub, f"/api/conference/{request['id']}/links", {}, agent_token(carol))
    assert status == 404
    status, res = await post(hub, f"/api/conference/{request['id']}/links", {"ttl_s": 5}, agent_token(alice))
    assert status == 400 and res["error"]["details"]["field"] == "ttl_s"
    call = (await alice.ok("request.create", {"conversation_id": conv["id"], "kind": "call"}))["request"]
    status, res = await post(hub, f"/api/conference/{call['id']}/links", {}, agent_token(alice))
    assert status == 400
    async with hub.http.get(f"{hub.server.url}/api/conference/join", params={"t": link["token"]}) as resp:
        assert resp.status == 200
        info = await resp.json()
    assert info == {
        "request": {"id": request["id"], "kind": "conference", "state": "accepted"},
        "host": {"name": "Alice Martin"},
    }
    await alice.ok("request.end", {"request_id": request["id"]})
    status, res = await post(hub, f"/api/conference/{request['id']}/links", {}, agent_token(alice))
    assert status == 409
    status, res = await post(hub, "/api/conference/join", {"t": link["token"], "name": "Gus"})
    assert status == 409 and "ended" in res["error"]["message"]


async def test_join_refuses_bad_links_and_waits_for_the_start(hub: Hub) -> None:
    """A forged, expired or non-link token is 401; a link to a conference not accepted yet is 409; a name
    is required."""
    alice, ann, _conv, request = await conference(hub, accept=False)
    link = await link_for(hub, alice, request["id"])
    status, res = await post(hub, "/api/conference/join", {"t": link["token"], "name": "Gus"})
    assert status == 409 and "not started" in res["error"]["message"]
    status, res = await post(hub, "/api/conference/join", {"t": link["token"], "name": "  "})
    assert status == 400 and res["error"]["details"]["field"] == "name"
    secret = hub.server.config.secret_bytes
    expired = tokens.sign_token(secret, {"k": "conference_link", "r": request["id"]}, 1, time.time() - 10)
    forged = link["token"][:-2] + ("AA" if not link["token"].endswith("AA") else "BB")
    for bad in (expired, forged, agent_token(alice), ann.token):  # type: ignore[attr-defined]
        status, res = await post(hub, "/api/conference/join", {"t": bad, "name": "Gus"})
        assert status == 401, (bad, res)
    status, res = await post(hub, "/api/conference/join", {"t": expired, "name": "Gus"})
    assert res["error"]["message"] == "this link has expired"


async def test_guests_may_only_do_media_for_their_request(hub: Hub) -> None:
    """A guest token opens /customer as a guest: chat, lists and other requests are refused; rtc.config
    works; rtc.offer for another request is not_found; guest tokens are refused on /agent and on REST."""
    alice, ann, conv, request = await conference(hub)
    link = await link_for(hub, alice, request["id"])
    gus = await guest(hub, link, "Gus Guest")
    assert (await gus.ok("rtc.config", {}))["ice_servers"] == []
    for event, payload in (
        ("message.send", {"conversation_id": conv["id"], "client_id": "x1", "body": "hi"}),
        ("conversation.start", {"body": "hi"}),
        ("conversations.list", {}),
        ("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0}),
        ("request.respond", {"request_id": request["id"], "accept": True}),
    ):
        assert await error_code(gus, event, payload) == "invalid", event
    other = (await alice.ok("request.create", {"conversation_id": conv["id"], "kind": "video"}))["request"]
    await ann.ok("request.respond", {"request_id": other["id"], "accept": True})
    for event in ("rtc.offer", "rtc.answer"):
        payload = {"request_id": other["id"], "sdp": "v=0\r\n", "type": event.split(".")[1]}
        assert await error_code(gus, event, payload) == "not_found"
    assert await error_code(gus, "request.end", {"request_id": other["id"]}) == "not_found"
    grant_token = gus.sio.connection_auth["token"]  # type: ignore[index]
    async with hub.http.get(
        f"{hub.server.url}/api/me", headers={"Authorization": f"Bearer {grant_token}"}
    ) as resp:
        assert resp.status == 401
    with pytest.raises(socketio.exceptions.ConnectionError):
        await hub.connect("/agent", grant_token)
    sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert not [m for m in sync["messages"] if m["kind"] != "system" and m["body"] == "hi"]


async def test_invite_a_colleague_of_the_team(hub: Hub) -> None:
    """Alice invites Bob (same team): every console of Bob gets conference.invite naming Alice and the
    customer; Carol (another team) cannot be invited; customers cannot invite."""
    alice, ann, _conv, request = await conference(hub)
    bob = await hub.agent("bob@example.com")
    carol = await hub.agent("carol@example.com")
    await alice.ok("conference.invite", {"request_id": request["id"], "agent_id": bob.agent["id"]})  # type: ignore[attr-defined]
    invite = await bob.events.wait("conference.invite")
    assert invite["request"]["id"] == request["id"]
    assert invite["from"] == {"id": alice.agent["id"], "name": "Alice Martin"}  # type: ignore[attr-defined]
    assert invite["visitor"]["name"] == "Ann"
    payload = {"request_id": request["id"], "agent_id": carol.agent["id"]}  # type: ignore[attr-defined]
    assert await error_code(alice, "conference.invite", payload) == "not_found"
    assert await error_code(ann, "conference.invite", payload) == "invalid"  # not an event of /customer
    assert not carol.events.of("conference.invite")


async def test_four_party_room_every_one_receives_every_other_and_ends_when_empty(hub: Hub) -> None:
    """Agent, customer, invited colleague and a guest by link: each decodes the three others' video and
    hears their audio (names of the publishers in the server offers); leaving one by one keeps the room;
    the last leave ends the request with reason ``empty`` and the timeline has its duration."""
    alice, ann, conv, request = await conference(hub)
    rid = request["id"]
    bob = await hub.agent("bob@example.com")
    await alice.ok("conference.invite", {"request_id": rid, "agent_id": bob.agent["id"]})  # type: ignore[attr-defined]
    await bob.events.wait("conference.invite")
    gus = await guest(hub, await link_for(hub, alice, rid), "Gus Guest")
    people = {
        name: MediaClient(client, rid)
        for name, client in (("alice", alice), ("ann", ann), ("bob", bob), ("gus", gus))
    }
    try:
        for member in people.values():
            await member.join()
        await wait_for(
            lambda: all(m.decoding_videos() == 3 and m.hearing() == 3 for m in people.values()), 20
        )
        await alice.events.wait("request.updated", lambda d: d["request"]["state"] == "active")
        names = {v["name"] for v in people["gus"].streams.values()}
        assert names == {"Alice Martin", "Ann", "Bob Durand"}
        assert {v["kind"] for v in people["alice"].streams.values()} == {"customer", "agent", "guest"}

        assert (await gus.ok("request.end", {"request_id": rid})) == {"ok": True}  # a guest's end is a leave
        left = await alice.events.wait("rtc.participant", lambda d: d["type"] == "participant_left")
        assert left["participant"]["kind"] == "guest" and left["participant"]["name"] == "Gus Guest"
        await alice.ok("rtc.leave", {"request_id": rid})
        await ann.ok("rtc.leave", {"request_id": rid})
        await asyncio.sleep(0.3)
        assert (await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0}))[
            "requests"
        ][0]["state"] == "active"
        await bob.ok("rtc.leave", {"request_id": rid})
        ended = await ann.events.wait("request.updated", lambda d: d["request"]["state"] == "ended")
        assert ended["request"]["reason"] == "empty"
        sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
        last = [m for m in sync["messages"] if m.get("code") == "request.ended"][-1]
        assert last["params"]["kind"] == "conference" and isinstance(last["params"]["duration_s"], int)
        assert await error_code(gus, "rtc.offer", {"request_id": rid, "sdp": "v=0\r\n", "type": "offer"}) == (
            "conflict"
        )
    finally:
        for member in people.values():
            await member.close()


async def test_an_extra_agent_leaves_a_video_call_without_ending_it(hub: Hub) -> None:
    """rtc.leave works for every call kind: a second agent who joined a video call leaves and the call goes
    on; when the last agent leaves, the call ends (reason ``ended``). rtc.leave on a co-browse request is
    invalid."""
    alice = await hub.agent("alice@example.com")
    ann = await hub.customer(name="Ann")
    conv = (await ann.ok("conversation.start", {"body": "help"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    rid = (await alice.ok("request.create", {"conversation_id": conv["id"], "kind": "video"}))["request"][
        "id"
    ]
    await ann.ok("request.respond", {"request_id": rid, "accept": True})
    bob = await hub.agent("bob@example.com")
    people = [MediaClient(client, rid) for client in (alice, ann, bob)]
    try:
        for member in people:
            await member.join()
        await wait_for(lambda: all(m.decoding_videos() == 2 for m in people), 20)
        await bob.ok("rtc.leave", {"request_id": rid})
        await alice.events.wait("rtc.participant", lambda d: d["type"] == "participant_left")
        await asyncio.sleep(0.3)
        sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
        assert sync["requests"][0]["state"] == "active"
        await alice.ok("rtc.leave", {"request_id": rid})
        ended = await ann.events.wait("request.updated", lambda d: d["request"]["state"] == "ended")
        assert ended["request"]["reason"] == "ended"
        cobrowse = (await alice.ok("request.create", {"conversation_id": conv["id"], "kind": "cobrowse"}))[
            "request"
        ]
        assert await error_code(alice, "rtc.leave", {"request_id": cobrowse["id"]}) == "invalid"
    finally:
        for member in people:
            await member.close()
