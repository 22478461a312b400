"""Abuse limits: token buckets per connection (Socket.IO calls) and per client address (Socket.IO
connects, Engine.IO handshakes, uploads, logins, visitor creation), the Origin check at connect, the
Content-Security-Policy of the pages, visitor tokens that expire and are checked again on reconnect.

Each limit is shown to trigger (``rate_limited``: in the ack, in the connect error's data, or as HTTP 429
with ``Retry-After``) on a server whose limits are made small, and normal use is shown to pass under the
default limits with loopback not exempt. Revocation of an agent's sessions when their password changes is
pinned by ``tests/functional/test_http_admin.py::test_admin_password_change_revokes_old_tokens_and_sockets``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from rtc_server.http.pages import CSP
from rtc_server.http.ratelimit import LIMITS
from signaling.services.ratelimit import AbuseLimits, Limiter, LimitSettings, Rate
from tests.conftest import Hub, RunningServer, start_server
from tests.reliability.conftest import figure

NO_EXEMPT: dict[str, Any] = {"rate_limit_exempt": ()}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the buckets themselves --------------------------------------------------------------------------


def test_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    """``burst`` calls pass at once, the next is refused; after 1/rate seconds one more passes; keys are
    independent; a disabled rate never refuses."""
    lim = Limiter(Rate(2.0, 5))
    assert [lim.allow("a", 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert lim.allow("b", 0.0)
    assert lim.retry_after("a") == pytest.approx(0.5)
    assert not lim.allow("a", 0.4) and lim.allow("a", 0.5 + 0.01)
    assert all(Limiter(Rate(0, 0)).allow("x", 0.0) for _ in range(1000))


def test_refilled_buckets_are_dropped_and_keys_are_capped() -> None:
    """Buckets that refilled carry nothing and are pruned; past ``max_keys`` the oldest key goes, so a
    flood of addresses cannot grow memory."""
    lim = Limiter(Rate(1.0, 2), max_keys=100)
    for i in range(50):
        lim.allow(f"k{i}", 0.0)
    assert len(lim) == 50
    assert lim.prune(10.0) == 50 and len(lim) == 0
    for i in range(1000):
        lim.allow(f"k{i}", 20.0)
    assert len(lim) <= 100


def test_client_address_believes_only_trusted_proxies() -> None:
    """X-Forwarded-For counts only when the peer is a trusted proxy; the right-most untrusted hop is the
    client; garbage and overlong values are not addresses; IPv6 is normalised."""
    lim = AbuseLimits(LimitSettings(trusted_proxies=("127.0.0.1", "10.0.0.2")))
    assert lim.client_address("127.0.0.1", "203.0.113.7") == "203.0.113.7"
    assert lim.client_address("127.0.0.1", "198.51.100.1, 203.0.113.7, 10.0.0.2") == "203.0.113.7"
    assert lim.client_address("192.0.2.9", "203.0.113.7") == "192.0.2.9"  # not a proxy: header ignored
    assert lim.client_address("127.0.0.1", "not-an-ip") == "127.0.0.1"
    assert lim.client_address("127.0.0.1", "1" * 100) == "127.0.0.1"
    assert lim.client_address("::ffff:0:1", None) == "::ffff:0:1"
    assert lim.client_address(None, None) == "unknown"


def test_exempt_addresses_and_connection_tracking() -> None:
    """Exempt addresses are never limited; a tracked connection's events are limited until untracked."""
    clock = Clock()
    lim = AbuseLimits(LimitSettings(events=Rate(1.0, 2), uploads=Rate(1.0, 1), exempt=("127.0.0.1",)), clock)
    assert all(lim.allow("uploads", "127.0.0.1") for _ in range(100))
    assert lim.allow("uploads", "203.0.113.1") and not lim.allow("uploads", "203.0.113.1")
    lim.track("s1", "203.0.113.1")
    lim.track("s2", "127.0.0.1")
    assert [lim.allow_event("s1") for _ in range(3)] == [True, True, False]
    assert all(lim.allow_event("s2") for _ in range(100))
    lim.untrack("s1")
    assert lim.tracked == 0 and len(lim.events) == 0 and lim.refused == {"uploads": 1, "events": 1}


