"""The hub's conversation life cycle against a real server: ringing on start, manual assignment races,
redirects, the agent's lists (sections, unread, cursor paging), counts, search, Done and reopen."""

from __future__ import annotations

import asyncio
from typing import Any

from rtc_server.app import STORE
from signaling.domain.auth import hash_password
from signaling.domain.models import Agent, Team, new_id
from tests.conftest import Client, Hub


def is_conv(conv_id: str) -> Any:
    """A predicate on events carrying ``{conversation}``."""
    return lambda d: d["conversation"]["id"] == conv_id


async def wait_after(client: Client, mark: int, event: str, pred: Any = None, timeout: float = 2.0) -> Any:
    """The first ``event`` matching ``pred`` that arrived after ``client.events.items[:mark]``."""

    def fresh(d: Any) -> bool:
        recent = [x for e, x in client.events.items[mark:] if e == event]
        return any(d is x for x in recent) and (pred is None or pred(d))

    return await client.events.wait(event, fresh, timeout)


async def settle(*clients: Client) -> None:
    """A round trip on every client, so that anything the server sent them before has arrived."""
    for client in clients:
        await client.ok("rtc.config", {})
    await asyncio.sleep(0.05)


async def start(customer: Client, body: str = "Hello", **extra: Any) -> dict[str, Any]:
    res = await customer.ok("conversation.start", {"body": body, **extra})
    conv: dict[str, Any] = res["conversation"]
    return conv


async def add_agent(hub: Hub, email: str, team: Team, *, admin: bool = False) -> Agent:
    agent = Agent(
        id=new_id("ag"),
        email=email,
        name=email.split("@")[0].title(),
        password_hash=hash_password("demo"),
        team_ids=[team.id],
        is_admin=admin,
        status="online",
    )
    return await hub.server.app[STORE].create_agent(agent)


async def test_start_rings_the_team_and_nobody_else(hub: Hub) -> None:
    """conversation.start sends conversation.new {ring: true} to alice and bob (support) only: carol
    (sales) and another customer receive nothing about it."""
    alice, bob = await hub.agent("alice@example.com"), await hub.agent("bob@example.com")
    carol = await hub.agent("carol@example.com")
    other = await hub.customer(name="Other")
    customer = await hub.customer(name="Zoé")
    conv = await start(customer, "Hello, I need help", page_url="https://shop.example/cart")
    assert conv["status"] == "open" and conv["assignee_id"] is None
    assert "unread" not in conv, "the customer's view has no agent counters"
    for agent in (alice, bob):
        new = await agent.events.wait("conversation.new", is_conv(conv["id"]), timeout=2)
        assert new["ring"] is True
        assert new["conversation"]["unread"] == 1
        assert new["conversation"]["visitor"]["name"] == "Zoé"
        assert new["conversation"]["page_url"] == "https://shop.example/cart"
    await settle(carol, other, customer)
    assert conv["id"] not in repr(carol.events.items) and carol.events.of("conversation.new") == []
    assert other.events.items == []
    assert customer.events.of("conversation.new") == []


async def test_start_without_body_and_on_a_named_team(hub: Hub) -> None:
    """A start without body creates an empty conversation; team_id picks the team (carol's sales team
    rings carol, not support); an unknown team is not_found."""
    bob, carol = await hub.agent("bob@example.com"), await hub.agent("carol@example.com")
    customer = await hub.customer()
    empty = await start(customer, "")
    assert empty["last_seq"] == 0
    await bob.events.wait("conversation.new", is_conv(empty["id"]), timeout=2)
    sales = await hub.server.app[STORE].get_team_by_name("sales")
    assert sales is not None
    conv = await start(customer, "Pricing?", team_id=sales.id)
    assert conv["team_id"] == sales.id
    await carol.events.wait("conversation.new", is_conv(conv["id"]), timeout=2)
    await settle(bob)
    assert [d["conversation"]["id"] for d in bob.events.of("conversation.new")] == [empty["id"]]
    res = await customer.call("conversation.start", {"team_id": "tm_nope"})
    assert res["ok"] is False and res["error"]["code"] == "not_found"


