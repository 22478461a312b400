"""The abuse limits are visible to API users and operators: the OpenAPI document describes the 429
``rate_limited`` answer (with ``Retry-After``) on exactly the routes the rate-limit middleware may refuse,
and ``/metrics`` exports how many calls each limit refused, by kind (Socket.IO namespace ``connects``,
Socket.IO ``events``, ``http`` requests answered 429).

Real server, limits made small, loopback not exempt; every refusal is a real one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from rtc_server.http.ratelimit import LIMITED_ROUTES
from tests.conftest import Hub, RunningServer, start_server
from tests.functional.test_http_ops import scrape
from tests.reliability.conftest import figure

KINDS = ("connects", "events", "http")


@pytest.fixture
async def tight(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """Tiny budgets (nothing refills during a test), loopback not exempt."""
    srv = await start_server(
        tmp_path,
        rate_limit_exempt=(),
        rate_limit_events_per_s=0.01,
        rate_limit_events_burst=3,
        rate_limit_connects_per_s=0.01,
        rate_limit_connects_burst=3,
        rate_limit_uploads_per_s=0.01,
        rate_limit_uploads_burst=1,
        rate_limit_logins_per_s=0.01,
        rate_limit_logins_burst=1,
        rate_limit_visitors_per_s=0.01,
        rate_limit_visitors_burst=2,
    )
    yield srv
    await srv.runner.cleanup()


async def test_openapi_documents_429_where_the_middleware_answers_it(tight: RunningServer) -> None:
    """Every rate-limited route documents 429 with ``Retry-After`` and the ``rate_limited`` envelope, no
    other route claims it, and the real answer of each (past its burst) matches the document."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{tight.url}/api/openapi.json") as resp:
            doc = await resp.json()
        with_429 = {
            (method.upper(), path)
            for path, ops in doc["paths"].items()
            for method, op in ops.items()
            if "429" in op["responses"]
        }
        assert with_429 == set(LIMITED_ROUTES)
        schema = doc["components"]["schemas"]["RateLimitedError"]
        assert schema["properties"]["error"]["properties"]["code"] == {"const": "rate_limited"}
        assert schema["properties"]["error"]["properties"]["details"]["required"] == ["retry_after_s"]
        statuses: dict[str, list[int]] = {}
        for method, path in sorted(LIMITED_ROUTES):
            answer = doc["paths"][path][method.lower()]["responses"]["429"]
            assert answer["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/RateLimitedError"
            }
            assert answer["headers"]["Retry-After"]["schema"]["type"] == "integer"
            seen = []
            for _ in range(3):  # the middleware counts before the handler looks at the body
                async with http.request(method, tight.url + path, data=b"{}") as r:
                    seen.append(r.status)
                    if r.status == 429:
                        body = await r.json()
                        assert body["ok"] is False and body["error"]["code"] == "rate_limited"
                        retry = body["error"]["details"]["retry_after_s"]
                        assert isinstance(retry, int) and retry >= 1
                        assert r.headers["Retry-After"] == str(retry)
            assert seen[-1] == 429, (path, seen)
            documented = {int(code) for code in doc["paths"][path][method.lower()]["responses"]}
            assert set(seen) <= documented, (path, seen, documented)
            statuses[path] = seen
    figure("rate_openapi", routes_with_429=len(with_429), statuses=statuses)


def refused(samples: dict[str, float]) -> dict[str, float]:
    """``rtc_rate_limited_total`` summed by ``kind``."""
    out = dict.fromkeys(KINDS, 0.0)
    for key, value in samples.items():
        if key.startswith("rtc_rate_limited_total{"):
            kind = key.split('kind="', 1)[1].split('"', 1)[0]
            out[kind] += value
    return out


async def test_metrics_export_refusals_per_kind(tight: RunningServer) -> None:
    """Before any refusal every kind is exported at 0; one refused namespace connect, two refused events
    and one refused visitor creation (HTTP 429) show up as exactly that, each under its kind."""
    async with aiohttp.ClientSession() as http:
        hub = Hub(tight, http)
        _, samples = await scrape(hub)
        assert refused(samples) == {"connects": 0, "events": 0, "http": 0}
        assert samples['rtc_rate_limited_total{kind="http",limit="uploads"}'] == 0

        v = await hub.visitor(name="Counted")  # visitors: 1 of 2
        customer = await hub.connect("/customer", v["token"])  # connects: 1 of 3
        answers = [(await customer.call("conversations.list", {}))["ok"] for _ in range(5)]
        assert answers == [True, True, True, False, False]
        # namespace connects over one raw Engine.IO session until the server refuses one
        async with http.ws_connect(f"{tight.url}/socket.io/?EIO=4&transport=websocket") as ws:
            await ws.receive(timeout=5)
            results = []
            for _ in range(3):
                await ws.send_str("40/customer," + json.dumps({"token": v["token"]}))
                results.append(str((await ws.receive(timeout=5)).data)[:13])
                if results[-1].startswith("40/"):
                    await ws.send_str("41/customer,")
        assert results == ["40/customer,{", "40/customer,{", "44/customer,{"]
        statuses = []
        for _ in range(2):
            async with http.post(f"{tight.url}/api/visitors", json={}) as r:
                statuses.append(r.status)
        assert statuses == [201, 429]
        _, samples = await scrape(hub)
        counts = refused(samples)
        assert counts == {"connects": 1, "events": 2, "http": 1}, counts
        assert samples['rtc_rate_limited_total{kind="http",limit="visitors"}'] == 1
        assert samples['rtc_rate_limited_total{kind="events",limit="events"}'] == 2
        assert samples['rtc_rate_limited_total{kind="connects",limit="connects"}'] == 1
        await customer.disconnect()
    figure("rate_metrics", **{k: int(v) for k, v in counts.items()})
