"""A customer's messages skip the conversation read once the node knows the conversation is theirs
(``Timeline.conversation_to_append``); what may change meanwhile on another node (status, assignee)
is taken from the append itself. Pinned on two nodes, where nothing else keeps the node's copy fresh."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import Cluster

pytestmark = pytest.mark.redis


async def test_customer_message_reopens_a_conversation_resolved_on_the_other_node(cluster: Cluster) -> None:
    """The customer (node 1) writes, so node 1 remembers the conversation while it is open; Alice
    (node 2) resolves it; the customer's next message still reopens it and rings Alice again."""
    alice = await cluster.hubs[1].agent("alice@example.com")
    customer = await cluster.hubs[0].customer(name="Stale")
    conv = (await customer.ok("conversation.start", {"body": "hello"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    await customer.ok(
        "message.send", {"conversation_id": conv["id"], "client_id": "first", "kind": "text", "body": "one"}
    )
    await alice.ok("conversation.status", {"conversation_id": conv["id"], "status": "done"})
    await customer.events.wait("conversation.updated", lambda d: d["conversation"]["status"] == "done")
    mark = len(alice.events.items)
    await customer.ok(
        "message.send", {"conversation_id": conv["id"], "client_id": "back", "kind": "text", "body": "two"}
    )
    reopened = await alice.events.wait(
        "conversation.updated",
        lambda d: d["conversation"]["id"] == conv["id"] and d["conversation"]["status"] == "open",
    )
    assert reopened["conversation"]["status"] == "open"
    async with asyncio.timeout(5):
        while not any(
            e == "conversation.new" and d["conversation"]["id"] == conv["id"] and d["ring"]
            for e, d in alice.events.items[mark:]
        ):
            await asyncio.sleep(0.02)


async def test_another_visitor_cannot_write_to_a_remembered_conversation(cluster: Cluster) -> None:
    """Once node 1 remembers a conversation as one visitor's, another visitor naming it gets
    ``not_found``, as before (nothing is written)."""
    owner = await cluster.hubs[0].customer(name="Owner")
    conv = (await owner.ok("conversation.start", {"body": "mine"}))["conversation"]
    await owner.ok(
        "message.send", {"conversation_id": conv["id"], "client_id": "o1", "kind": "text", "body": "x"}
    )
    intruder = await cluster.hubs[0].customer(name="Intruder")
    res = await intruder.call(
        "message.send", {"conversation_id": conv["id"], "client_id": "i1", "kind": "text", "body": "y"}
    )
    assert res["ok"] is False and res["error"]["code"] == "not_found"
    sync = await owner.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert [m["client_id"] for m in sync["messages"] if m["kind"] == "text"][-1] == "o1"
