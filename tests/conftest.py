"""Shared fixtures: a real server on port 0 over a real SQLite file, and real Socket.IO clients.

``server`` starts the whole app (demo workspace seeded, media plane on loopback) and yields a
:class:`RunningServer`; ``hub`` gives helpers to log in, create visitors and connect clients that are
all disconnected at the end of the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from rtc_server.app import create_app
from rtc_server.config import Config


@dataclasses.dataclass
class RunningServer:
    app: web.Application
    runner: web.AppRunner
    config: Config
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_server(tmp: Path, **overrides: Any) -> RunningServer:
    """Start a server on a free port; ``overrides`` are :class:`Config` fields."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": str(tmp),
        "secret": "test-secret",
        "demo": True,
        "node_id": "test",
        "media_host_addresses": ("127.0.0.1",),
        "log_level": "warning",
    }
    values.update(overrides)
    config = Config(**values)
    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return RunningServer(app=app, runner=runner, config=config, port=port)


async def bounded(awaitable: Any, seconds: float, what: str) -> None:
    """Await a teardown step for at most ``seconds``. A step that hangs is a bug worth seeing, not a
    reason to stall the suite until pytest-timeout kills it: warn with every task's stack and go on."""
    try:
        async with asyncio.timeout(seconds):
            await awaitable
    except TimeoutError:
        out = io.StringIO()
        for task in asyncio.all_tasks():
            task.print_stack(file=out)
        warnings.warn(f"teardown step {what!r} took over {seconds} s; tasks:\n{out.getvalue()}", stacklevel=2)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    srv = await start_server(tmp_path)
    yield srv
    await bounded(srv.runner.cleanup(), 30, "server cleanup")


class Events:
    """Records every server event a client receives, and waits for one."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._cond = asyncio.Condition()

    async def add(self, event: str, data: Any) -> None:
        async with self._cond:
            self.items.append((event, data))
            self._cond.notify_all()

    def of(self, event: str) -> list[Any]:
        return [d for e, d in self.items if e == event]

    async def wait(self, event: str, pred: Any = None, timeout: float = 5.0) -> Any:
        """The first received ``event`` whose payload satisfies ``pred`` (waiting for it if needed)."""

        def find() -> Any:
            for e, d in self.items:
                if e == event and (pred is None or pred(d)):
                    return d
            return None

        async with asyncio.timeout(timeout):
            async with self._cond:
                while (found := find()) is None:
                    await self._cond.wait()
                return found


class Client:
    """A python-socketio client on one namespace, with its received events recorded."""

    def __init__(self, sio: socketio.AsyncClient, namespace: str, events: Events) -> None:
        self.sio = sio
        self.namespace = namespace
        self.events = events

    async def call(self, event: str, payload: Any = None, timeout: float = 10.0) -> Any:
        return await self.sio.call(event, payload, namespace=self.namespace, timeout=timeout)

    async def ok(self, event: str, payload: Any = None) -> dict[str, Any]:
        """Call and assert the ack is ``{ok: true}``."""
        res = await self.call(event, payload)
        assert isinstance(res, dict) and res.get("ok") is True, f"{event} failed: {res}"
        return res

    async def disconnect(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


class Hub:
    """Logins, visitors and socket clients against one running server."""

    def __init__(self, server: RunningServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http
        self.clients: list[Client] = []

    async def login(self, email: str, password: str = "demo") -> dict[str, Any]:
        async with self.http.post(
            f"{self.server.url}/api/auth/login", json={"email": email, "password": password}
        ) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def visitor(self, **fields: Any) -> dict[str, Any]:
        async with self.http.post(f"{self.server.url}/api/visitors", json=fields) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()

    async def connect(
        self, namespace: str, token: str | None, transports: list[str] | None = None, serializer: str = "default"
    ) -> Client:
        """A python-socketio client; ``serializer="msgpack"`` for its msgpack parser."""
        sio = socketio.AsyncClient(reconnection=False, serializer=serializer)
        events = Events()

        async def catch_all(event: str, data: Any = None) -> None:
            await events.add(event, data)

        sio.on("*", catch_all, namespace=namespace)
        client = Client(sio, namespace, events)
        auth = {"token": token} if token is not None else None
        await sio.connect(
            self.server.url,
            namespaces=[namespace],
            auth=auth,
            transports=transports or ["websocket"],
            wait_timeout=5,
        )
        self.clients.append(client)
        return client

    async def agent(self, email: str = "alice@example.com", serializer: str = "default") -> Client:
        login = await self.login(email)
        client = await self.connect("/agent", login["token"], serializer=serializer)
        client.agent = login["agent"]  # type: ignore[attr-defined]
        return client

    async def customer(self, serializer: str = "default", **fields: Any) -> Client:
        v = await self.visitor(**fields)
        client = await self.connect("/customer", v["token"], serializer=serializer)
        client.visitor = v["visitor"]  # type: ignore[attr-defined]
        client.token = v["token"]  # type: ignore[attr-defined]
        return client


@pytest.fixture
async def hub(server: RunningServer) -> AsyncIterator[Hub]:
    async with aiohttp.ClientSession() as http:
        h = Hub(server, http)
        yield h
        for client in h.clients:
            await bounded(client.disconnect(), 10, "client disconnect")


@contextlib.asynccontextmanager
async def hub_on(tmp_path: Path, **config: Any) -> AsyncIterator[Hub]:
    """A server started with ``config`` (``Config`` fields) and a :class:`Hub` of clients on it; the
    clients disconnect and the server stops afterwards (for fixtures that need a non-default server)."""
    srv = await start_server(tmp_path, **config)
    try:
        async with aiohttp.ClientSession() as http:
            h = Hub(srv, http)
            try:
                yield h
            finally:
                for client in h.clients:
                    await bounded(client.disconnect(), 10, "client disconnect")
    finally:
        await bounded(srv.runner.cleanup(), 30, "server cleanup")
