"""Our real server for the benchmark, in its own process: seeds a workspace, then runs
``rtc_server.app.create_app`` on 127.0.0.1:0 with the event loop ``rtc-server serve`` uses (uvloop),
and prints ``READY <port>``.

The seed gives every 1:1 pair its own team with one agent (a message then reaches exactly one agent,
as in a 1:1 conversation), and a team ``fan`` of ``--fan-agents`` agents for the fan-out scenario.
Bench agents' passwords are hashed with small scrypt parameters so that logging in 100 agents does not
dominate the run; the login path itself is the production one (``POST /api/auth/login``).

With ``--store redis://...`` the node keeps its state in Redis and carries Socket.IO rooms over Redis
pub/sub, as in production on several nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import logging
import os
import secrets
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

from rtc_server.config import Config
from rtc_server.stores import make_store
from signaling.domain.models import Agent, Team, new_id

BENCH_PASSWORD = "bench"


def cheap_hash(password: str) -> str:
    """An scrypt hash in the production format with small parameters (n=16): fast to verify."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=16, r=8, p=1, dklen=32)
    return "$".join(
        ("scrypt", "16", "8", "1", base64.b64encode(salt).decode(), base64.b64encode(digest).decode())
    )


async def seed(config: Config, pairs: int, fan_agents: int) -> dict[str, Any]:
    """Create the pair teams and agents and the fan-out team; returns what the load generator needs."""
    store = make_store(replace(config, node_id="seed"))
    await store.open()
    hashed = cheap_hash(BENCH_PASSWORD)
    out: dict[str, Any] = {"password": BENCH_PASSWORD, "pairs": [], "fan": {"team_id": "", "agents": []}}
    try:
        for i in range(pairs):
            team = await store.create_team(Team(id=new_id("tm"), name=f"pair{i}", routing="manual"))
            email = f"p{i}@bench.test"
            await store.create_agent(
                Agent(
                    id=new_id("ag"),
                    email=email,
                    name=f"Pair agent {i}",
                    password_hash=hashed,
                    team_ids=[team.id],
                    status="online",
                    capacity=1000,
                )
            )
            out["pairs"].append({"team_id": team.id, "email": email})
        fan = await store.create_team(Team(id=new_id("tm"), name="fan", routing="manual"))
        out["fan"]["team_id"] = fan.id
        for i in range(fan_agents):
            email = f"f{i}@bench.test"
            await store.create_agent(
                Agent(
                    id=new_id("ag"),
                    email=email,
                    name=f"Fan agent {i}",
                    password_hash=hashed,
                    team_ids=[fan.id],
                    status="online",
                )
            )
            out["fan"]["agents"].append(email)
    finally:
        await store.close()
    return out


class PublishFailures(logging.Handler):
    """Counts python-socketio's 'Cannot publish' errors (a failed Redis publish, then a retry)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "publish" in record.getMessage().lower():
            self.count += 1


def stock_sio(config: Config) -> socketio.AsyncServer:
    """``make_sio`` as it was before the fast path: python-socketio's own server and managers, same options."""
    manager: socketio.AsyncManager | None = None
    if config.store_url.startswith("redis://"):
        from rtc_server.pubsub import SupervisedRedisManager

        manager = SupervisedRedisManager(config.store_url, max_connections=config.redis_max_connections)
    return socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        cors_allowed_origins="*",
        max_http_buffer_size=1_000_000,
        ping_interval=20,
        ping_timeout=20,
        logger=False,
        engineio_logger=False,
    )


async def serve(args: argparse.Namespace) -> None:
    import rtc_server.app as app_module

    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = args.store or f"sqlite:///{data_dir / 'rtc.sqlite3'}"
    config = Config(
        host="127.0.0.1",
        port=0,
        data_dir=str(data_dir),
        secret="bench-secret",
        store=store,
        node_id=args.node_id,
        media=False,
        log_level="warning",
        sqlite_writer=os.environ.get("RTC_SQLITE_WRITER") or Config().sqlite_writer,  # A/B: bench.loopcpu --writer
    )
    if args.seed_out:
        info = await seed(config, args.pairs, args.fan_agents)
        Path(args.seed_out).write_text(json.dumps(info))
    failures = PublishFailures()
    logging.getLogger().addHandler(failures)
    if args.stock:
        app_module.make_sio = stock_sio  # type: ignore[assignment]  # the "before" of BENCHMARKS.md
    app = app_module.create_app(config)
    if os.environ.get("RTC_BENCH_NO_FREEZE") != "1":  # as `rtc-server serve` does (A/B: =1 leaves it out)
        app.on_startup.append(app_module.freeze_startup_heap)

    async def stats(request: web.Request) -> web.Response:
        store = app[app_module.STORE]
        worker = getattr(store, "stats", None)
        return web.json_response(
            {
                "publish_failures": getattr(app[app_module.SIO].manager, "publish_failures", failures.count),
                "store_batches": getattr(worker, "batches", 0),
                "store_operations": getattr(worker, "operations", 0),
                # the store's latency histograms (counts per bucket of LATENCY_BOUNDS), as /metrics has them
                "store_commits": list(worker.commits.counts) if worker is not None else None,
                "store_operations_waits": list(worker.waits.counts) if worker is not None else None,
                "store_writes": list(store.writes.counts) if hasattr(store, "writes") else None,
            }
        )

    app.router.add_get("/__bench/stats", stats)
    await serve_until_stopped(app, handle_signals=True)


async def serve_until_stopped(app: web.Application, handle_signals: bool = False) -> None:
    """Serve ``app`` on a free loopback port, print ``READY <port>`` (what ``procs.Server`` waits for),
    and run until the process is stopped."""
    runner = web.AppRunner(app, handle_signals=handle_signals, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--node-id", default="bench")
    parser.add_argument("--pairs", type=int, default=0)
    parser.add_argument("--fan-agents", type=int, default=0)
    parser.add_argument("--seed-out", default="", help="seed the workspace and write its description here")
    parser.add_argument("--store", default="", help="store URL (default: SQLite in the data dir)")
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--stock", action="store_true", help="python-socketio's stock server and managers")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if not args.no_uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
