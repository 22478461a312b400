"""Contract: ``append_message`` (seq, idempotency, counters), ``list_messages`` and ``mark_receipt``."""

from __future__ import annotations

import asyncio
from datetime import timedelta, timezone

import pytest

from signaling.domain.errors import DomainError, NotFound
from signaling.storage.base import Store

from .conftest import Seed, at


async def test_seq_increments_per_conversation_notes_included(store: Store, seed: Seed) -> None:
    """Each stored message gets last_seq + 1, notes and agent messages included; seq is per conversation."""
    conv = await seed.conversation()
    other = await seed.conversation()
    r1 = await seed.message(conv.id, "a")
    r2 = await seed.message(conv.id, "b", author_kind="agent")
    r3 = await seed.message(conv.id, "n", author_kind="agent", kind="note")
    o1 = await seed.message(other.id, "x")
    assert [r1.message.seq, r2.message.seq, r3.message.seq] == [1, 2, 3]
    assert o1.message.seq == 1
    assert all(r.created for r in (r1, r2, r3, o1))
    assert r3.conversation.last_seq == 3
    stored = await store.get_conversation(conv.id)
    assert stored is not None and stored.last_seq == 3


async def test_given_seq_is_ignored(store: Store, seed: Seed) -> None:
    """The caller's ``seq`` never reaches the store: the next seq is assigned."""
    conv = await seed.conversation()
    msg = seed.new_message(conv.id)
    msg.seq = 99
    result = await store.append_message(msg)
    assert result.message.seq == 1


async def test_same_client_id_returns_first_message_and_writes_nothing(store: Store, seed: Seed) -> None:
    """A retry with the same client_id returns the first stored message, created=False, counters unchanged."""
    conv = await seed.conversation()
    first = await seed.message(conv.id, "first", client_id="c-1")
    again = await seed.message(conv.id, "second try, different body", client_id="c-1")
    assert again.created is False
    assert again.message.id == first.message.id
    assert again.message.body == "first"
    assert again.message.seq == 1
    assert again.conversation.last_seq == 1
    assert again.conversation.unread == 1
    assert [m.body for m in await store.list_messages(conv.id)] == ["first"]


async def test_client_id_is_scoped_to_its_conversation(store: Store, seed: Seed) -> None:
    """The same client_id in two conversations stores two messages."""
    a = await seed.conversation()
    b = await seed.conversation()
    ra = await seed.message(a.id, client_id="same")
    rb = await seed.message(b.id, client_id="same")
    assert ra.created and rb.created
    assert ra.message.id != rb.message.id


async def test_empty_client_id_is_never_deduplicated(store: Store, seed: Seed) -> None:
    """Messages without a client_id (server-written) are all stored, and read back with client_id ''."""
    conv = await seed.conversation()
    r1 = await seed.message(conv.id, "sys 1", author_kind="system", kind="system", client_id="")
    r2 = await seed.message(conv.id, "sys 2", author_kind="system", kind="system", client_id="")
    assert r1.created and r2.created
    assert [r1.message.seq, r2.message.seq] == [1, 2]
    assert [m.client_id for m in await store.list_messages(conv.id)] == ["", ""]


async def test_append_to_missing_conversation_is_not_found(store: Store, seed: Seed) -> None:
    """No conversation, no message: NotFound."""
    with pytest.raises(NotFound):
        await seed.message("cv_missing")


async def test_counters_follow_author_and_kind(store: Store, seed: Seed) -> None:
    """unread +1 for customer messages only; preview and last_message_at for every kind but note."""
    conv = await seed.conversation(updated_at=at(0))
    r1 = await seed.message(conv.id, "from customer", created_at=at(10))
    assert r1.conversation.unread == 1
    assert r1.conversation.last_message_preview == "from customer"
    assert r1.conversation.last_message_at == at(10)
    assert r1.conversation.updated_at == at(10)
    r2 = await seed.message(conv.id, "from agent", author_kind="agent", created_at=at(20))
    assert r2.conversation.unread == 1
    assert r2.conversation.last_message_preview == "from agent"
    assert r2.conversation.last_message_at == at(20)
    r3 = await seed.message(conv.id, "secret note", author_kind="agent", kind="note", created_at=at(30))
    assert r3.conversation.unread == 1
    assert r3.conversation.last_message_preview == "from agent"
    assert r3.conversation.last_message_at == at(20)
    assert r3.conversation.updated_at == at(30)
    assert r3.conversation.last_seq == 3
    r4 = await seed.message(conv.id, "x" * 500, created_at=at(40))
    assert r4.conversation.unread == 2
    assert r4.conversation.last_message_preview == "x" * 140


