"""Contract: the batch reads behind lists and counters: ``count_conversations`` agrees with
``list_conversations`` for every filter, limit and cursor; ``get_visitors`` / ``get_agents`` return the
records that exist, by id, in one call."""

from __future__ import annotations

from signaling.storage.base import ANY, ConversationCounts, ConversationQuery, Store

from .conftest import Seed, at


async def test_count_conversations_agrees_with_the_list(store: Store, seed: Seed) -> None:
    """For each query, the count is the number of rows the list returns (``limit`` and ``before``
    included) and ``unread`` their summed unread customer messages."""
    t1, t2 = await seed.team(), await seed.team()
    v1 = await seed.visitor()
    c1 = await seed.conversation(t1, v1, id="cv_1", updated_at=at(1))
    c2 = await seed.conversation(t1, id="cv_2", assignee_id="ag_x", updated_at=at(2))
    await seed.conversation(t2, v1, id="cv_3", status="done", assignee_id="ag_x", updated_at=at(3))
    c4 = await seed.conversation(t2, id="cv_4", updated_at=at(4))
    for conv, customer_messages, agent_messages in ((c1, 2, 1), (c2, 1, 0), (c4, 3, 2)):
        for _ in range(customer_messages):
            await seed.message(conv.id)
        for _ in range(agent_messages):
            await seed.message(conv.id, author_kind="agent")
    queries = [
        ConversationQuery(),
        ConversationQuery(limit=2),
        ConversationQuery(limit=0),
        ConversationQuery(team_ids=[t1.id]),
        ConversationQuery(team_ids=[]),
        ConversationQuery(status="open"),
        ConversationQuery(status="open", assignee_id=None),
        ConversationQuery(assignee_id="ag_x"),
        ConversationQuery(assignee_id=ANY, status="done"),
        ConversationQuery(visitor_id=v1.id),
        ConversationQuery(team_ids=[t1.id, t2.id], status="open", limit=200),
    ]
    listed_all = await store.list_conversations(ConversationQuery())
    queries.append(ConversationQuery(before=(listed_all[1].updated_at, listed_all[1].id)))
    for query in queries:
        rows = await store.list_conversations(query)
        counted = await store.count_conversations(query)
        assert counted == ConversationCounts(count=len(rows), unread=sum(c.unread for c in rows)), query
    everything = await store.count_conversations(ConversationQuery(status="open"))
    assert everything == ConversationCounts(count=3, unread=6)


async def test_get_visitors_and_agents_by_ids(store: Store, seed: Seed) -> None:
    """Existing ids come back by id, unknown ones are left out, duplicates are harmless, and an empty
    list gives an empty dict."""
    team = await seed.team()
    v1, v2 = await seed.visitor(name="Vera"), await seed.visitor(name="Vik")
    a1, a2 = await seed.agent([team.id], name="Ann"), await seed.agent([team.id], name="Abe")
    visitors = await store.get_visitors([v1.id, "vi_missing", v2.id, v1.id])
    assert set(visitors) == {v1.id, v2.id}
    assert visitors[v1.id] == await store.get_visitor(v1.id)
    assert visitors[v2.id].name == "Vik"
    agents = await store.get_agents([a2.id, "ag_missing", a1.id])
    assert set(agents) == {a1.id, a2.id}
    assert agents[a1.id] == await store.get_agent(a1.id)
    assert await store.get_visitors([]) == {}
    assert await store.get_agents([]) == {}
