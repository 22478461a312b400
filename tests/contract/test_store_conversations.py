"""Contract: conversations (create/get, compare-and-set update, listing with cursor, counts, search)."""

from __future__ import annotations

import asyncio

import pytest

from signaling.domain.errors import Conflict, NotFound
from signaling.domain.models import Conversation
from signaling.storage.base import ANY, ConversationQuery, Store

from .conftest import Seed, at


async def test_create_and_get_round_trip(store: Store, seed: Seed) -> None:
    """Every field given to create_conversation comes back from get_conversation."""
    team = await seed.team()
    visitor = await seed.visitor(name="Vera")
    conv = Conversation(
        id="cv_1",
        visitor_id=visitor.id,
        team_id=team.id,
        status="open",
        assignee_id="ag_1",
        created_at=at(1),
        updated_at=at(2),
        page_url="https://shop.example/cart",
        language="de",
    )
    created = await store.create_conversation(conv)
    assert created == conv
    assert await store.get_conversation("cv_1") == conv
    assert await store.get_conversation("cv_missing") is None


async def test_create_with_taken_id_conflicts(store: Store, seed: Seed) -> None:
    """A second conversation with the same id is refused and the first stays."""
    first = await seed.conversation(id="cv_same")
    with pytest.raises(Conflict):
        await seed.conversation(id="cv_same", page_url="other")
    assert await store.get_conversation("cv_same") == first


async def test_update_writes_only_its_fields(store: Store, seed: Seed) -> None:
    """update_conversation writes status/assignee/team/updated_at/language/page_url, never the counters."""
    conv = await seed.conversation()
    await seed.message(conv.id, "hi")
    other_team = await seed.team()
    change = Conversation(
        id=conv.id,
        visitor_id=conv.visitor_id,
        team_id=other_team.id,
        status="done",
        assignee_id="ag_9",
        updated_at=at(100),
        language="fr",
        page_url="/p",
        last_seq=77,
        unread=77,
        agent_read_seq=77,
        last_message_preview="bogus",
    )
    updated = await store.update_conversation(change)
    for c in (updated, await store.get_conversation(conv.id)):
        assert c is not None
        assert (c.status, c.assignee_id, c.team_id, c.updated_at, c.language, c.page_url) == (
            "done",
            "ag_9",
            other_team.id,
            at(100),
            "fr",
            "/p",
        )
        assert (c.last_seq, c.unread, c.agent_read_seq, c.last_message_preview) == (1, 1, 0, "hi")


async def test_update_compare_and_set_on_assignee(store: Store, seed: Seed) -> None:
    """expected_assignee must equal the stored assignee (None = unassigned), else Conflict and no change."""
    conv = await seed.conversation()
    conv.assignee_id = "ag_a"
    taken = await store.update_conversation(conv, expected_assignee=None)
    assert taken.assignee_id == "ag_a"
    conv.assignee_id = "ag_b"
    conv.status = "done"
    with pytest.raises(Conflict):
        await store.update_conversation(conv, expected_assignee=None)
    with pytest.raises(Conflict):
        await store.update_conversation(conv, expected_assignee="ag_c")
    stored = await store.get_conversation(conv.id)
    assert stored is not None and stored.assignee_id == "ag_a" and stored.status == "open"
    moved = await store.update_conversation(conv, expected_assignee="ag_a")
    assert moved.assignee_id == "ag_b"
    conv.assignee_id = None
    released = await store.update_conversation(conv, expected_assignee=ANY)
    assert released.assignee_id is None


async def test_update_missing_conversation_is_not_found(store: Store, seed: Seed) -> None:
    """Updating a conversation that does not exist raises NotFound, with or without compare-and-set."""
    ghost = Conversation(id="cv_ghost", visitor_id="vi_1", team_id="tm_1")
    with pytest.raises(NotFound):
        await store.update_conversation(ghost)
    with pytest.raises(NotFound):
        await store.update_conversation(ghost, expected_assignee=None)


