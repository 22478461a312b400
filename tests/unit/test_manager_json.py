"""The Redis manager encodes what it publishes with ``jsonfast`` (orjson) even once attached to the
server: python-socketio's ``set_server`` used to replace it with the standard ``json`` (seen in a
two-node profile, about 8 % of a node's CPU per message)."""

from __future__ import annotations

from rtc_server.fastio import jsonfast
from rtc_server.fastio.manager import FastRedisManager
from rtc_server.fastio.server import FastAsyncServer


def test_the_redis_manager_keeps_jsonfast_once_attached_to_the_server() -> None:
    """After FastAsyncServer(client_manager=...) the manager's JSON module is still jsonfast (no Redis
    connection is made by building them)."""
    manager = FastRedisManager("redis://127.0.0.1:1/0")
    FastAsyncServer(async_mode="aiohttp", client_manager=manager)
    assert manager.json is jsonfast
