"""A chat block sent to an anonymous customer (no name given) reads naturally: the demo greeting
"Hello {{customer.name}}, I am {{agent.name}}. ..." arrives as "Hello, I am Alice Martin. ...", never
"Hello , I am ...", on the sender's ack and on the customer's socket. Real server, real clients."""

from __future__ import annotations

from tests.conftest import Hub


async def test_chatblock_for_an_anonymous_customer_has_no_dangling_comma(hub: Hub) -> None:
    """English and French greetings and the closing line, for a customer who never gave a name."""
    alice = await hub.agent("alice@example.com")
    customer = await hub.customer()
    assert not customer.visitor["name"]  # type: ignore[attr-defined]
    conv = (await customer.ok("conversation.start", {"body": "Hi"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    blocks = (await alice.ok("textblocks.search", {"q": "", "conversation_id": conv["id"]}))["textblocks"]
    by_shortcut = {b["shortcut"]: b for b in blocks}
    bodies = {}
    for shortcut in ("hello", "bonjour", "thanks"):
        sent = await alice.ok(
            "message.send",
            {
                "conversation_id": conv["id"],
                "client_id": f"cb-{shortcut}",
                "kind": "chatblock",
                "textblock_id": by_shortcut[shortcut]["id"],
            },
        )
        got = await customer.events.wait(
            "message.new", lambda d, s=shortcut: d["message"]["client_id"] == f"cb-{s}", timeout=2
        )
        assert got["message"]["body"] == sent["message"]["body"]
        bodies[shortcut] = sent["message"]["body"]
    assert bodies["hello"].startswith("Hello, I am Alice Martin.") or bodies["hello"].startswith(
        "Hello Visitor "
    )
    assert " ," not in "".join(bodies.values())
    assert bodies["bonjour"].startswith(("Bonjour, je suis Alice Martin.", "Bonjour Visiteur "))
    assert bodies["thanks"].startswith(
        ("Thank you for contacting us. Have", "Thank you for contacting us, Visitor ")
    )
