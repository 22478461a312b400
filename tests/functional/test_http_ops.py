"""Operations endpoints: ``/metrics`` (Prometheus text format), ``/api/openapi.json`` (OpenAPI 3.1) and the
CORS policy of the widget's REST calls.

Pins: every metrics line is valid exposition syntax with HELP/TYPE per family, and the values follow
reality (connected sockets, hub events, store up, memory); the OpenAPI document describes every route
registered on the app (pages and ``/socket.io/`` aside) and nothing that does not exist, every ``$ref``
resolves, and errors use the ``{ok: false, error: {code, message}}`` envelope.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp

from rtc_server.http.pages import PAGE_PATHS
from tests.conftest import Hub, RunningServer, start_server

SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})?'
    r" (?P<value>[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\+Inf|-Inf|NaN))$"
)


async def scrape(hub: Hub) -> tuple[str, dict[str, float]]:
    async with hub.http.get(f"{hub.server.url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await resp.text()
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP ") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"not exposition syntax: {line!r}"
        family = re.sub(r"_(bucket|sum|count)$", "", match["name"])
        assert match["name"] in typed or family in typed, f"sample before its TYPE: {line!r}"
        samples[line.rsplit(" ", 1)[0]] = float(match["value"].replace("+Inf", "inf"))
    return text, samples


async def test_metrics_exposition(hub: Hub) -> None:
    """Sockets per namespace, hub events by name, HTTP requests by route, store up and its writer's
    commits, memory and latencies, uptime, RSS."""
    alice = await hub.agent("alice@example.com")
    customer = await hub.customer(name="M", serializer="msgpack")
    await customer.ok("conversation.start", {"body": "hello"})
    await alice.ok("conversations.list", {"section": "unassigned"})
    async with hub.http.get(f"{hub.server.url}/api/agents") as resp:
        assert resp.status == 401
    text, samples = await scrape(hub)
    assert samples['rtc_sockets_connected{namespace="/agent"}'] == 1
    assert samples['rtc_sockets_connected{namespace="/customer"}'] == 1
    assert samples['rtc_engineio_sessions{parser="json"}'] == 1
    assert samples['rtc_engineio_sessions{parser="msgpack"}'] == 1
    assert samples['rtc_hub_events_total{namespace="customer",event="conversation.start"}'] == 1
    assert samples['rtc_hub_events_total{namespace="agent",event="conversations.list"}'] == 1
    assert samples['rtc_http_requests_total{method="POST",route="/api/auth/login",status="200"}'] >= 1
    assert samples['rtc_http_requests_total{method="GET",route="/api/agents",status="401"}'] == 1
    assert samples["rtc_store_up"] == 1
    assert samples["rtc_uptime_seconds"] >= 0
    assert samples["rtc_process_resident_memory_bytes"] > 1_000_000
    assert samples["rtc_agents_online"] == 1
    assert samples["rtc_store_operations_total"] >= samples["rtc_store_commits_total"] > 0
    assert samples["rtc_store_writer_resident_memory_bytes"] > 1_000_000  # the writer process
    assert samples["rtc_store_wal_writes_combined"] == 1  # the C extension is built (make system-deps)
    # two WAL writes a page, far fewer system calls: one or a few a commit
    assert 0 < samples["rtc_store_wal_write_calls_total"] < samples["rtc_store_wal_writes_total"]
    # the store's latencies: every commit the writer process reported, and every write this process made
    commits = histogram(samples, "rtc_store_commit_duration_seconds")
    assert 0 < commits <= samples["rtc_store_commits_total"]
    assert histogram(samples, "rtc_store_write_duration_seconds") >= 3  # visitor, conversation, message
    assert histogram(samples, "rtc_store_operation_duration_seconds") >= commits  # one or more a commit
    assert "# TYPE rtc_store_commit_duration_seconds histogram" in text
    bucket = 'rtc_http_request_duration_seconds_bucket{route="/api/auth/login",le="+Inf"}'
    assert samples[bucket] == samples['rtc_http_request_duration_seconds_count{route="/api/auth/login"}']
    assert "# TYPE rtc_http_request_duration_seconds histogram" in text
    await alice.disconnect()
    for _ in range(100):
        _, samples = await scrape(hub)
        if samples['rtc_sockets_connected{namespace="/agent"}'] == 0:
            break
    assert samples['rtc_sockets_connected{namespace="/agent"}'] == 0


def histogram(samples: dict[str, float], name: str) -> float:
    """Check the unlabelled histogram ``name`` (buckets in order of their bounds, never decreasing, up to
    ``+Inf`` which equals ``_count``, a positive ``_sum`` when anything was observed); its count."""
    buckets = [
        (float(key.split('le="')[1][:-2].replace("+Inf", "inf")), value)
        for key, value in samples.items()
        if key.startswith(name + "_bucket{")
    ]
    assert buckets, f"no {name} buckets"
    bounds = [bound for bound, _ in buckets]
    assert bounds == sorted(bounds) and bounds[-1] == float("inf")
    counts = [count for _, count in buckets]
    assert counts == sorted(counts), f"{name}: buckets are cumulative"
    assert counts[-1] == samples[name + "_count"]
    assert (samples[name + "_sum"] > 0) == (counts[-1] > 0)
    return counts[-1]


def app_routes(server: RunningServer) -> set[tuple[str, str]]:
    """``(method, path)`` of every API route on the app: no HEAD (implied by GET), pages, Socket.IO."""
    out = set()
    for route in server.app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*"):
            continue
        path = resource.canonical
        if path in PAGE_PATHS or path.startswith("/socket.io"):
            continue
        out.add((route.method.lower(), path))
    return out


def resolve(doc: dict[str, Any], node: Any, seen: list[str]) -> None:
    if isinstance(node, dict):
        if "$ref" in node:
            target = node["$ref"]
            assert target.startswith("#/components/schemas/"), target
            assert target.rsplit("/", 1)[1] in doc["components"]["schemas"], f"dangling {target}"
            seen.append(target)
        for value in node.values():
            resolve(doc, value, seen)
    elif isinstance(node, list):
        for value in node:
            resolve(doc, value, seen)


async def test_openapi_covers_every_route(hub: Hub, server: RunningServer) -> None:
    """Each (method, path) the app serves is in the document, and each documented one exists."""
    async with hub.http.get(f"{server.url}/api/openapi.json") as resp:
        assert resp.status == 200
        doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    routes = app_routes(server)
    assert routes - documented == set(), f"routes missing from the OpenAPI document: {routes - documented}"
    assert documented - routes == set(), f"documented routes that do not exist: {documented - routes}"
    assert len(routes) > 30


async def test_openapi_schemas_and_errors(hub: Hub) -> None:
    """Every ``$ref`` resolves; every operation has responses, a summary and, when it needs a token, a
    401 with the error envelope; path parameters are declared."""
    async with hub.http.get(f"{hub.server.url}/api/openapi.json") as resp:
        doc = await resp.json()
    seen: list[str] = []
    resolve(doc, doc, seen)
    assert seen
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["ok", "error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
    for path, ops in doc["paths"].items():
        params = set(re.findall(r"\{(\w+)\}", path))
        for method, op in ops.items():
            assert op["summary"] and op["responses"], (method, path)
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == params, (method, path)
            if op["security"]:
                assert op["responses"]["401"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }
            if method in ("post", "patch") and path not in ("/api/visitors",):
                assert "requestBody" in op, (method, path)


async def test_cors_respects_allowed_origins(tmp_path: Path) -> None:
    """With ``allowed_origins`` set, a listed origin is echoed on preflight and answer; another origin
    gets no ``Access-Control-Allow-Origin`` and its preflight is ``forbidden``."""
    srv = await start_server(tmp_path, allowed_origins=("https://shop.example",))
    try:
        async with aiohttp.ClientSession() as http:
            for origin, allowed in (("https://shop.example", True), ("https://evil.example", False)):
                preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
                async with http.options(f"{srv.url}/api/visitors", headers=preflight) as resp:
                    assert resp.status == (204 if allowed else 403)
                    assert (resp.headers.get("Access-Control-Allow-Origin") == origin) is allowed
                    assert "Access-Control-Allow-Credentials" not in resp.headers
                async with http.post(f"{srv.url}/api/visitors", json={}, headers={"Origin": origin}) as resp:
                    assert resp.status == 201
                    assert (resp.headers.get("Access-Control-Allow-Origin") == origin) is allowed
    finally:
        await srv.runner.cleanup()
