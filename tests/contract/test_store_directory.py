"""Contract: meta, teams, agents, visitors and presence."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import pytest

from signaling.domain.errors import Conflict, NotFound
from signaling.domain.models import Agent, Team, Visitor
from signaling.storage.base import Store

from .conftest import Seed, at


async def test_meta_get_set_overwrite(store: Store) -> None:
    """Unknown keys read None; set_meta stores and overwrites."""
    assert await store.get_meta("demo_seeded") is None
    await store.set_meta("demo_seeded", "1")
    assert await store.get_meta("demo_seeded") == "1"
    await store.set_meta("demo_seeded", "2")
    assert await store.get_meta("demo_seeded") == "2"


async def test_teams_crud_oldest_first(store: Store) -> None:
    """Teams round-trip, list oldest first (the default team first), and update in place."""
    sales = Team(id="tm_s", name="Sales", routing="auto", created_at=at(2))
    support = Team(id="tm_p", name="Support", created_at=at(1))
    assert await store.create_team(sales) == sales
    await store.create_team(support)
    assert [t.id for t in await store.list_teams()] == ["tm_p", "tm_s"]
    assert await store.get_team("tm_s") == sales
    assert await store.get_team("tm_missing") is None
    renamed = dataclasses.replace(sales, name="Sales EU", routing="manual")
    assert await store.update_team(renamed) == renamed
    assert await store.get_team_by_name("sales eu") == renamed
    assert await store.get_team_by_name("Sales") is None


async def test_team_names_are_unique_case_insensitively(store: Store) -> None:
    """A second team named like an existing one (any case) conflicts, on create and on rename."""
    await store.create_team(Team(id="tm_1", name="Support"))
    other = await store.create_team(Team(id="tm_2", name="Sales"))
    with pytest.raises(Conflict):
        await store.create_team(Team(id="tm_3", name="SUPPORT"))
    with pytest.raises(Conflict):
        await store.update_team(dataclasses.replace(other, name="support"))
    assert await store.update_team(dataclasses.replace(other, name="SALES")) is not None  # its own name
    assert [t.name for t in await store.list_teams()] == ["Support", "SALES"]
    assert (await store.get_team_by_name("sUpPoRt")) is not None


async def test_update_missing_team_is_not_found(store: Store) -> None:
    """Updating a team that does not exist raises NotFound."""
    with pytest.raises(NotFound):
        await store.update_team(Team(id="tm_ghost", name="Ghost"))


async def test_agents_crud_and_team_membership(store: Store) -> None:
    """Agents round-trip every field, list oldest first, filter by team, keep team_ids order."""
    alice = Agent(
        id="ag_a",
        email="Alice@Example.com",
        name="Alice",
        password_hash="h1",
        team_ids=["tm_2", "tm_1"],
        is_admin=True,
        capacity=3,
        locale="de",
        status="away",
        token_version=4,
        created_at=at(1),
    )
    bob = Agent(
        id="ag_b",
        email="bob@example.com",
        name="Bob",
        password_hash="h2",
        team_ids=["tm_1"],
        created_at=at(2),
    )
    carol = Agent(id="ag_c", email="carol@example.com", name="Carol", password_hash="h3", created_at=at(3))
    for agent in (alice, bob, carol):
        assert await store.create_agent(agent) == agent
    assert await store.get_agent("ag_a") == alice
    assert await store.get_agent("ag_missing") is None
    assert await store.get_agent_by_email("alice@example.COM") == alice
    assert await store.get_agent_by_email("nobody@example.com") is None
    assert [a.id for a in await store.list_agents()] == ["ag_a", "ag_b", "ag_c"]
    assert [a.id for a in await store.list_agents("tm_1")] == ["ag_a", "ag_b"]
    assert [a.id for a in await store.list_agents("tm_2")] == ["ag_a"]
    assert await store.list_agents("tm_none") == []


async def test_update_agent_replaces_every_field(store: Store) -> None:
    """update_agent writes all fields (email, hash, teams, flags, token_version...)."""
    agent = await store.create_agent(Agent(id="ag_1", email="a@example.com", name="A", password_hash="h"))
    changed = dataclasses.replace(
        agent,
        email="new@example.com",
        name="B",
        password_hash="h2",
        team_ids=["tm_x"],
        is_admin=True,
        capacity=9,
        locale="fr",
        status="online",
        token_version=1,
    )
    assert await store.update_agent(changed) == changed
    assert await store.get_agent("ag_1") == changed
    assert await store.get_agent_by_email("new@example.com") == changed
    assert await store.get_agent_by_email("a@example.com") is None
    with pytest.raises(NotFound):
        await store.update_agent(dataclasses.replace(changed, id="ag_ghost", email="ghost@example.com"))


async def test_agent_emails_are_unique_case_insensitively(store: Store) -> None:
    """Duplicate email (any case) conflicts on create and on update; the stored agents are unchanged."""
    await store.create_agent(Agent(id="ag_1", email="a@example.com", name="A", password_hash="h"))
    b = await store.create_agent(Agent(id="ag_2", email="b@example.com", name="B", password_hash="h"))
    with pytest.raises(Conflict):
        await store.create_agent(Agent(id="ag_3", email="A@EXAMPLE.com", name="C", password_hash="h"))
    with pytest.raises(Conflict):
        await store.update_agent(dataclasses.replace(b, email="a@Example.com"))
    assert await store.get_agent("ag_3") is None
    assert await store.get_agent("ag_2") == b


async def test_racing_agent_creates_with_one_email(store: Store) -> None:
    """Concurrent creates with the same email: exactly one agent is stored."""
    results = await asyncio.gather(
        *(
            store.create_agent(Agent(id=f"ag_{i}", email="same@example.com", name="X", password_hash="h"))
            for i in range(8)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Agent) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 7
    assert len(await store.list_agents()) == 1


async def test_returned_agents_are_fresh_objects(store: Store) -> None:
    """Mutating a returned agent's list does not change the store."""
    agent = Agent(id="ag_1", email="a@example.com", name="A", password_hash="h", team_ids=["tm_1"])
    created = await store.create_agent(agent)
    agent.team_ids.append("tm_2")
    created.team_ids.append("tm_3")
    got = await store.get_agent("ag_1")
    assert got is not None and got.team_ids == ["tm_1"]
    got.team_ids.clear()
    again = await store.get_agent("ag_1")
    assert again is not None and again.team_ids == ["tm_1"]


