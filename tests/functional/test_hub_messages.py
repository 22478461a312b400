"""Messages through the hub: every ``message.send`` kind, idempotent client ids, notes that never reach
a customer, ``conversation.sync`` after a reconnect, typing relay, receipts, and the agent's pickers
(text blocks, articles, flows, agents, teams, rtc.config)."""

from __future__ import annotations

import asyncio
from typing import Any

from rtc_server.app import STORE
from signaling.domain.models import Attachment, new_id
from tests.conftest import Client, Hub


async def settle(*clients: Client) -> None:
    """A round trip on every client, so that anything the server sent them before has arrived."""
    for client in clients:
        await client.ok("rtc.config", {})
    await asyncio.sleep(0.05)


async def chat(hub: Hub, name: str = "Zoé") -> tuple[Client, Client, dict[str, Any]]:
    """Alice connected and assigned to a fresh conversation of a new customer called ``name``."""
    alice = await hub.agent("alice@example.com")
    customer = await hub.customer(name=name)
    conv = (await customer.ok("conversation.start", {"body": "Hello"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    return alice, customer, conv


def send(conv: dict[str, Any], client_id: str, kind: str = "text", **fields: Any) -> dict[str, Any]:
    return {"conversation_id": conv["id"], "client_id": client_id, "kind": kind, **fields}


def by_client_id(client_id: str) -> Any:
    return lambda d: d["message"]["client_id"] == client_id


async def error_code(client: Client, event: str, payload: Any) -> str:
    res = await client.call(event, payload)
    assert res["ok"] is False, (event, payload, res)
    code: str = res["error"]["code"]
    return code


async def test_text_both_ways(hub: Hub) -> None:
    """A text from each side reaches the other with the stored seq, author and trimmed body; an empty
    body is invalid."""
    alice, customer, conv = await chat(hub)
    sent = await customer.ok("message.send", send(conv, "c1", body="  Where is my parcel?  "))
    msg = sent["message"]
    assert msg["body"] == "Where is my parcel?" and msg["author"]["kind"] == "customer"
    got = await alice.events.wait("message.new", by_client_id("c1"), timeout=2)
    assert got["message"] == msg
    sent = await alice.ok("message.send", send(conv, "a1", body="On its way"))
    got = await customer.events.wait("message.new", by_client_id("a1"), timeout=2)
    assert got["message"]["seq"] == sent["message"]["seq"] == msg["seq"] + 1
    assert got["message"]["author"] == {"kind": "agent", "id": alice.agent["id"], "name": "Alice Martin"}  # type: ignore[attr-defined]
    assert await error_code(customer, "message.send", send(conv, "c2", body="   ")) == "invalid"
    assert await error_code(alice, "message.send", send(conv, "a2")) == "invalid"


async def test_chatblock_fills_variables(hub: Hub) -> None:
    """textblocks.search finds the greeting by shortcut; sending it as a chatblock fills the customer's
    and the agent's names; the customer cannot send chatblocks; an unknown block is not_found."""
    alice, customer, conv = await chat(hub, name="Zoé")
    found = await alice.ok("textblocks.search", {"q": "hello", "conversation_id": conv["id"]})
    block = next(b for b in found["textblocks"] if b["shortcut"] == "hello")
    sent = await alice.ok("message.send", send(conv, "cb1", "chatblock", textblock_id=block["id"]))
    expected = "Hello Zoé, I am Alice Martin. How can I help you today?"
    assert sent["message"]["body"] == expected and sent["message"]["kind"] == "chatblock"
    got = await customer.events.wait("message.new", by_client_id("cb1"), timeout=2)
    assert got["message"]["body"] == expected and got["message"]["textblock_id"] == block["id"]
    assert await error_code(alice, "message.send", send(conv, "cb2", "chatblock")) == "invalid"
    assert (
        await error_code(alice, "message.send", send(conv, "cb3", "chatblock", textblock_id="tb_x"))
        == "not_found"
    )
    assert (
        await error_code(customer, "message.send", send(conv, "cb4", "chatblock", textblock_id=block["id"]))
        == "invalid"
    )


async def test_article_card(hub: Hub) -> None:
    """articles.search finds an article; sending it gives the customer a card (id, title, summary, url)
    with the title as body; missing or unknown article ids are refused."""
    alice, customer, conv = await chat(hub)
    found = await alice.ok("articles.search", {"q": "password"})
    article = found["articles"][0]
    assert article["title"] == "Resetting your password"
    await alice.ok("message.send", send(conv, "ar1", "article", article_id=article["id"]))
    got = await customer.events.wait("message.new", by_client_id("ar1"), timeout=2)
    card = got["message"]["article"]
    assert card["id"] == article["id"] and card["url"] == "https://example.com/help/reset-password"
    assert card["summary"] and got["message"]["body"] == article["title"]
    assert await error_code(alice, "message.send", send(conv, "ar2", "article")) == "invalid"
    assert (
        await error_code(alice, "message.send", send(conv, "ar3", "article", article_id="ar_x"))
        == "not_found"
    )
    assert (
        await error_code(customer, "message.send", send(conv, "ar4", "article", article_id=article["id"]))
        == "invalid"
    )


async def test_flow_and_answers(hub: Hub) -> None:
    """An agent sends a flow (steps reach the widget); the customer answers a button step, a free-text
    step; an answer outside the buttons is invalid, an unknown step not_found, an agent cannot send a
    flow_answer, and the answers come back to the agent as messages."""
    alice, customer, conv = await chat(hub)
    flows = (await alice.ok("flows.list", {}))["flows"]
    survey = next(f for f in flows if f["name"] == "Satisfaction survey")
    await alice.ok("message.send", send(conv, "fl1", "flow", flow_id=survey["id"]))
    got = await customer.events.wait("message.new", by_client_id("fl1"), timeout=2)
    assert got["message"]["flow"]["steps"][0]["buttons"] == ["Great", "Okay", "Poor"]

    def answer(client_id: str, step: str, text: str) -> dict[str, Any]:
        return send(
            conv,
            client_id,
            "flow_answer",
            flow_answer={"flow_id": survey["id"], "step_id": step, "answer": text},
        )

    ok = await customer.ok("message.send", answer("fa1", "rating", "Great"))
    assert ok["message"]["body"] == "Great"
    assert ok["message"]["flow_answer"]["question"] == "How would you rate our help today?"
    seen = await alice.events.wait("message.new", by_client_id("fa1"), timeout=2)
    assert seen["message"]["kind"] == "flow_answer"
    free = await customer.ok("message.send", answer("fa2", "comment", "Faster replies please"))
    assert free["message"]["body"] == "Faster replies please"
    assert await error_code(customer, "message.send", answer("fa3", "rating", "Meh")) == "invalid"
    assert await error_code(customer, "message.send", answer("fa4", "nope", "Great")) == "not_found"
    assert await error_code(customer, "message.send", answer("fa5", "comment", "   ")) == "invalid"
    assert await error_code(customer, "message.send", send(conv, "fa6", "flow_answer")) == "invalid"
    assert (
        await error_code(customer, "message.send", send(conv, "fa7", "flow_answer", flow_answer="Great"))
        == "invalid"
    )
    assert await error_code(alice, "message.send", answer("fa8", "rating", "Great")) == "invalid"
    assert await error_code(alice, "message.send", send(conv, "fl2", "flow")) == "invalid"
    assert await error_code(alice, "message.send", send(conv, "fl3", "flow", flow_id="fl_x")) == "not_found"


async def test_attachment_kinds_need_an_attachment_of_this_conversation(hub: Hub) -> None:
    """image/video/audio/file without attachment_id are invalid, with an unknown one or another
    conversation's not_found, with a mismatching kind invalid; a real one is sent with its metadata."""
    alice, customer, conv = await chat(hub)
    for kind in ("image", "video", "audio", "file"):
        assert await error_code(customer, "message.send", send(conv, f"n-{kind}", kind)) == "invalid"
        assert (
            await error_code(alice, "message.send", send(conv, f"u-{kind}", kind, attachment_id="at_nope"))
            == "not_found"
        )
    store = hub.server.app[STORE]
    other = (await (await hub.customer()).ok("conversation.start", {"body": "x"}))["conversation"]
    att = await store.create_attachment(
        Attachment(
            id=new_id("at"),
            conversation_id=conv["id"],
            uploader_kind="customer",
            uploader_id=customer.visitor["id"],  # type: ignore[attr-defined]
            name="cat.png",
            mime="image/png",
            size=1234,
            storage_name=new_id("f"),
            kind="image",
        )
    )
    foreign = await store.create_attachment(
        Attachment(
            id=new_id("at"),
            conversation_id=other["id"],
            uploader_kind="customer",
            uploader_id="vs_x",
            name="dog.png",
            mime="image/png",
            size=99,
            storage_name=new_id("f"),
            kind="image",
        )
    )
    assert (
        await error_code(customer, "message.send", send(conv, "f1", "image", attachment_id=foreign.id))
        == "not_found"
    )
    assert (
        await error_code(customer, "message.send", send(conv, "f2", "video", attachment_id=att.id))
        == "invalid"
    )
    sent = await customer.ok("message.send", send(conv, "f3", "image", attachment_id=att.id))
    assert sent["message"]["attachment"]["name"] == "cat.png"
    got = await alice.events.wait("message.new", by_client_id("f3"), timeout=2)
    assert got["message"]["attachment"]["url"] == f"/api/uploads/{att.id}"
    as_file = await alice.ok("message.send", send(conv, "f4", "file", attachment_id=att.id))
    assert as_file["message"]["kind"] == "file"


async def test_client_id_is_idempotent(hub: Hub) -> None:
    """The same client_id twice (one after the other, and two at once) returns the same message,
    stores it once and sends one message.new; another author reusing it gets conflict."""
    alice, customer, conv = await chat(hub)
    first = await customer.ok("message.send", send(conv, "dup-1", body="once"))
    again = await customer.ok("message.send", send(conv, "dup-1", body="once"))
    assert again["message"] == first["message"]
    a, b = await asyncio.gather(
        customer.ok("message.send", send(conv, "dup-2", body="racing")),
        customer.ok("message.send", send(conv, "dup-2", body="racing")),
    )
    assert a["message"] == b["message"]
    res = await alice.call("message.send", send(conv, "dup-1", body="mine now"))
    assert res["ok"] is False and res["error"]["code"] == "conflict"
    other_customer = await hub.connect("/customer", customer.token)  # type: ignore[attr-defined]
    same_author = await other_customer.ok("message.send", send(conv, "dup-1", body="once"))
    assert same_author["message"] == first["message"], "another tab of the same visitor is the same author"
    await settle(alice, customer)
    sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    client_ids = [m["client_id"] for m in sync["messages"]]
    assert client_ids.count("dup-1") == 1 and client_ids.count("dup-2") == 1
    for client in (alice, customer):
        got = [d["message"]["client_id"] for d in client.events.of("message.new")]
        assert got.count("dup-1") == 1 and got.count("dup-2") == 1


async def test_notes_never_reach_the_customer(hub: Hub) -> None:
    """Notes (note.add, with and without client_id) reach agents only: every frame the customer's socket
    receives is free of the canary, the customer's sync has no note, and the customer cannot call
    note.add nor probe a note's client_id with message.send."""
    alice, customer, conv = await chat(hub)
    bob = await hub.agent("bob@example.com")
    canary = "NOTE-CANARY-5b2e9"
    n1 = await alice.ok("note.add", {"conversation_id": conv["id"], "body": canary})
    assert n1["message"]["kind"] == "note"
    await alice.ok("note.add", {"conversation_id": conv["id"], "body": canary + "-2", "client_id": "n-2"})
    await bob.events.wait("message.new", lambda d: d["message"]["body"] == canary + "-2", timeout=2)
    await alice.ok("message.send", send(conv, "after-note", body="visible"))
    await customer.events.wait("message.new", by_client_id("after-note"), timeout=2)
    res = await customer.call("note.add", {"conversation_id": conv["id"], "body": canary + "-customer"})
    assert res["ok"] is False and res["error"]["code"] == "invalid"
    probe = await customer.call("message.send", send(conv, "n-2", body="guess"))
    assert probe["ok"] is False and probe["error"]["code"] == "conflict"
    assert canary not in repr(probe)
    sync = await customer.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert [m for m in sync["messages"] if m["kind"] == "note"] == []
    lst = await customer.ok("conversations.list", {})
    await settle(customer)
    for blob in (customer.events.items, sync, lst):
        assert canary not in repr(blob)
    agent_sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert [m["body"] for m in agent_sync["messages"] if m["kind"] == "note"] == [canary, canary + "-2"]
    assert await error_code(alice, "note.add", {"conversation_id": conv["id"], "body": "  "}) == "invalid"


async def test_sync_after_reconnect_returns_exactly_what_was_missed(hub: Hub) -> None:
    """Customer offline while the agent sends 5 messages and a note: after reconnecting, sync after the
    last seen seq returns exactly those 5, in order, once (the note's seq is a gap); the agent's sync
    has the note too."""
    alice, customer, conv = await chat(hub)
    await alice.ok("message.send", send(conv, "before", body="before"))
    await customer.events.wait("message.new", by_client_id("before"), timeout=2)
    last_seen = max(d["message"]["seq"] for d in customer.events.of("message.new"))
    token = customer.token  # type: ignore[attr-defined]
    await customer.disconnect()
    for i in range(5):
        await alice.ok("message.send", send(conv, f"missed-{i}", body=f"missed {i}"))
        if i == 2:
            await alice.ok("note.add", {"conversation_id": conv["id"], "body": "offline note"})
    back = await hub.connect("/customer", token)
    sync = await back.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": last_seen})
    assert [m["client_id"] for m in sync["messages"]] == [f"missed-{i}" for i in range(5)]
    seqs = [m["seq"] for m in sync["messages"]]
    assert seqs == sorted(seqs) and seqs[0] == last_seen + 1 and seqs[-1] == last_seen + 6
    assert sync["conversation"]["last_seq"] == seqs[-1] and sync["has_more"] is False
    assert "unread" not in sync["conversation"]
    await settle(back)
    assert back.events.of("message.new") == []
    again = await back.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": seqs[-1]})
    assert again["messages"] == []
    agent = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": last_seen})
    assert [m["kind"] for m in agent["messages"]] == ["text"] * 3 + ["note"] + ["text"] * 2


async def test_typing_is_relayed_to_the_other_side_only(hub: Hub) -> None:
    """typing from the customer reaches the team's agents and not the customer's own socket; typing
    from alice reaches the customer and bob, not alice's own socket; typing must be a boolean."""
    alice, customer, conv = await chat(hub)
    bob = await hub.agent("bob@example.com")
    await customer.ok("typing", {"conversation_id": conv["id"], "typing": True})
    for agent in (alice, bob):
        got = await agent.events.wait("typing", lambda d: d["author"]["kind"] == "customer", timeout=2)
        assert got == {
            "conversation_id": conv["id"],
            "author": {
                "kind": "customer",
                "id": customer.visitor["id"],  # type: ignore[attr-defined]
                "name": "Zoé",
            },
            "typing": True,
        }
    await alice.ok("typing", {"conversation_id": conv["id"], "typing": False})
    got = await customer.events.wait("typing", lambda d: d["author"]["kind"] == "agent", timeout=2)
    assert got["typing"] is False and got["author"]["name"] == "Alice Martin"
    await bob.events.wait("typing", lambda d: d["author"]["kind"] == "agent", timeout=2)
    await settle(alice, customer)
    assert [d for d in customer.events.of("typing") if d["author"]["kind"] == "customer"] == []
    assert [d for d in alice.events.of("typing") if d["author"]["kind"] == "agent"] == []
    assert await error_code(customer, "typing", {"conversation_id": conv["id"], "typing": "yes"}) == "invalid"


async def test_receipts_and_unread(hub: Hub) -> None:
    """message.delivered/read from each side become conversation.receipt for everyone; marks never go
    down and are capped at last_seq; an agent read resets unread (conversation.updated to agents)."""
    alice, customer, conv = await chat(hub)
    await customer.ok("message.send", send(conv, "c1", body="one"))
    last = (await customer.ok("message.send", send(conv, "c2", body="two")))["message"]["seq"]
    a1 = await alice.ok("message.send", send(conv, "a1", body="reply"))
    await customer.ok("message.delivered", {"conversation_id": conv["id"], "seq": a1["message"]["seq"]})
    rec = await alice.events.wait("conversation.receipt", lambda d: d["side"] == "customer", timeout=2)
    assert rec == {
        "conversation_id": conv["id"],
        "side": "customer",
        "delivered_seq": a1["message"]["seq"],
        "read_seq": 0,
    }
    await customer.ok("message.read", {"conversation_id": conv["id"], "seq": 10**6})
    rec = await alice.events.wait(
        "conversation.receipt", lambda d: d["side"] == "customer" and d["read_seq"] > 0, timeout=2
    )
    assert rec["read_seq"] == rec["delivered_seq"] == a1["message"]["seq"]
    await customer.ok("message.read", {"conversation_id": conv["id"], "seq": 1})
    sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert sync["conversation"]["receipts"]["customer"]["read_seq"] == a1["message"]["seq"]
    assert sync["conversation"]["unread"] == 3
    await alice.ok("message.read", {"conversation_id": conv["id"], "seq": last})
    rec = await customer.events.wait("conversation.receipt", lambda d: d["side"] == "agent", timeout=2)
    assert rec["read_seq"] == last
    upd = await alice.events.wait(
        "conversation.updated", lambda d: d["conversation"]["unread"] == 0, timeout=2
    )
    assert upd["conversation"]["id"] == conv["id"]
    await settle(customer)
    assert all("unread" not in d["conversation"] for d in customer.events.of("conversation.updated"))
    assert await error_code(alice, "message.read", {"conversation_id": conv["id"], "seq": -1}) == "invalid"


async def test_agent_pickers(hub: Hub) -> None:
    """textblocks.search (prefix and fuzzy), articles.search, flows.list, agents.list (presence),
    teams.list and rtc.config answer the console's pickers."""
    alice = await hub.agent("alice@example.com")
    blocks = (await alice.ok("textblocks.search", {"q": "ref"}))["textblocks"]
    assert blocks[0]["shortcut"] == "refund"
    fuzzy = (await alice.ok("textblocks.search", {"q": "shiping"}))["textblocks"]
    assert fuzzy and fuzzy[0]["shortcut"] == "shipping"
    every = (await alice.ok("textblocks.search", {}))["textblocks"]
    assert len(every) >= 5
    arts = (await alice.ok("articles.search", {"q": "refunds"}))["articles"]
    assert [a["title"] for a in arts] == ["Returns and refunds"]
    assert {f["name"] for f in (await alice.ok("flows.list", {}))["flows"]} == {
        "Satisfaction survey",
        "Contact details",
    }
    agents = {a["email"]: a for a in (await alice.ok("agents.list", {}))["agents"]}
    assert agents["alice@example.com"]["status"] == "online"
    assert agents["carol@example.com"]["status"] == "offline"
    assert all("password_hash" not in a for a in agents.values())
    teams = {t["name"]: t["routing"] for t in (await alice.ok("teams.list", {}))["teams"]}
    assert teams == {"support": "manual", "sales": "auto"}
    cfg = await alice.ok("rtc.config", {})
    assert isinstance(cfg["ice_servers"], list)


async def test_note_and_message_client_ids_do_not_cross(hub: Hub) -> None:
    """note.add with the client_id of a customer's message, or message.send with the client_id of a note,
    is conflict (never an ok carrying the other message); a note retried with its own client_id returns
    the same note once."""
    alice, customer, conv = await chat(hub)
    await customer.ok("message.send", send(conv, "shared", body="customer text"))
    res = await alice.call(
        "note.add", {"conversation_id": conv["id"], "client_id": "shared", "body": "my note"}
    )
    assert res["ok"] is False and res["error"]["code"] == "conflict"
    first = await alice.ok("note.add", {"conversation_id": conv["id"], "client_id": "n1", "body": "secret"})
    again = await alice.ok("note.add", {"conversation_id": conv["id"], "client_id": "n1", "body": "secret"})
    assert again["message"] == first["message"]
    res = await alice.call("message.send", send(conv, "n1", body="public"))
    assert res["ok"] is False and res["error"]["code"] == "conflict"
    bob = await hub.agent("bob@example.com")
    res = await bob.call("note.add", {"conversation_id": conv["id"], "client_id": "n1", "body": "bob's"})
    assert res["ok"] is False and res["error"]["code"] == "conflict"
    sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert [m["client_id"] for m in sync["messages"] if m["kind"] == "note"] == ["n1"]
