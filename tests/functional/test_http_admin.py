"""The admin REST API: agents, teams, text blocks, articles, flows and ``PATCH /api/me``.

Pins: admins create and change everything, other agents only read, customers are refused; validation
(emails, URLs, flow steps, duplicates) answers ``invalid``/``conflict`` and changes nothing; a password
change revokes every older token (at ``/api/me`` and at Socket.IO connect) and closes live sockets;
team membership changes apply to a live socket; the last admin cannot be demoted.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from tests.conftest import Hub


class Api:
    """JSON calls against the running server with a bearer token."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def call(self, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.hub.http.request(
            method, f"{self.hub.server.url}{path}", json=body, headers=headers
        ) as resp:
            data = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, data

    async def ok(self, method: str, path: str, token: str, body: Any = None, status: int = 200) -> Any:
        got, data = await self.call(method, path, token, body)
        assert got == status, (method, path, got, data)
        return data

    async def error(
        self, method: str, path: str, token: str | None, body: Any, status: int, code: str
    ) -> None:
        got, data = await self.call(method, path, token, body)
        assert got == status, (method, path, got, data)
        assert data["ok"] is False and data["error"]["code"] == code, data


@pytest.fixture
async def api(hub: Hub) -> Api:
    return Api(hub)


async def tokens(hub: Hub) -> dict[str, str]:
    out = {}
    for name in ("alice", "bob", "carol"):
        out[name] = (await hub.login(f"{name}@example.com"))["token"]
    out["customer"] = (await hub.visitor(name="Cus"))["token"]
    return out


async def test_non_admins_read_but_cannot_write(api: Api, hub: Hub) -> None:
    """Bob (not admin) lists every collection but each write is ``forbidden``; a customer token is
    ``unauthorized`` on agent routes; no token is ``unauthorized``."""
    t = await tokens(hub)
    for path, key in (
        ("/api/agents", "agents"),
        ("/api/teams", "teams"),
        ("/api/textblocks", "textblocks"),
        ("/api/articles", "articles"),
        ("/api/flows", "flows"),
    ):
        data = await api.ok("GET", path, t["bob"])
        assert data[key], path
        await api.error("GET", path, t["customer"], None, 401, "unauthorized")
        await api.error("GET", path, None, None, 401, "unauthorized")
    article = (await api.ok("GET", "/api/articles", t["bob"]))["articles"][0]
    writes = [
        ("POST", "/api/agents", {"email": "x@example.com", "password": "secret"}),
        ("PATCH", f"/api/agents/{(await hub.login('carol@example.com'))['agent']['id']}", {"capacity": 9}),
        ("POST", "/api/teams", {"name": "billing"}),
        ("POST", "/api/textblocks", {"shortcut": "x", "title": "X", "body": "x"}),
        ("POST", "/api/articles", {"title": "X", "url": "https://example.com"}),
        ("PATCH", f"/api/articles/{article['id']}", {"title": "Hacked"}),
        ("DELETE", f"/api/articles/{article['id']}", None),
        ("POST", "/api/flows", {"name": "F", "steps": [{"id": "a", "question": "?", "free_text": True}]}),
    ]
    for method, path, body in writes:
        await api.error(method, path, t["bob"], body, 403, "forbidden")
        await api.error(method, path, t["customer"], body, 401, "unauthorized")
    assert (await api.ok("GET", f"/api/articles/{article['id']}", t["bob"]))["article"]["title"] == article[
        "title"
    ]


