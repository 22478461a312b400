"""Contract: node liveness marks and the sweep of dead nodes' presence (on every store)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from signaling.storage.base import Store


async def test_node_without_heartbeat_is_dead_and_cleared_once(store: Store) -> None:
    """A node with presence and no liveness mark is dead; clearing it returns the agents it took offline
    (not those still connected elsewhere), each once, and leaves other nodes' sockets alone."""
    await store.node_heartbeat("n1", 30)
    await store.presence_add("ag_1", "n2", "s1")
    await store.presence_add("ag_1", "n2", "s2")
    await store.presence_add("ag_2", "n2", "s3")
    await store.presence_add("ag_2", "n1", "s4")
    await store.presence_add("ag_3", "n1", "s5")
    assert await store.dead_presence_nodes() == ["n2"]
    assert await store.clear_node_presence("n2") == ["ag_1"]
    assert await store.clear_node_presence("n2") == []  # a second sweeper announces nothing
    assert await store.presence_online() == {"ag_2", "ag_3"}
    assert await store.dead_presence_nodes() == []
    assert await store.presence_remove("ag_2", "n1", "s4") == 0  # the counts stayed right


async def test_live_node_is_never_cleared(store: Store) -> None:
    """A node whose mark is valid is not dead, and clearing it does nothing."""
    await store.node_heartbeat("n2", 30)
    await store.presence_add("ag_1", "n2", "s1")
    assert await store.dead_presence_nodes() == []
    assert await store.clear_node_presence("n2") == []
    assert await store.presence_online() == {"ag_1"}


async def test_mark_lapses_after_its_ttl(store: Store) -> None:
    """A renewed mark replaces the old expiry; a mark not renewed within its TTL lapses and the node
    becomes dead."""
    await store.presence_add("ag_1", "n2", "s1")
    await store.node_heartbeat("n2", 0.5)
    await store.node_heartbeat("n2", 60)  # renewed: the 0.5 s expiry no longer applies
    await asyncio.sleep(0.8)
    assert await store.dead_presence_nodes() == []
    await store.node_heartbeat("n2", 0.2)
    async with asyncio.timeout(5):
        while await store.dead_presence_nodes() != ["n2"]:
            await asyncio.sleep(0.05)
    assert await store.clear_node_presence("n2") == ["ag_1"]
    assert await store.presence_online() == set()


async def test_racing_sweepers_announce_each_agent_once(open_store: Callable[..., Awaitable[Store]]) -> None:
    """Two nodes clearing the same dead node at once: the agents it took offline come out exactly once."""
    a = await open_store(node_id="n1")
    b = await open_store(node_id="n3")
    for i in range(20):
        await a.presence_add(f"ag_{i}", "n2", f"s{i}")
    results = await asyncio.gather(a.clear_node_presence("n2"), b.clear_node_presence("n2"))
    assert sorted(results[0] + results[1]) == sorted(f"ag_{i}" for i in range(20))
    assert await a.presence_online() == set()


async def test_node_with_no_presence_is_not_listed(store: Store) -> None:
    """Only nodes that hold presence entries are candidates; a dead node without sockets is not listed."""
    await store.presence_add("ag_1", "n2", "s1")
    await store.presence_remove("ag_1", "n2", "s1")
    assert await store.dead_presence_nodes() == []
    assert await store.clear_node_presence("n2") == []


async def test_node_alive_follows_the_mark(store: Store) -> None:
    """``node_alive``: false without a mark, true while it lives, false once it lapsed (what the media
    plane asks before ending a node's sessions)."""
    assert await store.node_alive("n2") is False
    await store.node_heartbeat("n2", 60)
    assert await store.node_alive("n2") is True
    await store.node_heartbeat("n2", 0.2)
    async with asyncio.timeout(5):
        while await store.node_alive("n2"):
            await asyncio.sleep(0.05)
    assert await store.node_alive("n1") is False


async def test_heartbeat_says_whether_the_previous_mark_was_live(store: Store) -> None:
    """``node_heartbeat`` returns False on a node's first beat and after its mark lapsed (a sweeper may
    have cleared its sockets: the node registers them again), True while it renews a live mark."""
    assert await store.node_heartbeat("n2", 0.3) is False
    assert await store.node_heartbeat("n2", 0.3) is True
    async with asyncio.timeout(5):
        while await store.node_alive("n2"):
            await asyncio.sleep(0.05)
    assert await store.node_heartbeat("n2", 60) is False
    assert await store.node_heartbeat("n2", 60) is True
    assert await store.node_alive("n2") is True
