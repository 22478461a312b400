"""The composition root: reads the config once, picks the store and the Socket.IO manager, wires the
hub, the services, the HTTP API and the media plane, and owns every background task's life cycle."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

from rtc_server.config import Config, ensure_secret
from rtc_server.stores import make_store
from signaling.hub.fanout import SocketIOFanout
from signaling.hub.namespaces import AgentNamespace, CustomerNamespace
from signaling.services.auth import AuthSettings
from signaling.services.container import Services, ServiceSettings
from signaling.services.conversations import ChatSettings
from signaling.services.ports import MediaGateway, NullMediaGateway
from signaling.services.requests import RequestSettings
from signaling.storage.base import Store

log = logging.getLogger(__name__)

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
SERVICES = web.AppKey("services", Services)
SIO = web.AppKey("sio", socketio.AsyncServer)
MEDIA = web.AppKey("media", MediaGateway)
TASKS = web.AppKey("tasks", list[asyncio.Task[Any]])

EXPIRY_SWEEP_S = 1.0
MEDIA_SHUTDOWN_S = 10.0
RETENTION_SWEEP_S = 3600.0
"""How often finished recordings past ``Config.recordings_keep_days`` are deleted."""
"""The longest a shutdown waits for the media plane to close its sessions."""


def make_media(config: Config) -> MediaGateway:
    """The aiortc media plane, or a null one when disabled."""
    if not config.media:
        return NullMediaGateway()
    from rtc_server.media.gateway import AiortcMediaGateway

    return AiortcMediaGateway(
        host_addresses=list(config.media_host_addresses) or None,
        ice_servers=list(config.ice_servers) or None,
        rejoin_grace=config.media_rejoin_grace_s,
        recordings_dir=config.recordings_dir if config.recordings else None,
    )


def make_sio(config: Config) -> socketio.AsyncServer:
    from rtc_server.fastio import FastAsyncServer, FastManager, FastRedisManager

    manager: socketio.AsyncManager = FastManager()
    if config.store_url.startswith("redis://"):
        manager = FastRedisManager(config.store_url, max_connections=config.redis_max_connections)
    cors: Any = list(config.allowed_origins) if config.allowed_origins else "*"
    return FastAsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        cors_allowed_origins=cors,
        max_http_buffer_size=1_000_000,
        ping_interval=20,
        ping_timeout=20,
        logger=False,
        engineio_logger=False,
    )


SERVING_GC_THRESHOLD = 10_000
"""The garbage collector's first threshold while serving (Python's default: 700)."""


async def freeze_startup_heap(app: web.Application) -> None:
    """An ``on_startup`` hook for a server process (``rtc-server serve``), last of all: what was built to
    start (modules, classes, the app, the services) lives as long as the process, so it is collected
    once and frozen out of the garbage collector's full collections, which otherwise walk all of it each
    time: in the bench server, whose start-up makes ~80,000 of its objects, a full collection while
    serving took 38-45 ms before and 1-5 ms after (the event loop stands still meanwhile).

    Then the youngest generation is collected past :data:`SERVING_GC_THRESHOLD` net new container
    objects instead of 700. The objects of a message live for microseconds and are freed by their
    reference counts; at 700 the collector still ran every few messages, walking whatever was in flight:
    in the bench server's closed loop, 270 young collections took 128 ms (~7 us per message), against
    2 (4 ms) at 10,000. Only garbage in reference cycles waits longer for its collection (at most 10,000
    objects' worth). Not for tests, whose many apps in one process would all be kept."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(SERVING_GC_THRESHOLD, older, oldest)


def create_app(config: Config) -> web.Application:
    """Build the whole server for ``config`` (nothing starts until the app runs)."""
    config = ensure_secret(config)
    if not config.node_id:
        from dataclasses import replace

        config = replace(config, node_id=secrets.token_hex(4))
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    app = web.Application(client_max_size=config.upload_max_bytes + 1024 * 1024)
    store = make_store(config)
    sio = make_sio(config)
    media = make_media(config)
    if config.store_url.startswith("redis://"):  # several nodes: SDP for a session reaches its owner node
        from rtc_server.cluster_media import ClusterMediaGateway

        media = ClusterMediaGateway(
            media, config.store_url, node_id=config.node_id, node_alive=store.node_alive
        )
    settings = ServiceSettings(
        auth=AuthSettings(
            secret=config.secret_bytes,
            agent_token_ttl_s=config.agent_token_ttl_s,
            visitor_token_ttl_s=config.visitor_token_ttl_s,
        ),
        chat=ChatSettings(message_max_chars=config.message_max_chars),
        requests=RequestSettings(
            ttl=timedelta(seconds=config.request_ttl_s), recordings=config.recordings and config.media
        ),
        node_id=config.node_id,
        allowed_origins=config.allowed_origins,
    )
    services = Services(store, SocketIOFanout(sio), media, settings)
    sio.register_namespace(AgentNamespace("/agent", services))
    sio.register_namespace(CustomerNamespace("/customer", services))
    sio.attach(app)
    app[CONFIG] = config
    app[STORE] = store
    app[SERVICES] = services
    app[SIO] = sio
    app[MEDIA] = media
    app[TASKS] = []
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_pubsub_ctx)
    app.cleanup_ctx.append(_background_ctx)
    from rtc_server.http import setup_http

    setup_http(app)
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    await store.open()
    if app[CONFIG].demo:
        from rtc_server.demo import seed_demo

        await seed_demo(store)
    yield
    media = app[MEDIA]
    shutdown = getattr(media, "shutdown", None)
    if shutdown is not None:
        try:
            # a peer connection that never finishes closing (aiortc can wait on a dead transport) must
            # not keep the process from stopping, nor the store from closing
            async with asyncio.timeout(MEDIA_SHUTDOWN_S):
                await shutdown()
        except TimeoutError:
            log.warning("the media plane did not close within %.0f s; stopping anyway", MEDIA_SHUTDOWN_S)
        except Exception:
            log.exception("the media plane failed to close")
    await store.close()


