"""A Socket.IO connect the server refuses with ``rate_limited`` is retried by the web client
(``web/src/shared/hub.js``) after an exponential back-off with jitter, capped, while the console shows
"Reconnecting…"; once the address's connect budget refills, the console connects again.

socket.io-client never retries a namespace connect the server refused, so before the fix the console
stayed offline for good. The server is the real one with a tiny connect budget and loopback not exempt;
the budget is drained by a raw Engine.IO websocket of the test (namespace connects per address share one
bucket), then the console is cut (reconnect refused) and reloaded (first connect refused).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from rtc_server.http.ratelimit import LIMITS
from tests.browser.conftest import agent_login, new_page, wait_until
from tests.conftest import RunningServer, start_server

pytestmark = pytest.mark.browser

#: One namespace connect every 5 s per address, at most 20 at once (handshakes have their own bucket).
PER_S = 0.2
BURST = 20

RECORD_STATUS = """hub => { window.__statuses = []; hub.on("status", (s) => window.__statuses.push(s)); }"""


@pytest.fixture
async def tight(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The real server with a tiny connect budget and loopback not exempt."""
    srv = await start_server(
        tmp_path,
        rate_limit_exempt=(),
        rate_limit_connects_per_s=PER_S,
        rate_limit_connects_burst=BURST,
    )
    yield srv
    await srv.runner.cleanup()


async def drain_connects(url: str, token: str) -> int:
    """Spend this address's namespace-connect budget over one raw Engine.IO websocket (connect and
    disconnect ``/customer`` until the server refuses); returns how many refusals that took (1)."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket") as ws,
    ):
        await ws.receive(timeout=5)  # the Engine.IO open packet
        while True:
            await ws.send_str("40/customer," + json.dumps({"token": token}))
            while True:
                msg = (await ws.receive(timeout=5)).data
                if msg == "2":  # Engine.IO ping
                    await ws.send_str("3")
                    continue
                break
            if msg.startswith("44/customer,"):
                assert json.loads(msg.split(",", 1)[1])["data"]["code"] == "rate_limited"
                return 1
            assert msg.startswith("40/customer,"), msg
            await ws.send_str("41/customer,")


def refused_connects(server: RunningServer) -> int:
    return int(server.app[LIMITS].refused["connects"])


async def statuses(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await page.evaluate("() => window.__statuses || []")
    return result


def assert_backoff(delays: list[float]) -> None:
    """The k-th retry waits between half and all of min(30 s, 1 s * 2^k): exponential, jittered, capped."""
    assert delays, "no retry was scheduled"
    for k, delay in enumerate(delays):
        ceiling = min(30000.0, 1000.0 * 2**k)
        assert ceiling / 2 <= delay <= ceiling, (k, delays)


async def test_rate_limited_connects_are_retried_with_backoff(tight: RunningServer, browser: Browser) -> None:
    """Cut while the connect budget is spent: the reconnect is refused ``rate_limited``, the console
    says "Reconnecting…", retries a few times with growing jittered delays (no hammering) and is back
    online once the budget refills. Reloaded while the budget is spent: the very first connect is refused,
    the console says "Reconnecting…" instead of staying silently offline, then connects."""
    base = tight.url
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/api/visitors", json={"name": "Drain"}) as r,
    ):
        assert r.status == 201
        visitor_token = (await r.json())["token"]
    ctx, page, watch = await new_page(browser)
    await agent_login(page, base)
    hub = await page.evaluate_handle("window.__console.hub")
    await page.evaluate(RECORD_STATUS, hub)

    # 1. a reconnect refused with rate_limited
    drainer_refusals = await drain_connects(base, visitor_token)
    before = refused_connects(tight)
    await page.evaluate("hub => hub.socket.io.engine.close()", hub)  # a cut: socket.io reconnects by itself
    await page.wait_for_selector(".banner--offline >> text=Reconnecting…")
    await wait_until(page, "() => (window.__statuses || []).some((s) => s.error === 'rate_limited')")
    await wait_until(page, "() => window.__console.hub.connected", timeout=40)
    await page.wait_for_selector(".banner--online >> text=Back online")
    refused = [s for s in await statuses(page) if s.get("error") == "rate_limited"]
    client_refusals = refused_connects(tight) - before
    assert drainer_refusals == 1 and 1 <= client_refusals == len(refused)
    assert client_refusals <= 6, f"{client_refusals} refused connects: the client hammers"
    assert all(s["retrying"] for s in refused)
    assert_backoff([s["retryInMs"] for s in refused])
    assert await page.evaluate("() => window.__console.hub.rateLimitedAttempts") == 0

    # the console works again
    await wait_until(page, "() => document.querySelectorAll('.console .section').length > 0")

    # 2. the first connect after a reload refused with rate_limited
    await drain_connects(base, visitor_token)
    before = refused_connects(tight)
    await page.reload()
    await page.wait_for_selector(".banner--offline >> text=Reconnecting…", timeout=15000)
    assert refused_connects(tight) - before >= 1
    await wait_until(page, "() => !!(window.__console && window.__console.hub.connected)", timeout=40)
    await page.wait_for_selector(".banner--offline", state="hidden")
    assert refused_connects(tight) - before <= 6
    assert watch.errors == []
    await ctx.close()
