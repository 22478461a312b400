"""The authorisation matrix, table-driven: six principals x ten actions on a conversation of customer A
in team A (``support``), each cell run on fresh state, the matrix printed.

Principals: anonymous (no token), customer A (the conversation's visitor), customer B (another visitor),
agent team A (Bob, support), agent team B (Carol, sales), admin (Alice). Actions: join/sync
(``conversation.sync``), history (``GET /api/conversations/{id}``), notes (``note.add``), send
(``message.send``), assign ("assign to me"), request respond (``request.respond`` on a pending
request), attachment download (``GET /api/uploads/{id}``), transcript (``GET .../transcript``), co-browse
stream (``rtc.offer`` with a real aiortc offer on the accepted co-browse request) and media offer
(``rtc.offer`` on an accepted video request).

Pins: every cell is exactly as expected (every forbidden cell denied with ``unauthorized``, ``forbidden``,
``not_found`` or, for an event the namespace does not have, ``invalid``; every allowed cell succeeds),
and a tap on every Engine.IO packet received by the customers' sockets, plus every REST answer they
got, never contains the text of a note (``note.add`` notes and redirect notes).

The per-event refusal lists of ``tests/functional/test_hub_auth.py`` (every event of another customer's
or another team's conversation) are not repeated here.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection

from rtc_server.media.aiortc_adapter import restrict_host_addresses
from tests.conftest import Client, Hub
from tests.reliability.conftest import figure

PRINCIPALS = ("anonymous", "customer_a", "customer_b", "agent_team_a", "agent_team_b", "admin")
ACTIONS = (
    "sync",
    "history",
    "note",
    "send",
    "assign",
    "respond",
    "attachment",
    "transcript",
    "cobrowse",
    "media",
)
ALLOWED: dict[str, set[str]] = {
    "anonymous": set(),
    "customer_a": {"sync", "history", "send", "respond", "attachment", "transcript", "cobrowse", "media"},
    "customer_b": set(),
    "agent_team_a": set(ACTIONS) - {"respond"},
    "agent_team_b": set(),
    "admin": set(ACTIONS) - {"respond"},
}
DENIAL_CODES = {"unauthorized", "forbidden", "not_found", "invalid"}
SECRET = "NOTE-SECRET-" + uuid.uuid4().hex
REDIRECT_SECRET = "REDIRECT-NOTE-" + uuid.uuid4().hex


@dataclass
class Who:
    """A principal: its token (None: anonymous) and socket (None: cannot connect)."""

    name: str
    token: str | None
    client: Client | None


@dataclass
class Fixture:
    """Customer A's fresh conversation, with a note, an upload and the requests an action needs."""

    conv_id: str
    attachment_id: str
    request_id: str | None = None


