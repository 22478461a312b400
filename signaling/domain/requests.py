"""The consent state machine shared by every request kind.

``pending -> accepted -> active -> ended``; from ``pending`` also ``declined`` (customer), ``cancelled``
(agent) and ``expired`` (timer). One table says which ``(state, trigger)`` pairs are legal and which
actor may pull each trigger; :func:`apply` is the only way a request changes state. It returns a
:class:`Transition` (the new :class:`~signaling.domain.models.Request`, old and new state: the
transition the services store and broadcast as ``request.updated``), or raises a typed error with a
stable wire code and changes nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from signaling.domain.errors import Conflict, Forbidden, Invalid
from signaling.domain.models import Request, new_id


class Kind(StrEnum):
    COBROWSE = "cobrowse"
    CALL = "call"
    VIDEO = "video"
    DESKTOP = "desktop"
    SHOW_SCREEN = "show_screen"
    CONFERENCE = "conference"


class State(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    ACTIVE = "active"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    ENDED = "ended"


class Trigger(StrEnum):
    ACCEPT = "accept"
    """The customer says yes."""
    DECLINE = "decline"
    """The customer says no."""
    CANCEL = "cancel"
    """The agent withdraws a pending request."""
    EXPIRE = "expire"
    """Nobody answered in time."""
    ACTIVATE = "activate"
    """The media plane reports media or data flowing."""
    END = "end"
    """Either side hangs up / stops, or the conversation is resolved."""
    DROP = "drop"
    """The media plane lost a peer."""


class Actor(StrEnum):
    AGENT = "agent"
    CUSTOMER = "customer"
    SYSTEM = "system"
    """Timers and conversation-level changes (Done)."""
    MEDIA = "media"
    """The media plane."""


LIVE_STATES = frozenset({State.PENDING, State.ACCEPTED, State.ACTIVE})
FINAL_STATES = frozenset({State.DECLINED, State.CANCELLED, State.EXPIRED, State.ENDED})

#: (state, trigger) -> (new state, actors allowed to pull the trigger)
TRANSITIONS: dict[tuple[State, Trigger], tuple[State, frozenset[Actor]]] = {
    (State.PENDING, Trigger.ACCEPT): (State.ACCEPTED, frozenset({Actor.CUSTOMER})),
    (State.PENDING, Trigger.DECLINE): (State.DECLINED, frozenset({Actor.CUSTOMER})),
    (State.PENDING, Trigger.CANCEL): (State.CANCELLED, frozenset({Actor.AGENT, Actor.SYSTEM})),
    (State.PENDING, Trigger.EXPIRE): (State.EXPIRED, frozenset({Actor.SYSTEM})),
    (State.ACCEPTED, Trigger.ACTIVATE): (State.ACTIVE, frozenset({Actor.MEDIA})),
    (State.ACCEPTED, Trigger.END): (State.ENDED, frozenset({Actor.AGENT, Actor.CUSTOMER, Actor.SYSTEM})),
    (State.ACCEPTED, Trigger.DROP): (State.ENDED, frozenset({Actor.MEDIA})),
    (State.ACTIVE, Trigger.END): (State.ENDED, frozenset({Actor.AGENT, Actor.CUSTOMER, Actor.SYSTEM})),
    (State.ACTIVE, Trigger.DROP): (State.ENDED, frozenset({Actor.MEDIA})),
}


class IllegalTransition(Conflict):
    """The trigger is not legal in the request's current state (stale, repeated, or too late)."""

    code = "conflict"