async def test_assign_race_has_exactly_one_winner(hub: Hub) -> None:
    """Alice and bob pressing "Assign to me" at the same moment, 20 times on fresh conversations:
    exactly one ok each time, the other gets conflict, and the stored assignee is the winner."""
    alice, bob = await hub.agent("alice@example.com"), await hub.agent("bob@example.com")
    customer = await hub.customer()
    winners = set()
    for i in range(20):
        conv = await start(customer, f"race {i}")
        payload = {"conversation_id": conv["id"]}
        a, b = await asyncio.gather(
            alice.call("conversation.assign", payload), bob.call("conversation.assign", payload)
        )
        oks = [r for r in (a, b) if r["ok"]]
        losers = [r for r in (a, b) if not r["ok"]]
        assert len(oks) == 1 and len(losers) == 1, (a, b)
        assert losers[0]["error"]["code"] == "conflict"
        winner = oks[0]["conversation"]["assignee_id"]
        winners.add(winner)
        sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
        assert sync["conversation"]["assignee_id"] == winner
        joined = [m for m in sync["messages"] if m.get("code") == "conversation.assigned"]
        assert len(joined) == 1, "one assignment, one system message"
    assert winners <= {alice.agent["id"], bob.agent["id"]}  # type: ignore[attr-defined]


async def test_assign_to_me_is_idempotent_and_announced(hub: Hub) -> None:
    """Assigning to myself twice is ok (no second system message); the customer and the team are told
    through conversation.updated with the assignee's public name."""
    alice, bob = await hub.agent("alice@example.com"), await hub.agent("bob@example.com")
    customer = await hub.customer()
    conv = await start(customer)
    first = await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    again = await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    assert first["conversation"]["assignee_id"] == again["conversation"]["assignee_id"] == alice.agent["id"]  # type: ignore[attr-defined]
    upd = await customer.events.wait("conversation.updated", is_conv(conv["id"]), timeout=2)
    assert upd["conversation"]["assignee"] == {"id": alice.agent["id"], "name": "Alice Martin"}  # type: ignore[attr-defined]
    assert "unread" not in upd["conversation"]
    await bob.events.wait("conversation.updated", is_conv(conv["id"]), timeout=2)
    sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert [m.get("code") for m in sync["messages"] if m["kind"] == "system"] == ["conversation.assigned"]


async def test_redirect_to_agent_rings_receiver_and_keeps_note_internal(hub: Hub) -> None:
    """The assignee redirects to bob with a note: bob gets conversation.new {ring, redirected, note},
    the note is stored as kind note (agents see it, the customer never does), the assignee is bob."""
    alice, bob = await hub.agent("alice@example.com"), await hub.agent("bob@example.com")
    customer = await hub.customer()
    conv = await start(customer)
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    canary = "REDIRECT-NOTE-7c1f"
    res = await alice.ok(
        "conversation.assign",
        {
            "conversation_id": conv["id"],
            "agent_id": bob.agent["id"],  # type: ignore[attr-defined]
            "note": canary,
        },
    )
    assert res["conversation"]["assignee_id"] == bob.agent["id"]  # type: ignore[attr-defined]
    new = await bob.events.wait(
        "conversation.new", lambda d: d["conversation"]["id"] == conv["id"] and d.get("redirected"), timeout=2
    )
    assert new["ring"] is True and new["note"] == canary
    note = await bob.events.wait("message.new", lambda d: d["message"]["kind"] == "note", timeout=2)
    assert note["message"]["body"] == canary
    agent_sync = await bob.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert [m["body"] for m in agent_sync["messages"] if m["kind"] == "note"] == [canary]
    assert any(m.get("code") == "conversation.redirected_agent" for m in agent_sync["messages"])
    cust_sync = await customer.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert all(m["kind"] != "note" for m in cust_sync["messages"])
    bob_id = bob.agent["id"]  # type: ignore[attr-defined]
    await customer.events.wait(
        "conversation.updated", lambda d: d["conversation"]["assignee_id"] == bob_id, timeout=2
    )
    await settle(customer)
    assert canary not in repr(customer.events.items)
    assert canary not in repr(cust_sync)


