"""Reconnect storm: hundreds of sockets in a hundred conversations send steadily while their transports
are cut at random, against the real server process (``python -m rtc_server serve``).

Each customer has three tabs (three sockets with the same visitor token) in its conversation; two agents
(an admin and a team member) write texts and notes into every conversation. A chaos task aborts a random
socket's TCP connection every few tens of milliseconds (no close frame). Every participant keeps
unacknowledged messages in an outbox and resends them with the same ``client_id`` after reconnecting,
and calls ``conversation.sync`` from the highest ``seq`` it had seen after every (re)connect.

Pins, against the server's own timeline (an admin's sync of every conversation from ``seq`` 0):
acknowledged messages lost = 0, duplicates (a ``client_id`` stored twice) = 0, holes in the server's
``seq`` = 0, and holes in every participant's view = 0 (for customers, every gap is a note).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from tests.reliability.conftest import figure, login, scale, visitor
from tests.reliability.proc import ServerProcess
from tests.reliability.storm import Participant, chaos

CONVERSATIONS = 100
TABS = 3
SEND_S = scale(20.0, 120.0)
CUT_EVERY_S = 0.05
SEED = 8


async def start_conversation(url: str, token: str, http: aiohttp.ClientSession) -> str:
    sio = socketio.AsyncClient(reconnection=False, http_session=http, handle_sigint=False)
    await sio.connect(url, namespaces=["/customer"], auth={"token": token}, transports=["websocket"])
    res = await sio.call("conversation.start", {"body": "hello"}, namespace="/customer", timeout=10)
    await sio.disconnect()
    assert res["ok"] is True, res
    return str(res["conversation"]["id"])


async def authoritative(url: str, token: str, http: aiohttp.ClientSession, cids: list[str]) -> dict[str, Any]:
    """Every message of every conversation as the server stores it (an admin sees notes too)."""
    sio = socketio.AsyncClient(reconnection=False, http_session=http, handle_sigint=False)
    await sio.connect(url, namespaces=["/agent"], auth={"token": token}, transports=["websocket"])
    out: dict[str, Any] = {}
    for cid in cids:
        messages: list[dict[str, Any]] = []
        after = 0
        while True:
            res = await sio.call(
                "conversation.sync",
                {"conversation_id": cid, "after_seq": after},
                namespace="/agent",
                timeout=10,
            )
            assert res["ok"] is True, res
            messages += res["messages"]
            if not res["has_more"]:
                break
            after = messages[-1]["seq"]
        out[cid] = {"messages": messages, "last_seq": res["conversation"]["last_seq"]}
    await sio.disconnect()
    return out


@pytest.mark.timeout(scale(150, 600))
async def test_reconnect_storm_loses_and_duplicates_nothing(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Under random transport cuts: no acknowledged message lost, none stored twice, no seq hole on the
    server, and no hole in any participant's view other than notes (customers)."""
    rng = random.Random(SEED)
    server = ServerProcess.serve(tmp_path / "data")
    await server.start()
    participants: list[Participant] = []
    try:
        url = server.url
        alice = await login(http, url, "alice@example.com")  # admin
        bob = await login(http, url, "bob@example.com")  # support
        visitors = await asyncio.gather(
            *(visitor(http, url, name=f"Storm {i}") for i in range(CONVERSATIONS))
        )
        cids: list[str] = []
        for batch in range(0, CONVERSATIONS, 25):
            chunk = visitors[batch : batch + 25]
            cids += await asyncio.gather(*(start_conversation(url, v["token"], http) for v in chunk))
        for v, cid in zip(visitors, cids, strict=True):
            for tab in range(TABS):
                participants.append(
                    Participant(
                        url,
                        "/customer",
                        v["token"],
                        [cid],
                        http,
                        random.Random(rng.random()),
                        name=f"{v['visitor']['id']}-t{tab}",
                    )
                )
        for agent, name in ((alice, "alice"), (bob, "bob")):
            participants.append(
                Participant(
                    url,
                    "/agent",
                    agent["token"],
                    cids,
                    http,
                    random.Random(rng.random()),
                    name=name,
                    note_ratio=0.5,
                    interval=(0.02, 0.1),
                )
            )
        started = time.monotonic()
        until = started + SEND_S
        runs = [asyncio.ensure_future(p.run(until)) for p in participants]
        cuts = await chaos(participants, until, CUT_EVERY_S, rng)
        await asyncio.gather(*runs)
        await asyncio.wait_for(asyncio.gather(*(p.drain() for p in participants)), 60)
        elapsed = time.monotonic() - started

        truth = await authoritative(url, alice["token"], http, cids)
        stored: dict[str, tuple[str, int, str]] = {}
        duplicates = 0
        server_holes = 0
        for cid, t in truth.items():
            seqs = [m["seq"] for m in t["messages"]]
            server_holes += len(set(range(1, t["last_seq"] + 1)) - set(seqs))
            per_client = Counter(m["client_id"] for m in t["messages"])
            duplicates += sum(n - 1 for n in per_client.values() if n > 1)
            for m in t["messages"]:
                stored[m["client_id"]] = (cid, m["seq"], m["kind"])
        acked = {k: v for p in participants for k, v in p.acked.items()}
        lost = [k for k, v in acked.items() if stored.get(k) != v]
        view_holes = 0
        note_gaps = 0
        for p in participants:
            customer = p.namespace == "/customer"
            for cid, seen in p.seen.items():
                for m in truth[cid]["messages"]:
                    if m["seq"] > seen.highest or m["seq"] in seen.messages:
                        continue
                    if customer and m["kind"] == "note":
                        note_gaps += 1
                    else:
                        view_holes += 1
                leaked = [s for s, (_, kind) in seen.messages.items() if kind == "note"] if customer else []
                assert not leaked, f"a customer saw notes {leaked}"
        totals: Counter[str] = Counter()
        for p in participants:
            totals.update(p.stats)
        figure(
            "reconnect_storm",
            clients=len(participants),
            conversations=len(cids),
            seconds=round(elapsed, 1),
            acked=len(acked),
            agent_acked=sum(len(p.acked) for p in participants if p.namespace == "/agent"),
            stored=sum(len(t["messages"]) for t in truth.values()),
            cuts=cuts,
            reconnects=totals["connects"] - len(participants),
            resends=totals["resends"],
            stored_before_resend=totals["stored_before_resend"],
            syncs=totals["syncs"],
            events=totals["events"],
            lost=len(lost),
            duplicates=duplicates,
            server_holes=server_holes,
            view_holes=view_holes,
            out_of_order_events=totals["out_of_order"],
            late_events=totals["late_events"],
            sync_retries=totals["sync_retries"],
            customer_note_gaps=note_gaps,
            errors={k: v for k, v in totals.items() if k.startswith("error_")},
        )
        assert cuts >= 100, "the chaos task hardly cut anything"
        assert totals["connects"] - len(participants) >= 100
        assert totals["resends"] > 0 and totals["connects"] > len(participants)
        assert totals["stored_before_resend"] > 0, "no cut ever fell between storing and acking"
        assert lost == [], lost[:10]
        assert duplicates == 0
        assert server_holes == 0
        assert view_holes == 0
        assert not [k for k in totals if k.startswith("error_")]
    finally:
        await asyncio.gather(*(p.close() for p in participants), return_exceptions=True)
        server.stop()