class NotAllowed(Forbidden):
    """The trigger is legal in this state, but not for this actor."""

    code = "forbidden"


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of :func:`apply`."""

    request: Request
    """The request after the move (a new object)."""
    old_state: State
    new_state: State
    trigger: Trigger
    actor: Actor


#: Request kinds whose media may be recorded (co-browsing has none).
RECORDABLE_KINDS = frozenset({"call", "video", "desktop", "show_screen", "conference"})


def new_request(
    conversation_id: str,
    kind: str,
    requested_by: str,
    now: datetime,
    ttl: timedelta,
    record: bool = False,
) -> Request:
    """A fresh ``pending`` request; ``Invalid`` for an unknown kind, a non-positive ``ttl``, or
    ``record`` on a kind without media (``details.reason = "not_recordable"``)."""
    if ttl <= timedelta(0):
        raise Invalid("ttl must be positive", field="ttl")
    try:
        Kind(kind)
    except ValueError:
        raise Invalid(f"unknown request kind {kind!r}", field="kind") from None
    if record and kind not in RECORDABLE_KINDS:
        raise Invalid(f"a {kind} request cannot be recorded", field="record", reason="not_recordable")
    return Request(
        id=new_id("rq"),
        conversation_id=conversation_id,
        kind=kind,
        state=State.PENDING.value,
        requested_by=requested_by,
        created_at=now,
        updated_at=now,
        expires_at=now + ttl,
        record=record,
    )


def can_apply(state: str, trigger: Trigger) -> bool:
    """Whether ``trigger`` is legal in ``state`` for some actor."""
    return (State(state), trigger) in TRANSITIONS


def apply(
    request: Request, trigger: Trigger, actor: Actor, now: datetime, reason: str | None = None
) -> Transition:
    """Move ``request`` by ``trigger`` pulled by ``actor``.

    Raises :class:`IllegalTransition` (``conflict``) when the pair is not in the table, and
    :class:`NotAllowed` (``forbidden``) when the actor may not pull it. A ``pending`` request past its
    ``expires_at`` accepts only ``expire`` and ``cancel``: an answer after the deadline is refused.
    """
    try:
        trigger, actor = Trigger(trigger), Actor(actor)
    except ValueError:
        raise Invalid(f"unknown trigger {trigger!r} or actor {actor!r}") from None
    try:
        old = State(request.state)
    except ValueError:
        raise IllegalTransition(f"the request is in an unknown state {request.state!r}") from None
    entry = TRANSITIONS.get((old, trigger))
    if entry is None:
        raise IllegalTransition(
            f"cannot {trigger.value} a request that is {old.value}", state=old.value, trigger=trigger.value
        )
    new, actors = entry
    if actor not in actors:
        raise NotAllowed(f"{actor.value} may not {trigger.value} this request", trigger=trigger.value)
    if (
        old is State.PENDING
        and trigger in (Trigger.ACCEPT, Trigger.DECLINE)
        and request.expires_at is not None
        and now >= request.expires_at
    ):
        raise IllegalTransition("the request has expired", state=old.value, trigger=trigger.value)
    if trigger is Trigger.EXPIRE and request.expires_at is not None and now < request.expires_at:
        raise IllegalTransition("the request has not expired yet", state=old.value, trigger=trigger.value)
    changes: dict[str, object] = {"state": new.value, "updated_at": now}
    if new is State.ACCEPTED:
        changes["accepted_at"] = now
    elif new is State.ACTIVE:
        changes["active_at"] = now
    if new in FINAL_STATES:
        changes["ended_at"] = now
        changes["reason"] = reason or _default_reason(trigger, actor)
    updated = dataclasses.replace(request, **changes)  # type: ignore[arg-type]
    return Transition(request=updated, old_state=old, new_state=new, trigger=trigger, actor=actor)


def _default_reason(trigger: Trigger, actor: Actor) -> str:
    if trigger is Trigger.END:
        return f"ended_by_{actor.value}"
    if trigger is Trigger.DROP:
        return "peer_dropped"
    return {
        Trigger.DECLINE: "declined_by_customer",
        Trigger.CANCEL: "cancelled_by_agent" if actor is Actor.AGENT else "cancelled",
        Trigger.EXPIRE: "no_answer",
    }.get(trigger, trigger.value)
