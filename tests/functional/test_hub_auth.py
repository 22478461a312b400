"""Who may do what on the hub, and what a hostile or broken client gets: connect refusals with
``unauthorized`` in the connect error data, the authorisation matrix (another customer's conversation,
another team's conversation: ``not_found`` for every event), and malformed payloads for every event
(``invalid``, never a crash, the server still serving afterwards)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import socketio

from rtc_server.app import STORE
from signaling.domain.auth import sign_token
from tests.conftest import Client, Hub

AGENT_EVENTS = (
    "message.send",
    "conversation.sync",
    "typing",
    "message.delivered",
    "message.read",
    "request.end",
    "rtc.offer",
    "rtc.answer",
    "rtc.config",
    "request.respond",
    "conversations.list",
    "conversations.counts",
    "conversations.search",
    "conversation.assign",
    "conversation.status",
    "note.add",
    "textblocks.search",
    "articles.search",
    "flows.list",
    "agents.list",
    "teams.list",
    "agent.status",
    "request.create",
)
CUSTOMER_EVENTS = (
    "message.send",
    "conversation.sync",
    "typing",
    "message.delivered",
    "message.read",
    "request.end",
    "rtc.offer",
    "rtc.answer",
    "rtc.config",
    "request.respond",
    "conversation.start",
    "conversations.list",
)
#: Events whose payload has no required field: ``{}`` is a valid call.
NO_REQUIRED_FIELD = {
    "rtc.config",
    "conversations.counts",
    "textblocks.search",
    "articles.search",
    "flows.list",
    "agents.list",
    "teams.list",
    "conversation.start",
    "conversations.list",
}
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


async def refused(hub: Hub, namespace: str, auth: Any) -> Any:
    """Connect with ``auth`` and return the connect error's data (the test fails if it connects)."""
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", lambda data=None: errors.append(data), namespace=namespace)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(
            hub.server.url, namespaces=[namespace], auth=auth, transports=["websocket"], wait_timeout=5
        )
    await sio.disconnect()
    assert len(errors) == 1
    return errors[0]


