"""Requests (co-browse, call, video, ...) through the hub around the consent state machine: who may
create and answer, one live request per kind, request.updated on every transition to both sides,
races (cancel vs accept, two customer tabs) settling to one outcome, expiry, ending by either side,
Done ending live requests, and every transition as a system message in the timeline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Client, Hub, hub_on

KINDS = ("cobrowse", "call", "video", "desktop", "show_screen", "conference")


async def chat(hub: Hub) -> tuple[Client, Client, dict[str, Any]]:
    """Alice assigned to a fresh conversation of a new customer."""
    alice = await hub.agent("alice@example.com")
    customer = await hub.customer(name="Ann")
    conv = (await customer.ok("conversation.start", {"body": "help"}))["conversation"]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    return alice, customer, conv


async def create(agent: Client, conv: dict[str, Any], kind: str = "cobrowse") -> dict[str, Any]:
    res = await agent.ok("request.create", {"conversation_id": conv["id"], "kind": kind})
    request: dict[str, Any] = res["request"]
    return request


def state_is(request_id: str, state: str) -> Any:
    return lambda d: d["request"]["id"] == request_id and d["request"]["state"] == state


def states_seen(client: Client, request_id: str) -> list[str]:
    return [
        d["request"]["state"] for d in client.events.of("request.updated") if d["request"]["id"] == request_id
    ]


async def timeline_codes(agent: Client, conv: dict[str, Any], request_id: str) -> list[str]:
    """The system messages about ``request_id`` in the conversation, in order."""
    sync = await agent.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    return [
        m["code"]
        for m in sync["messages"]
        if m["kind"] == "system" and m.get("params", {}).get("request_id") == request_id
    ]


async def settle(*clients: Client) -> None:
    for client in clients:
        await client.ok("rtc.config", {})
    await asyncio.sleep(0.05)


async def error_code(client: Client, event: str, payload: Any) -> str:
    res = await client.call(event, payload)
    assert res["ok"] is False, (event, payload, res)
    code: str = res["error"]["code"]
    return code


async def test_create_is_announced_to_both_sides(hub: Hub) -> None:
    """request.create by an agent gives a pending request with an expiry; request.updated reaches the
    customer (their prompt), the assignee and the team; the timeline says "Co-browsing requested"."""
    alice, customer, conv = await chat(hub)
    bob = await hub.agent("bob@example.com")
    request = await create(alice, conv)
    assert request["state"] == "pending" and request["requested_by"] == alice.agent["id"]  # type: ignore[attr-defined]
    assert request["conversation_id"] == conv["id"] and request["expires_at"] > request["created_at"]
    for client in (customer, alice, bob):
        got = await client.events.wait("request.updated", state_is(request["id"], "pending"), timeout=2)
        assert got["request"] == request
    sync = await customer.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert sync["requests"] == [request]
    system = [m for m in sync["messages"] if m["kind"] == "system" and m["code"] == "request.pending"]
    assert [m["body"] for m in system] == ["Co-browsing requested"]
    assert system[0]["params"]["kind"] == "cobrowse"


async def test_every_kind_and_one_live_request_per_kind(hub: Hub) -> None:
    """Each of the six kinds can be requested once at a time: a second live request of the same kind is
    conflict, an unknown kind invalid; once the first is settled the kind can be asked again; the
    customer cannot create requests."""
    alice, customer, conv = await chat(hub)
    made = {kind: await create(alice, conv, kind) for kind in KINDS}
    for kind in KINDS:
        assert (
            await error_code(alice, "request.create", {"conversation_id": conv["id"], "kind": kind})
            == "conflict"
        )
    assert (
        await error_code(alice, "request.create", {"conversation_id": conv["id"], "kind": "teleport"})
        == "invalid"
    )
    assert (
        await error_code(customer, "request.create", {"conversation_id": conv["id"], "kind": "call"})
        == "invalid"
    )
    await customer.ok("request.respond", {"request_id": made["call"]["id"], "accept": False})
    again = await create(alice, conv, "call")
    assert again["id"] != made["call"]["id"] and again["state"] == "pending"
    sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert len(sync["requests"]) == len(KINDS) + 1


async def test_only_the_customer_answers(hub: Hub) -> None:
    """An agent answering (request.respond) is forbidden and changes nothing; the customer accepts
    (request.updated accepted to both sides); accepting again, declining after, or answering with a
    non-boolean are refused and change nothing."""
    alice, customer, conv = await chat(hub)
    request = await create(alice, conv)
    rid = request["id"]
    assert await error_code(alice, "request.respond", {"request_id": rid, "accept": True}) == "forbidden"
    sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert [r["state"] for r in sync["requests"]] == ["pending"]
    accepted = await customer.ok("request.respond", {"request_id": rid, "accept": True})
    assert accepted["request"]["state"] == "accepted" and accepted["request"]["accepted_at"]
    for client in (alice, customer):
        await client.events.wait("request.updated", state_is(rid, "accepted"), timeout=2)
    assert await error_code(customer, "request.respond", {"request_id": rid, "accept": True}) == "conflict"
    assert await error_code(customer, "request.respond", {"request_id": rid, "accept": False}) == "conflict"
    assert await error_code(customer, "request.respond", {"request_id": rid, "accept": "yes"}) == "invalid"
    assert (
        await error_code(customer, "request.respond", {"request_id": "rq_nope", "accept": True})
        == "not_found"
    )
    await settle(alice, customer)
    assert states_seen(customer, rid) == ["pending", "accepted"]
    assert await timeline_codes(alice, conv, rid) == ["request.pending", "request.accepted"]


async def test_decline(hub: Hub) -> None:
    """The customer declines: declined with reason declined_by_customer, told to both sides, in the
    timeline; accepting afterwards is conflict."""
    alice, customer, conv = await chat(hub)
    rid = (await create(alice, conv, "video"))["id"]
    res = await customer.ok("request.respond", {"request_id": rid, "accept": False})
    assert res["request"]["state"] == "declined" and res["request"]["reason"] == "declined_by_customer"
    got = await alice.events.wait("request.updated", state_is(rid, "declined"), timeout=2)
    assert got["request"]["ended_at"]
    assert await error_code(customer, "request.respond", {"request_id": rid, "accept": True}) == "conflict"
    assert await timeline_codes(alice, conv, rid) == ["request.pending", "request.declined"]


async def test_cancel_vs_accept_race_settles_to_one_outcome(hub: Hub) -> None:
    """The agent cancelling while the customer accepts, 12 times: the acks, the stored state, the
    request.updated sequence and the timeline agree on one legal history (cancelled, or accepted, or
    accepted then ended by the agent's late end), never both cancelled and accepted."""
    alice, customer, conv = await chat(hub)
    outcomes = set()
    for _ in range(12):
        rid = (await create(alice, conv, "call"))["id"]
        end, accept = await asyncio.gather(
            alice.call("request.end", {"request_id": rid}),
            customer.call("request.respond", {"request_id": rid, "accept": True}),
        )
        assert end["ok"] or accept["ok"], (end, accept)
        if end["ok"] and not accept["ok"]:
            assert end["request"]["state"] == "cancelled" and accept["error"]["code"] == "conflict"
            history = ["pending", "cancelled"]
        elif accept["ok"] and not end["ok"]:
            assert end["error"]["code"] == "conflict"
            history = ["pending", "accepted"]
        else:
            assert accept["request"]["state"] == "accepted" and end["request"]["state"] == "ended"
            history = ["pending", "accepted", "ended"]
        outcomes.add(history[-1])
        sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
        stored = next(r for r in sync["requests"] if r["id"] == rid)
        assert stored["state"] == history[-1]
        await customer.events.wait("request.updated", state_is(rid, history[-1]), timeout=2)
        await settle(customer)
        assert states_seen(customer, rid) == history
        assert await timeline_codes(alice, conv, rid) == [f"request.{s}" for s in history]
        if history[-1] == "accepted":
            await alice.ok("request.end", {"request_id": rid})
    assert outcomes, outcomes


async def test_two_customer_tabs_accept_at_once(hub: Hub) -> None:
    """Two sockets of the same visitor accept the same request at the same moment, 10 times: one ok,
    one conflict, and both tabs receive request.updated accepted."""
    alice, tab1, conv = await chat(hub)
    tab2 = await hub.connect("/customer", tab1.token)  # type: ignore[attr-defined]
    for _ in range(10):
        rid = (await create(alice, conv, "cobrowse"))["id"]
        await tab2.events.wait("request.updated", state_is(rid, "pending"), timeout=2)
        a, b = await asyncio.gather(
            tab1.call("request.respond", {"request_id": rid, "accept": True}),
            tab2.call("request.respond", {"request_id": rid, "accept": True}),
        )
        assert sorted([a["ok"], b["ok"]]) == [False, True], (a, b)
        loser = a if not a["ok"] else b
        assert loser["error"]["code"] == "conflict"
        for tab in (tab1, tab2):
            await tab.events.wait("request.updated", state_is(rid, "accepted"), timeout=2)
        await settle(tab1, tab2)
        assert states_seen(tab1, rid) == states_seen(tab2, rid) == ["pending", "accepted"]
        await tab1.ok("request.end", {"request_id": rid})


async def test_end_by_either_side(hub: Hub) -> None:
    """request.end: the agent on a pending request cancels it, the customer on a pending one declines it;
    on an accepted one either side ends it (reason given or ended_by_<side>); ending twice is conflict;
    a reason too long is invalid; every step reaches both sides and the timeline."""
    alice, customer, conv = await chat(hub)
    r1 = (await create(alice, conv, "call"))["id"]
    res = await alice.ok("request.end", {"request_id": r1})
    assert res["request"]["state"] == "cancelled" and res["request"]["reason"] == "cancelled_by_agent"
    await customer.events.wait("request.updated", state_is(r1, "cancelled"), timeout=2)
    r2 = (await create(alice, conv, "call"))["id"]
    res = await customer.ok("request.end", {"request_id": r2})
    assert res["request"]["state"] == "declined"
    r3 = (await create(alice, conv, "call"))["id"]
    await customer.ok("request.respond", {"request_id": r3, "accept": True})
    res = await customer.ok("request.end", {"request_id": r3})
    assert res["request"]["state"] == "ended" and res["request"]["reason"] == "ended_by_customer"
    await alice.events.wait("request.updated", state_is(r3, "ended"), timeout=2)
    r4 = (await create(alice, conv, "call"))["id"]
    await customer.ok("request.respond", {"request_id": r4, "accept": True})
    assert await error_code(alice, "request.end", {"request_id": r4, "reason": "r" * 201}) == "invalid"
    res = await alice.ok("request.end", {"request_id": r4, "reason": "hung_up"})
    assert res["request"]["state"] == "ended" and res["request"]["reason"] == "hung_up"
    await customer.events.wait("request.updated", state_is(r4, "ended"), timeout=2)
    for rid in (r1, r2, r3, r4):
        assert await error_code(alice, "request.end", {"request_id": rid}) == "conflict"
        assert await error_code(customer, "request.end", {"request_id": rid}) == "conflict"
    assert await timeline_codes(alice, conv, r1) == ["request.pending", "request.cancelled"]
    assert await timeline_codes(alice, conv, r2) == ["request.pending", "request.declined"]
    assert await timeline_codes(alice, conv, r3) == ["request.pending", "request.accepted", "request.ended"]
    ended = await customer.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    bodies = [
        m["body"] for m in ended["messages"] if m["kind"] == "system" and m["params"].get("request_id") == r4
    ]
    assert bodies == ["Call requested", "Call accepted", "Call ended"]


async def test_rtc_calls_need_a_live_request(hub: Hub) -> None:
    """rtc.offer / rtc.answer on a pending or finished request are conflict (no media before consent or
    after the end)."""
    alice, customer, conv = await chat(hub)
    rid = (await create(alice, conv, "call"))["id"]
    sdp = "v=0\r\n"
    for client in (alice, customer):
        assert (
            await error_code(client, "rtc.offer", {"request_id": rid, "sdp": sdp, "type": "offer"})
            == "conflict"
        )
        assert (
            await error_code(client, "rtc.answer", {"request_id": rid, "sdp": sdp, "type": "answer"})
            == "conflict"
        )
    await alice.ok("request.end", {"request_id": rid})
    assert (
        await error_code(customer, "rtc.offer", {"request_id": rid, "sdp": sdp, "type": "offer"})
        == "conflict"
    )


async def test_done_ends_live_requests(hub: Hub) -> None:
    """Resolving the conversation cancels pending requests and ends accepted ones (reason
    conversation_done), tells the customer, writes the timeline; no new request on a done conversation."""
    alice, customer, conv = await chat(hub)
    pending = (await create(alice, conv, "cobrowse"))["id"]
    accepted = (await create(alice, conv, "video"))["id"]
    await customer.ok("request.respond", {"request_id": accepted, "accept": True})
    finished = (await create(alice, conv, "call"))["id"]
    await alice.ok("request.end", {"request_id": finished})
    await alice.ok("conversation.status", {"conversation_id": conv["id"], "status": "done"})
    got = await customer.events.wait("request.updated", state_is(pending, "cancelled"), timeout=2)
    assert got["request"]["reason"] == "conversation_done"
    got = await customer.events.wait("request.updated", state_is(accepted, "ended"), timeout=2)
    assert got["request"]["reason"] == "conversation_done"
    await settle(customer)
    assert states_seen(customer, finished) == ["pending", "cancelled"]
    sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert {r["id"]: r["state"] for r in sync["requests"]} == {
        pending: "cancelled",
        accepted: "ended",
        finished: "cancelled",
    }
    codes = [m["code"] for m in sync["messages"] if m["kind"] == "system"]
    assert codes.index("conversation.done") > max(i for i, c in enumerate(codes) if c.startswith("request."))
    assert (
        await error_code(alice, "request.create", {"conversation_id": conv["id"], "kind": "call"})
        == "conflict"
    )


@pytest.fixture
async def short_ttl_hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub on a server whose requests expire after one second."""
    async with hub_on(tmp_path, request_ttl_s=1.0) as h:
        yield h


async def test_unanswered_request_expires(short_ttl_hub: Hub) -> None:
    """With a 1 s time limit, an unanswered request becomes expired (reason no_answer) for both sides and
    in the timeline; accepting or cancelling it afterwards is conflict; an answered one does not expire."""
    hub = short_ttl_hub
    alice, customer, conv = await chat(hub)
    rid = (await create(alice, conv, "desktop"))["id"]
    kept = (await create(alice, conv, "call"))["id"]
    await customer.ok("request.respond", {"request_id": kept, "accept": True})
    got = await customer.events.wait("request.updated", state_is(rid, "expired"), timeout=5)
    assert got["request"]["reason"] == "no_answer"
    await alice.events.wait("request.updated", state_is(rid, "expired"), timeout=2)
    assert await error_code(customer, "request.respond", {"request_id": rid, "accept": True}) == "conflict"
    assert await error_code(alice, "request.end", {"request_id": rid}) == "conflict"
    assert await timeline_codes(alice, conv, rid) == ["request.pending", "request.expired"]
    sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
    assert {r["id"]: r["state"] for r in sync["requests"]} == {rid: "expired", kept: "accepted"}


async def test_two_agents_create_the_same_kind_at_once(hub: Hub) -> None:
    """Alice and bob asking for a call in the same conversation at the same moment, 10 times: one ok,
    one conflict, one pending request and one "requested" line in the timeline."""
    alice, customer, conv = await chat(hub)
    bob = await hub.agent("bob@example.com")
    for _ in range(10):
        payload = {"conversation_id": conv["id"], "kind": "call"}
        a, b = await asyncio.gather(
            alice.call("request.create", payload), bob.call("request.create", payload)
        )
        assert sorted([a["ok"], b["ok"]]) == [False, True], (a, b)
        winner, loser = (a, b) if a["ok"] else (b, a)
        assert loser["error"]["code"] == "conflict"
        rid = winner["request"]["id"]
        sync = await alice.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
        assert [r["id"] for r in sync["requests"] if r["state"] == "pending"] == [rid]
        assert await timeline_codes(alice, conv, rid) == ["request.pending"]
        await customer.ok("request.respond", {"request_id": rid, "accept": False})
