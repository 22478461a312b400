"""Contract: consent requests (one live per kind, compare-and-set on state, listing, due timers)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from signaling.domain.errors import Conflict, NotFound
from signaling.domain.models import Request
from signaling.storage.base import Store

from .conftest import Seed, at


async def test_create_and_get_round_trip(store: Store, seed: Seed) -> None:
    """Every field of a request comes back, datetimes as aware UTC, None stays None."""
    conv = await seed.conversation()
    req = seed.new_request(
        conv.id, "cobrowse", created_at=at(0), updated_at=at(1), expires_at=at(60), reason=None
    )
    assert await store.create_request(req) == req
    got = await store.get_request(req.id)
    assert got == req
    assert got is not None and got.accepted_at is None and got.expires_at == at(60)
    assert await store.get_request("rq_missing") is None


async def test_create_in_missing_conversation_is_not_found(store: Store, seed: Seed) -> None:
    """A request needs its conversation."""
    with pytest.raises(NotFound):
        await store.create_request(seed.new_request("cv_missing"))


async def test_one_live_request_per_kind_and_conversation(store: Store, seed: Seed) -> None:
    """pending/accepted/active block a second one of the same kind; other kinds and conversations don't."""
    conv, other = await seed.conversation(), await seed.conversation()
    first = await store.create_request(seed.new_request(conv.id, "call"))
    with pytest.raises(Conflict):
        await store.create_request(seed.new_request(conv.id, "call"))
    await store.create_request(seed.new_request(conv.id, "video"))
    await store.create_request(seed.new_request(other.id, "call"))
    for state in ("accepted", "active"):
        moved = dataclasses.replace(first, state=state)
        first = await store.update_request(moved, expected_state=first.state)
        with pytest.raises(Conflict):
            await store.create_request(seed.new_request(conv.id, "call"))
    await store.update_request(
        dataclasses.replace(first, state="ended", ended_at=at(9)), expected_state="active"
    )
    again = await store.create_request(seed.new_request(conv.id, "call"))
    assert again.state == "pending"
    assert [r.kind for r in await store.list_requests(conv.id, live_only=True)] == ["video", "call"]


async def test_final_request_does_not_block(store: Store, seed: Seed) -> None:
    """Requests stored in a final state never count as live."""
    conv = await seed.conversation()
    await store.create_request(seed.new_request(conv.id, "call", state="declined"))
    await store.create_request(seed.new_request(conv.id, "call", state="expired"))
    await store.create_request(seed.new_request(conv.id, "call"))


async def test_racing_creates_store_one_live_request(store: Store, seed: Seed) -> None:
    """Ten concurrent creates of one kind in one conversation: one stored, nine Conflict."""
    conv = await seed.conversation()
    results = await asyncio.gather(
        *(store.create_request(seed.new_request(conv.id, "desktop")) for _ in range(10)),
        return_exceptions=True,
    )
    created = [r for r in results if isinstance(r, Request)]
    assert len(created) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 9
    assert [r.id for r in await store.list_requests(conv.id)] == [created[0].id]


async def test_update_is_compare_and_set_on_state(store: Store, seed: Seed) -> None:
    """With the expected state, every field is written; with a stale one, Conflict and nothing changes."""
    conv = await seed.conversation()
    req = await store.create_request(seed.new_request(conv.id, expires_at=at(30)))
    accepted = dataclasses.replace(req, state="accepted", updated_at=at(5), accepted_at=at(5))
    assert await store.update_request(accepted, expected_state="pending") == accepted
    declined = dataclasses.replace(req, state="declined", reason="declined_by_customer", ended_at=at(6))
    with pytest.raises(Conflict):
        await store.update_request(declined, expected_state="pending")
    assert await store.get_request(req.id) == accepted
    with pytest.raises(NotFound):
        await store.update_request(seed.new_request(conv.id), expected_state="pending")


async def test_racing_transitions_have_one_winner(store: Store, seed: Seed) -> None:
    """Accept and decline (and cancel) racing from pending: exactly one is applied."""
    conv = await seed.conversation()
    req = await store.create_request(seed.new_request(conv.id))
    moves = [dataclasses.replace(req, state=s) for s in ("accepted", "declined", "cancelled", "expired")]
    results = await asyncio.gather(
        *(store.update_request(m, expected_state="pending") for m in moves), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, Request)]
    assert len(winners) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 3
    stored = await store.get_request(req.id)
    assert stored is not None and stored.state == winners[0].state


async def test_list_requests_oldest_first_and_live_only(store: Store, seed: Seed) -> None:
    """list_requests is per conversation, oldest first; live_only keeps pending/accepted/active."""
    conv, other = await seed.conversation(), await seed.conversation()
    r1 = await store.create_request(seed.new_request(conv.id, "call", state="ended", created_at=at(1)))
    r2 = await store.create_request(seed.new_request(conv.id, "call", state="active", created_at=at(2)))
    r3 = await store.create_request(seed.new_request(conv.id, "video", state="declined", created_at=at(3)))
    r4 = await store.create_request(seed.new_request(conv.id, "cobrowse", state="pending", created_at=at(4)))
    await store.create_request(seed.new_request(other.id))
    assert [r.id for r in await store.list_requests(conv.id)] == [r1.id, r2.id, r3.id, r4.id]
    assert [r.id for r in await store.list_requests(conv.id, live_only=True)] == [r2.id, r4.id]
    assert await store.list_requests("cv_missing") == []


async def test_due_requests_are_pending_and_expired_at_or_before_now(store: Store, seed: Seed) -> None:
    """list_due_requests: pending with expires_at <= now (boundary included); others never."""
    c1, c2, c3, c4 = [await seed.conversation() for _ in range(4)]
    past = await store.create_request(seed.new_request(c1.id, expires_at=at(10)))
    boundary = await store.create_request(seed.new_request(c2.id, expires_at=at(20)))
    await store.create_request(seed.new_request(c3.id, expires_at=at(21)))
    await store.create_request(seed.new_request(c4.id, "call", state="accepted", expires_at=at(5)))
    await store.create_request(seed.new_request(c4.id, "video"))  # no deadline
    due = await store.list_due_requests(at(20))
    assert {r.id for r in due} == {past.id, boundary.id}
    assert await store.list_due_requests(at(0)) == []
