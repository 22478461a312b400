"""Crash durability: ``kill -9`` the real server process (``python -m rtc_server serve``, embedded SQLite
store) repeatedly while customers and an agent send as fast as their acks come back, restart it on the
same data directory, and check that every message acknowledged before the kill is stored, with the seq
its ack gave.

The clients behave like the product's: after the server comes back they reconnect, resend what was not
acknowledged with the same ``client_id`` and sync. At the end the whole timeline is checked once more:
no duplicate ``client_id``, no seq hole.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.reliability.conftest import figure, login, scale, visitor
from tests.reliability.proc import ServerProcess
from tests.reliability.storm import Participant
from tests.reliability.test_reconnect_storm import authoritative, start_conversation

KILLS = scale(5, 25)
SENDERS = 12
SEED = 9


@pytest.mark.timeout(scale(120, 600))
async def test_kill_9_loses_no_acknowledged_message(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """After each of ``KILLS`` kill -9 + restart cycles, every message acknowledged before the kill is
    present with its acknowledged seq; at the end, no duplicates and no seq holes."""
    rng = random.Random(SEED)
    server = ServerProcess.serve(tmp_path / "data")
    await server.start()
    participants: list[Participant] = []
    runs: list[asyncio.Future[None]] = []
    try:
        url = server.url
        alice = await login(http, url, "alice@example.com")
        visitors = await asyncio.gather(*(visitor(http, url, name=f"Crash {i}") for i in range(SENDERS)))
        cids = list(await asyncio.gather(*(start_conversation(url, v["token"], http) for v in visitors)))
        for v, cid in zip(visitors, cids, strict=True):
            participants.append(
                Participant(
                    url,
                    "/customer",
                    v["token"],
                    [cid],
                    http,
                    random.Random(rng.random()),
                    name=v["visitor"]["id"],
                    interval=(0.0, 0.005),
                )
            )
        participants.append(
            Participant(
                url,
                "/agent",
                alice["token"],
                cids,
                http,
                random.Random(rng.random()),
                name="alice",
                note_ratio=0.3,
                interval=(0.0, 0.005),
            )
        )
        until = time.monotonic() + 3600  # stopped explicitly below
        stop = asyncio.Event()

        async def run(p: Participant) -> None:
            run_task = asyncio.ensure_future(p.run(until))
            await stop.wait()
            run_task.cancel()
            await asyncio.gather(run_task, return_exceptions=True)

        runs = [asyncio.ensure_future(run(p)) for p in participants]
        checked = 0
        lost_total = 0
        in_flight_at_kill = 0
        for kill in range(KILLS):
            before = sum(len(p.acked) for p in participants)
            async with asyncio.timeout(30):
                while sum(len(p.acked) for p in participants) < before + 100:  # under load
                    await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            in_flight_at_kill += sum(1 for p in participants if p.in_flight)
            server.kill9()
            snapshot = {k: v for p in participants for k, v in p.acked.items()}  # no ack can arrive now
            await server.start()
            truth = await authoritative(url, alice["token"], http, cids)
            stored = {
                m["client_id"]: (cid, m["seq"], m["kind"]) for cid, t in truth.items() for m in t["messages"]
            }
            lost = [k for k, v in snapshot.items() if stored.get(k) != v]
            lost_total += len(lost)
            checked += len(snapshot)
            assert lost == [], f"kill {kill + 1}: {len(lost)} acknowledged messages lost: {lost[:5]}"
        stop.set()
        await asyncio.gather(*runs)
        await asyncio.wait_for(asyncio.gather(*(p.drain() for p in participants)), 60)
        truth = await authoritative(url, alice["token"], http, cids)
        acked = {k: v for p in participants for k, v in p.acked.items()}
        stored = {
            m["client_id"]: (cid, m["seq"], m["kind"]) for cid, t in truth.items() for m in t["messages"]
        }
        duplicates = sum(
            n - 1
            for t in truth.values()
            for n in Counter(m["client_id"] for m in t["messages"]).values()
            if n > 1
        )
        holes = sum(
            len(set(range(1, t["last_seq"] + 1)) - {m["seq"] for m in t["messages"]}) for t in truth.values()
        )
        final_lost = [k for k, v in acked.items() if stored.get(k) != v]
        totals: Counter[str] = Counter()
        for p in participants:
            totals.update(p.stats)
        figure(
            "crash_durability",
            kills=KILLS,
            restarts=server.starts - 1,
            acked=len(acked),
            acked_checked_after_kills=checked,
            in_flight_at_kill=in_flight_at_kill,
            resends=totals["resends"],
            stored_before_resend=totals["stored_before_resend"],
            lost=lost_total + len(final_lost),
            duplicates=duplicates,
            holes=holes,
        )
        assert final_lost == [] and duplicates == 0 and holes == 0
    finally:
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        await asyncio.gather(*(p.close() for p in participants), return_exceptions=True)
        server.stop()
