"""Room-routed publishing on two nodes (``FastRedisManager``): an emit whose rooms have members on this
node only is not published at all; a member who joins on the other node gets every later message; once
it leaves, publishing stops again. Publishes are counted on a real Redis with ``PSUBSCRIBE``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis import asyncio as aioredis

from rtc_server.app import SIO
from tests.conftest import Client

from .conftest import Cluster

pytestmark = pytest.mark.redis


class Published:
    """Every message published on the Socket.IO channels (shared and per node), as text."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def count(self, needle: str) -> int:
        return sum(needle in item for item in self.items)


@contextlib.asynccontextmanager
async def published(cluster: Cluster) -> AsyncIterator[Published]:
    client = aioredis.Redis.from_url(cluster.redis.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe("socketio*")
    seen = Published()

    async def collect() -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "pmessage":
                seen.items.append(message["data"].decode())

    task = asyncio.create_task(collect())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pubsub.aclose()
        await client.aclose()


async def send(client: Client, conversation_id: str, client_id: str) -> None:
    await client.ok(
        "message.send",
        {"conversation_id": conversation_id, "client_id": client_id, "kind": "text", "body": client_id},
    )


async def routed(cluster: Cluster, node: int) -> tuple[int, int]:
    manager: Any = cluster.nodes[node].app[SIO].manager
    return manager.routed, manager.routed_deliveries


async def test_no_publish_when_every_member_is_local(cluster: Cluster) -> None:
    """Customer and agents on node 1 only: messages are delivered there and never published to Redis
    (the route script finds no other node); the second node receives nothing."""
    alice = await cluster.hubs[0].agent("alice@example.com")
    customer = await cluster.hubs[0].customer(name="Local")
    conv = (await customer.ok("conversation.start", {"body": "hello"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    async with published(cluster) as seen:
        before = await routed(cluster, 0)
        for i in range(5):
            await send(customer, conv["id"], f"local-{i}")
            await alice.events.wait("message.new", lambda d, i=i: d["message"]["client_id"] == f"local-{i}")
            await send(alice, conv["id"], f"reply-{i}")
            await customer.events.wait(
                "message.new", lambda d, i=i: d["message"]["client_id"] == f"reply-{i}"
            )
        await asyncio.sleep(0.2)  # anything published would have reached the subscriber by now
        after = await routed(cluster, 0)
    assert after[0] - before[0] >= 20  # 10 messages, each to the agents' rooms and the visitor's room
    assert after[1] == before[1]  # ... published to no node
    assert seen.count('"message.new"') == 0


async def test_member_joining_on_the_other_node_gets_later_messages(cluster: Cluster) -> None:
    """Bob (same team) connects on node 2 after the conversation started on node 1: the very next
    message reaches him through Redis; after he disconnects, messages are local-only again."""
    alice = await cluster.hubs[0].agent("alice@example.com")
    customer = await cluster.hubs[0].customer(name="Roaming")
    conv = (await customer.ok("conversation.start", {"body": "hello"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    await send(customer, conv["id"], "before-bob")
    await alice.events.wait("message.new", lambda d: d["message"]["client_id"] == "before-bob")

    bob = await cluster.hubs[1].agent("bob@example.com")  # his connect returns once node 2 is in the sets
    async with published(cluster) as seen:
        await send(customer, conv["id"], "right-after")
        got = await bob.events.wait("message.new", lambda d: d["message"]["client_id"] == "right-after")
        assert got["message"]["conversation_id"] == conv["id"]
        await asyncio.sleep(0.1)
        assert seen.count('"right-after"') == 1  # once, to node 2's channel only
        assert seen.items and all("right-after" not in item or '"host_id"' in item for item in seen.items)

    await bob.disconnect()
    key = f"socketio:room:/agent:team:{conv['team_id']}"
    node2 = cluster.nodes[1].app[SIO].manager.host_id  # type: ignore[attr-defined]
    client = aioredis.Redis.from_url(cluster.redis.url, decode_responses=True)
    try:
        async with asyncio.timeout(5):
            while node2 in await client.smembers(key):
                await asyncio.sleep(0.02)
    finally:
        await client.aclose()
    async with published(cluster) as seen:
        await send(customer, conv["id"], "after-bob")
        await alice.events.wait("message.new", lambda d: d["message"]["client_id"] == "after-bob")
        await asyncio.sleep(0.2)
    assert seen.count('"after-bob"') == 0