# -- on a real server -----------------------------------------------------------------------------------


@pytest.fixture
async def tight(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The real server with small limits and loopback not exempt."""
    srv = await start_server(
        tmp_path,
        rate_limit_exempt=(),
        rate_limit_events_per_s=2.0,
        rate_limit_events_burst=10,
        rate_limit_connects_per_s=0.2,
        rate_limit_connects_burst=6,
        rate_limit_uploads_per_s=0.1,
        rate_limit_uploads_burst=3,
        rate_limit_logins_per_s=0.1,
        rate_limit_logins_burst=3,
        rate_limit_visitors_per_s=0.1,
        rate_limit_visitors_burst=4,
    )
    yield srv
    await srv.runner.cleanup()


async def connect(
    url: str, namespace: str, token: str | None, headers: dict[str, str] | None = None
) -> tuple[socketio.AsyncClient | None, Any]:
    """A connected client, or None and the connect error's data."""
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", lambda data=None: errors.append(data), namespace=namespace)
    try:
        await sio.connect(
            url,
            namespaces=[namespace],
            auth={"token": token} if token else None,
            headers=headers or {},
            transports=["websocket"],
            wait_timeout=5,
        )
    except socketio.exceptions.ConnectionError as exc:
        await sio.disconnect()
        return None, errors[0] if errors else str(exc)
    return sio, None


async def test_events_per_connection_are_limited(tight: RunningServer) -> None:
    """A connection gets ``burst`` calls, then ``rate_limited`` acks; another connection of the same
    visitor is not affected; after a pause at the rate the first one is served again."""
    async with aiohttp.ClientSession() as http:
        hub = Hub(tight, http)
        v = await hub.visitor(name="Busy")
        one = await hub.connect("/customer", v["token"])
        two = await hub.connect("/customer", v["token"])
        answers = [await one.call("conversations.list", {}) for _ in range(14)]
        ok = sum(1 for a in answers if a["ok"])
        refused = [a for a in answers if not a["ok"]]
        assert ok == 10 and len(refused) == 4
        assert all(a["error"]["code"] == "rate_limited" and a["error"]["message"] for a in refused)
        assert (await two.call("conversations.list", {}))["ok"] is True
        await asyncio.sleep(0.6)  # one token at 2 per second
        assert (await one.call("conversations.list", {}))["ok"] is True
        figure("rate_events", burst=10, per_s=2, passed=ok, refused=len(refused), code="rate_limited")
        for c in hub.clients:
            await c.disconnect()


async def test_connects_and_handshakes_per_address_are_limited(tight: RunningServer) -> None:
    """Namespace connects past the burst are refused with ``rate_limited`` in the connect error's data;
    Engine.IO handshakes past theirs get HTTP 429 with ``Retry-After``."""
    url = tight.url
    async with aiohttp.ClientSession() as http:
        v = await Hub(tight, http).visitor(name="Reconnecting")
        # one Engine.IO session, namespace connects over and over (a raw websocket)
        async with http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket") as ws:
            await ws.receive(timeout=5)
            answers = []
            for _ in range(8):
                await ws.send_str("40/customer," + json.dumps({"token": v["token"]}))
                msg = (await ws.receive(timeout=5)).data
                answers.append(msg)
                if msg.startswith("40/customer,"):
                    await ws.send_str("41/customer,")
        connected = [a for a in answers if a.startswith("40/customer,")]
        refused = [json.loads(a.split(",", 1)[1]) for a in answers if a.startswith("44/customer,")]
        assert len(connected) == 6 and len(refused) == 2
        assert all(r["data"]["code"] == "rate_limited" for r in refused)
        # new Engine.IO sessions: one was used above; five more pass, then 429
        statuses = []
        retry_after = None
        for _ in range(7):
            async with http.get(f"{url}/socket.io/?EIO=4&transport=polling") as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    body = await resp.json()
                    assert body["error"]["code"] == "rate_limited"
                    retry_after = resp.headers["Retry-After"]
        assert statuses == [200] * 5 + [429] * 2
        assert retry_after is not None and int(retry_after) >= 1
        client, error = await connect(url, "/customer", v["token"])
        assert client is None  # the python client cannot even open its transport now
        figure(
            "rate_connects",
            burst=6,
            namespace_connects_passed=len(connected),
            namespace_connects_refused=len(refused),
            handshakes=statuses,
            retry_after_s=retry_after,
        )


async def test_distinct_clients_behind_a_trusted_proxy_have_their_own_budget(tmp_path: Path) -> None:
    """With the default exemptions (loopback) and loopback as trusted proxy, the address named by
    ``X-Forwarded-For`` is limited, each address separately, and loopback itself is not."""
    srv = await start_server(tmp_path, rate_limit_visitors_per_s=0.1, rate_limit_visitors_burst=2)
    try:
        async with aiohttp.ClientSession() as http:

            async def create(xff: str | None) -> int:
                headers = {"X-Forwarded-For": xff} if xff else {}
                async with http.post(f"{srv.url}/api/visitors", json={}, headers=headers) as resp:
                    return resp.status

            first = [await create("203.0.113.7") for _ in range(3)]
            second = [await create("198.51.100.1, 203.0.113.8") for _ in range(3)]
            local = [await create(None) for _ in range(5)]
        assert first == [201, 201, 429] and second == [201, 201, 429] and local == [201] * 5
    finally:
        await srv.runner.cleanup()


async def post_upload(http: aiohttp.ClientSession, url: str, token: str, cid: str) -> int:
    form = aiohttp.FormData()
    form.add_field("conversation_id", cid)
    form.add_field("file", b"hello", filename="a.txt", content_type="text/plain")
    async with http.post(f"{url}/api/uploads", data=form, headers={"Authorization": f"Bearer {token}"}) as r:
        if r.status == 429:
            body = await r.json()
            assert body["error"]["code"] == "rate_limited" and "Retry-After" in r.headers
        return r.status


async def test_uploads_logins_and_visitors_per_address_are_limited(tight: RunningServer) -> None:
    """Uploads, logins (right or wrong password) and visitor creation each get their burst, then 429
    ``rate_limited`` with ``Retry-After``."""
    url = tight.url
    async with aiohttp.ClientSession() as http:
        hub = Hub(tight, http)
        v = await hub.visitor(name="Uploader")
        customer = await hub.connect("/customer", v["token"])
        cid = (await customer.ok("conversation.start", {"body": "files"}))["conversation"]["id"]
        uploads = [await post_upload(http, url, v["token"], cid) for _ in range(5)]
        logins = []
        for password in ("demo", "wrong", "wrong", "demo", "demo"):
            async with http.post(
                f"{url}/api/auth/login", json={"email": "bob@example.com", "password": password}
            ) as r:
                logins.append(r.status)
        visitors = []
        for _ in range(5):
            async with http.post(f"{url}/api/visitors", json={}) as r:
                visitors.append(r.status)
        await customer.disconnect()
    assert uploads == [201, 201, 201, 429, 429]
    assert logins == [200, 401, 401, 429, 429]
    assert visitors == [201, 201, 201, 429, 429]  # one of the four was made by hub.visitor above
    figure("rate_rest", uploads=uploads, logins=logins, visitors=visitors)


async def test_normal_use_passes_under_the_default_limits(tmp_path: Path) -> None:
    """With the default limits and loopback not exempt: two agents and ten customers log in, connect,
    chat (a hundred messages), upload and sync as the product does, and nothing is refused."""
    srv = await start_server(tmp_path, **NO_EXEMPT)
    try:
        async with aiohttp.ClientSession() as http:
            hub = Hub(srv, http)
            alice, bob = await hub.agent("alice@example.com"), await hub.agent("bob@example.com")
            customers = [await hub.customer(name=f"C{i}") for i in range(10)]
            calls = 0
            for i, c in enumerate(customers):
                conv = (await c.ok("conversation.start", {"body": "hello"}))["conversation"]
                agent = alice if i % 2 else bob
                await agent.ok("conversation.assign", {"conversation_id": conv["id"]})
                for j in range(5):
                    await c.ok("typing", {"conversation_id": conv["id"], "typing": True})
                    await c.ok(
                        "message.send",
                        {
                            "conversation_id": conv["id"],
                            "client_id": f"c{i}-{j}",
                            "kind": "text",
                            "body": "question",
                        },
                    )
                    await agent.ok(
                        "message.send",
                        {
                            "conversation_id": conv["id"],
                            "client_id": f"a{i}-{j}",
                            "kind": "text",
                            "body": "answer",
                        },
                    )
                    await c.ok("message.read", {"conversation_id": conv["id"], "seq": 1})
                    calls += 4
                assert await post_upload(http, srv.url, c.token, conv["id"]) == 201  # type: ignore[attr-defined]
                await c.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
                await agent.ok("conversations.counts", {})
                calls += 3
            limits = srv.app[LIMITS]
            assert limits.refused == {}
            figure(
                "rate_normal_use", agents=2, customers=10, calls=calls, refused=sum(limits.refused.values())
            )
            for c in hub.clients:
                await c.disconnect()
    finally:
        await srv.runner.cleanup()


# -- origin, CSP, token expiry --------------------------------------------------------------------------


async def test_a_foreign_origin_is_refused_at_connect(tmp_path: Path) -> None:
    """With ``allowed_origins`` set, a Socket.IO connection from another Origin is refused before any
    namespace; the allowed origin and a client sending no Origin (not a browser) connect."""
    srv = await start_server(tmp_path, allowed_origins=("https://shop.example",))
    try:
        async with aiohttp.ClientSession() as http:
            v = await Hub(srv, http).visitor(name="O")
            evil, error = await connect(srv.url, "/customer", v["token"], {"Origin": "https://evil.example"})
            assert evil is None
            good, _ = await connect(srv.url, "/customer", v["token"], {"Origin": "https://shop.example"})
            plain, _ = await connect(srv.url, "/customer", v["token"])
            assert good is not None and plain is not None
            await good.disconnect()
            await plain.disconnect()
            async with http.get(
                f"{srv.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": "https://evil.example"}
            ) as resp:
                assert resp.status == 400
        figure("origin", foreign="refused", allowed="connected", no_origin="connected")
    finally:
        await srv.runner.cleanup()