@dataclass
class World:
    hub: Hub
    who: dict[str, Who]
    alice: Client
    customer_a: Client
    tapped: list[str] = field(default_factory=list)
    """Every packet a customer socket received and every REST answer a customer got."""

    @property
    def url(self) -> str:
        return self.hub.server.url

    async def fresh(self, request_kind: str | None = None, accept: bool = False) -> Fixture:
        conv = (await self.customer_a.ok("conversation.start", {"body": "matrix"}))["conversation"]
        await self.alice.ok(
            "note.add", {"conversation_id": conv["id"], "body": f"{SECRET} about this customer"}
        )
        attachment_id = await self.upload(conv["id"])
        fx = Fixture(conv["id"], attachment_id)
        if request_kind:
            req = await self.alice.ok("request.create", {"conversation_id": conv["id"], "kind": request_kind})
            fx.request_id = req["request"]["id"]
            if accept:
                await self.customer_a.ok("request.respond", {"request_id": fx.request_id, "accept": True})
        return fx

    async def upload(self, conv_id: str) -> str:
        form = aiohttp.FormData()
        form.add_field("conversation_id", conv_id)
        form.add_field("file", b"hello matrix", filename="a.txt", content_type="text/plain")
        token = self.who["customer_a"].token
        async with self.hub.http.post(
            f"{self.url}/api/uploads", data=form, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            body = await resp.json()
            assert resp.status == 201, body
            return str(body["attachment"]["id"])

    async def rest(self, who: Who, path: str) -> tuple[bool, str]:
        headers = {"Authorization": f"Bearer {who.token}"} if who.token else {}
        async with self.hub.http.get(f"{self.url}{path}", headers=headers) as resp:
            text = await resp.text()
            if who.name.startswith("customer"):
                self.tapped.append(text)
            if resp.status == 200:
                return True, "200"
            code = (await resp.json())["error"]["code"]
            return False, f"{resp.status} {code}"


async def socket_call(who: Who, event: str, payload: dict[str, Any]) -> tuple[bool, str]:
    if who.client is None:
        return False, "unauthorized (connect refused)"
    res = await who.client.call(event, payload)
    if res.get("ok") is True:
        return True, "ok"
    return False, str(res["error"]["code"])


async def real_offer(kind: str) -> tuple[RTCPeerConnection, str]:
    """An aiortc peer's offer: a ``cobrowse`` data channel, or audio and video."""
    pc = RTCPeerConnection()
    if kind == "cobrowse":
        pc.createDataChannel("cobrowse")
    else:
        pc.addTransceiver("audio", direction="sendrecv")
        pc.addTransceiver("video", direction="sendrecv")
    offer = await pc.createOffer()
    restrict_host_addresses(pc, ["127.0.0.1"])
    await pc.setLocalDescription(offer)
    return pc, pc.localDescription.sdp


Action = Callable[[World, Who], Awaitable[tuple[bool, str]]]


async def act_sync(w: World, who: Who) -> tuple[bool, str]:
    fx = await w.fresh()
    return await socket_call(who, "conversation.sync", {"conversation_id": fx.conv_id, "after_seq": 0})


async def act_history(w: World, who: Who) -> tuple[bool, str]:
    fx = await w.fresh()
    return await w.rest(who, f"/api/conversations/{fx.conv_id}")


async def act_note(w: World, who: Who) -> tuple[bool, str]:
    fx = await w.fresh()
    return await socket_call(
        who, "note.add", {"conversation_id": fx.conv_id, "body": f"{SECRET} by {who.name}"}
    )


async def act_send(w: World, who: Who) -> tuple[bool, str]:
    fx = await w.fresh()
    payload = {"conversation_id": fx.conv_id, "client_id": uuid.uuid4().hex, "kind": "text", "body": "hi"}
    return await socket_call(who, "message.send", payload)


async def act_assign(w: World, who: Who) -> tuple[bool, str]:
    fx = await w.fresh()
    return await socket_call(who, "conversation.assign", {"conversation_id": fx.conv_id})


async def act_respond(w: World, who: Who) -> tuple[bool, str]:
    fx = await w.fresh("call")
    return await socket_call(who, "request.respond", {"request_id": fx.request_id, "accept": True})


async def act_attachment(w: World, who: Who) -> tuple[bool, str]:
    fx = await w.fresh()
    return await w.rest(who, f"/api/uploads/{fx.attachment_id}")


async def act_transcript(w: World, who: Who) -> tuple[bool, str]:
    fx = await w.fresh()
    ok_json = await w.rest(who, f"/api/conversations/{fx.conv_id}/transcript")
    ok_text = await w.rest(who, f"/api/conversations/{fx.conv_id}/transcript?format=text")
    assert ok_json[0] == ok_text[0], (ok_json, ok_text)
    return ok_json


async def offer_on(w: World, who: Who, kind: str) -> tuple[bool, str]:
    fx = await w.fresh(kind, accept=True)
    pc, sdp = await real_offer(kind)
    try:
        ok, code = await socket_call(
            who, "rtc.offer", {"request_id": fx.request_id, "sdp": sdp, "type": "offer"}
        )
    finally:
        await pc.close()
    await w.alice.ok("request.end", {"request_id": fx.request_id})
    return ok, code


async def act_cobrowse(w: World, who: Who) -> tuple[bool, str]:
    return await offer_on(w, who, "cobrowse")


async def act_media(w: World, who: Who) -> tuple[bool, str]:
    return await offer_on(w, who, "video")


ACTS: dict[str, Action] = {
    "sync": act_sync,
    "history": act_history,
    "note": act_note,
    "send": act_send,
    "assign": act_assign,
    "respond": act_respond,
    "attachment": act_attachment,
    "transcript": act_transcript,
    "cobrowse": act_cobrowse,
    "media": act_media,
}


def tap(client: Client, sink: list[str]) -> None:
    """Record every Engine.IO packet ``client`` receives, before python-socketio decodes it."""
    eio = client.sio.eio
    original = eio._receive_packet

    async def tapped(pkt: Any) -> None:
        sink.append(pkt.data if isinstance(pkt.data, str) else repr(pkt.data))
        await original(pkt)

    eio._receive_packet = tapped  # type: ignore[method-assign]


async def test_authorisation_matrix_and_no_note_reaches_a_customer(hub: Hub) -> None:
    """Every cell of principals x actions is allowed or denied exactly as the product says, and no note
    text is ever received by a customer socket or in a customer's REST answers."""
    tokens = {e: (await hub.login(f"{e}@example.com"))["token"] for e in ("alice", "bob", "carol")}
    alice = await hub.agent("alice@example.com")
    bob = await hub.agent("bob@example.com")
    carol = await hub.agent("carol@example.com")
    va, vb = await hub.visitor(name="Ann"), await hub.visitor(name="Bea")
    customer_a = await hub.connect("/customer", va["token"])
    customer_b = await hub.connect("/customer", vb["token"])
    refused = None
    try:
        await hub.connect("/customer", None)
    except Exception as exc:  # the anonymous socket: refused at connect
        refused = exc
    assert refused is not None
    world = World(
        hub=hub,
        who={
            "anonymous": Who("anonymous", None, None),
            "customer_a": Who("customer_a", va["token"], customer_a),
            "customer_b": Who("customer_b", vb["token"], customer_b),
            "agent_team_a": Who("agent_team_a", tokens["bob"], bob),
            "agent_team_b": Who("agent_team_b", tokens["carol"], carol),
            "admin": Who("admin", tokens["alice"], alice),
        },
        alice=alice,
        customer_a=customer_a,
    )
    tap(customer_a, world.tapped)
    tap(customer_b, world.tapped)

    results: dict[tuple[str, str], tuple[bool, str]] = {}
    for action in ACTIONS:
        for name in PRINCIPALS:
            results[(name, action)] = await ACTS[action](world, world.who[name])

    # a redirect note, then everything a customer can ask for once more
    fx = await world.fresh()
    await alice.ok("conversation.assign", {"conversation_id": fx.conv_id})
    await alice.ok(
        "conversation.assign",
        {"conversation_id": fx.conv_id, "agent_id": bob.agent["id"], "note": REDIRECT_SECRET},  # type: ignore[attr-defined]
    )
    await customer_a.ok("conversations.list", {})
    await customer_a.ok("conversation.sync", {"conversation_id": fx.conv_id, "after_seq": 0})
    for path in ("", "/transcript", "/transcript?format=text"):
        await world.rest(world.who["customer_a"], f"/api/conversations/{fx.conv_id}{path}")
    await world.rest(world.who["customer_a"], "/api/conversations")
    agent_sync = await alice.ok("conversation.sync", {"conversation_id": fx.conv_id, "after_seq": 0})
    assert SECRET in repr(agent_sync) and REDIRECT_SECRET in repr(agent_sync)  # the notes exist

    def cell(ok: bool, code: str) -> str:
        return "ALLOW" if ok else code.split(" (")[0].replace("unauthorized", "unauth").split()[-1]

    width = 13
    lines = ["principal".ljust(14) + "".join(a.ljust(width) for a in ACTIONS)]
    for name in PRINCIPALS:
        row = [cell(*results[(name, a)]).ljust(width) for a in ACTIONS]
        lines.append(name.ljust(14) + "".join(row))
    print("\n" + "\n".join(lines))
    wrong = [
        f"{name} {action}: {'allowed' if ok else 'denied'} ({code})"
        for (name, action), (ok, code) in results.items()
        if ok != (action in ALLOWED[name])
    ]
    bad_codes = [
        f"{name} {action}: {code}"
        for (name, action), (ok, code) in results.items()
        if not ok and not DENIAL_CODES & set(code.replace("(", " ").split())
    ]
    leaks = [frame[:200] for frame in world.tapped if SECRET in frame or REDIRECT_SECRET in frame]
    figure(
        "authz_matrix",
        cells=len(results),
        allowed=sum(ok for ok, _ in results.values()),
        denied=sum(not ok for ok, _ in results.values()),
        wrong_cells=len(wrong),
        customer_frames_tapped=len(world.tapped),
        note_leaks=len(leaks),
    )
    assert wrong == []
    assert bad_codes == []
    assert leaks == []
    assert len(world.tapped) > 100