async def test_admin_manages_teams_and_agents(api: Api, hub: Hub) -> None:
    """Alice creates a team and an agent in it, who can log in; updates apply; bad input is refused."""
    t = await tokens(hub)
    team = (await api.ok("POST", "/api/teams", t["alice"], {"name": "billing", "routing": "auto"}, 201))[
        "team"
    ]
    assert team["routing"] == "auto" and team["agent_ids"] == []
    await api.error("POST", "/api/teams", t["alice"], {"name": "Billing"}, 409, "conflict")
    await api.error("POST", "/api/teams", t["alice"], {"name": "x", "routing": "random"}, 400, "invalid")
    body = {
        "email": "dave@example.com",
        "name": "Dave",
        "password": "s3cret!",
        "team_ids": [team["id"]],
        "capacity": 3,
        "locale": "fr",
    }
    dave = (await api.ok("POST", "/api/agents", t["alice"], body, 201))["agent"]
    assert dave["team_ids"] == [team["id"]] and dave["capacity"] == 3 and dave["locale"] == "fr"
    assert "password" not in dave and "password_hash" not in dave
    login = await hub.login("dave@example.com", "s3cret!")
    assert login["agent"]["id"] == dave["id"]
    await api.error("POST", "/api/agents", t["alice"], body, 409, "conflict")
    await api.error("POST", "/api/agents", t["alice"], {**body, "email": "not-an-email"}, 400, "invalid")
    await api.error(
        "POST",
        "/api/agents",
        t["alice"],
        {**body, "email": "e@example.com", "team_ids": ["tm_nope"]},
        404,
        "not_found",
    )
    await api.error(
        "POST", "/api/agents", t["alice"], {**body, "email": "e@example.com", "capacity": -1}, 400, "invalid"
    )
    await api.error(
        "POST", "/api/agents", t["alice"], {**body, "email": "e@example.com", "sudo": True}, 400, "invalid"
    )
    changed = await api.ok("PATCH", f"/api/agents/{dave['id']}", t["alice"], {"capacity": 8, "locale": "de"})
    assert changed["agent"]["capacity"] == 8 and changed["agent"]["locale"] == "de"
    team = (await api.ok("PATCH", f"/api/teams/{team['id']}", t["alice"], {"routing": "manual"}))["team"]
    assert team["routing"] == "manual" and team["agent_ids"] == [dave["id"]]
    assert (await api.ok("GET", f"/api/teams/{team['id']}", t["bob"]))["team"]["name"] == "billing"
    members = (await api.ok("GET", f"/api/agents?team_id={team['id']}", t["bob"]))["agents"]
    assert [a["id"] for a in members] == [dave["id"]]
    await api.error("GET", "/api/agents/ag_nope", t["bob"], None, 404, "not_found")


async def test_last_admin_cannot_be_demoted(api: Api, hub: Hub) -> None:
    """Removing admin from the only admin is a ``conflict``; after promoting Bob it works."""
    t = await tokens(hub)
    alice_id = (await hub.login("alice@example.com"))["agent"]["id"]
    bob_id = (await hub.login("bob@example.com"))["agent"]["id"]
    await api.error("PATCH", f"/api/agents/{alice_id}", t["alice"], {"is_admin": False}, 409, "conflict")
    await api.ok("PATCH", f"/api/agents/{bob_id}", t["alice"], {"is_admin": True})
    await api.ok("PATCH", f"/api/agents/{alice_id}", t["alice"], {"is_admin": False})
    await api.error("POST", "/api/teams", t["alice"], {"name": "nope"}, 403, "forbidden")


async def test_admin_password_change_revokes_old_tokens_and_sockets(api: Api, hub: Hub) -> None:
    """After Alice sets Bob's password: Bob's old token is refused at /api/me and at Socket.IO connect,
    his live socket is told ``session.revoked`` and closed, the old password fails, the new one works."""
    t = await tokens(hub)
    bob_socket = await hub.agent("bob@example.com")
    bob_id = bob_socket.agent["id"]  # type: ignore[attr-defined]
    assert (await api.ok("GET", "/api/me", t["bob"]))["agent"]["id"] == bob_id
    result = await api.ok("PATCH", f"/api/agents/{bob_id}", t["alice"], {"password": "n3w-pass"})
    assert "token" not in result  # an admin never receives someone else's token
    await api.error("GET", "/api/me", t["bob"], None, 401, "unauthorized")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await hub.connect("/agent", t["bob"])
    await bob_socket.events.wait("session.revoked")
    for _ in range(100):
        if not bob_socket.sio.connected:
            break
        await asyncio.sleep(0.05)
    assert not bob_socket.sio.connected
    async with hub.http.post(
        f"{hub.server.url}/api/auth/login", json={"email": "bob@example.com", "password": "demo"}
    ) as resp:
        assert resp.status == 401
    fresh = await hub.login("bob@example.com", "n3w-pass")
    assert (await api.ok("GET", "/api/me", fresh["token"]))["agent"]["id"] == bob_id
    await hub.connect("/agent", fresh["token"])


