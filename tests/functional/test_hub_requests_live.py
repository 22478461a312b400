"""``requests.live`` on ``/agent``: the live requests (pending, accepted, active) of the open conversations
the agent may see, with those conversations, so that a console that reloads or reconnects learns its
request chips and co-browse sessions again. Real server, real Socket.IO clients."""

from __future__ import annotations

from tests.conftest import Hub


async def test_requests_live_lists_what_the_agent_may_see(hub: Hub) -> None:
    """Pending and accepted requests are listed (oldest first) with their conversations; an ended one is
    not; an agent of another team sees none of them, an admin sees them; customers have no such event."""
    alice = await hub.agent("alice@example.com")  # admin, support
    bob = await hub.agent("bob@example.com")  # support
    carol = await hub.agent("carol@example.com")  # sales
    ann = await hub.customer(name="Ann")
    conv = (await ann.ok("conversation.start", {"body": "help"}))["conversation"]
    await bob.ok("conversation.assign", {"conversation_id": conv["id"]})
    cobrowse = (await bob.ok("request.create", {"conversation_id": conv["id"], "kind": "cobrowse"}))[
        "request"
    ]
    call = (await bob.ok("request.create", {"conversation_id": conv["id"], "kind": "call"}))["request"]
    video = (await bob.ok("request.create", {"conversation_id": conv["id"], "kind": "video"}))["request"]
    await ann.ok("request.respond", {"request_id": cobrowse["id"], "accept": True})
    await bob.ok("request.end", {"request_id": video["id"]})  # cancelled: not live

    res = await bob.ok("requests.live", {})
    assert [(r["id"], r["state"]) for r in res["requests"]] == [
        (cobrowse["id"], "accepted"),
        (call["id"], "pending"),
    ]
    assert [c["id"] for c in res["conversations"]] == [conv["id"]]
    assert res["conversations"][0]["visitor"]["name"] == "Ann"
    assert [r["id"] for r in (await alice.ok("requests.live", {}))["requests"]] == [
        cobrowse["id"],
        call["id"],
    ]
    assert await carol.ok("requests.live", {}) == {"ok": True, "requests": [], "conversations": []}
    assert (await ann.call("requests.live", {}))["error"]["code"] == "invalid"

    await bob.ok("conversation.status", {"conversation_id": conv["id"], "status": "done"})
    assert (await bob.ok("requests.live", {}))["requests"] == []