async def test_visitors_crud(store: Store) -> None:
    """Visitors round-trip every field and update in place; missing ones are None / NotFound."""
    v = Visitor(
        id="vi_1",
        name="Vera",
        email="v@example.com",
        user_id="u-7",
        verified=True,
        locale="it",
        created_at=at(1),
    )
    assert await store.create_visitor(v) == v
    assert await store.get_visitor("vi_1") == v
    assert await store.get_visitor("vi_missing") is None
    changed = dataclasses.replace(v, name="Vera M.", verified=False, email="")
    assert await store.update_visitor(changed) == changed
    assert await store.get_visitor("vi_1") == changed
    with pytest.raises(NotFound):
        await store.update_visitor(Visitor(id="vi_ghost"))
    with pytest.raises(Conflict):
        await store.create_visitor(Visitor(id="vi_1"))


async def test_presence_counts_sockets_across_nodes(store: Store) -> None:
    """presence_add/remove return the agent's socket count over every node; online lists agents with any."""
    assert await store.presence_online() == set()
    assert await store.presence_add("ag_1", "n1", "s1") == 1
    assert await store.presence_add("ag_1", "n1", "s2") == 2
    assert await store.presence_add("ag_1", "n2", "s1") == 3
    assert await store.presence_add("ag_1", "n2", "s1") == 3  # the same socket twice is one socket
    assert await store.presence_add("ag_2", "n1", "s9") == 1
    assert await store.presence_online() == {"ag_1", "ag_2"}
    assert await store.presence_remove("ag_1", "n1", "s1") == 2
    assert await store.presence_remove("ag_1", "n1", "s1") == 2  # already gone
    assert await store.presence_remove("ag_2", "n1", "s9") == 0
    assert await store.presence_online() == {"ag_1"}
    assert await store.presence_remove("ag_1", "n1", "s2") == 1
    assert await store.presence_remove("ag_1", "n2", "s1") == 0
    assert await store.presence_online() == set()


async def test_open_clears_only_its_own_nodes_presence(open_store: Callable[..., Awaitable[Store]]) -> None:
    """A node restarting forgets its previous run's sockets and keeps the other nodes'."""
    node1 = await open_store(node_id="n1")
    await node1.presence_add("ag_1", "n1", "s1")
    await node1.presence_add("ag_2", "n1", "s2")
    await node1.presence_add("ag_2", "n2", "s3")
    await node1.close()
    restarted = await open_store(node_id="n1")
    assert await restarted.presence_online() == {"ag_2"}
    assert await restarted.presence_add("ag_2", "n1", "s4") == 2


async def test_seed_builders_work(store: Store, seed: Seed) -> None:
    """The suite's own builders produce stored, retrievable records (guards the fixtures themselves)."""
    team = await seed.team()
    agent = await seed.agent([team.id])
    conv = await seed.conversation(team)
    assert await store.get_team(team.id) == team
    assert await store.get_agent(agent.id) == agent
    assert await store.get_conversation(conv.id) == conv