async def test_message_fields_round_trip(store: Store, seed: Seed) -> None:
    """Author, kind, body, nested data and a UTC-aware created_at come back as stored."""
    conv = await seed.conversation()
    data = {"attachment": {"id": "at_1", "name": "Ünïcode.png", "size": 3}, "params": [1, "two", None]}
    plus_two = timezone(timedelta(hours=2))
    created = at(5).astimezone(plus_two)
    result = await seed.message(conv.id, "pic ✓", kind="image", data=data, created_at=created)
    [stored] = await store.list_messages(conv.id)
    for m in (result.message, stored):
        assert m.data == data
        assert m.body == "pic ✓"
        assert m.kind == "image"
        assert (m.author.kind, m.author.id, m.author.name) == ("customer", "customer-1", "Customer")
        assert m.created_at == created
        assert m.created_at.utcoffset() == timedelta(0)
        assert m.client_id == result.message.client_id


async def test_returned_messages_are_fresh_objects(store: Store, seed: Seed) -> None:
    """Mutating a returned message (or its data) does not change the store."""
    conv = await seed.conversation()
    msg = seed.new_message(conv.id, data={"k": [1]})
    result = await store.append_message(msg)
    msg.data["k"].append(2)
    result.message.data["k"].append(3)
    result.message.body = "changed"
    [stored] = await store.list_messages(conv.id)
    assert stored.data == {"k": [1]}
    assert stored.body == "hello"


async def test_fifty_concurrent_appends_get_seqs_without_holes(store: Store, seed: Seed) -> None:
    """50 appends racing in one conversation get exactly seqs 1..50, each once."""
    conv = await seed.conversation()
    results = await asyncio.gather(*(seed.message(conv.id, f"m{i}") for i in range(50)))
    assert sorted(r.message.seq for r in results) == list(range(1, 51))
    assert all(r.created for r in results)
    stored = await store.list_messages(conv.id)
    assert [m.seq for m in stored] == list(range(1, 51))
    assert {m.body for m in stored} == {f"m{i}" for i in range(50)}
    final = await store.get_conversation(conv.id)
    assert final is not None and final.last_seq == 50 and final.unread == 50


async def test_concurrent_duplicates_of_one_client_id_store_once(store: Store, seed: Seed) -> None:
    """20 racing appends with one client_id: one created, all answer with the same stored message."""
    conv = await seed.conversation()
    results = await asyncio.gather(*(seed.message(conv.id, f"try {i}", client_id="dup") for i in range(20)))
    assert sum(r.created for r in results) == 1
    assert {r.message.id for r in results} == {results[0].message.id}
    assert {r.message.seq for r in results} == {1}
    assert len(await store.list_messages(conv.id)) == 1
    final = await store.get_conversation(conv.id)
    assert final is not None and final.last_seq == 1 and final.unread == 1


async def test_list_messages_after_seq_notes_and_limit(store: Store, seed: Seed) -> None:
    """list_messages returns seq > after_seq ascending, drops notes on request, and honours limit."""
    conv = await seed.conversation()
    for i in range(6):
        await seed.message(conv.id, f"m{i}", author_kind="agent", kind="note" if i % 2 else "text")
    assert [m.seq for m in await store.list_messages(conv.id)] == [1, 2, 3, 4, 5, 6]
    assert [m.seq for m in await store.list_messages(conv.id, after_seq=4)] == [5, 6]
    assert [m.seq for m in await store.list_messages(conv.id, include_notes=False)] == [1, 3, 5]
    assert [m.seq for m in await store.list_messages(conv.id, after_seq=1, limit=2)] == [2, 3]
    assert await store.list_messages(conv.id, after_seq=6) == []
    assert await store.list_messages("cv_missing") == []


