"""Contract: ``append_message(..., access=AccessRule)`` checks who may append atomically with the write.

Both stores must let through exactly what ``Timeline.may_access`` lets an agent see (the conversation's
team among the rule's teams, or assigned to the rule's agent, or any conversation for an admin) and refuse
everything else with ``NotFound("no such conversation")`` without details (a missing conversation looks the
same), writing nothing; replays of a stored client_id are checked too.
"""

from __future__ import annotations

import pytest

from signaling.domain.errors import NotFound
from signaling.storage.base import AccessRule, Store

from .conftest import Seed


async def _unchanged(store: Store, conversation_id: str, last_seq: int) -> None:
    stored = await store.get_conversation(conversation_id)
    assert stored is not None and stored.last_seq == last_seq
    messages = await store.list_messages(conversation_id)
    assert [m.seq for m in messages] == list(range(1, last_seq + 1))


async def test_team_rule_lets_its_team_through(store: Store, seed: Seed) -> None:
    """A rule naming the conversation's team (among others) appends as without a rule: seq, counters."""
    team = await seed.team()
    conv = await seed.conversation(team=team)
    rule = AccessRule(team_ids=frozenset({"tm-other", team.id}), assignee_id="ag-x")
    result = await store.append_message(seed.new_message(conv.id, "hi", "agent"), rule)
    assert result.created and result.message.seq == 1
    assert result.conversation.last_seq == 1 and result.conversation.last_message_preview == "hi"


async def test_assignee_rule_lets_the_assignee_through(store: Store, seed: Seed) -> None:
    """Outside the rule's teams, the conversation's assignee still passes."""
    conv = await seed.conversation(assignee_id="ag-1")
    rule = AccessRule(team_ids=frozenset({"tm-other"}), assignee_id="ag-1")
    result = await store.append_message(seed.new_message(conv.id, author_kind="agent"), rule)
    assert result.created and result.message.seq == 1


async def test_everyone_rule_lets_any_conversation_through(store: Store, seed: Seed) -> None:
    """``everyone`` (an admin) passes whatever the team and assignee."""
    conv = await seed.conversation()
    result = await store.append_message(seed.new_message(conv.id), AccessRule(everyone=True))
    assert result.created and result.message.seq == 1


@pytest.mark.parametrize(
    "rule",
    [
        AccessRule(team_ids=frozenset({"tm-other"}), assignee_id="ag-1"),
        AccessRule(assignee_id="ag-1"),
        AccessRule(),
    ],
    ids=["other-team", "no-team-not-assignee", "empty"],
)
async def test_refused_conversation_is_not_found_and_untouched(
    store: Store, seed: Seed, rule: AccessRule
) -> None:
    """Another team's conversation, assigned to someone else: ``NotFound`` without details, nothing
    written (no seq taken, no message, counters as before)."""
    conv = await seed.conversation(assignee_id="ag-2")
    await seed.message(conv.id, "before")
    with pytest.raises(NotFound) as err:
        await store.append_message(seed.new_message(conv.id, "x", "agent"), rule)
    assert err.value.message == "no such conversation" and not err.value.details
    await _unchanged(store, conv.id, 1)
    after = await store.append_message(seed.new_message(conv.id, "y"))
    assert after.message.seq == 2


async def test_missing_conversation_with_a_rule_is_the_same_not_found(store: Store, seed: Seed) -> None:
    """A conversation that does not exist is refused exactly like one the rule refuses."""
    for rule in (AccessRule(team_ids=frozenset({"tm-1"})), AccessRule(everyone=True)):
        with pytest.raises(NotFound) as err:
            await store.append_message(seed.new_message("cv-missing"), rule)
        assert err.value.message == "no such conversation" and not err.value.details


async def test_replay_is_checked_against_the_rule(store: Store, seed: Seed) -> None:
    """A client_id stored earlier is returned (``created=False``) only if the rule passes; once access is
    lost (the conversation moved team), the replay is ``NotFound`` too."""
    team = await seed.team()
    conv = await seed.conversation(team=team)
    rule = AccessRule(team_ids=frozenset({team.id}), assignee_id="ag-1")
    first = await store.append_message(seed.new_message(conv.id, "a", "agent", client_id="c-1"), rule)
    again = await store.append_message(seed.new_message(conv.id, "a", "agent", client_id="c-1"), rule)
    assert first.created and not again.created and again.message.id == first.message.id
    other = await seed.team()
    moved = await store.get_conversation(conv.id)
    assert moved is not None
    moved.team_id = other.id
    await store.update_conversation(moved)
    with pytest.raises(NotFound):
        await store.append_message(seed.new_message(conv.id, "a", "agent", client_id="c-1"), rule)
    with pytest.raises(NotFound):
        await store.append_message(seed.new_message(conv.id, "b", "agent", client_id="c-2"), rule)
    await _unchanged(store, conv.id, 1)
