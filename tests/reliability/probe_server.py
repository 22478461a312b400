"""The real server (``rtc_server.app.create_app``, demo workspace, media on loopback) with one extra
read-only route, ``GET /__probe``, so that the leak and malformed-input tests can read what only the
server process knows: its asyncio tasks, media sessions and peers, Engine.IO and hub sockets, rate-limit
buckets, threads, open file descriptors and RSS.

Run as ``python -m tests.reliability.probe_server --port P --data-dir D [--config JSON]`` (JSON:
:class:`rtc_server.config.Config` overrides).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from rtc_server.app import MEDIA, SIO, create_app
from rtc_server.config import Config
from rtc_server.http.ratelimit import LIMITS
from rtc_server.http.sockets import connected_counts
from tests.reliability.proc import SECRET, fd_count, rss_kb


def _task_kind(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", type(coro).__name__)


def probe_state(app: web.Application) -> dict[str, Any]:
    """What the probe reports (after a full garbage collection)."""
    from aiortc import RTCPeerConnection

    gc.collect()
    media = app[MEDIA]
    sessions = dict(getattr(media, "sessions", {}))
    tasks = [t for t in asyncio.all_tasks() if not t.done()]
    limits = app[LIMITS]
    return {
        "pid": os.getpid(),
        "rss_kb": rss_kb(os.getpid()),
        "fds": fd_count(os.getpid()),
        "threads": threading.active_count(),
        "tasks": len(tasks),
        "task_kinds": dict(Counter(_task_kind(t) for t in tasks).most_common(12)),
        "media_sessions": len(sessions),
        "media_peers": sum(len(getattr(s, "peers", {})) for s in sessions.values()),
        "peer_connections": sum(1 for o in gc.get_objects() if isinstance(o, RTCPeerConnection)),
        "eio_sockets": len(app[SIO].eio.sockets),
        "hub_sockets": connected_counts(app),
        "rate_buckets": len(limits.events) + sum(len(lim) for lim in limits.by_address.values()),
        "rate_tracked": limits.tracked,
    }


async def serve(port: int, data_dir: Path, overrides: dict[str, Any]) -> None:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "data_dir": str(data_dir),
        "secret": SECRET,
        "demo": True,
        "node_id": "probe",
        "media_host_addresses": ("127.0.0.1",),
        "log_level": "warning",
    }
    values.update({k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    app = create_app(Config(**values))

    async def probe(request: web.Request) -> web.Response:
        return web.json_response(probe_state(request.app))

    app.router.add_get("/__probe", probe)
    runner = web.AppRunner(app, handle_signals=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--config", default="{}")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(serve(args.port, Path(args.data_dir), json.loads(args.config)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