async def test_redirect_to_team_rings_that_team(hub: Hub) -> None:
    """Redirect to a (manual) team: its agents are rung, the conversation is unassigned in that team,
    and a non-admin of the old team loses access (not_found)."""
    store = hub.server.app[STORE]
    billing = await store.create_team(Team(id=new_id("tm"), name="billing", routing="manual"))
    await add_agent(hub, "dave@example.com", billing)
    await add_agent(hub, "erin@example.com", billing)
    alice, bob = await hub.agent("alice@example.com"), await hub.agent("bob@example.com")
    dave, erin = await hub.agent("dave@example.com"), await hub.agent("erin@example.com")
    customer = await hub.customer()
    conv = await start(customer)
    await bob.ok("conversation.assign", {"conversation_id": conv["id"]})
    res = await bob.ok(
        "conversation.assign",
        {"conversation_id": conv["id"], "team_id": billing.id, "note": "over to billing"},
    )
    assert res["conversation"]["team_id"] == billing.id and res["conversation"]["assignee_id"] is None
    for agent in (dave, erin):
        new = await agent.events.wait("conversation.new", is_conv(conv["id"]), timeout=2)
        assert new["ring"] is True and new["redirected"] is True
    await alice.events.wait(
        "conversation.updated",
        lambda d: d["conversation"]["id"] == conv["id"] and d["conversation"]["team_id"] == billing.id,
        timeout=2,
    )
    denied = await bob.call("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert denied["error"]["code"] == "not_found"
    taken = await erin.ok("conversation.assign", {"conversation_id": conv["id"]})
    assert taken["conversation"]["assignee_id"] is not None


async def test_only_assignee_or_admin_redirects(hub: Hub) -> None:
    """Bob (not the assignee, not admin) cannot redirect alice's conversation (forbidden), to himself or
    to a team; alice (admin) may redirect bob's; unknown agent or team is not_found; nothing changes on
    refusal."""
    alice, bob = await hub.agent("alice@example.com"), await hub.agent("bob@example.com")
    customer = await hub.customer()
    conv = await start(customer)
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    support = alice.agent["team_ids"][0]  # type: ignore[attr-defined]
    for payload in ({"agent_id": bob.agent["id"]}, {"team_id": support}):  # type: ignore[attr-defined]
        res = await bob.call("conversation.assign", {"conversation_id": conv["id"], **payload})
        assert res["ok"] is False and res["error"]["code"] == "forbidden", res
    res = await bob.call("conversation.assign", {"conversation_id": conv["id"]})
    assert res["error"]["code"] == "conflict"
    sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert sync["conversation"]["assignee_id"] == alice.agent["id"]  # type: ignore[attr-defined]
    res = await alice.call("conversation.assign", {"conversation_id": conv["id"], "agent_id": "ag_nope"})
    assert res["error"]["code"] == "not_found"
    res = await alice.call("conversation.assign", {"conversation_id": conv["id"], "team_id": "tm_nope"})
    assert res["error"]["code"] == "not_found"
    await alice.ok("conversation.assign", {"conversation_id": conv["id"], "agent_id": bob.agent["id"]})  # type: ignore[attr-defined]
    # alice is admin: she may take it back although bob is the assignee now
    alice_id = alice.agent["id"]  # type: ignore[attr-defined]
    back = await alice.ok("conversation.assign", {"conversation_id": conv["id"], "agent_id": alice_id})
    assert back["conversation"]["assignee_id"] == alice.agent["id"]  # type: ignore[attr-defined]


async def test_sections_unread_and_counts(hub: Hub) -> None:
    """conversations.list per section (unassigned, mine, team, done) with unread counts, and
    conversations.counts; an agent read resets unread; the customer lists only their own."""
    alice, bob = await hub.agent("alice@example.com"), await hub.agent("bob@example.com")
    customer, other = await hub.customer(name="Ann"), await hub.customer(name="Ben")
    c1 = await start(customer, "one")
    c2 = await start(customer, "two")
    c3 = await start(other, "three")
    await customer.ok(
        "message.send",
        {"conversation_id": c1["id"], "client_id": "x1", "kind": "text", "body": "are you there?"},
    )
    await alice.ok("conversation.assign", {"conversation_id": c1["id"]})
    await bob.ok("conversation.assign", {"conversation_id": c2["id"]})

    async def ids(agent: Client, section: str) -> dict[str, int]:
        res = await agent.ok("conversations.list", {"section": section})
        assert res["cursor"] is None
        return {c["id"]: c["unread"] for c in res["conversations"]}

    assert await ids(alice, "unassigned") == {c3["id"]: 1}
    assert await ids(alice, "mine") == {c1["id"]: 2}
    assert await ids(bob, "mine") == {c2["id"]: 1}
    assert await ids(bob, "team") == {c1["id"]: 2, c2["id"]: 1, c3["id"]: 1}
    assert await ids(alice, "done") == {}
    counts = (await alice.ok("conversations.counts", {}))["counts"]
    assert counts["unassigned"] == {"count": 1, "unread": 1}
    assert counts["mine"] == {"count": 1, "unread": 2}
    assert counts["team"] == {"count": 3, "unread": 4}

    await alice.ok("message.read", {"conversation_id": c1["id"], "seq": 10_000})
    assert await ids(alice, "mine") == {c1["id"]: 0}
    await alice.ok("conversation.status", {"conversation_id": c1["id"], "status": "done"})
    assert await ids(alice, "done") == {c1["id"]: 0}
    assert await ids(alice, "mine") == {}
    carol = await hub.agent("carol@example.com")
    assert await ids(carol, "team") == {}

    mine = await customer.ok("conversations.list", {})
    assert {c["id"] for c in mine["conversations"]} == {c1["id"], c2["id"]}
    assert all("unread" not in c for c in mine["conversations"])
    res = await alice.call("conversations.list", {"section": "everything"})
    assert res["error"]["code"] == "invalid"


async def test_cursor_paging_returns_every_conversation_once(hub: Hub) -> None:
    """With more conversations than a page (50), the cursor walks every one exactly once, newest
    activity first, and the last page has no cursor; a bad cursor is invalid."""
    alice = await hub.agent("alice@example.com")
    customer = await hub.customer()
    created = [(await start(customer, f"page {i}"))["id"] for i in range(57)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        payload: dict[str, Any] = {"section": "unassigned"}
        if cursor:
            payload["cursor"] = cursor
        res = await alice.ok("conversations.list", payload)
        seen += [c["id"] for c in res["conversations"]]
        pages += 1
        cursor = res["cursor"]
        if not cursor:
            break
        assert pages < 5
    assert pages == 2
    assert len(seen) == len(set(seen)) == 57
    assert set(seen) == set(created)
    stamps = [c for c in seen]
    assert stamps[0] == created[-1] and stamps[-1] == created[0]
    for bad in ("!!!", "bm90LWEtY3Vyc29y", "x" * 401):
        res = await alice.call("conversations.list", {"section": "unassigned", "cursor": bad})
        assert res["error"]["code"] == "invalid", (bad, res)


async def test_search_finds_by_message_and_visitor_within_own_teams(hub: Hub) -> None:
    """conversations.search matches message text (notes too) and the visitor's name, only in the
    agent's teams (carol in sales finds nothing of support); a 1-character query is invalid."""
    alice, carol = await hub.agent("alice@example.com"), await hub.agent("carol@example.com")
    customer = await hub.customer(name="Quentin Tarrant", email="qt@example.org")
    conv = await start(customer, "my order zebra-42 is late")
    other = await start(await hub.customer(name="Someone"), "unrelated")
    await alice.ok("note.add", {"conversation_id": other["id"], "body": "vip-flamingo"})

    async def found(agent: Client, q: str) -> set[str]:
        res = await agent.ok("conversations.search", {"q": q})
        return {c["id"] for c in res["conversations"]}

    assert await found(alice, "zebra-42") == {conv["id"]}
    assert await found(alice, "tarrant") == {conv["id"]}
    assert await found(alice, "vip-flamingo") == {other["id"]}
    assert await found(carol, "zebra-42") == set()
    res = await alice.call("conversations.search", {"q": "z"})
    assert res["error"]["code"] == "invalid"


async def test_done_and_reopen(hub: Hub) -> None:
    """conversation.status done moves it to Done and tells the customer; status open reopens it; a
    customer message on a done conversation reopens it and rings the assignee again."""
    alice = await hub.agent("alice@example.com")
    customer = await hub.customer()
    conv = await start(customer)
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    done = await alice.ok("conversation.status", {"conversation_id": conv["id"], "status": "done"})
    assert done["conversation"]["status"] == "done"
    await customer.events.wait(
        "conversation.updated", lambda d: d["conversation"]["status"] == "done", timeout=2
    )
    again = await alice.ok("conversation.status", {"conversation_id": conv["id"], "status": "done"})
    assert again["conversation"]["status"] == "done"
    await alice.ok("conversation.status", {"conversation_id": conv["id"], "status": "open"})
    await customer.events.wait(
        "conversation.updated", lambda d: d["conversation"]["status"] == "open", timeout=2
    )
    await alice.ok("conversation.status", {"conversation_id": conv["id"], "status": "done"})
    mark = len(alice.events.items)
    await customer.ok(
        "message.send",
        {"conversation_id": conv["id"], "client_id": "back", "kind": "text", "body": "one more thing"},
    )
    await alice.events.wait(
        "conversation.updated",
        lambda d: d["conversation"]["id"] == conv["id"] and d["conversation"]["status"] == "open",
        timeout=2,
    )
    ring = await wait_after(alice, mark, "conversation.new", is_conv(conv["id"]))
    assert ring["ring"] is True
    sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    codes = [m.get("code") for m in sync["messages"] if m["kind"] == "system"]
    assert codes == [
        "conversation.assigned",
        "conversation.done",
        "conversation.reopened",
        "conversation.done",
        "conversation.reopened",
    ]
    res = await alice.call("conversation.status", {"conversation_id": conv["id"], "status": "closed"})
    assert res["error"]["code"] == "invalid"


async def test_reopen_of_unassigned_conversation_rings_the_team(hub: Hub) -> None:
    """An unassigned conversation resolved and then written to by the customer rings the whole team."""
    alice, bob = await hub.agent("alice@example.com"), await hub.agent("bob@example.com")
    customer = await hub.customer()
    conv = await start(customer)
    await alice.ok("conversation.status", {"conversation_id": conv["id"], "status": "done"})
    await bob.events.wait("conversation.updated", lambda d: d["conversation"]["status"] == "done", timeout=2)
    marks = {id(a): len(a.events.items) for a in (alice, bob)}
    await customer.ok(
        "message.send",
        {"conversation_id": conv["id"], "client_id": "r", "kind": "text", "body": "hello again"},
    )
    for agent in (alice, bob):
        ring = await wait_after(agent, marks[id(agent)], "conversation.new", is_conv(conv["id"]))
        assert ring["ring"] is True and ring["conversation"]["status"] == "open"


async def test_status_and_assign_at_once_keep_both_changes(hub: Hub) -> None:
    """Alice assigning while bob resolves the same conversation, 20 times (both orders of arrival): both
    calls are ok and neither change is lost (assignee alice and status done), one system message each."""
    alice, bob = await hub.agent("alice@example.com"), await hub.agent("bob@example.com")
    customer = await hub.customer()
    for i in range(20):
        conv = await start(customer, f"both {i}")
        assign = alice.call("conversation.assign", {"conversation_id": conv["id"]})
        done = bob.call("conversation.status", {"conversation_id": conv["id"], "status": "done"})
        a, s = await asyncio.gather(*((assign, done) if i % 2 else (done, assign)))
        assert a["ok"] and s["ok"], (a, s)
        sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
        assert sync["conversation"]["assignee_id"] == alice.agent["id"]  # type: ignore[attr-defined]
        assert sync["conversation"]["status"] == "done"
        codes = sorted(m["code"] for m in sync["messages"] if m["kind"] == "system")
        assert codes == ["conversation.assigned", "conversation.done"]


async def test_two_customer_messages_on_a_done_conversation_reopen_once(hub: Hub) -> None:
    """Two tabs of the customer writing at once on a done conversation: it reopens once (one system
    message, one ring to the assignee)."""
    alice = await hub.agent("alice@example.com")
    tab1 = await hub.customer()
    tab2 = await hub.connect("/customer", tab1.token)  # type: ignore[attr-defined]
    conv = await start(tab1)
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    await alice.ok("conversation.status", {"conversation_id": conv["id"], "status": "done"})
    mark = len(alice.events.items)
    await asyncio.gather(
        tab1.ok(
            "message.send", {"conversation_id": conv["id"], "client_id": "t1", "kind": "text", "body": "a"}
        ),
        tab2.ok(
            "message.send", {"conversation_id": conv["id"], "client_id": "t2", "kind": "text", "body": "b"}
        ),
    )
    await wait_after(alice, mark, "conversation.new", is_conv(conv["id"]))
    await settle(alice)
    rings = [d for e, d in alice.events.items[mark:] if e == "conversation.new"]
    assert len(rings) == 1
    sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert [m["code"] for m in sync["messages"] if m["kind"] == "system"].count("conversation.reopened") == 1
    assert sync["conversation"]["status"] == "open"
