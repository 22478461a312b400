"""The fan-out port over Socket.IO rooms.

Rooms: ``/agent`` ``team:<id>`` (every socket of the team's agents; admins join every team) and
``agent:<id>`` (one agent's tabs); ``/customer`` ``visitor:<id>`` (one customer's tabs). Agent-side and
customer-side audiences are emitted separately, so a payload meant for agents can never reach a
customer room.
"""

from __future__ import annotations

from typing import Any

import socketio

from signaling.services.fanout import Audience

_ROOM = {"team": ("/agent", "team:"), "agent": ("/agent", "agent:"), "visitor": ("/customer", "visitor:")}

ROOM_PREFIXES = tuple(prefix for _, prefix in _ROOM.values())
"""Prefixes of every room the hub emits to (a several-node manager tracks which nodes have members)."""


class SocketIOFanout:
    """Emits through the server's client manager (what ``AsyncServer.emit`` does after logging), once per
    namespace with every room of that namespace (each socket gets an event at most once)."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio

    async def emit(
        self, event: str, payload: dict[str, Any], audiences: list[Audience], skip_sid: str | None = None
    ) -> None:
        by_namespace: dict[str, list[str]] = {}
        for audience in audiences:
            namespace, prefix = _ROOM[audience.kind]
            rooms = by_namespace.get(namespace)
            if rooms is None:
                by_namespace[namespace] = [prefix + audience.id]
            else:
                rooms.append(prefix + audience.id)
        manager = self.sio.manager
        for namespace, rooms in by_namespace.items():
            await manager.emit(
                event, payload, namespace, room=rooms if len(rooms) > 1 else rooms[0], skip_sid=skip_sid
            )