async def test_agent_changes_own_locale_and_password(api: Api, hub: Hub) -> None:
    """``PATCH /api/me``: locale applies; a password change needs the current password, answers a new
    token and revokes the old one; unknown fields (``is_admin``) are refused."""
    t = await tokens(hub)
    me = await api.ok("PATCH", "/api/me", t["bob"], {"locale": "fr"})
    assert me["agent"]["locale"] == "fr" and "token" not in me
    await api.error("PATCH", "/api/me", t["bob"], {"is_admin": True}, 400, "invalid")
    await api.error("PATCH", "/api/me", t["bob"], {"locale": "not a locale"}, 400, "invalid")
    await api.error(
        "PATCH", "/api/me", t["bob"], {"password": "n3w-pass", "current_password": "wrong"}, 403, "forbidden"
    )
    await api.error("PATCH", "/api/me", t["bob"], {"password": "n3w-pass"}, 403, "forbidden")
    await api.error(
        "PATCH", "/api/me", t["bob"], {"password": "abc", "current_password": "demo"}, 400, "invalid"
    )
    me = await api.ok("PATCH", "/api/me", t["bob"], {"password": "n3w-pass", "current_password": "demo"})
    assert me["agent"]["locale"] == "fr"
    await api.error("GET", "/api/me", t["bob"], None, 401, "unauthorized")
    assert (await api.ok("GET", "/api/me", me["token"]))["agent"]["id"] == me["agent"]["id"]
    await hub.login("bob@example.com", "n3w-pass")


async def test_customer_updates_own_profile(api: Api, hub: Hub) -> None:
    """A customer sets name, email and locale through ``PATCH /api/me``; bad emails are ``invalid``."""
    token = (await hub.visitor())["token"]
    me = await api.ok("PATCH", "/api/me", token, {"name": "Zoé", "email": "zoe@example.com", "locale": "fr"})
    assert me["visitor"]["name"] == "Zoé" and me["visitor"]["locale"] == "fr"
    await api.error("PATCH", "/api/me", token, {"email": "nope"}, 400, "invalid")
    await api.error("PATCH", "/api/me", token, {"password": "x1234"}, 400, "invalid")


async def test_team_change_applies_to_a_live_socket(api: Api, hub: Hub) -> None:
    """Moving Bob (connected) into a new manual team makes him ring for that team's new conversations
    without reconnecting, and takes him out of his old team's room."""
    t = await tokens(hub)
    bob = await hub.agent("bob@example.com")
    team = (await api.ok("POST", "/api/teams", t["alice"], {"name": "billing"}, 201))["team"]
    await api.ok("PATCH", f"/api/agents/{bob.agent['id']}", t["alice"], {"team_ids": [team["id"]]})  # type: ignore[attr-defined]
    customer = await hub.customer(name="Ringo")
    conv = await customer.ok("conversation.start", {"team_id": team["id"], "body": "billing question"})
    await bob.events.wait("conversation.new", lambda d: d["conversation"]["id"] == conv["conversation"]["id"])
    other = await hub.customer(name="Support")
    conv2 = (await other.ok("conversation.start", {"body": "support question"}))["conversation"]
    # Bob's own call is answered after anything the server sent him before it: no ring for support now.
    res = await bob.call("conversation.sync", {"conversation_id": conv2["id"], "after_seq": 0})
    assert res["ok"] is False and res["error"]["code"] == "not_found"
    assert not [d for d in bob.events.of("conversation.new") if d["conversation"]["id"] == conv2["id"]]