async def test_pages_carry_a_strict_csp(server: RunningServer) -> None:
    """The console and the demo page carry the CSP (``tests/functional/test_http_pages.py`` pins the
    exact value): scripts only from the origin (no ``unsafe-inline``, no ``unsafe-eval``), no plugins,
    no ``<base>``; and the built pages have no inline script for it to forbid."""
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";") if d.strip())
    script_src = directives.get("script-src", directives["default-src"])
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert directives["object-src"] == "'none'" and directives["base-uri"] == "'none'"
    async with aiohttp.ClientSession() as http:
        for path in ("/agent/", "/demo"):
            async with http.get(server.url + path) as resp:
                html = await resp.text()
                if resp.status == 503:
                    pytest.skip("web/dist is not built (make web)")
                assert resp.headers["Content-Security-Policy"] == CSP
                inline = [s for s in re.findall(r"<script\b([^>]*)>", html) if "src=" not in s]
                assert inline == [], (path, inline)
                assert not re.search(r"\son[a-z]+\s*=", html), path


async def test_visitor_tokens_expire_and_are_checked_again_on_reconnect(tmp_path: Path) -> None:
    """A visitor token connects while valid; once expired, a reconnect is refused with ``unauthorized``
    and REST calls get 401."""
    srv = await start_server(tmp_path, visitor_token_ttl_s=2)
    try:
        async with aiohttp.ClientSession() as http:
            v = await Hub(srv, http).visitor(name="Short")
            issued = time.time()
            first, _ = await connect(srv.url, "/customer", v["token"])
            assert first is not None
            await first.disconnect()
            await asyncio.sleep(max(0.0, issued + 3.1 - time.time()))  # exp is whole seconds
            again, error = await connect(srv.url, "/customer", v["token"])
            assert again is None and error["data"]["code"] == "unauthorized", error
            async with http.get(f"{srv.url}/api/me", headers={"Authorization": f"Bearer {v['token']}"}) as r:
                assert r.status == 401
        figure("token_expiry", ttl_s=2, reconnect_after_expiry=error["data"]["code"], rest_after_expiry=401)
    finally:
        await srv.runner.cleanup()
