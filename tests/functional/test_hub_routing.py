"""Auto routing through the hub (team ``sales``): least busy online agent, round robin on ties, the
queue when nobody is free, draining it when an agent connects, goes back online or frees a slot, and
``agent.status`` away excluding an agent from auto-assignment."""

from __future__ import annotations

import asyncio
from typing import Any

from rtc_server.app import STORE
from signaling.domain.auth import hash_password
from signaling.domain.models import Agent, Team, new_id
from tests.conftest import Client, Hub


async def sales_team(hub: Hub) -> Team:
    team = await hub.server.app[STORE].get_team_by_name("sales")
    assert team is not None
    return team


async def add_sales_agent(hub: Hub, email: str, capacity: int = 5) -> Agent:
    """A new agent of team sales, written through the store (no REST or CLI needed)."""
    team = await sales_team(hub)
    agent = Agent(
        id=new_id("ag"),
        email=email,
        name=email.split("@")[0].title(),
        password_hash=hash_password("demo"),
        team_ids=[team.id],
        capacity=capacity,
        status="online",
    )
    return await hub.server.app[STORE].create_agent(agent)


async def set_capacity(hub: Hub, email: str, capacity: int) -> None:
    store = hub.server.app[STORE]
    agent = await store.get_agent_by_email(email)
    assert agent is not None
    agent.capacity = capacity
    await store.update_agent(agent)


async def start_sales(hub: Hub, customer: Client, body: str = "Pricing?") -> dict[str, Any]:
    team = await sales_team(hub)
    res = await customer.ok("conversation.start", {"team_id": team.id, "body": body})
    conv: dict[str, Any] = res["conversation"]
    return conv


def agent_id(client: Client) -> str:
    value: str = client.agent["id"]  # type: ignore[attr-defined]
    return value


async def test_least_busy_then_round_robin(hub: Hub) -> None:
    """Three idle sales agents get conversations in turn (carol, dave, erin, carol, dave, erin); once
    erin's are resolved she is the least busy and gets the next two; then the tie resumes after her."""
    await add_sales_agent(hub, "dave@example.com")
    await add_sales_agent(hub, "erin@example.com")
    carol = await hub.agent("carol@example.com")
    dave = await hub.agent("dave@example.com")
    erin = await hub.agent("erin@example.com")
    names = {agent_id(carol): "carol", agent_id(dave): "dave", agent_id(erin): "erin"}
    customer = await hub.customer()
    order = []
    convs: dict[str, list[str]] = {"carol": [], "dave": [], "erin": []}
    for i in range(6):
        conv = await start_sales(hub, customer, f"q{i}")
        who = names[conv["assignee_id"]]
        order.append(who)
        convs[who].append(conv["id"])
    assert order == ["carol", "dave", "erin"] * 2
    for conv_id in convs["erin"]:
        await erin.ok("conversation.status", {"conversation_id": conv_id, "status": "done"})
    nxt = [names[(await start_sales(hub, customer, f"r{i}"))["assignee_id"]] for i in range(3)]
    assert nxt == ["erin", "erin", "carol"]


async def test_assignee_is_rung_and_customer_told(hub: Hub) -> None:
    """The chosen agent gets conversation.new {ring: true} already assigned to them, the other agents
    of the team get no ring, and the customer sees the assignee in conversation.updated."""
    await add_sales_agent(hub, "dave@example.com")
    carol, dave = await hub.agent("carol@example.com"), await hub.agent("dave@example.com")
    customer = await hub.customer()
    conv = await start_sales(hub, customer)
    assert conv["assignee_id"] == agent_id(carol)
    new = await carol.events.wait(
        "conversation.new", lambda d: d["conversation"]["id"] == conv["id"], timeout=2
    )
    assert new["ring"] is True and new["conversation"]["assignee_id"] == agent_id(carol)
    await customer.events.wait(
        "conversation.updated", lambda d: d["conversation"]["assignee_id"] == agent_id(carol), timeout=2
    )
    await dave.ok("rtc.config", {})
    await asyncio.sleep(0.05)
    assert dave.events.of("conversation.new") == []
    sync = await carol.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert [m.get("code") for m in sync["messages"] if m["kind"] == "system"] == ["conversation.assigned"]