async def test_textblocks_crud_and_team_visibility(api: Api, hub: Hub) -> None:
    """Create/read/update/delete a text block; a team-scoped block is hidden from other teams;
    duplicates and bad shortcuts are refused."""
    t = await tokens(hub)
    teams = {tm["name"]: tm for tm in (await api.ok("GET", "/api/teams", t["bob"]))["teams"]}
    body = {
        "shortcut": "#vip",
        "title": "VIP",
        "body": "Hello {{customer.name}}",
        "team_id": teams["support"]["id"],
    }
    block = (await api.ok("POST", "/api/textblocks", t["alice"], body, 201))["textblock"]
    assert block["shortcut"] == "vip" and block["team_id"] == teams["support"]["id"]
    await api.error("POST", "/api/textblocks", t["alice"], body, 409, "conflict")
    await api.error("POST", "/api/textblocks", t["alice"], {**body, "shortcut": "two words"}, 400, "invalid")
    await api.error(
        "POST", "/api/textblocks", t["alice"], {**body, "shortcut": "x", "team_id": "tm_no"}, 404, "not_found"
    )
    assert (await api.ok("GET", f"/api/textblocks/{block['id']}", t["bob"]))["textblock"]["title"] == "VIP"
    await api.error("GET", f"/api/textblocks/{block['id']}", t["carol"], None, 404, "not_found")
    assert block["id"] not in [
        b["id"] for b in (await api.ok("GET", "/api/textblocks", t["carol"]))["textblocks"]
    ]
    found = (await api.ok("GET", "/api/textblocks?q=vip", t["bob"]))["textblocks"]
    assert found and found[0]["id"] == block["id"]
    updated = (
        await api.ok(
            "PATCH",
            f"/api/textblocks/{block['id']}",
            t["alice"],
            {"title": "Very important", "team_id": None},
        )
    )["textblock"]
    assert updated["title"] == "Very important" and updated["team_id"] is None
    assert (await api.ok("GET", f"/api/textblocks/{block['id']}", t["carol"]))["textblock"]["id"] == block[
        "id"
    ]
    await api.error("PATCH", f"/api/textblocks/{block['id']}", t["alice"], {"body": ""}, 400, "invalid")
    status, _ = await api.call("DELETE", f"/api/textblocks/{block['id']}", t["alice"])
    assert status == 204
    await api.error("GET", f"/api/textblocks/{block['id']}", t["alice"], None, 404, "not_found")
    await api.error("DELETE", f"/api/textblocks/{block['id']}", t["alice"], None, 404, "not_found")


async def test_articles_crud_and_url_validation(api: Api, hub: Hub) -> None:
    """Articles need an absolute http(s) URL (``javascript:`` and relative links are ``invalid``);
    search with ``q`` finds by title; update and delete work."""
    t = await tokens(hub)
    for url in ("javascript:alert(1)", "/help", "data:text/html,x", "https://", "ftp://example.com/x"):
        await api.error("POST", "/api/articles", t["alice"], {"title": "X", "url": url}, 400, "invalid")
    art = (
        await api.ok(
            "POST",
            "/api/articles",
            t["alice"],
            {
                "title": "Gift cards",
                "summary": "How they work",
                "url": "https://example.com/gift",
                "body": "Gift cards never expire.",
            },
            201,
        )
    )["article"]
    assert art["body"] == "Gift cards never expire."
    found = (await api.ok("GET", "/api/articles?q=gift", t["bob"]))["articles"]
    assert [a["id"] for a in found] == [art["id"]]
    art = (await api.ok("PATCH", f"/api/articles/{art['id']}", t["alice"], {"summary": "Updated"}))["article"]
    assert art["summary"] == "Updated" and art["url"] == "https://example.com/gift"
    await api.error(
        "PATCH", f"/api/articles/{art['id']}", t["alice"], {"url": "javascript:x"}, 400, "invalid"
    )
    status, _ = await api.call("DELETE", f"/api/articles/{art['id']}", t["alice"])
    assert status == 204