async def setup_chat(hub: Hub) -> tuple[Client, Client, dict[str, Any], dict[str, Any]]:
    """Alice with a fresh support conversation of a customer, and a pending cobrowse request in it."""
    alice = await hub.agent("alice@example.com")
    customer = await hub.customer(name="Ann")
    conv = (await customer.ok("conversation.start", {"body": "help"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    request = (await alice.ok("request.create", {"conversation_id": conv["id"], "kind": "cobrowse"}))[
        "request"
    ]
    return alice, customer, conv, request


async def test_connect_refusals_carry_unauthorized(hub: Hub) -> None:
    """No auth, an empty or non-string token, a forged, a tampered, an expired, a revoked token, a token of
    an unknown visitor, a customer token on /agent and an agent token on /customer are refused at connect with code unauthorized in the data,
    and the message leaks nothing about the server."""
    secret = hub.server.config.secret.encode()
    login = await hub.login("alice@example.com")
    visitor = await hub.visitor(name="V")
    expired = sign_token(secret, {"k": "agent", "sub": login["agent"]["id"], "v": 0}, 1, time.time() - 3600)
    forged = sign_token(
        b"another-secret", {"k": "agent", "sub": login["agent"]["id"], "v": 0}, 3600, time.time()
    )
    ghost = sign_token(secret, {"k": "customer", "sub": "vs_ghost"}, 3600, time.time())
    bob = await hub.login("bob@example.com")
    store = hub.server.app[STORE]
    bob_agent = await store.get_agent(bob["agent"]["id"])
    assert bob_agent is not None
    bob_agent.token_version += 1  # what a password change does: older tokens are revoked
    await store.update_agent(bob_agent)
    tampered = login["token"][:-2] + ("AA" if not login["token"].endswith("AA") else "BB")
    cases = [
        ("/agent", None),
        ("/agent", {}),
        ("/agent", {"token": ""}),
        ("/agent", {"token": 42}),
        ("/agent", {"token": "garbage"}),
        ("/agent", {"token": forged}),
        ("/agent", {"token": tampered}),
        ("/agent", {"token": expired}),
        ("/agent", {"token": visitor["token"]}),
        ("/agent", {"token": bob["token"]}),
        ("/customer", {"token": ghost}),
        ("/customer", {"token": login["token"]}),
        ("/customer", None),
        ("/customer", {"token": "x" * 10_000}),
    ]
    for namespace, auth in cases:
        data = await refused(hub, namespace, auth)
        # the python client hands over the whole error packet: {message, data: {code, message}}
        assert isinstance(data, dict) and data["data"]["code"] == "unauthorized", (namespace, auth, data)
        assert data["message"] == data["data"]["message"]
        assert "Traceback" not in repr(data) and "sqlite" not in repr(data).lower()
    ok = await hub.connect("/agent", login["token"])
    assert (await ok.ok("teams.list", {}))["teams"]


async def test_customer_cannot_touch_another_customers_conversation(hub: Hub) -> None:
    """Customer B gets not_found for every event on customer A's conversation and request (sync, send,
    typing, receipts, request.respond, request.end, rtc.offer, rtc.answer), and A sees nothing of it."""
    alice, customer_a, conv, request = await setup_chat(hub)
    customer_b = await hub.customer(name="Bea")
    cid, rid = conv["id"], request["id"]
    calls = [
        ("conversation.sync", {"conversation_id": cid, "after_seq": 0}),
        ("message.send", {"conversation_id": cid, "client_id": "b1", "kind": "text", "body": "intrusion"}),
        ("typing", {"conversation_id": cid, "typing": True}),
        ("message.delivered", {"conversation_id": cid, "seq": 1}),
        ("message.read", {"conversation_id": cid, "seq": 1}),
        ("request.respond", {"request_id": rid, "accept": True}),
        ("request.end", {"request_id": rid}),
        ("rtc.offer", {"request_id": rid, "sdp": SDP, "type": "offer"}),
        ("rtc.answer", {"request_id": rid, "sdp": SDP, "type": "answer"}),
    ]
    for event, payload in calls:
        res = await customer_b.call(event, payload)
        assert res["ok"] is False and res["error"]["code"] == "not_found", (event, res)
    assert (await customer_b.ok("conversations.list", {}))["conversations"] == []
    sync = await alice.ok("conversation.sync", {"conversation_id": cid, "after_seq": 0})
    assert "intrusion" not in repr(sync)
    assert [r["state"] for r in sync["requests"]] == ["pending"]
    await customer_a.ok("rtc.config", {})
    await asyncio.sleep(0.05)
    assert customer_a.events.of("typing") == [] and customer_a.events.of("conversation.receipt") == []


async def test_agent_of_another_team_gets_not_found_everywhere(hub: Hub) -> None:
    """Carol (sales) gets not_found for every event that names a support conversation or its request,
    does not see it in lists or search, and is never sent its events."""
    alice, customer, conv, request = await setup_chat(hub)
    carol = await hub.agent("carol@example.com")
    cid, rid = conv["id"], request["id"]
    calls = [
        ("conversation.sync", {"conversation_id": cid, "after_seq": 0}),
        ("message.send", {"conversation_id": cid, "client_id": "c1", "kind": "text", "body": "hi"}),
        ("typing", {"conversation_id": cid, "typing": True}),
        ("message.delivered", {"conversation_id": cid, "seq": 1}),
        ("message.read", {"conversation_id": cid, "seq": 1}),
        ("conversation.assign", {"conversation_id": cid}),
        ("conversation.assign", {"conversation_id": cid, "agent_id": carol.agent["id"]}),  # type: ignore[attr-defined]
        ("conversation.status", {"conversation_id": cid, "status": "done"}),
        ("note.add", {"conversation_id": cid, "body": "peek"}),
        ("request.create", {"conversation_id": cid, "kind": "call"}),
        ("textblocks.search", {"q": "hello", "conversation_id": cid}),
        ("request.end", {"request_id": rid}),
        ("rtc.offer", {"request_id": rid, "sdp": SDP, "type": "offer"}),
        ("rtc.answer", {"request_id": rid, "sdp": SDP, "type": "answer"}),
    ]
    for event, payload in calls:
        res = await carol.call(event, payload)
        assert res["ok"] is False and res["error"]["code"] == "not_found", (event, res)
    for section in ("unassigned", "mine", "team", "done"):
        listed = await carol.ok("conversations.list", {"section": section})
        assert cid not in repr(listed)
    assert (await carol.ok("conversations.search", {"q": "help"}))["conversations"] == []
    sync = await alice.ok("conversation.sync", {"conversation_id": cid, "after_seq": 0})
    assert sync["conversation"]["assignee_id"] == alice.agent["id"]  # type: ignore[attr-defined]
    assert sync["conversation"]["status"] == "open"
    assert [r["state"] for r in sync["requests"]] == ["pending"]
    await alice.ok("message.send", {"conversation_id": cid, "client_id": "a1", "kind": "text", "body": "x"})
    await customer.events.wait("message.new", lambda d: d["message"]["client_id"] == "a1", timeout=2)
    await carol.ok("rtc.config", {})
    await asyncio.sleep(0.05)
    assert cid not in repr(carol.events.items)


def templates(cid: str, rid: str) -> dict[str, dict[str, Any]]:
    """A well-formed payload per event (values are mutated one field at a time)."""
    return {
        "message.send": {
            "conversation_id": cid,
            "client_id": "m1",
            "kind": "text",
            "body": "x",
            "attachment_id": "at_x",
            "article_id": "ar_x",
            "flow_id": "fl_x",
            "textblock_id": "tb_x",
            "flow_answer": {"flow_id": "fl_x", "step_id": "s", "answer": "a"},
        },
        "conversation.sync": {"conversation_id": cid, "after_seq": 0},
        "typing": {"conversation_id": cid, "typing": True},
        "message.delivered": {"conversation_id": cid, "seq": 1},
        "message.read": {"conversation_id": cid, "seq": 1},
        "request.end": {"request_id": rid, "reason": "bye"},
        "rtc.offer": {"request_id": rid, "sdp": SDP, "type": "offer"},
        "rtc.answer": {"request_id": rid, "sdp": SDP, "type": "answer"},
        "request.respond": {"request_id": rid, "accept": True},
        "conversations.list": {"section": "team", "cursor": "abc"},
        "conversations.search": {"q": "hello"},
        "conversation.assign": {"conversation_id": cid, "agent_id": "ag_x", "team_id": "tm_x", "note": "n"},
        "conversation.status": {"conversation_id": cid, "status": "open"},
        "note.add": {"conversation_id": cid, "body": "n", "client_id": "n1"},
        "textblocks.search": {"q": "hello", "conversation_id": cid},
        "articles.search": {"q": "password", "language": "en"},
        "agent.status": {"status": "online"},
        "request.create": {"conversation_id": cid, "kind": "call"},
        "conversation.start": {
            "team_id": "tm_x",
            "body": "hi",
            "page_url": "https://x",
            "client_id": "s1",
            "language": "en",
        },
    }


BAD_STRINGS: list[Any] = [123, 1.5, True, ["x"], {"a": "b"}, "x" * 300_000, "bad \ud800 text"]
BAD_INTEGERS: list[Any] = ["1", 1.5, True, -1, 2**60, [1], {"n": 1}]
BAD_BOOLEANS: list[Any] = ["true", 1, 0, [True], {"b": True}]
IGNORED = {("conversations.list", "section"), ("conversations.list", "cursor")}
"""Fields the customer's conversations.list does not read."""


async def malformed_calls(client: Client, events: tuple[str, ...], cid: str, rid: str) -> list[str]:
    """Every malformed variant of every event; returns a description of each answer that was not
    ``invalid``."""
    bad: list[str] = []

    async def expect_invalid(event: str, payload: Any, what: str) -> None:
        res = await client.call(event, payload, timeout=5)
        if not (isinstance(res, dict) and res.get("ok") is False and res["error"]["code"] == "invalid"):
            bad.append(f"{client.namespace} {event} {what}: {str(res)[:200]}")

    tmpl = templates(cid, rid)
    for event in events:
        for payload in ("text", 42, 4.2, True, [1, 2], ["a", {"b": 1}]):
            await expect_invalid(event, payload, f"payload {payload!r}")
        base = tmpl.get(event, {})
        if event not in NO_REQUIRED_FIELD:
            await expect_invalid(event, {}, "empty object")
        for key, good in base.items():
            if client.namespace == "/customer" and (event, key) in IGNORED:
                continue
            if isinstance(good, bool):
                values = BAD_BOOLEANS
            elif isinstance(good, int):
                values = BAD_INTEGERS
            elif isinstance(good, dict):
                values = [
                    "x",
                    1,
                    ["a"],
                    {"flow_id": 1, "step_id": "s", "answer": "a"},
                    {"flow_id": "f", "step_id": "s", "answer": "\ud800"},
                ]
            else:
                values = BAD_STRINGS
            for value in values:
                await expect_invalid(event, {**base, key: value}, f"{key}={str(value)[:30]!r}")
    for unknown in ("nope", "conversation.delete", "Message.Send", "x" * 500, "connect", "disconnect"):
        await expect_invalid(unknown, {}, f"unknown event {unknown[:20]!r}")
    return bad


async def test_malformed_payloads_are_invalid_and_harmless(hub: Hub) -> None:
    """For every event on both namespaces: non-object payloads, a missing required field, each field
    of the wrong type, too long or not valid text, an unknown event (including the reserved names
    connect/disconnect sent as events) all get invalid; no ack is lost, and both sockets and the server
    keep working afterwards (presence unchanged, a chat still flows)."""
    alice, customer, conv, request = await setup_chat(hub)
    bad = await malformed_calls(alice, AGENT_EVENTS, conv["id"], request["id"])
    bad += await malformed_calls(customer, CUSTOMER_EVENTS, conv["id"], request["id"])
    assert bad == []
    agents = {a["email"]: a["status"] for a in (await alice.ok("agents.list", {}))["agents"]}
    assert agents["alice@example.com"] == "online"
    sync = await customer.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert [m["client_id"] for m in sync["messages"] if m["kind"] != "system"][1:] == []
    assert [r["state"] for r in sync["requests"]] == ["pending"]
    await alice.ok(
        "message.send",
        {"conversation_id": conv["id"], "client_id": "still", "kind": "text", "body": "still here"},
    )
    await customer.events.wait("message.new", lambda d: d["message"]["client_id"] == "still", timeout=2)
    fresh = await hub.customer()
    again = await fresh.ok("conversation.start", {"body": "new one"})
    await alice.events.wait(
        "conversation.new", lambda d: d["conversation"]["id"] == again["conversation"]["id"], timeout=2
    )


async def test_payload_size_limits(hub: Hub) -> None:
    """A body at the size cap is stored; one character more is invalid; an empty required id is invalid."""
    alice, customer, conv, _ = await setup_chat(hub)
    cap = hub.server.config.message_max_chars
    ok = await customer.ok(
        "message.send", {"conversation_id": conv["id"], "client_id": "big", "kind": "text", "body": "y" * cap}
    )
    assert len(ok["message"]["body"]) == cap
    res = await customer.call(
        "message.send",
        {"conversation_id": conv["id"], "client_id": "big2", "kind": "text", "body": "y" * (cap + 1)},
    )
    assert res["error"]["code"] == "invalid"
    res = await alice.call("note.add", {"conversation_id": "", "body": "x"})
    assert res["error"]["code"] == "invalid"