async def test_racing_assignments_have_one_winner(store: Store, seed: Seed) -> None:
    """Ten agents pressing "assign to me" at once: exactly one wins, the others get Conflict."""
    conv = await seed.conversation()

    async def take(agent_id: str) -> str:
        mine = await store.get_conversation(conv.id)
        assert mine is not None
        mine.assignee_id = agent_id
        await store.update_conversation(mine, expected_assignee=None)
        return agent_id

    results = await asyncio.gather(*(take(f"ag_{i}") for i in range(10)), return_exceptions=True)
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, str))
    stored = await store.get_conversation(conv.id)
    assert stored is not None and stored.assignee_id == winners[0]


async def test_list_orders_by_activity_then_id(store: Store, seed: Seed) -> None:
    """Newest updated_at first; equal updated_at are ordered by id descending."""
    team = await seed.team()
    for cid, t in (("cv_a", 10), ("cv_b", 30), ("cv_c", 20), ("cv_d", 30), ("cv_e", 5)):
        await seed.conversation(team, id=cid, updated_at=at(t))
    listed = await store.list_conversations(ConversationQuery())
    assert [c.id for c in listed] == ["cv_d", "cv_b", "cv_c", "cv_a", "cv_e"]
    limited = await store.list_conversations(ConversationQuery(limit=2))
    assert [c.id for c in limited] == ["cv_d", "cv_b"]


