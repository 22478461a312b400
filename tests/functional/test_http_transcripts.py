"""Conversations over REST: transcript export, history, lists and search.

Pins: the agent transcript has the notes, the customer transcript never has a note's text (JSON or
text, even when a redirect carried a note); only participants read (others ``not_found``, no token
``unauthorized``); lists and search reuse the hub's rules.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client, Hub

NOTE = "SECRET-NOTE-7f3a"
REDIRECT_NOTE = "REDIRECT-NOTE-91b2"


class Story:
    """A finished support conversation with messages both ways, two notes, an attachment-free redirect."""

    def __init__(self, hub: Hub, customer: Client, alice: Client, conv: dict[str, Any]) -> None:
        self.hub = hub
        self.customer = customer
        self.alice = alice
        self.conv = conv

    async def get(self, path: str, token: str | None) -> tuple[int, str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.hub.http.get(f"{self.hub.server.url}{path}", headers=headers) as resp:
            text = await resp.text()
            data = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, text, dict(resp.headers) | {"_type": resp.content_type, "_data": data}


@pytest.fixture
async def story(hub: Hub) -> Story:
    alice = await hub.agent("alice@example.com")
    customer = await hub.customer(name="Zoé", email="zoe@example.com")
    conv = (await customer.ok("conversation.start", {"body": "My parcel is late\nsecond line"}))[
        "conversation"
    ]
    await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
    await alice.ok(
        "message.send",
        {"conversation_id": conv["id"], "client_id": "a1", "kind": "text", "body": "Let me check"},
    )
    await alice.ok("note.add", {"conversation_id": conv["id"], "body": NOTE})
    bob_id = (await hub.login("bob@example.com"))["agent"]["id"]
    await alice.ok(
        "conversation.assign", {"conversation_id": conv["id"], "agent_id": bob_id, "note": REDIRECT_NOTE}
    )
    await customer.ok(
        "message.send", {"conversation_id": conv["id"], "client_id": "c2", "kind": "text", "body": "Thanks"}
    )
    return Story(hub, customer, alice, conv)


async def test_agent_transcript_has_notes_and_customer_never_does(story: Story, hub: Hub) -> None:
    """JSON and text: the agent version includes both notes; the customer version has every other
    message but no note, and no note text anywhere in the response."""
    alice_token = (await hub.login("alice@example.com"))["token"]
    url = f"/api/conversations/{story.conv['id']}/transcript"
    status, raw, info = await story.get(url, alice_token)
    assert status == 200 and info["_data"]["audience"] == "agent"
    kinds = [m["kind"] for m in info["_data"]["messages"]]
    assert kinds.count("note") == 2 and NOTE in raw and REDIRECT_NOTE in raw
    status, text, info = await story.get(url + "?format=text", alice_token)
    assert status == 200 and info["_type"] == "text/plain"
    assert f"(internal note): {NOTE}" in text and "Zoé <zoe@example.com>" in text and "Team: support" in text
    assert "    second line" in text
    for fmt in ("json", "text"):
        status, raw, info = await story.get(f"{url}?format={fmt}", story.customer.token)  # type: ignore[attr-defined]
        assert status == 200
        assert NOTE not in raw and REDIRECT_NOTE not in raw and "internal note" not in raw
        assert "Let me check" in raw and "Thanks" in raw
    data = (await story.get(url, story.customer.token))[2]["_data"]  # type: ignore[attr-defined]
    assert data["audience"] == "customer" and all(m["kind"] != "note" for m in data["messages"])
    assert "unread" not in data["conversation"] and "team" not in data["conversation"]


async def test_transcript_is_for_participants_only(story: Story, hub: Hub) -> None:
    """Another customer and an agent of another team get ``not_found``; no token ``unauthorized``;
    an unknown format ``invalid``; ``download=1`` makes it a file."""
    url = f"/api/conversations/{story.conv['id']}/transcript"
    other = (await hub.visitor(name="Eve"))["token"]
    carol = (await hub.login("carol@example.com"))["token"]
    for token in (other, carol):
        status, raw, _ = await story.get(url, token)
        assert status == 404 and '"not_found"' in raw and NOTE not in raw
    status, _, _ = await story.get(url, None)
    assert status == 401
    bob = (await hub.login("bob@example.com"))["token"]
    status, raw, _ = await story.get(url + "?format=xml", bob)
    assert status == 400 and '"invalid"' in raw
    status, _, headers = await story.get(url + "?format=text&download=1", bob)
    assert status == 200 and headers["Content-Disposition"].startswith("attachment;")
    assert f"transcript-{story.conv['id']}" in headers["Content-Disposition"]


async def test_conversation_history_over_rest(story: Story, hub: Hub) -> None:
    """``GET /api/conversations/{id}`` is ``conversation.sync``: notes for agents only, ``after_seq``
    honoured, outsiders ``not_found``."""
    bob = (await hub.login("bob@example.com"))["token"]
    cid = story.conv["id"]
    status, _, info = await story.get(f"/api/conversations/{cid}", bob)
    assert status == 200 and any(m["kind"] == "note" for m in info["_data"]["messages"])
    status, raw, info = await story.get(f"/api/conversations/{cid}", story.customer.token)  # type: ignore[attr-defined]
    assert status == 200 and NOTE not in raw and REDIRECT_NOTE not in raw
    last = info["_data"]["messages"][-1]["seq"]
    status, _, info = await story.get(f"/api/conversations/{cid}?after_seq={last - 1}", bob)
    assert [m["seq"] for m in info["_data"]["messages"]] == [last]
    status, _, _ = await story.get(f"/api/conversations/{cid}?after_seq=-1", bob)
    assert status == 400
    carol = (await hub.login("carol@example.com"))["token"]
    assert (await story.get(f"/api/conversations/{cid}", carol))[0] == 404


async def test_lists_and_search(story: Story, hub: Hub) -> None:
    """Sections list what the hub lists; a customer lists only their own; search finds by note text
    for agents of the team and refuses customers and bad queries."""
    bob = (await hub.login("bob@example.com"))["token"]
    carol = (await hub.login("carol@example.com"))["token"]
    cid = story.conv["id"]
    mine = (await story.get("/api/conversations?section=mine", bob))[2]["_data"]
    assert [c["id"] for c in mine["conversations"]] == [cid]
    team = (await story.get("/api/conversations?section=team", carol))[2]["_data"]
    assert cid not in [c["id"] for c in team["conversations"]]
    status, raw, _ = await story.get("/api/conversations?section=everything", bob)
    assert status == 400 and '"invalid"' in raw
    other = await hub.customer(name="Other")
    await other.ok("conversation.start", {"body": "other conversation"})
    own = (await story.get("/api/conversations", story.customer.token))[2]["_data"]  # type: ignore[attr-defined]
    assert [c["id"] for c in own["conversations"]] == [cid] and "unread" not in own["conversations"][0]
    found = (await story.get(f"/api/conversations/search?q={NOTE[:10]}", bob))[2]["_data"]
    assert [c["id"] for c in found["conversations"]] == [cid]
    found = (await story.get(f"/api/conversations/search?q={NOTE[:10]}", carol))[2]["_data"]
    assert found["conversations"] == []
    assert (await story.get("/api/conversations/search?q=x", bob))[0] == 400
    assert (await story.get("/api/conversations/search?q=parcel", story.customer.token))[0] == 401  # type: ignore[attr-defined]
