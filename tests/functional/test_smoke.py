"""The backbone end to end: a customer starts, an agent is rung, assigns, both chat, Done."""

from __future__ import annotations

from tests.conftest import Hub


async def test_chat_story(hub: Hub) -> None:
    """Start -> ring -> assign -> message both ways -> note hidden from customer -> done."""
    alice = await hub.agent("alice@example.com")
    customer = await hub.customer(name="Zoé")
    res = await customer.ok("conversation.start", {"body": "Hello, I need help"})
    conv = res["conversation"]
    new = await alice.events.wait("conversation.new", lambda d: d["conversation"]["id"] == conv["id"])
    assert new["ring"] is True
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    sent = await alice.ok("message.send", {"conversation_id": conv["id"], "client_id": "a1", "kind": "text",
                                            "body": "Hi Zoé"})
    got = await customer.events.wait("message.new", lambda d: d["message"]["client_id"] == "a1")
    assert got["message"]["body"] == "Hi Zoé"
    assert sent["message"]["seq"] == got["message"]["seq"]
    await alice.ok("note.add", {"conversation_id": conv["id"], "body": "SECRET-NOTE"})
    await alice.events.wait("message.new", lambda d: d["message"]["kind"] == "note")
    await alice.ok("conversation.status", {"conversation_id": conv["id"], "status": "done"})
    await customer.events.wait("conversation.updated", lambda d: d["conversation"]["status"] == "done")
    sync = await customer.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert all(m["kind"] != "note" for m in sync["messages"])
    assert "SECRET-NOTE" not in repr(customer.events.items)