async def test_queued_when_nobody_online_assigned_when_agent_connects(hub: Hub) -> None:
    """With no sales agent online the conversation stays unassigned (queued); when carol connects the
    queue drains oldest first and she is rung for each."""
    customer = await hub.customer()
    first = await start_sales(hub, customer, "first")
    second = await start_sales(hub, customer, "second")
    assert first["assignee_id"] is None and second["assignee_id"] is None
    carol = await hub.agent("carol@example.com")
    for conv in (first, second):
        new = await carol.events.wait(
            "conversation.new",
            lambda d, c=conv: (
                d["conversation"]["id"] == c["id"] and d["conversation"]["assignee_id"] == agent_id(carol)
            ),
            timeout=2,
        )
        assert new["ring"] is True
    mine = await carol.ok("conversations.list", {"section": "mine"})
    assert {c["id"] for c in mine["conversations"]} == {first["id"], second["id"]}
    unassigned = await carol.ok("conversations.list", {"section": "unassigned"})
    assert unassigned["conversations"] == []


async def test_queued_when_full_assigned_when_a_conversation_is_resolved(hub: Hub) -> None:
    """Carol at capacity 1: the second conversation is queued (and rung to the team as unassigned);
    resolving the first assigns the queued one to her."""
    await set_capacity(hub, "carol@example.com", 1)
    carol = await hub.agent("carol@example.com")
    customer = await hub.customer()
    first = await start_sales(hub, customer, "first")
    assert first["assignee_id"] == agent_id(carol)
    queued = await start_sales(hub, customer, "second")
    assert queued["assignee_id"] is None
    ring = await carol.events.wait(
        "conversation.new", lambda d: d["conversation"]["id"] == queued["id"], timeout=2
    )
    assert ring["conversation"]["assignee_id"] is None
    await carol.ok("conversation.status", {"conversation_id": first["id"], "status": "done"})
    await carol.events.wait(
        "conversation.updated",
        lambda d: (
            d["conversation"]["id"] == queued["id"] and d["conversation"]["assignee_id"] == agent_id(carol)
        ),
        timeout=2,
    )
    sync = await carol.ok("conversation.sync", {"conversation_id": queued["id"], "after_seq": 0})
    assert sync["conversation"]["assignee_id"] == agent_id(carol)


async def test_away_excludes_from_auto_assignment(hub: Hub) -> None:
    """agent.status away: carol's team is told (agent.presence away), new conversations skip her
    (queued when she is the only one, or given to dave); back online, the queue drains to her."""
    await add_sales_agent(hub, "dave@example.com")
    carol = await hub.agent("carol@example.com")
    res = await carol.ok("agent.status", {"status": "away"})
    assert res["agent"]["status"] == "away"
    await carol.events.wait("agent.presence", lambda d: d["status"] == "away", timeout=2)
    customer = await hub.customer()
    queued = await start_sales(hub, customer, "anyone?")
    assert queued["assignee_id"] is None
    dave = await hub.agent("dave@example.com")
    await dave.events.wait(
        "conversation.new",
        lambda d: (
            d["conversation"]["id"] == queued["id"] and d["conversation"]["assignee_id"] == agent_id(dave)
        ),
        timeout=2,
    )
    more = await start_sales(hub, customer, "another")
    assert more["assignee_id"] == agent_id(dave)
    await dave.disconnect()
    waiting = await start_sales(hub, customer, "still there?")
    assert waiting["assignee_id"] is None
    await carol.ok("agent.status", {"status": "online"})
    await carol.events.wait(
        "conversation.updated",
        lambda d: (
            d["conversation"]["id"] == waiting["id"] and d["conversation"]["assignee_id"] == agent_id(carol)
        ),
        timeout=2,
    )
    agents = {a["email"]: a["status"] for a in (await carol.ok("agents.list", {}))["agents"]}
    assert agents["carol@example.com"] == "online"
    assert agents["dave@example.com"] == "offline"
    bad = await carol.call("agent.status", {"status": "offline"})
    assert bad["error"]["code"] == "invalid"


