"""Contract: open/close/ping, durability across a reopen, flushing on close, failure isolation, times."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

import pytest

from signaling.domain.errors import Conflict, NotFound
from signaling.domain.models import Article, Attachment, Flow, Team, TextBlock
from signaling.storage.base import AppendResult, ConversationQuery, Store

from .conftest import Seed, at

OpenStore = Callable[..., Awaitable[Store]]


async def test_ping_answers_while_open(store: Store) -> None:
    """ping() is True on an open store."""
    assert await store.ping() is True


async def test_close_twice_is_harmless(open_store: OpenStore) -> None:
    """close() may be called again (the fixture closes too)."""
    store = await open_store()
    await store.close()
    await store.close()


async def test_everything_survives_close_and_reopen(open_store: OpenStore) -> None:
    """After close, a new store on the same data sees every record and counter written before."""
    store = await open_store()
    seed = Seed(store)
    await store.set_meta("schema_seeded", "yes")
    team = await seed.team("Support")
    agent = await seed.agent([team.id], email="a@example.com")
    visitor = await seed.visitor(name="Vera", email="vera@example.com")
    conv = await seed.conversation(team, visitor, updated_at=at(0))
    for i in range(5):
        await seed.message(conv.id, f"m{i}", client_id=f"c{i}", data={"i": i}, created_at=at(i + 1))
    await seed.message(conv.id, "note", author_kind="agent", kind="note", created_at=at(10))
    await store.mark_receipt(conv.id, "agent", read_seq=3)
    conv.assignee_id = agent.id
    await store.update_conversation(conv, expected_assignee=None)
    request = await store.create_request(seed.new_request(conv.id, "call", expires_at=at(60)))
    block = await store.create_textblock(TextBlock(id="tb_1", shortcut="hi", title="Hi", body="Hello"))
    article = await store.create_article(Article(id="ar_1", title="T", summary="S", url="https://x"))
    flow = await store.create_flow(Flow(id="fl_1", name="F", steps=[{"id": "s", "question": "?"}]))
    attachment = await store.create_attachment(
        Attachment(
            id="at_1",
            conversation_id=conv.id,
            uploader_kind="customer",
            uploader_id=visitor.id,
            name="a.txt",
            mime="text/plain",
            size=1,
            storage_name="zz",
        )
    )
    await store.presence_add(agent.id, "other-node", "s1")
    before_conv = await store.get_conversation(conv.id)
    before_messages = await store.list_messages(conv.id)
    await store.close()

    again = await open_store()
    assert await again.get_meta("schema_seeded") == "yes"
    assert await again.get_team_by_name("support") == team
    assert await again.get_agent_by_email("A@example.com") == agent
    assert await again.get_visitor(visitor.id) == visitor
    after_conv = await again.get_conversation(conv.id)
    assert after_conv == before_conv
    assert after_conv is not None and (after_conv.last_seq, after_conv.unread, after_conv.agent_read_seq) == (
        6,
        2,
        3,
    )
    assert await again.list_messages(conv.id) == before_messages
    assert await again.get_request(request.id) == request
    assert await again.list_due_requests(at(60)) == [request]
    assert await again.get_textblock("tb_1") == block
    assert await again.get_article("ar_1") == article
    assert await again.get_flow("fl_1") == flow
    assert await again.get_attachment("at_1") == attachment
    assert await again.presence_online() == {agent.id}
    retry = await Seed(again).message(conv.id, "m0 again", client_id="c0")
    assert retry.created is False and retry.message.seq == 1
    nxt = await Seed(again).message(conv.id, "next")
    assert nxt.message.seq == 7


async def test_close_flushes_writes_already_submitted(open_store: OpenStore) -> None:
    """Writes started before close() complete successfully and are there after a reopen."""
    store = await open_store()
    seed = Seed(store)
    conv = await seed.conversation()
    tasks = [asyncio.ensure_future(seed.message(conv.id, f"m{i}")) for i in range(30)]
    await asyncio.sleep(0)  # every task has submitted its write
    await store.close()
    results = await asyncio.gather(*tasks)
    assert sorted(r.message.seq for r in results) == list(range(1, 31))
    again = await open_store()
    assert [m.seq for m in await again.list_messages(conv.id)] == list(range(1, 31))


async def test_a_failing_operation_does_not_fail_its_neighbours(store: Store, seed: Seed) -> None:
    """Concurrent good and bad writes: each bad one raises its own error, every good one is stored."""
    conv = await seed.conversation()
    await store.create_team(Team(id="tm_taken", name="Taken"))

    async def good(i: int) -> AppendResult:
        return await seed.message(conv.id, f"ok{i}", client_id=f"ok{i}")

    results = await asyncio.gather(
        good(0),
        seed.message("cv_missing", "lost"),
        good(1),
        store.create_team(Team(id="tm_dup", name="TAKEN")),
        good(2),
        store.create_request(seed.new_request("cv_missing")),
        good(3),
        return_exceptions=True,
    )
    assert isinstance(results[1], NotFound)
    assert isinstance(results[3], Conflict)
    assert isinstance(results[5], NotFound)
    good_results = [r for i, r in enumerate(results) if i % 2 == 0]
    assert all(isinstance(r, AppendResult) and r.created for r in good_results)
    assert sorted(m.body for m in await store.list_messages(conv.id)) == ["ok0", "ok1", "ok2", "ok3"]
    assert await store.get_team("tm_dup") is None


async def test_times_come_back_aware_utc_and_equal(store: Store, seed: Seed) -> None:
    """Datetimes given in any zone (or naive = UTC) come back timezone-aware UTC, the same instant."""
    tokyo = timezone(timedelta(hours=9))
    conv = await seed.conversation(
        created_at=at(0).astimezone(tokyo), updated_at=datetime(2026, 3, 1, 12, 0, 5)
    )
    got = await store.get_conversation(conv.id)
    assert got is not None
    assert got.created_at == at(0) and got.created_at.utcoffset() == timedelta(0)
    assert got.updated_at == at(5) and got.updated_at.utcoffset() == timedelta(0)
    assert got.last_message_at is None


async def test_microseconds_are_kept(store: Store, seed: Seed) -> None:
    """Stored times keep microsecond precision, so cursors built from returned rows are exact."""
    t = at(0) + timedelta(microseconds=123457)
    conv = await seed.conversation(updated_at=t)
    got = await store.get_conversation(conv.id)
    assert got is not None and got.updated_at == t
    page = await store.list_conversations(ConversationQuery(before=(t, conv.id)))
    assert page == []


@pytest.mark.parametrize("n", [1, 3])
async def test_many_stores_on_one_loop_and_data(open_store: OpenStore, n: int) -> None:
    """Opening a store, closing it, and opening another on the same data works repeatedly."""
    for i in range(n):
        store = await open_store()
        await store.set_meta("round", str(i))
        await store.close()
    last = await open_store()
    assert await last.get_meta("round") == str(n - 1)
