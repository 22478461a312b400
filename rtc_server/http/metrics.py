"""``GET /metrics`` in the Prometheus text exposition format (0.0.4), written by hand.

Counters of the hub (``services.metrics``), HTTP requests per route pattern (counted by a middleware
here, so label values stay bounded), calls refused by the abuse limits, connected sockets, the store's
answer, uptime and memory.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from aiohttp import web

from rtc_server.app import CONFIG, SERVICES, STORE
from rtc_server.http import sockets
from rtc_server.http.ratelimit import LIMITS, REFUSAL_KINDS
from signaling.domain.errors import DomainError

if TYPE_CHECKING:
    from signaling.storage.sqlite_batch import Latencies

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Upper bounds (seconds) of the HTTP latency histogram.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_PING_TIMEOUT_S = 2.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpMetrics:
    """Per-node HTTP counters and the process start time (no module-level state)."""

    def __init__(self) -> None:
        self.started_wall = time.time()
        self.started = time.monotonic()
        self.requests: Counter[tuple[str, str, str]] = Counter()
        """``(method, route, status)`` -> count."""
        self.latency_buckets: Counter[tuple[str, float]] = Counter()
        self.latency_sum: defaultdict[str, float] = defaultdict(float)
        self.latency_count: Counter[str] = Counter()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, str(status))] += 1
        for bound in BUCKETS:
            if seconds <= bound:
                self.latency_buckets[(route, bound)] += 1
        self.latency_sum[route] += seconds
        self.latency_count[route] += 1


HTTP_METRICS = web.AppKey("http_metrics", HttpMetrics)


def _route_label(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "unmatched"
    canonical = info.route.resource.canonical
    if canonical.startswith("/socket.io"):
        return "/socket.io/"
    return canonical


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by method, route pattern and status, with its duration."""
    start = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except DomainError as exc:
        status = exc.http_status
        raise
    finally:
        request.app[HTTP_METRICS].observe(
            request.method, _route_label(request), status, time.monotonic() - start
        )