BAD_STEPS: list[Any] = [
    [],
    "not a list",
    [{"id": "a", "question": "Q?"}],
    [{"id": "a", "question": "Q?", "buttons": ["Yes", "Yes"]}],
    [{"id": "a", "question": "Q?", "buttons": [1, 2]}],
    [{"id": "a", "question": "", "free_text": True}],
    [{"id": "a", "question": "Q?", "free_text": "yes"}],
    [{"id": "a", "question": "Q?", "free_text": True}, {"id": "a", "question": "R?", "free_text": True}],
    [{"id": "a", "question": "Q?", "free_text": True, "script": "alert(1)"}],
    [{"question": "Q?", "free_text": True}],
]


@pytest.mark.parametrize("steps", BAD_STEPS)
async def test_flow_steps_are_validated(api: Api, hub: Hub, steps: Any) -> None:
    """Each malformed flow is ``invalid`` and nothing is stored."""
    t = await tokens(hub)
    before = (await api.ok("GET", "/api/flows", t["alice"]))["flows"]
    await api.error("POST", "/api/flows", t["alice"], {"name": "Bad", "steps": steps}, 400, "invalid")
    assert (await api.ok("GET", "/api/flows", t["alice"]))["flows"] == before


async def test_flow_crud_and_use_in_a_conversation(api: Api, hub: Hub) -> None:
    """A flow created over REST is sent by an agent and answered by the customer; PATCH replaces the
    steps; DELETE removes it."""
    t = await tokens(hub)
    steps = [
        {"id": "size", "question": "Which size?", "buttons": ["S", "M", "L"]},
        {"id": "notes", "question": "Anything else?", "free_text": True},
    ]
    flow = (await api.ok("POST", "/api/flows", t["alice"], {"name": "Order", "steps": steps}, 201))["flow"]
    assert flow["steps"][0] == {
        "id": "size",
        "question": "Which size?",
        "buttons": ["S", "M", "L"],
        "free_text": False,
    }
    customer = await hub.customer(name="Fio")
    conv = (await customer.ok("conversation.start", {"body": "hi"}))["conversation"]
    alice = await hub.agent("alice@example.com")
    await alice.ok(
        "message.send",
        {"conversation_id": conv["id"], "client_id": "f1", "kind": "flow", "flow_id": flow["id"]},
    )
    ans = await customer.ok(
        "message.send",
        {
            "conversation_id": conv["id"],
            "client_id": "f2",
            "kind": "flow_answer",
            "flow_answer": {"flow_id": flow["id"], "step_id": "size", "answer": "M"},
        },
    )
    assert ans["message"]["body"] == "M"
    changed = (
        await api.ok(
            "PATCH",
            f"/api/flows/{flow['id']}",
            t["alice"],
            {"steps": [{"id": "only", "question": "Ok?", "buttons": ["Yes"]}]},
        )
    )["flow"]
    assert [s["id"] for s in changed["steps"]] == ["only"]
    await api.error("PATCH", f"/api/flows/{flow['id']}", t["alice"], {"steps": []}, 400, "invalid")
    status, _ = await api.call("DELETE", f"/api/flows/{flow['id']}", t["alice"])
    assert status == 204
    await api.error("GET", f"/api/flows/{flow['id']}", t["bob"], None, 404, "not_found")


async def test_malformed_bodies_are_invalid(api: Api, hub: Hub) -> None:
    """A body that is not a JSON object is ``invalid`` (not a crash)."""
    t = await tokens(hub)
    for raw in (b"not json", b"[1,2]", b'"str"'):
        async with hub.http.post(
            f"{hub.server.url}/api/teams",
            data=raw,
            headers={"Authorization": f"Bearer {t['alice']}", "Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid"
    await api.error("POST", "/api/teams", t["alice"], {"name": 42}, 400, "invalid")
    await api.error("POST", "/api/teams", t["alice"], {"name": "x" * 65}, 400, "invalid")
