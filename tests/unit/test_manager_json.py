"""The client manager encodes with ``jsonfast`` (orjson) once attached to ``FastAsyncServer``:
python-socketio's ``__init__`` gave it the default packet class's standard ``json`` before the server
swapped in ``FastPacket`` (seen in a two-node profile, about 8 % of a node's CPU per message)."""

from __future__ import annotations

from rtc_server.fastio.manager import FastManager, FastRedisManager
from rtc_server.fastio.server import FastAsyncServer
from signaling import jsonfast


def test_the_redis_manager_keeps_jsonfast_once_attached_to_the_server() -> None:
    """After FastAsyncServer(client_manager=...) the manager's JSON module is still jsonfast (no Redis
    connection is made by building them)."""
    manager = FastRedisManager("redis://127.0.0.1:1/0")
    FastAsyncServer(async_mode="aiohttp", client_manager=manager)
    assert manager.json is jsonfast


def test_the_local_manager_gets_fastpackets_json_too() -> None:
    """The same for the single-node manager: it follows the server's packet class."""
    manager = FastManager()
    FastAsyncServer(async_mode="aiohttp", client_manager=manager)
    assert manager.json is jsonfast
