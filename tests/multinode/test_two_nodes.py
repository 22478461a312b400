"""Two nodes on one Redis behave as one server: chat, notes and typing cross nodes through
python-socketio's Redis manager; assignment races have one winner; auto-routing and presence see
agents of the other node; consent requests and ``conversation.sync`` work from either node."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rtc_server.app import STORE
from tests.conftest import Client

from .conftest import Cluster

pytestmark = pytest.mark.redis


async def team_id(agent: Client, name: str) -> str:
    teams = (await agent.ok("teams.list"))["teams"]
    return next(str(t["id"]) for t in teams if t["name"] == name)


async def test_readyz_reports_store_and_pubsub_listener(cluster: Cluster) -> None:
    """Both nodes are ready, and their readiness includes the Redis pub/sub listener check."""
    for node in (0, 1):
        status, body = await cluster.readyz(node)
        assert status == 200
        assert body["checks"] == {"store": True, "pubsub": True}


async def test_customer_on_one_node_chats_with_agent_on_the_other(cluster: Cluster) -> None:
    """Ring, messages both ways, a note that reaches an agent on the customer's node but never the
    customer, and typing: every event crosses nodes."""
    alice = await cluster.hubs[1].agent("alice@example.com")
    bob = await cluster.hubs[0].agent("bob@example.com")
    customer = await cluster.hubs[0].customer(name="Zoé")
    conv = (await customer.ok("conversation.start", {"body": "Hello from node 1"}))["conversation"]
    ring = await alice.events.wait("conversation.new", lambda d: d["conversation"]["id"] == conv["id"])
    assert ring["ring"] is True
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})

    sent = await alice.ok(
        "message.send", {"conversation_id": conv["id"], "client_id": "a1", "kind": "text", "body": "Hi Zoé"}
    )
    got = await customer.events.wait("message.new", lambda d: d["message"]["client_id"] == "a1")
    assert got["message"]["seq"] == sent["message"]["seq"]
    await customer.ok(
        "message.send", {"conversation_id": conv["id"], "client_id": "c1", "kind": "text", "body": "Thanks!"}
    )
    await alice.events.wait("message.new", lambda d: d["message"]["client_id"] == "c1")

    await alice.ok("note.add", {"conversation_id": conv["id"], "body": "SECRET-NOTE"})
    await bob.events.wait("message.new", lambda d: d["message"]["kind"] == "note")  # agent on node 1

    await customer.ok("typing", {"conversation_id": conv["id"], "typing": True})
    typing = await alice.events.wait("typing", lambda d: d["conversation_id"] == conv["id"])
    assert typing["author"]["kind"] == "customer" and typing["typing"] is True

    # A last message after the note: once it arrives, the note would have arrived too (same path).
    await alice.ok(
        "message.send", {"conversation_id": conv["id"], "client_id": "a2", "kind": "text", "body": "Bye"}
    )
    await customer.events.wait("message.new", lambda d: d["message"]["client_id"] == "a2")
    assert "SECRET-NOTE" not in repr(customer.events.items)


async def test_assign_to_me_from_two_nodes_has_one_winner(cluster: Cluster) -> None:
    """Alice (node 1) and Bob (node 2) press "Assign to me" at once, five times: exactly one wins each
    time, the other gets ``conflict``, and both nodes agree on the assignee."""
    alice = await cluster.hubs[0].agent("alice@example.com")
    bob = await cluster.hubs[1].agent("bob@example.com")
    names = {alice.agent["id"]: "alice", bob.agent["id"]: "bob"}  # type: ignore[attr-defined]
    for i in range(5):
        customer = await cluster.hubs[i % 2].customer(name=f"Racer {i}")
        conv = (await customer.ok("conversation.start", {"body": f"race {i}"}))["conversation"]
        results = await asyncio.gather(
            alice.call("conversation.assign", {"conversation_id": conv["id"]}),
            bob.call("conversation.assign", {"conversation_id": conv["id"]}),
        )
        winners = [r for r in results if r["ok"]]
        losers = [r for r in results if not r["ok"]]
        assert len(winners) == 1 and len(losers) == 1, results
        assert losers[0]["error"]["code"] == "conflict"
        assignee = winners[0]["conversation"]["assignee_id"]
        assert assignee in names
        for agent in (alice, bob):
            sync = await agent.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
            assert sync["conversation"]["assignee_id"] == assignee


async def test_auto_routing_and_presence_see_agents_of_the_other_node(cluster: Cluster) -> None:
    """Carol (team sales, auto routing) is connected to node 2 only; a conversation started on node 1
    is assigned to her and rings her there; node 1 lists her online."""
    carol = await cluster.hubs[1].agent("carol@example.com")
    alice = await cluster.hubs[0].agent("alice@example.com")  # admin: sees every team
    agents = (await alice.ok("agents.list"))["agents"]
    assert {a["email"]: a["status"] for a in agents}["carol@example.com"] == "online"
    assert {a["email"]: a["status"] for a in agents}["bob@example.com"] == "offline"

    sales = await team_id(carol, "sales")
    customer = await cluster.hubs[0].customer(name="Buyer")
    conv = (await customer.ok("conversation.start", {"team_id": sales, "body": "Pricing?"}))["conversation"]
    assert conv["assignee_id"] == carol.agent["id"]  # type: ignore[attr-defined]
    ring = await carol.events.wait("conversation.new", lambda d: d["conversation"]["id"] == conv["id"])
    assert ring["conversation"]["assignee_id"] == carol.agent["id"]  # type: ignore[attr-defined]

    await carol.disconnect()

    async def carol_status() -> str:
        listed = (await alice.ok("agents.list"))["agents"]
        return str({a["email"]: a["status"] for a in listed}["carol@example.com"])

    async with asyncio.timeout(5):
        while await carol_status() != "offline":
            await asyncio.sleep(0.05)


async def test_request_created_on_one_node_accepted_on_the_other(cluster: Cluster) -> None:
    """Alice on node 2 asks for a call; the customer on node 1 is prompted and accepts; both see every
    ``request.updated`` (pending, accepted), and an agent on node 1 sees them too."""
    alice = await cluster.hubs[1].agent("alice@example.com")
    bob = await cluster.hubs[0].agent("bob@example.com")
    customer = await cluster.hubs[0].customer(name="Caller")
    conv = (await customer.ok("conversation.start", {"body": "Can we talk?"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    request = (await alice.ok("request.create", {"conversation_id": conv["id"], "kind": "call"}))["request"]

    def is_state(state: str) -> Any:
        return lambda d: d["request"]["id"] == request["id"] and d["request"]["state"] == state

    await customer.events.wait("request.updated", is_state("pending"))
    answer = await customer.ok("request.respond", {"request_id": request["id"], "accept": True})
    assert answer["request"]["state"] == "accepted"
    for client in (alice, bob, customer):
        await client.events.wait("request.updated", is_state("accepted"))
    ended = await alice.ok("request.end", {"request_id": request["id"]})
    assert ended["request"]["state"] in ("ended", "cancelled")
    await customer.events.wait("request.updated", is_state(ended["request"]["state"]))


async def test_sync_from_either_node_returns_the_whole_log_in_order(cluster: Cluster) -> None:
    """Messages written through both nodes interleave in one seq order; ``conversation.sync`` gives the
    same log on both nodes (notes to agents only), and a customer reconnecting to the other node
    recovers what it missed."""
    alice = await cluster.hubs[1].agent("alice@example.com")
    customer = await cluster.hubs[0].customer(name="Syncer")
    token = customer.token  # type: ignore[attr-defined]
    conv = (await customer.ok("conversation.start", {"body": "first"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    sends = []
    for i in range(6):
        who = customer if i % 2 == 0 else alice
        payload = {"conversation_id": conv["id"], "client_id": f"m{i}", "kind": "text", "body": f"m{i}"}
        sends.append(asyncio.create_task(who.ok("message.send", payload)))
    acks = await asyncio.gather(*sends)
    await alice.ok("note.add", {"conversation_id": conv["id"], "body": "internal"})
    await customer.disconnect()
    missed = await alice.ok(
        "message.send", {"conversation_id": conv["id"], "client_id": "late", "kind": "text", "body": "late"}
    )

    again = await cluster.connect(1, "/customer", token)
    customer_view = await again.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    agent_view = await (await cluster.hubs[0].agent("bob@example.com")).ok(
        "conversation.sync", {"conversation_id": conv["id"], "after_seq": 0}
    )
    agent_seqs = [m["seq"] for m in agent_view["messages"]]
    assert agent_seqs == list(range(1, len(agent_seqs) + 1))
    assert [m["kind"] for m in agent_view["messages"]].count("note") == 1
    assert [m for m in agent_view["messages"] if m["kind"] != "note"] == customer_view["messages"]
    client_ids = [m["client_id"] for m in customer_view["messages"]]
    for ack in [*acks, missed]:
        assert client_ids.count(ack["message"]["client_id"]) == 1
    assert customer_view["messages"][-1]["seq"] == missed["message"]["seq"]
    tail = await again.ok(
        "conversation.sync", {"conversation_id": conv["id"], "after_seq": missed["message"]["seq"] - 1}
    )
    assert [m["client_id"] for m in tail["messages"]] == ["late"]


async def test_auto_routing_respects_capacity_across_nodes(cluster: Cluster) -> None:
    """Carol (capacity 1) is the only sales agent; conversations started at once on both nodes must
    never give her more than one."""
    store = cluster.nodes[0].app[STORE]
    carol_record = await store.get_agent_by_email("carol@example.com")
    assert carol_record is not None
    carol_record.capacity = 1
    await store.update_agent(carol_record)
    carol = await cluster.hubs[1].agent("carol@example.com")
    sales = await team_id(carol, "sales")
    for i in range(3):
        customers = [await cluster.hubs[n % 2].customer(name=f"Cap {i}.{n}") for n in range(6)]
        started = await asyncio.gather(
            *(c.ok("conversation.start", {"team_id": sales, "body": "hi"}) for c in customers)
        )
        mine = [s["conversation"] for s in started if s["conversation"]["assignee_id"] == carol_record.id]
        assert len(mine) <= 1
        for conv in mine:
            await carol.ok("conversation.status", {"conversation_id": conv["id"], "status": "done"})


async def test_clients_of_both_parsers_chat_across_nodes(cluster: Cluster) -> None:
    """A customer of the msgpack parser on node 0, an agent of the JSON parser on node 1 and one of the
    msgpack parser beside her: every broadcast crosses Redis once and reaches each socket in its own
    parser, the note included (and never the customer)."""
    alice = await cluster.hubs[1].agent("alice@example.com")
    bob = await cluster.hubs[1].agent("bob@example.com", serializer="msgpack")
    customer = await cluster.hubs[0].customer(serializer="msgpack", name="Zoé")
    conv = (await customer.ok("conversation.start", {"body": "Bonjour, ça va ?"}))["conversation"]
    for agent in (alice, bob):
        ring = await agent.events.wait("conversation.new", lambda d: d["conversation"]["id"] == conv["id"])
        assert ring["conversation"]["last_message_preview"] == "Bonjour, ça va ?"
    await bob.ok("conversation.assign", {"conversation_id": conv["id"]})
    await bob.ok("message.send", {"conversation_id": conv["id"], "client_id": "b1", "body": "Oui ✓"})
    got = await customer.events.wait("message.new", lambda d: d["message"]["client_id"] == "b1")
    assert got["message"]["body"] == "Oui ✓"
    await customer.ok("message.send", {"conversation_id": conv["id"], "client_id": "c1", "body": "Merci"})
    for agent in (alice, bob):
        await agent.events.wait("message.new", lambda d: d["message"]["client_id"] == "c1")
    await alice.ok("note.add", {"conversation_id": conv["id"], "body": "SECRET-NOTE"})
    await bob.events.wait("message.new", lambda d: d["message"]["kind"] == "note")
    await customer.ok("message.send", {"conversation_id": conv["id"], "client_id": "c2", "body": "after the note"})
    await alice.events.wait("message.new", lambda d: d["message"]["client_id"] == "c2")
    assert "SECRET-NOTE" not in repr(customer.events.items)