def escape(value: str) -> str:
    """A label value escaped for the exposition format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape(str(v))}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Exposition:
    """Collects families and renders them (``# HELP``, ``# TYPE``, then samples)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[dict[str, str], float]],
        suffix_samples: bool = False,
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            sample_name = name
            if suffix_samples:
                sample_name = name + labels.pop("__suffix__", "")
            self.lines.append(f"{sample_name}{_labels(**labels)} {_num(value)}")

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def process_rss_bytes() -> int:
    """Resident memory now (``/proc/self/statm``), or the peak from ``getrusage`` elsewhere."""
    rss = _statm_rss_bytes("self")
    if rss is not None:
        return rss
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _statm_rss_bytes(pid: int | str) -> int | None:
    """Resident memory of process ``pid`` from ``/proc/<pid>/statm`` (None without it)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _store_families(out: Exposition, store: object) -> None:
    """The embedded store's writer: its commits (group commit: one fsync each), the operations they
    carried, whether its WAL writes are combined (and how many writes became how many calls), and the
    writer process's memory. Nothing for a store without them (Redis)."""
    stats = getattr(store, "stats", None)
    if stats is None:
        return
    out.family(
        "rtc_store_commits_total",
        "counter",
        "Transactions the SQLite store's writer committed (one fsync each; many operations share one).",
        [({}, stats.batches)],
    )
    out.family(
        "rtc_store_operations_total",
        "counter",
        "Operations the SQLite store's writer ran (reads and writes, failed ones included).",
        [({}, stats.operations)],
    )
    out.family(
        "rtc_store_wal_writes_combined",
        "gauge",
        "1 when the SQLite writer combines its WAL writes (the _walvfs C extension is built and in use).",
        [({}, int(stats.wal_combined))],
    )
    if stats.wal_combined:
        out.family(
            "rtc_store_wal_writes_total",
            "counter",
            "WAL writes SQLite made (two a page: the frame's header, then the page).",
            [({}, stats.wal_writes)],
        )
        out.family(
            "rtc_store_wal_write_calls_total",
            "counter",
            "Write system calls those WAL writes took once combined (one or a few a commit).",
            [({}, stats.wal_write_calls)],
        )
    _latency_family(
        out,
        "rtc_store_commit_duration_seconds",
        "How long the SQLite writer's commits took: the transaction written to the WAL and fsynced.",
        stats.commits,
    )
    _latency_family(
        out,
        "rtc_store_operation_duration_seconds",
        "How long operations spent with the SQLite writer, from being handed over to their batch's outcome:"
        " the batches before theirs, then their own and its commit.",
        stats.waits,
    )
    writes = getattr(store, "writes", None)
    if writes is not None:
        _latency_family(
            out,
            "rtc_store_write_duration_seconds",
            "How long writes to the SQLite store took as the server saw them, from submit to outcome: the"
            " wait for the writer, its batch and commit (what a message's ack waits for).",
            writes,
        )
    pid = getattr(store, "writer_pid", None)
    rss = _statm_rss_bytes(pid) if pid is not None else None
    if rss is not None:
        out.family(
            "rtc_store_writer_resident_memory_bytes",
            "gauge",
            "Resident memory of the SQLite store's writer process.",
            [({}, rss)],
        )


def _latency_family(out: Exposition, name: str, help_text: str, latencies: Latencies) -> None:
    """One histogram family (no labels) from the store's :class:`Latencies`."""
    samples: list[tuple[dict[str, str], float]] = [
        ({"__suffix__": "_bucket", "le": _num(bound)}, count) for bound, count in latencies.cumulative()
    ]
    samples.append(({"__suffix__": "_sum"}, round(latencies.total, 6)))
    samples.append(({"__suffix__": "_count"}, sum(latencies.counts)))
    out.family(name, "histogram", help_text, samples, suffix_samples=True)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``."""
    app = request.app
    services = app[SERVICES]
    http = app[HTTP_METRICS]
    out = Exposition()
    out.family(
        "rtc_build_info",
        "gauge",
        "Build and node information.",
        [
            (
                {
                    "version": "0.1.0",
                    "node": app[CONFIG].node_id,
                    "python": ".".join(map(str, sys.version_info[:3])),
                },
                1,
            )
        ],
    )
    out.family(
        "rtc_uptime_seconds",
        "gauge",
        "Seconds since this node started.",
        [({}, round(time.monotonic() - http.started, 3))],
    )
    out.family(
        "rtc_process_start_time_seconds",
        "gauge",
        "Start time of the process since the epoch.",
        [({}, round(http.started_wall, 3))],
    )
    out.family(
        "rtc_process_resident_memory_bytes",
        "gauge",
        "Resident memory of the process.",
        [({}, process_rss_bytes())],
    )
    out.family(
        "rtc_sockets_connected",
        "gauge",
        "Authenticated Socket.IO connections on this node.",
        [({"namespace": ns}, n) for ns, n in sockets.connected_counts(app).items()],
    )
    out.family(
        "rtc_engineio_sessions",
        "gauge",
        "Engine.IO sessions on this node by the Socket.IO parser their client speaks (json, msgpack).",
        [({"parser": parser}, n) for parser, n in sockets.parser_counts(app).items()],
    )
    events = sorted(services.metrics.events.items())
    out.family(
        "rtc_hub_events_total",
        "counter",
        "Socket.IO events handled, by namespace and event.",
        [({"namespace": ns, "event": ev}, n) for (ns, ev), n in events],
    )
    out.family(
        "rtc_hub_errors_total",
        "counter",
        "Socket.IO events that failed with an internal error.",
        [({"event": ev}, n) for ev, n in sorted(services.metrics.errors.items())],
    )
    limits = app.get(LIMITS)
    refused = limits.refused if limits is not None else {}
    out.family(
        "rtc_rate_limited_total",
        "counter",
        "Calls refused by the abuse limits (rate_limited), by kind (Socket.IO namespace connects, "
        "Socket.IO events, HTTP requests answered 429) and limit.",
        [
            ({"kind": kind, "limit": limit}, refused.get(limit, 0))
            for limit, kind in sorted(REFUSAL_KINDS.items())
        ],
    )
    up, ping_s = await _ping(app)
    out.family("rtc_store_up", "gauge", "1 when the store answered a trivial query.", [({}, 1 if up else 0)])
    out.family(
        "rtc_store_ping_seconds",
        "gauge",
        "How long the store took to answer the ping.",
        [({}, round(ping_s, 6))],
    )
    _store_families(out, app[STORE])
    try:
        online = len(await app[STORE].presence_online()) if up else 0
    except Exception:
        online = 0
    out.family(
        "rtc_agents_online", "gauge", "Agents with at least one live socket on any node.", [({}, online)]
    )
    out.family(
        "rtc_http_requests_total",
        "counter",
        "HTTP requests by method, route pattern and status.",
        [({"method": m, "route": r, "status": s}, n) for (m, r, s), n in sorted(http.requests.items())],
    )
    samples: list[tuple[dict[str, str], float]] = []
    for route in sorted(http.latency_count):
        for bound in BUCKETS:
            samples.append(
                (
                    {"__suffix__": "_bucket", "route": route, "le": _num(bound)},
                    http.latency_buckets[(route, bound)],
                )
            )
        samples.append(({"__suffix__": "_bucket", "route": route, "le": "+Inf"}, http.latency_count[route]))
        samples.append(({"__suffix__": "_sum", "route": route}, round(http.latency_sum[route], 6)))
        samples.append(({"__suffix__": "_count", "route": route}, http.latency_count[route]))
    out.family(
        "rtc_http_request_duration_seconds",
        "histogram",
        "HTTP request durations by route pattern.",
        samples,
        suffix_samples=True,
    )
    return web.Response(
        body=out.render().encode(), headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}
    )


async def _ping(app: web.Application) -> tuple[bool, float]:
    start = time.monotonic()
    try:
        up = bool(await asyncio.wait_for(app[STORE].ping(), STORE_PING_TIMEOUT_S))
    except Exception:
        up = False
    return up, time.monotonic() - start


def setup(app: web.Application) -> None:
    """Register ``/metrics`` and the HTTP counting middleware."""
    app[HTTP_METRICS] = HttpMetrics()
    app.middlewares.append(metrics_middleware)
    app.router.add_get("/metrics", metrics)
