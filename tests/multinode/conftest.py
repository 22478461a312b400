"""Fixtures of the several-nodes tests: one real ``redis-server`` (append-only file on) and two real
server nodes on port 0 sharing it (``store=redis://...``, node ids ``n1`` and ``n2``), each with its
own :class:`~tests.conftest.Hub` for logins and socket clients.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Client, Hub, RunningServer, bounded, start_server
from tests.redis_server import RedisServer, redis_available


@dataclasses.dataclass
class Cluster:
    """Two nodes on one Redis."""

    redis: RedisServer
    nodes: list[RunningServer]
    hubs: list[Hub]
    http: aiohttp.ClientSession

    async def readyz(self, node: int) -> tuple[int, dict[str, Any]]:
        """``GET /readyz`` of a node: its status code and body."""
        async with self.http.get(f"{self.nodes[node].url}/readyz") as resp:
            return resp.status, await resp.json()

    async def wait_readiness(self, status: int, timeout: float = 15.0) -> None:
        """Wait until ``/readyz`` answers ``status`` on every node."""
        async with asyncio.timeout(timeout):
            for node in range(len(self.nodes)):
                while (await self.readyz(node))[0] != status:
                    await asyncio.sleep(0.05)

    async def connect(self, node: int, namespace: str, token: str) -> Client:
        """A socket client on ``node`` with a token obtained anywhere (tokens are valid on every node)."""
        return await self.hubs[node].connect(namespace, token)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Redis and two ready nodes (the demo workspace seeded once, by the first node)."""
    if not redis_available():
        pytest.skip("redis-server is not installed")
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    nodes: list[RunningServer] = []
    try:
        for name in ("n1", "n2"):  # one after the other: the first seeds the demo workspace
            nodes.append(await start_server(tmp_path / name, store=redis.url, node_id=name))
        async with aiohttp.ClientSession() as http:
            hubs = [Hub(node, http) for node in nodes]
            c = Cluster(redis=redis, nodes=nodes, hubs=hubs, http=http)
            await c.wait_readiness(200)
            try:
                yield c
            finally:
                for hub in hubs:
                    for client in hub.clients:
                        await bounded(client.disconnect(), 10, "client disconnect")
    finally:
        for node in reversed(nodes):
            await bounded(node.runner.cleanup(), 30, f"cleanup of node {node.config.node_id}")
        redis.stop()
