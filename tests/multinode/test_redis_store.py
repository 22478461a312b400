"""RedisStore specifics the shared contract suite cannot show: atomicity between two store instances
(two nodes) on one Redis, a pool far smaller than the load (waits, never ``MaxConnectionsError``),
and a Redis crash and restart under an open store (unavailable, then back by itself, nothing
acknowledged lost)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from signaling.domain.errors import Conflict, Unavailable
from signaling.domain.models import Author, Conversation, Message, Team, Visitor, new_id
from signaling.storage.redis_store import RedisStore
from tests.redis_server import RedisServer, redis_available

pytestmark = pytest.mark.redis


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test (it may be killed and restarted)."""
    if not redis_available():
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def two_nodes(redis: RedisServer) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    a = RedisStore(redis.url, node_id="n1", max_connections=4)
    b = RedisStore(redis.url, node_id="n2", max_connections=4)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


async def new_conversation(store: RedisStore) -> Conversation:
    team = await store.create_team(Team(id=new_id("tm"), name=new_id("team")))
    visitor = await store.create_visitor(Visitor(id=new_id("vi")))
    return await store.create_conversation(
        Conversation(id=new_id("cv"), visitor_id=visitor.id, team_id=team.id)
    )


def message(conversation_id: str, body: str, client_id: str | None = None) -> Message:
    return Message(
        id=new_id("ms"),
        conversation_id=conversation_id,
        seq=0,
        client_id=client_id if client_id is not None else new_id("cl"),
        author=Author(kind="customer", id="vi_1"),
        kind="text",
        body=body,
    )


async def test_two_nodes_append_without_holes_or_duplicates(two_nodes: tuple[RedisStore, RedisStore]) -> None:
    """200 appends split over two store instances with 4 connections each: seqs 1..200 once each; the
    same client_id sent through both nodes at once is stored once."""
    a, b = two_nodes
    conv = await new_conversation(a)
    results = await asyncio.gather(
        *((a if i % 2 else b).append_message(message(conv.id, f"m{i}")) for i in range(200))
    )
    assert sorted(r.message.seq for r in results) == list(range(1, 201))
    dupes = await asyncio.gather(
        *((a, b)[i % 2].append_message(message(conv.id, "dup", "same")) for i in range(10))
    )
    assert sum(r.created for r in dupes) == 1 and {r.message.seq for r in dupes} == {201}
    assert [m.seq for m in await b.list_messages(conv.id)] == list(range(1, 202))


async def test_compare_and_set_across_nodes(two_nodes: tuple[RedisStore, RedisStore]) -> None:
    """Both nodes claim the same conversation 20 times over: one winner each time."""
    a, b = two_nodes
    for _ in range(20):
        conv = await new_conversation(a)

        async def claim(store: RedisStore, agent: str, c: Conversation = conv) -> str:
            mine = await store.get_conversation(c.id)
            assert mine is not None
            mine.assignee_id = agent
            await store.update_conversation(mine, expected_assignee=None)
            return agent

        outcome = await asyncio.gather(claim(a, "ag_a"), claim(b, "ag_b"), return_exceptions=True)
        winners = [o for o in outcome if isinstance(o, str)]
        assert len(winners) == 1 and sum(isinstance(o, Conflict) for o in outcome) == 1
        stored = await b.get_conversation(conv.id)
        assert stored is not None and stored.assignee_id == winners[0]


async def test_redis_crash_and_restart_under_an_open_store(redis: RedisServer) -> None:
    """After SIGKILL, calls fail fast with Unavailable and ping is False; after a restart on the same
    directory the same store object works again (no reopen) and every acknowledged append is there."""
    store = RedisStore(redis.url, node_id="n1")
    await store.open()
    try:
        conv = await new_conversation(store)
        acked = [(await store.append_message(message(conv.id, f"m{i}"))).message for i in range(20)]
        redis.kill()
        assert await store.ping() is False
        with pytest.raises(Unavailable):
            await store.append_message(message(conv.id, "refused"))
        with pytest.raises(Unavailable):
            await store.get_conversation(conv.id)
        redis.start()
        assert await store.ping() is True
        assert await store.list_messages(conv.id) == acked
        after = await store.append_message(message(conv.id, "after"))
        assert after.created and after.message.seq == 21
    finally:
        await store.close()


async def test_lock_excludes_holders_on_every_node(two_nodes: tuple[RedisStore, RedisStore]) -> None:
    """40 critical sections split over two store instances never overlap, each runs once, and a lock
    whose holder vanished (no release) is free again after its TTL."""
    a, b = two_nodes
    inside = 0
    most = 0
    runs = 0

    async def section(store: RedisStore) -> None:
        nonlocal inside, most, runs
        async with store.lock("routing:tm_1"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.002)
            runs += 1
            inside -= 1

    await asyncio.gather(*(section((a, b)[i % 2]) for i in range(40)))
    assert (most, runs) == (1, 40)

    held = a.lock("stale", ttl_s=0.2)
    await held.__aenter__()  # never released: as if its node died while holding it
    with pytest.raises(Unavailable):
        async with b.lock("stale", wait_s=0.05):
            pass
    async with b.lock("stale", wait_s=2.0):
        pass
