"""Pins the consent state machine of signaling/domain/requests.py, table-driven over every
(state, trigger, actor): legal moves give the expected state for their actors only (others get
``forbidden``), illegal pairs give ``conflict``, late answers are refused, timestamps and default
reasons are set, the input request is never mutated, and unknown kinds are ``invalid``."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from signaling.domain.errors import Conflict, Forbidden, Invalid
from signaling.domain.models import Request
from signaling.domain.requests import (
    FINAL_STATES,
    LIVE_STATES,
    TRANSITIONS,
    Actor,
    IllegalTransition,
    Kind,
    NotAllowed,
    State,
    Trigger,
    apply,
    can_apply,
    new_request,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
TTL = timedelta(seconds=60)
NOW = T0 + timedelta(seconds=5)

A, C, S, M = Actor.AGENT, Actor.CUSTOMER, Actor.SYSTEM, Actor.MEDIA

#: The product's table, written out independently of requests.TRANSITIONS (PRODUCT.md feature 5):
#: (state, trigger) -> (new state, actors allowed)
EXPECTED: dict[tuple[State, Trigger], tuple[State, set[Actor]]] = {
    (State.PENDING, Trigger.ACCEPT): (State.ACCEPTED, {C}),
    (State.PENDING, Trigger.DECLINE): (State.DECLINED, {C}),
    (State.PENDING, Trigger.CANCEL): (State.CANCELLED, {A, S}),
    (State.PENDING, Trigger.EXPIRE): (State.EXPIRED, {S}),
    (State.ACCEPTED, Trigger.ACTIVATE): (State.ACTIVE, {M}),
    (State.ACCEPTED, Trigger.END): (State.ENDED, {A, C, S}),
    (State.ACCEPTED, Trigger.DROP): (State.ENDED, {M}),
    (State.ACTIVE, Trigger.END): (State.ENDED, {A, C, S}),
    (State.ACTIVE, Trigger.DROP): (State.ENDED, {M}),
}

ALL_CASES = list(itertools.product(State, Trigger, Actor))


def make(state: State, *, expires_at: datetime | None = T0 + TTL) -> Request:
    """A request of kind call sitting in ``state``, created at T0."""
    return Request(
        id="rq_1",
        conversation_id="cv_1",
        kind="call",
        state=state.value,
        requested_by="ag_1",
        created_at=T0,
        updated_at=T0,
        expires_at=expires_at,
    )


def case_id(case: tuple[State, Trigger, Actor]) -> str:
    return "-".join(x.value for x in case)


def test_sizes() -> None:
    """7 states x 7 triggers x 4 actors are all covered; live and final states partition the states."""
    assert len(State) == 7 and len(Trigger) == 7 and len(Actor) == 4
    assert len(ALL_CASES) == 196
    assert LIVE_STATES | FINAL_STATES == set(State) and not LIVE_STATES & FINAL_STATES


def test_table_matches_product() -> None:
    """The module's table is exactly the product's table."""
    assert {k: (v[0], set(v[1])) for k, v in TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_every_state_trigger_actor(case: tuple[State, Trigger, Actor]) -> None:
    """Legal pair + allowed actor: the expected new state; legal pair + other actor: NotAllowed
    (forbidden); illegal pair: IllegalTransition (conflict), whoever pulls it."""
    state, trigger, actor = case
    # EXPIRE is only legal once the deadline has passed: give it a deadline already behind NOW.
    req = make(state, expires_at=T0) if trigger is Trigger.EXPIRE else make(state)
    entry = EXPECTED.get((state, trigger))
    assert can_apply(state.value, trigger) == (entry is not None)
    if entry is None:
        with pytest.raises(IllegalTransition) as info:
            apply(req, trigger, actor, NOW)
        assert isinstance(info.value, Conflict) and info.value.code == "conflict"
        assert info.value.to_wire()["code"] == "conflict"
        return
    new_state, actors = entry
    if actor not in actors:
        with pytest.raises(NotAllowed) as denied:
            apply(req, trigger, actor, NOW)
        assert isinstance(denied.value, Forbidden) and denied.value.code == "forbidden"
        return
    t = apply(req, trigger, actor, NOW)
    assert t.request.state == new_state.value
    assert (t.old_state, t.new_state, t.trigger, t.actor) == (state, new_state, trigger, actor)
    assert t.request.updated_at == NOW
    assert t.request is not req


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_input_never_mutated(case: tuple[State, Trigger, Actor]) -> None:
    """Whether apply succeeds or raises, the request passed in is left exactly as it was."""
    state, trigger, actor = case
    req = make(state)
    before = copy.deepcopy(req)
    try:
        apply(req, trigger, actor, NOW, reason="why")
    except (Conflict, Forbidden):
        pass
    assert req == before


def test_final_states_accept_nothing() -> None:
    """Declined, cancelled, expired and ended are terminal: every trigger is a conflict."""
    for state, trigger, actor in itertools.product(FINAL_STATES, Trigger, Actor):
        with pytest.raises(IllegalTransition):
            apply(make(state), trigger, actor, NOW)


def test_accepting_twice_is_conflict() -> None:
    """The second accept (a repeated click, another tab) is refused with conflict."""
    accepted = apply(make(State.PENDING), Trigger.ACCEPT, C, NOW).request
    with pytest.raises(IllegalTransition):
        apply(accepted, Trigger.ACCEPT, C, NOW)


@pytest.mark.parametrize("trigger", [Trigger.ACCEPT, Trigger.DECLINE])
def test_answer_after_deadline_refused(trigger: Trigger) -> None:
    """Accept/decline at or after expires_at is a conflict; just before it is fine."""
    req = make(State.PENDING)
    deadline = req.expires_at
    assert deadline is not None
    assert apply(req, trigger, C, deadline - timedelta(microseconds=1)).request.state != "pending"
    for at in (deadline, deadline + timedelta(hours=1)):
        with pytest.raises(IllegalTransition) as info:
            apply(req, trigger, C, at)
        assert info.value.code == "conflict" and "expired" in info.value.message


def test_expire_and_cancel_still_work_after_deadline() -> None:
    """Past the deadline the timer can expire the request and the agent can still cancel it."""
    req = make(State.PENDING)
    late = T0 + TTL + timedelta(seconds=1)
    assert apply(req, Trigger.EXPIRE, S, late).request.state == "expired"
    assert apply(req, Trigger.CANCEL, A, late).request.state == "cancelled"


def test_no_deadline_never_late() -> None:
    """A request without expires_at can be answered at any time."""
    req = make(State.PENDING, expires_at=None)
    assert apply(req, Trigger.ACCEPT, C, T0 + timedelta(days=30)).request.state == "accepted"


def test_timestamps_along_the_happy_path() -> None:
    """accepted_at, active_at and ended_at are set once, by the move into their state."""
    t1, t2, t3 = (T0 + timedelta(seconds=s) for s in (1, 2, 3))
    accepted = apply(make(State.PENDING), Trigger.ACCEPT, C, t1).request
    assert (accepted.accepted_at, accepted.active_at, accepted.ended_at) == (t1, None, None)
    assert accepted.reason is None
    active = apply(accepted, Trigger.ACTIVATE, M, t2).request
    assert (active.accepted_at, active.active_at, active.ended_at) == (t1, t2, None)
    ended = apply(active, Trigger.END, A, t3).request
    assert (ended.accepted_at, ended.active_at, ended.ended_at, ended.updated_at) == (t1, t2, t3, t3)
    assert ended.created_at == T0
    assert ended.to_wire()["ended_at"] == "2024-05-01T12:00:03.000Z"


@pytest.mark.parametrize(
    ("state", "trigger", "actor", "reason"),
    [
        (State.PENDING, Trigger.DECLINE, C, "declined_by_customer"),
        (State.PENDING, Trigger.CANCEL, A, "cancelled_by_agent"),
        (State.PENDING, Trigger.CANCEL, S, "cancelled"),
        (State.PENDING, Trigger.EXPIRE, S, "no_answer"),
        (State.ACCEPTED, Trigger.END, A, "ended_by_agent"),
        (State.ACCEPTED, Trigger.END, C, "ended_by_customer"),
        (State.ACTIVE, Trigger.END, S, "ended_by_system"),
        (State.ACCEPTED, Trigger.DROP, M, "peer_dropped"),
        (State.ACTIVE, Trigger.DROP, M, "peer_dropped"),
    ],
)
def test_final_moves_set_ended_at_and_default_reason(
    state: State, trigger: Trigger, actor: Actor, reason: str
) -> None:
    """Every move into a final state stamps ended_at and a default reason, unless one is given."""
    expires_at = T0 if trigger is Trigger.EXPIRE else T0 + TTL
    moved = apply(make(state, expires_at=expires_at), trigger, actor, NOW).request
    assert moved.ended_at == NOW and moved.reason == reason
    assert moved.to_wire()["reason"] == reason
    given = apply(make(state, expires_at=expires_at), trigger, actor, NOW, reason="resolved").request
    assert given.reason == "resolved"


def test_reason_ignored_on_non_final_moves() -> None:
    """A reason passed with accept or activate is not recorded (only final states carry one)."""
    accepted = apply(make(State.PENDING), Trigger.ACCEPT, C, NOW, reason="x").request
    assert accepted.reason is None and "reason" not in accepted.to_wire()


@pytest.mark.parametrize("kind", [k.value for k in Kind])
def test_new_request_known_kinds(kind: str) -> None:
    """new_request gives a pending request with a fresh id, stamps and now + ttl deadline."""
    req = new_request("cv_9", kind, "ag_2", T0, TTL)
    assert (req.state, req.kind, req.conversation_id, req.requested_by) == ("pending", kind, "cv_9", "ag_2")
    assert req.created_at == req.updated_at == T0 and req.expires_at == T0 + TTL
    assert req.id.startswith("rq_") and req.id != new_request("cv_9", kind, "ag_2", T0, TTL).id
    assert req.accepted_at is None and req.ended_at is None and req.reason is None


@pytest.mark.parametrize("kind", ["", "Call", "screen", "cobrowse ", "CALL", "chat"])
def test_new_request_unknown_kind_invalid(kind: str) -> None:
    """Unknown kinds are refused with Invalid (code invalid) naming the field."""
    with pytest.raises(Invalid) as info:
        new_request("cv_9", kind, "ag_2", T0, TTL)
    assert info.value.code == "invalid" and info.value.details == {"field": "kind"}


def test_expire_before_deadline_is_refused() -> None:
    """A timer that fires early cannot expire a request whose deadline is still ahead."""
    req = make(State.PENDING)
    assert req.expires_at is not None and NOW < req.expires_at
    with pytest.raises(IllegalTransition):
        apply(req, Trigger.EXPIRE, S, NOW)


def test_string_trigger_and_actor_are_accepted() -> None:
    """Triggers and actors given as their wire strings behave like the enum members."""
    moved = apply(make(State.PENDING), "cancel", "agent", NOW).request  # type: ignore[arg-type]
    assert moved.state == "cancelled" and moved.reason == "cancelled_by_agent"