async def _pubsub_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the Socket.IO manager now rather than at the first connection (a Redis manager's listener
    must run before ``/readyz`` says ready), and stop its listener at shutdown."""
    sio = app[SIO]
    if not sio.manager_initialized:
        sio.manager_initialized = True
        sio.manager.initialize()
    yield
    aclose = getattr(sio.manager, "aclose", None)
    if aclose is not None:
        await aclose()


async def _every(seconds: float, step: Callable[[], Awaitable[Any]], what: str) -> None:
    """Run ``step`` every ``seconds`` until cancelled; a failing step is logged and the loop goes on."""
    me = asyncio.current_task()
    while True:
        # a cancellation that a client library turned into an error inside ``step`` must still stop us
        if me is not None and me.cancelling():
            raise asyncio.CancelledError
        await asyncio.sleep(seconds)
        try:
            await step()
        except Exception:
            log.exception("%s failed", what)


async def _background_ctx(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    config = app[CONFIG]
    presence = services.presence
    # before the node accepts connections: a sweeper elsewhere must not take a starting node for a dead one
    await presence.heartbeat(config.node_dead_after_s)
    end_orphans = getattr(app[MEDIA], "end_orphaned_sessions", None)  # several nodes only

    async def liveness() -> None:
        try:
            await presence.heartbeat(config.node_dead_after_s)
        except Exception:
            log.exception("node heartbeat failed")
        gone = await presence.sweep_dead_nodes()
        if gone:
            log.info("dead nodes' presence swept: %d agents went offline", len(gone))
        if end_orphans is not None:
            ended = await end_orphans()
            if ended:
                log.info("dead nodes' media sessions: %d requests ended (node_lost)", len(ended))

    async def retention() -> None:
        from rtc_server.media.recording import sweep_recordings

        removed = await asyncio.to_thread(
            sweep_recordings, config.recordings_dir, config.recordings_keep_days
        )
        if removed:
            log.info("deleted %d recordings older than %s days", removed, config.recordings_keep_days)

    tasks = app[TASKS]
    loops: list[tuple[float, Callable[[], Awaitable[Any]], str]] = [
        (EXPIRY_SWEEP_S, services.requests.expire_due, "request expiry sweep"),
        (config.node_heartbeat_s, liveness, "dead node sweep"),
    ]
    if config.recordings_keep_days > 0:
        loops.append((RETENTION_SWEEP_S, retention, "recording retention sweep"))
    for seconds, step, what in loops:
        tasks.append(asyncio.create_task(_every(seconds, step, what), name=what))
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    tasks.clear()
