"""Leaks: a bounded soak against the real server process (:mod:`tests.reliability.probe_server`, media on
loopback) — connect/disconnect churn (clean and abrupt), requests created and ended in every way, and
real aiortc peers opened and closed on call and co-browse requests — after which the server's open file
descriptors (``/proc/<pid>/fd``), asyncio tasks, threads, media sessions and peers (the gateway's
sessions, and every ``RTCPeerConnection`` object left in the process), Engine.IO and hub sockets, and
RSS are back to the baseline taken after one warm-up round, within the bounds below.

``make soak`` runs it ten times longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiortc import RTCPeerConnection, RTCSessionDescription

from rtc_server.media.aiortc_adapter import restrict_host_addresses
from tests.media.conftest import SyntheticAudio
from tests.reliability.conftest import figure, login, scale, visitor
from tests.reliability.proc import ServerProcess

ROUNDS = scale(4, 40)
CHURN = 25
"""Connect/disconnect cycles per round (half of them aborted)."""
#: Bounds of what a soak may leave behind.
FD_BOUND = 4
TASK_BOUND = 2
THREAD_BOUND = 4
RSS_BOUND_KB = 40 * 1024
SETTLE_S = 30.0


@dataclass
class Rig:
    server: ServerProcess
    http: aiohttp.ClientSession
    agent: socketio.AsyncClient
    customer: socketio.AsyncClient
    customer_token: str
    cid: str


async def sio_connect(url: str, namespace: str, token: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    await sio.connect(url, namespaces=[namespace], auth={"token": token}, transports=["websocket"])
    return sio


async def call(
    sio: socketio.AsyncClient, namespace: str, event: str, payload: dict[str, Any]
) -> dict[str, Any]:
    res = await sio.call(event, payload, namespace=namespace, timeout=15)
    assert isinstance(res, dict) and res.get("ok") is True, (event, res)
    return res


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    # a short rejoin grace: a peer the client closes ends its call within the round
    server = ServerProcess.probe(tmp_path / "data", media_rejoin_grace_s=1.0)
    await server.start()
    http = aiohttp.ClientSession()
    try:
        alice = await login(http, server.url, "alice@example.com")
        v = await visitor(http, server.url, name="Soak")
        agent = await sio_connect(server.url, "/agent", alice["token"])
        customer = await sio_connect(server.url, "/customer", v["token"])
        conv = await call(customer, "/customer", "conversation.start", {"body": "soak"})
        cid = conv["conversation"]["id"]
        await call(agent, "/agent", "conversation.assign", {"conversation_id": cid})
        yield Rig(server, http, agent, customer, v["token"], cid)
        await agent.disconnect()
        await customer.disconnect()
    finally:
        await http.close()
        server.stop()


async def churn(rig: Rig, n: int) -> int:
    """``n`` customer sockets connect, call once and go; every other one by aborting its TCP connection."""
    aborted = 0
    for i in range(n):
        sio = await sio_connect(rig.server.url, "/customer", rig.customer_token)
        await call(sio, "/customer", "conversations.list", {})
        if i % 2:
            ws = getattr(sio.eio, "ws", None)
            transport = getattr(getattr(ws, "_conn", None), "transport", None)
            if transport is not None:
                transport.abort()
                aborted += 1
                for _ in range(100):
                    if not sio.connected:
                        break
                    await asyncio.sleep(0.01)
        with contextlib.suppress(Exception):
            await sio.disconnect()
    return aborted


async def wait_state(rig: Rig, rid: str, states: set[str], timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        sync = await call(
            rig.agent, "/agent", "conversation.sync", {"conversation_id": rig.cid, "after_seq": 10**9}
        )
        state = next(r["state"] for r in sync["requests"] if r["id"] == rid)
        if state in states or time.monotonic() > deadline:
            return str(state)
        await asyncio.sleep(0.05)


async def media_cycle(rig: Rig, kind: str, ending: str) -> str:
    """Create ``kind``, the customer accepts and connects a real aiortc peer; then end it by ``ending``:
    ``agent`` (request.end), ``customer`` (request.end), ``close`` (the client closes its peer)."""
    req = await call(rig.agent, "/agent", "request.create", {"conversation_id": rig.cid, "kind": kind})
    rid = req["request"]["id"]
    await call(rig.customer, "/customer", "request.respond", {"request_id": rid, "accept": True})
    pc = RTCPeerConnection()
    try:
        if kind == "cobrowse":
            pc.createDataChannel("cobrowse")
        else:
            pc.addTransceiver(SyntheticAudio(), direction="sendrecv")
        offer = await pc.createOffer()
        restrict_host_addresses(pc, ["127.0.0.1"])
        await pc.setLocalDescription(offer)
        answer = await call(
            rig.customer,
            "/customer",
            "rtc.offer",
            {"request_id": rid, "sdp": pc.localDescription.sdp, "type": "offer"},
        )
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        for _ in range(500):
            if pc.connectionState == "connected":
                break
            await asyncio.sleep(0.02)
        assert pc.connectionState == "connected", pc.connectionState
        if ending == "agent":
            await call(rig.agent, "/agent", "request.end", {"request_id": rid})
        elif ending == "customer":
            await call(rig.customer, "/customer", "request.end", {"request_id": rid})
        else:
            await pc.close()
        return await wait_state(rig, rid, {"ended", "cancelled", "declined"})
    finally:
        await pc.close()


async def request_cycle(rig: Rig) -> None:
    """Requests without media: declined, cancelled, accepted then ended."""
    for kind, step in (("video", "decline"), ("desktop", "cancel"), ("show_screen", "accept_end")):
        req = await call(rig.agent, "/agent", "request.create", {"conversation_id": rig.cid, "kind": kind})
        rid = req["request"]["id"]
        if step == "decline":
            await call(rig.customer, "/customer", "request.respond", {"request_id": rid, "accept": False})
        elif step == "cancel":
            await call(rig.agent, "/agent", "request.end", {"request_id": rid})
        else:
            await call(rig.customer, "/customer", "request.respond", {"request_id": rid, "accept": True})
            await call(rig.agent, "/agent", "request.end", {"request_id": rid})


async def one_round(rig: Rig) -> dict[str, int]:
    aborted = await churn(rig, CHURN)
    await request_cycle(rig)
    ends = []
    for kind, ending in (
        ("call", "agent"),
        ("call", "customer"),
        ("call", "close"),
        ("cobrowse", "agent"),
        ("cobrowse", "close"),
    ):
        ends.append(await media_cycle(rig, kind, ending))
    assert all(state == "ended" for state in ends), ends
    return {"connects": CHURN, "aborted": aborted, "requests": 3 + len(ends), "peers": len(ends)}


async def settled(rig: Rig, base: dict[str, Any]) -> dict[str, Any]:
    """The probe once the server has let go of what the round used (or after ``SETTLE_S``)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        state = await rig.server.probe_state(rig.http)
        done = (
            state["media_sessions"] == 0
            and state["peer_connections"] <= base["peer_connections"]
            and state["eio_sockets"] <= base["eio_sockets"]
            and state["tasks"] <= base["tasks"] + TASK_BOUND
            and state["fds"] <= base["fds"] + FD_BOUND
        )
        if done or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.2)


