"""Contract: what ``append_message`` returns (the stored message and the conversation after the append)
is exactly what a fresh store reads back from the backing data, for new messages and for replays.

The SQLite store builds both from its own statements (the conversation from the ``UPDATE``'s
``RETURNING``, by position; the message from what it inserted), not from a read: these tests pin that
the two never drift apart, field by field.
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