async def test_receipts_rise_and_never_fall(store: Store, seed: Seed) -> None:
    """Marks only go up, read implies delivered, and each side is independent."""
    conv = await seed.conversation()
    for _ in range(5):
        await seed.message(conv.id, author_kind="agent")
    c = await store.mark_receipt(conv.id, "customer", delivered_seq=3)
    assert (c.customer_delivered_seq, c.customer_read_seq) == (3, 0)
    c = await store.mark_receipt(conv.id, "customer", read_seq=2)
    assert (c.customer_delivered_seq, c.customer_read_seq) == (3, 2)
    c = await store.mark_receipt(conv.id, "customer", read_seq=4)
    assert (c.customer_delivered_seq, c.customer_read_seq) == (4, 4)
    c = await store.mark_receipt(conv.id, "customer", delivered_seq=1, read_seq=1)
    assert (c.customer_delivered_seq, c.customer_read_seq) == (4, 4)
    assert (c.agent_delivered_seq, c.agent_read_seq) == (0, 0)
    stored = await store.get_conversation(conv.id)
    assert stored is not None and (stored.customer_delivered_seq, stored.customer_read_seq) == (4, 4)


async def test_receipt_marks_are_capped_at_last_seq(store: Store, seed: Seed) -> None:
    """A mark above last_seq is stored as last_seq, so it cannot swallow messages not yet written."""
    conv = await seed.conversation()
    await seed.message(conv.id)
    await seed.message(conv.id)
    c = await store.mark_receipt(conv.id, "agent", delivered_seq=50, read_seq=40)
    assert (c.agent_delivered_seq, c.agent_read_seq) == (2, 2)
    r = await seed.message(conv.id)
    assert r.conversation.unread == 1


async def test_agent_read_recomputes_unread_from_customer_messages(store: Store, seed: Seed) -> None:
    """After an agent read, unread = customer messages above the read mark; agent messages never count."""
    conv = await seed.conversation()
    await seed.message(conv.id)  # 1 customer
    await seed.message(conv.id)  # 2 customer
    await seed.message(conv.id, author_kind="agent")  # 3
    await seed.message(conv.id, author_kind="agent", kind="note")  # 4
    r = await seed.message(conv.id)  # 5 customer
    assert r.conversation.unread == 3
    c = await store.mark_receipt(conv.id, "agent", delivered_seq=5)
    assert c.unread == 3 and c.agent_delivered_seq == 5
    c = await store.mark_receipt(conv.id, "agent", read_seq=1)
    assert c.unread == 2
    c = await store.mark_receipt(conv.id, "agent", read_seq=4)
    assert c.unread == 1
    c = await store.mark_receipt(conv.id, "agent", read_seq=2)  # lower: mark stays 4
    assert c.agent_read_seq == 4 and c.unread == 1
    c = await store.mark_receipt(conv.id, "agent", read_seq=5)
    assert c.unread == 0
    c = await store.mark_receipt(conv.id, "customer", read_seq=5)
    assert c.unread == 0
    stored = await store.get_conversation(conv.id)
    assert stored is not None and stored.unread == 0 and stored.agent_read_seq == 5


async def test_customer_read_leaves_unread_alone(store: Store, seed: Seed) -> None:
    """Only agent reads touch ``unread``."""
    conv = await seed.conversation()
    await seed.message(conv.id)
    await seed.message(conv.id, author_kind="agent")
    c = await store.mark_receipt(conv.id, "customer", read_seq=2)
    assert c.unread == 1


async def test_mark_receipt_errors(store: Store, seed: Seed) -> None:
    """NotFound for a missing conversation; a side other than customer/agent is refused."""
    with pytest.raises(NotFound):
        await store.mark_receipt("cv_missing", "agent", read_seq=1)
    conv = await seed.conversation()
    with pytest.raises(DomainError):
        await store.mark_receipt(conv.id, "robot", read_seq=1)
