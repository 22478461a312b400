"""Room emits without a task per recipient: encode the packet once, frame it once, write it to every
websocket recipient; only sessions still on long-polling take python-engineio's queue.

:class:`FastManager` is the in-process manager. :class:`FastRedisManager` is the Redis one: python-socketio's
pub/sub manager already delivers locally first and publishes for the other nodes; here the local
delivery (on the emitting node and on the receiving ones) takes the same fast path.
"""

from __future__ import annotations

from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from rtc_server.fastio import frames
from rtc_server.pubsub import SupervisedRedisManager


def _as_args(data: Any) -> list[Any]:
    if isinstance(data, tuple):
        return list(data)
    if data is None:
        return []
    return [data]


async def deliver(
    manager: socketio.AsyncManager, event: str, data: Any, namespace: str, room: Any, skip_sid: Any
) -> None:
    """Send ``event`` to the local participants of ``room`` (a room name, a list of them, or None for the
    whole namespace), except ``skip_sid``; each socket at most once."""
    if namespace not in manager.rooms:
        return
    pkt = manager.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *_as_args(data)])
    encoded = pkt.encode()
    skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
    eio = manager.server.eio
    sockets = eio.sockets
    if isinstance(encoded, list):  # binary attachments: python-engineio's path, sequentially
        for sid, eio_sid in manager.get_participants(namespace, room):
            if sid not in skip:
                for part in encoded:
                    await manager.server._send_eio_packet(
                        eio_sid, eio_packet.Packet(eio_packet.MESSAGE, part)
                    )
        return
    wire = frames.frame("4" + encoded)
    slow: list[str] = []
    for sid, eio_sid in manager.get_participants(namespace, room):
        if sid in skip:
            continue
        socket = sockets.get(eio_sid)
        if socket is None:
            continue
        write_frame = getattr(socket, "write_frame", None)
        if write_frame is None or not write_frame(wire):
            if not socket.closed:
                slow.append(eio_sid)
    for eio_sid in slow:
        await manager.server._send_eio_packet(eio_sid, eio_packet.Packet(eio_packet.MESSAGE, encoded))


class FastManager(socketio.AsyncManager):
    """The in-process manager with :func:`deliver` for emits without a callback."""

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        if callback is not None:
            return await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to, **kwargs
            )
        await deliver(self, event, data, namespace, to or room, skip_sid)


class FastRedisManager(SupervisedRedisManager):
    """The Redis manager (blocking pool, supervised listener) with :func:`deliver` for local delivery."""

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        callback = message.get("callback")
        if message.get("binary") or (callback is not None and len(callback) == 3):
            return await super()._handle_emit(message)
        data = message["data"]
        if isinstance(data, list):
            data = data[0] if len(data) == 1 else tuple(data)
        await deliver(
            self,
            message["event"],
            data,
            message.get("namespace") or "/",
            message.get("room"),
            message.get("skip_sid"),
        )


__all__ = ["FastManager", "FastRedisManager", "deliver"]
