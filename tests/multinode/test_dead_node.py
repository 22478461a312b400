"""A node that dies without its shutdown (``kill -9``) leaves its agents' presence in Redis; the other
node's liveness sweep clears it and announces those agents offline, while a live, idle node is never
swept, and a node frozen past that period registers its agents again once it runs. Node 1 runs in the
test's process, node 2 is a real ``python -m rtc_server serve`` child process
(so it can be killed for real); both use short liveness timings (heartbeat 0.2 s, dead after 1 s). A
request whose media session lived on the killed node is ended (``node_lost``) by the live node.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest

from rtc_server.app import STORE
from tests.conftest import Client, Hub, RunningServer, bounded, start_server
from tests.redis_server import RedisServer, redis_available
from tests.reliability.proc import ServerProcess, free_port

HEARTBEAT_S = 0.2
DEAD_AFTER_S = 1.0


@dataclasses.dataclass
class Pair:
    """Node 1 (in process) and node 2 (a child process) on one Redis."""

    node1: RunningServer
    node2: ServerProcess
    hub1: Hub
    hub2: Hub

    async def online(self) -> set[str]:
        """``presence_online()`` as node 1's store reads it."""
        return await self.node1.app[STORE].presence_online()

    async def wait_online(self, agent_id: str, timeout: float = 5.0) -> None:
        """Until node 1's store lists ``agent_id`` online."""
        async with asyncio.timeout(timeout):
            while agent_id not in await self.online():
                await asyncio.sleep(0.05)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    """Redis, node 1 (seeds the demo workspace) and node 2 as a killable process, both ready."""
    if not redis_available():
        pytest.skip("redis-server is not installed")
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    timing = {"node_heartbeat_s": HEARTBEAT_S, "node_dead_after_s": DEAD_AFTER_S}
    node1: RunningServer | None = None
    port = free_port()
    argv = [sys.executable, "-m", "rtc_server", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--data-dir", str(tmp_path / "n2"), "--secret", "test-secret", "--log-level", "warning"]
    argv += ["--node-id", "n2", "--store", redis.url, "--media-host-address", "127.0.0.1"]
    env = {"RTC_NODE_HEARTBEAT_S": str(HEARTBEAT_S), "RTC_NODE_DEAD_AFTER_S": str(DEAD_AFTER_S)}
    node2 = ServerProcess(argv, port, env, tmp_path / "n2.log")
    try:
        node1 = await start_server(tmp_path / "n1", store=redis.url, node_id="n1", **timing)
        await node2.start()
        async with aiohttp.ClientSession() as http:
            hub1 = Hub(node1, http)
            hub2 = Hub(cast(RunningServer, SimpleNamespace(url=node2.url)), http)
            try:
                yield Pair(node1, node2, hub1, hub2)
            finally:
                for client in hub1.clients + hub2.clients:
                    await bounded(client.disconnect(), 10, "client disconnect")
    finally:
        node2.stop()
        if node1 is not None:
            await bounded(node1.runner.cleanup(), 30, "cleanup of node n1")
        redis.stop()


def carol_offline(carol: Client) -> Any:
    """Matches an ``agent.presence`` event saying carol is offline."""
    agent_id = carol.agent["id"]  # type: ignore[attr-defined]
    return lambda d: d["agent_id"] == agent_id and d["status"] == "offline"


async def test_killed_node_agents_go_offline_on_the_live_node(pair: Pair) -> None:
    """Carol is connected to node 2 only; node 2 is killed with -9 (no disconnect handler runs). Node 1's
    sweep announces her offline to a console on node 1 and ``presence_online()`` no longer lists her."""
    alice = await pair.hub1.agent("alice@example.com")  # admin: in every team's room
    carol = await pair.hub2.agent("carol@example.com")
    carol_id = carol.agent["id"]  # type: ignore[attr-defined]
    await pair.wait_online(carol_id)

    pair.node2.kill9()

    event = await alice.events.wait("agent.presence", carol_offline(carol), timeout=DEAD_AFTER_S * 10 + 5)
    assert event["status"] == "offline"
    assert carol_id not in await pair.online()
    listed = {a["email"]: a["status"] for a in (await alice.ok("agents.list"))["agents"]}
    assert listed["carol@example.com"] == "offline"
    assert listed["alice@example.com"] == "online"  # node 1's own agents are untouched


async def test_live_idle_node_is_never_swept(pair: Pair) -> None:
    """Node 2 stays up with an idle agent for several times the dead-after period: node 1 never clears
    its presence nor announces the agent offline."""
    alice = await pair.hub1.agent("alice@example.com")
    carol = await pair.hub2.agent("carol@example.com")
    carol_id = carol.agent["id"]  # type: ignore[attr-defined]
    await pair.wait_online(carol_id)
    for _ in range(int(DEAD_AFTER_S * 4 / HEARTBEAT_S)):  # 4 dead-after periods, sampled every beat
        await asyncio.sleep(HEARTBEAT_S)
        assert carol_id in await pair.online()
    assert alice.events.of("agent.presence") == [] or not any(
        carol_offline(carol)(d) for d in alice.events.of("agent.presence")
    )
    assert await pair.node1.app[STORE].dead_presence_nodes() == []


async def test_a_node_back_from_a_freeze_registers_its_agents_again(pair: Pair) -> None:
    """Node 2 is frozen (SIGSTOP: as cut off from Redis) past the dead-after period: node 1 sweeps it and
    announces Carol offline. Once thawed, node 2's next heartbeat sees its mark had lapsed, registers
    Carol's still-open socket again and announces her online; she is listed online again."""
    alice = await pair.hub1.agent("alice@example.com")
    carol = await pair.hub2.agent("carol@example.com")
    carol_id = carol.agent["id"]  # type: ignore[attr-defined]
    await pair.wait_online(carol_id)

    os.kill(pair.node2.pid, signal.SIGSTOP)
    try:
        await alice.events.wait("agent.presence", carol_offline(carol), timeout=DEAD_AFTER_S * 10 + 5)
        assert carol_id not in await pair.online()
    finally:
        os.kill(pair.node2.pid, signal.SIGCONT)

    await pair.wait_online(carol_id, timeout=DEAD_AFTER_S * 10 + 5)
    statuses = [d["status"] for d in alice.events.of("agent.presence") if d["agent_id"] == carol_id]
    async with asyncio.timeout(5):  # the announcement follows the registration
        while statuses[-1] != "online":
            await asyncio.sleep(0.05)
            statuses = [d["status"] for d in alice.events.of("agent.presence") if d["agent_id"] == carol_id]
    assert "offline" in statuses and statuses.index("offline") < len(statuses) - 1
    listed = {a["email"]: a["status"] for a in (await alice.ok("agents.list"))["agents"]}
    assert listed["carol@example.com"] == "online"


async def test_request_whose_session_lived_on_the_killed_node_ends(pair: Pair) -> None:
    """Alice on node 1 asks for a call; the customer on node 2 accepts, so node 2 owns the media session.
    Node 2 is killed with -9: node 1 ends the request (``ended``, reason ``node_lost``) and tells alice."""
    alice = await pair.hub1.agent("alice@example.com")
    customer = await pair.hub2.customer(name="Caller")
    conv = (await customer.ok("conversation.start", {"body": "Can we talk?"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    request = (await alice.ok("request.create", {"conversation_id": conv["id"], "kind": "call"}))["request"]
    await customer.events.wait("request.updated", lambda d: d["request"]["id"] == request["id"])
    answer = await customer.ok("request.respond", {"request_id": request["id"], "accept": True})
    assert answer["request"]["state"] == "accepted"

    pair.node2.kill9()

    def ended(d: Any) -> bool:
        return d["request"]["id"] == request["id"] and d["request"]["state"] == "ended"

    event = await alice.events.wait("request.updated", ended, timeout=DEAD_AFTER_S * 10 + 10)
    assert event["request"]["reason"] == "node_lost"