@pytest.mark.timeout(scale(120, 1800))
async def test_soak_returns_to_baseline(rig: Rig) -> None:
    """After ``ROUNDS`` rounds of churn, requests and peers: fds, tasks, threads, media sessions and peer
    connections, sockets and RSS are back to the post-warm-up baseline within the bounds."""
    await one_round(rig)  # warm-up: codecs, thread pools, caches
    base = await settled(rig, {"peer_connections": 0, "eio_sockets": 2, "tasks": 10**6, "fds": 10**6})
    totals = {"connects": 0, "aborted": 0, "requests": 0, "peers": 0}
    samples = [base["rss_kb"]]
    started = time.monotonic()
    for _ in range(ROUNDS):
        for key, value in (await one_round(rig)).items():
            totals[key] += value
        samples.append((await settled(rig, base))["rss_kb"])
    final = await settled(rig, base)
    figure(
        "leaks",
        rounds=ROUNDS,
        seconds=round(time.monotonic() - started, 1),
        **totals,
        fds=f"{base['fds']}->{final['fds']}",
        tasks=f"{base['tasks']}->{final['tasks']}",
        threads=f"{base['threads']}->{final['threads']}",
        media_sessions=f"{base['media_sessions']}->{final['media_sessions']}",
        media_peers=f"{base['media_peers']}->{final['media_peers']}",
        peer_connections=f"{base['peer_connections']}->{final['peer_connections']}",
        eio_sockets=f"{base['eio_sockets']}->{final['eio_sockets']}",
        hub_sockets=final["hub_sockets"],
        rss_kb=f"{base['rss_kb']}->{final['rss_kb']}",
        rss_per_round_kb=[b - a for a, b in zip(samples, samples[1:], strict=False)],
    )
    assert final["media_sessions"] == 0 and final["media_peers"] == 0
    assert final["peer_connections"] <= base["peer_connections"], final
    assert final["eio_sockets"] <= base["eio_sockets"] and final["hub_sockets"] == base["hub_sockets"]
    assert final["fds"] <= base["fds"] + FD_BOUND, final
    assert final["tasks"] <= base["tasks"] + TASK_BOUND, final["task_kinds"]
    assert final["threads"] <= base["threads"] + THREAD_BOUND
    assert final["rss_kb"] - base["rss_kb"] <= RSS_BOUND_KB