async def test_list_cursor_pages_cover_everything_once(store: Store, seed: Seed) -> None:
    """Paging with ``before`` = (updated_at, id) of the last row yields every row once, in order, ties included."""
    team = await seed.team()
    for i in range(25):
        await seed.conversation(team, id=f"cv_{i:02d}", updated_at=at(i // 3))
    expected = [c.id for c in await store.list_conversations(ConversationQuery(limit=100))]
    assert len(expected) == 25
    seen: list[str] = []
    query = ConversationQuery(limit=10)
    while True:
        page = await store.list_conversations(query)
        seen.extend(c.id for c in page)
        if len(page) < 10:
            break
        query = ConversationQuery(limit=10, before=(page[-1].updated_at, page[-1].id))
    assert seen == expected


async def test_list_filters(store: Store, seed: Seed) -> None:
    """team_ids, status, assignee (specific / None / ANY) and visitor_id filter; all given must match."""
    t1, t2, t3 = await seed.team(), await seed.team(), await seed.team()
    v1 = await seed.visitor()
    await seed.conversation(t1, v1, id="cv_1", updated_at=at(1))
    await seed.conversation(t1, id="cv_2", assignee_id="ag_x", updated_at=at(2))
    await seed.conversation(t2, v1, id="cv_3", status="done", assignee_id="ag_x", updated_at=at(3))
    await seed.conversation(t3, id="cv_4", assignee_id="ag_y", updated_at=at(4))

    async def ids(**kw: object) -> list[str]:
        return [c.id for c in await store.list_conversations(ConversationQuery(**kw))]  # type: ignore[arg-type]

    assert await ids(team_ids=[t1.id]) == ["cv_2", "cv_1"]
    assert await ids(team_ids=[t1.id, t2.id]) == ["cv_3", "cv_2", "cv_1"]
    assert await ids(team_ids=[]) == []
    assert await ids(status="done") == ["cv_3"]
    assert await ids(status="open") == ["cv_4", "cv_2", "cv_1"]
    assert await ids(assignee_id="ag_x") == ["cv_3", "cv_2"]
    assert await ids(assignee_id=None) == ["cv_1"]
    assert await ids(assignee_id=ANY) == ["cv_4", "cv_3", "cv_2", "cv_1"]
    assert await ids(visitor_id=v1.id) == ["cv_3", "cv_1"]
    assert await ids(team_ids=[t1.id, t2.id], status="open", assignee_id="ag_x") == ["cv_2"]
    assert await ids(team_ids=[t1.id], before=(at(2), "cv_2")) == ["cv_1"]


async def test_append_moves_conversation_to_the_top(store: Store, seed: Seed) -> None:
    """A new message raises updated_at, so the conversation lists first."""
    team = await seed.team()
    old = await seed.conversation(team, updated_at=at(1))
    await seed.conversation(team, updated_at=at(2))
    await seed.message(old.id, created_at=at(3))
    listed = await store.list_conversations(ConversationQuery())
    assert listed[0].id == old.id


async def test_count_open_assigned(store: Store, seed: Seed) -> None:
    """Counts open conversations per requested agent; done and unassigned ones don't count; zeros included."""
    team = await seed.team()
    await seed.conversation(team, assignee_id="ag_1")
    await seed.conversation(team, assignee_id="ag_1")
    await seed.conversation(team, assignee_id="ag_1", status="done")
    await seed.conversation(team, assignee_id="ag_2")
    await seed.conversation(team)
    counts = await store.count_open_assigned(["ag_1", "ag_2", "ag_3"])
    assert counts == {"ag_1": 2, "ag_2": 1, "ag_3": 0}
    assert await store.count_open_assigned([]) == {}


async def test_search_messages_and_visitor_case_insensitively(store: Store, seed: Seed) -> None:
    """q matches message bodies, visitor names and emails, ignoring case, newest activity first."""
    team = await seed.team()
    by_body = await seed.conversation(team, id="cv_body", updated_at=at(1))
    await seed.message(by_body.id, "My ORDER 1234 is late", created_at=at(1))
    by_name = await seed.conversation(
        team, await seed.visitor(name="Orderly Olga"), id="cv_name", updated_at=at(2)
    )
    await seed.conversation(
        team, await seed.visitor(email="BORDER@example.com"), id="cv_mail", updated_at=at(3)
    )
    await seed.conversation(team, await seed.visitor(name="Nobody"), id="cv_none", updated_at=at(4))
    found = await store.search_conversations([team.id], "order", include_notes=False)
    assert [c.id for c in found] == ["cv_mail", "cv_name", "cv_body"]
    assert [c.id for c in await store.search_conversations([team.id], "1234", include_notes=False)] == [
        by_body.id
    ]
    assert await store.search_conversations([team.id], "zzz", include_notes=False) == []
    limited = await store.search_conversations([team.id], "ORDER", include_notes=False, limit=1)
    assert [c.id for c in limited] == ["cv_mail"]
    assert by_name.id in {
        c.id for c in await store.search_conversations([team.id], "olga", include_notes=True)
    }


async def test_search_is_case_insensitive_beyond_ascii(store: Store, seed: Seed) -> None:
    """Case folding covers non-ASCII letters too (Größe / GRÖSSE, Ärger / ärger)."""
    team = await seed.team()
    conv = await seed.conversation(team)
    await seed.message(conv.id, "Ärger mit der Lieferung")
    assert [c.id for c in await store.search_conversations([team.id], "ärger", include_notes=False)] == [
        conv.id
    ]


async def test_search_notes_only_when_asked_and_only_given_teams(store: Store, seed: Seed) -> None:
    """Notes match only with include_notes; conversations of other teams never match."""
    team, other = await seed.team(), await seed.team()
    conv = await seed.conversation(team)
    await seed.message(conv.id, "internal: VIP customer", author_kind="agent", kind="note")
    foreign = await seed.conversation(other)
    await seed.message(foreign.id, "VIP")
    assert await store.search_conversations([team.id], "vip", include_notes=False) == []
    assert [c.id for c in await store.search_conversations([team.id], "vip", include_notes=True)] == [conv.id]
    both = await store.search_conversations([team.id, other.id], "vip", include_notes=True)
    assert {c.id for c in both} == {conv.id, foreign.id}
    assert await store.search_conversations([], "vip", include_notes=True) == []


async def test_search_treats_wildcards_literally(store: Store, seed: Seed) -> None:
    """% and _ in q are plain characters, not patterns."""
    team = await seed.team()
    plain = await seed.conversation(team)
    await seed.message(plain.id, "fifty percent off")
    percent = await seed.conversation(team)
    await seed.message(percent.id, "50% off")
    assert [c.id for c in await store.search_conversations([team.id], "%", include_notes=False)] == [
        percent.id
    ]
    assert await store.search_conversations([team.id], "f_f", include_notes=False) == []