async def test_away_agent_is_still_rung_for_manual_take(hub: Hub) -> None:
    """Away stops auto-assignment only: a queued conversation still rings the team room, and the away
    agent can take it by hand."""
    carol = await hub.agent("carol@example.com")
    await carol.ok("agent.status", {"status": "away"})
    customer = await hub.customer()
    conv = await start_sales(hub, customer)
    await carol.events.wait("conversation.new", lambda d: d["conversation"]["id"] == conv["id"], timeout=2)
    taken = await carol.ok("conversation.assign", {"conversation_id": conv["id"]})
    assert taken["conversation"]["assignee_id"] == agent_id(carol)


async def test_concurrent_starts_respect_capacity_and_spread(hub: Hub) -> None:
    """Eight customers starting at the same moment: each of the two sales agents (capacity 3) gets
    exactly 3, the other 2 wait in the queue; resolving one of carol's gives her one from the queue."""
    await set_capacity(hub, "carol@example.com", 3)
    await add_sales_agent(hub, "dave@example.com", capacity=3)
    carol, dave = await hub.agent("carol@example.com"), await hub.agent("dave@example.com")
    customers = [await hub.customer() for _ in range(8)]
    convs = await asyncio.gather(*(start_sales(hub, c, f"c{i}") for i, c in enumerate(customers)))
    by_agent: dict[str | None, list[str]] = {}
    for conv in convs:
        by_agent.setdefault(conv["assignee_id"], []).append(conv["id"])
    assert sorted(len(v) for v in by_agent.values()) == [2, 3, 3], by_agent
    assert len(by_agent[agent_id(carol)]) == len(by_agent[agent_id(dave)]) == 3
    queued = set(by_agent[None])
    await carol.ok("conversation.status", {"conversation_id": by_agent[agent_id(carol)][0], "status": "done"})
    mine = await carol.ok("conversations.list", {"section": "mine"})
    assert len(mine["conversations"]) == 3
    assert len(queued & {c["id"] for c in mine["conversations"]}) == 1
    unassigned = await dave.ok("conversations.list", {"section": "unassigned"})
    assert len(unassigned["conversations"]) == 1


async def test_presence_follows_sockets(hub: Hub) -> None:
    """An agent is online while any of their tabs is connected: closing one of two tabs changes nothing,
    closing the last one tells the team (agent.presence offline) and stops auto-assignment to them."""
    await add_sales_agent(hub, "dave@example.com")
    dave = await hub.agent("dave@example.com")
    carol1 = await hub.agent("carol@example.com")
    carol2 = await hub.agent("carol@example.com")
    await dave.events.wait(
        "agent.presence", lambda d: d["agent_id"] == agent_id(carol1) and d["status"] == "online", timeout=2
    )

    async def carol_status() -> str:
        agents = {a["email"]: a["status"] for a in (await dave.ok("agents.list", {}))["agents"]}
        return agents["carol@example.com"]

    await carol1.disconnect()
    assert await carol_status() == "online"
    customer = await hub.customer()
    first = await start_sales(hub, customer, "one")
    second = await start_sales(hub, customer, "two")
    assert {first["assignee_id"], second["assignee_id"]} == {agent_id(carol1), agent_id(dave)}
    await carol2.disconnect()
    await dave.events.wait(
        "agent.presence", lambda d: d["agent_id"] == agent_id(carol1) and d["status"] == "offline", timeout=2
    )
    assert await carol_status() == "offline"
    for i in range(3):
        conv = await start_sales(hub, customer, f"after {i}")
        assert conv["assignee_id"] == agent_id(dave)
