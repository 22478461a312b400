"""Contract: what ``append_message`` returns (the stored message and the conversation after the append)
is exactly what a fresh store reads back from the backing data, for new messages and for replays.

The SQLite store builds both from its own statements (the conversation from the row it read before the
append, with the counters it then wrote computed in Python; the message from what it inserted), not
from a read after the append: these tests pin that the two never drift apart, field by field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from signaling.storage.base import AppendResult, Store

from .conftest import Seed, at


async def test_new_messages_return_what_a_fresh_store_reads(
    store: Store, seed: Seed, open_store: Callable[..., Awaitable[Store]]
) -> None:
    """Customer text, an agent note with nested data, a system message without client_id: every returned
    message and conversation equals the record a second store reads (no cache) after the appends."""
    conv = await seed.conversation(assignee_id="ag_1", page_url="https://example.test/p", language="fr")
    results: list[AppendResult] = [
        await seed.message(conv.id, "bonjour ✓", created_at=at(1)),
        await seed.message(
            conv.id,
            "internal",
            author_kind="agent",
            kind="note",
            data={"k": [1, "deux", None]},
            created_at=at(2),
        ),
        await seed.message(
            conv.id, "closed", author_kind="system", kind="system", client_id="", created_at=at(3)
        ),
    ]
    fresh = await open_store(node_id="reader")
    assert await fresh.get_conversation(conv.id) == results[-1].conversation
    assert await fresh.list_messages(conv.id) == [r.message for r in results]
    assert [r.conversation.last_seq for r in results] == [1, 2, 3]
    assert [r.conversation.unread for r in results] == [1, 1, 1]
    assert results[1].conversation.last_message_preview == "bonjour ✓"  # a note is never the preview


async def test_replay_returns_what_a_fresh_store_reads(
    store: Store, seed: Seed, open_store: Callable[..., Awaitable[Store]]
) -> None:
    """A replayed client_id answers with the stored message and the current conversation, as read back."""
    conv = await seed.conversation()
    first = await seed.message(conv.id, "first", client_id="c-1", created_at=at(1))
    await seed.message(conv.id, "second", client_id="c-2", created_at=at(2))
    again = await seed.message(conv.id, "first, retried", client_id="c-1", created_at=at(3))
    assert not again.created
    assert again.message == first.message
    fresh = await open_store(node_id="reader")
    assert again.conversation == await fresh.get_conversation(conv.id)
    assert again.conversation.last_seq == 2


async def test_an_append_older_than_the_last_activity_keeps_it(
    store: Store, seed: Seed, open_store: Callable[..., Awaitable[Store]]
) -> None:
    """A message stamped before the conversation's last activity (a clock behind another node's) takes
    the next seq and counts as unread, but leaves ``updated_at`` and, for a note, the last message as
    they were; what the append returns is what a fresh store reads."""
    conv = await seed.conversation(created_at=at(0), updated_at=at(0))
    await seed.message(conv.id, "latest", created_at=at(10))
    late = await seed.message(conv.id, "stamped earlier", created_at=at(5))
    note = await seed.message(conv.id, "a note", author_kind="agent", kind="note", created_at=at(20))
    assert (late.message.seq, note.message.seq) == (2, 3)
    assert late.conversation.updated_at == at(10)
    assert late.conversation.last_message_preview == "stamped earlier"
    assert note.conversation.updated_at == at(20)
    assert note.conversation.last_message_preview == "stamped earlier"
    assert note.conversation.unread == 2
    fresh = await open_store(node_id="reader")
    assert await fresh.get_conversation(conv.id) == note.conversation
