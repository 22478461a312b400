"""Room emits without a task per recipient: encode the packet once, frame it once, write it to every
websocket recipient; only sessions still on long-polling take python-engineio's queue.

:class:`FastManager` is the in-process manager. :class:`FastRedisManager` is the Redis one: python-socketio's
pub/sub manager already delivers locally first and publishes for the other nodes; here the local
delivery (on the emitting node and on the receiving ones) takes the same fast path, and publishing is
pipelined (see the class).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from rtc_server.fastio import frames, jsonfast
from rtc_server.pubsub import SupervisedRedisManager

log = logging.getLogger(__name__)


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
    """The Redis manager (blocking pool, supervised listener) with :func:`deliver` for local delivery and
    an ordered, pipelined publisher.

    python-socketio awaits one ``PUBLISH`` round trip per emit, each taking a connection from the pool.
    Here an emit delivers locally, appends its message to an outbox and returns; one flusher task sends
    the outbox with one pipeline per batch (many ``PUBLISH`` commands, one write, one read), in emit
    order. A failed batch is logged and counted, as python-socketio's and ``SupervisedRedisManager``'s
    failed publishes were (the event is lost for the other nodes; clients recover with
    ``conversation.sync``). Past ``max_outbox`` queued messages, emitters wait for the flusher.
    """

    def __init__(self, url: str, *, max_outbox: int = 10_000, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.json = jsonfast
        self.max_outbox = max_outbox
        self.publish_failures = 0
        """Messages whose publish failed (lost for the other nodes)."""
        self._outbox: list[str] = []
        self._flusher: asyncio.Task[None] | None = None

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if callback is not None or kwargs.get("ignore_queue"):
            return await super().emit(
                event, data, namespace=namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
        namespace = namespace or "/"
        message = {
            "method": "emit",
            "event": event,
            "data": list(data) if isinstance(data, tuple) else [data],
            "binary": False,
            "namespace": namespace,
            "room": room,
            "skip_sid": skip_sid,
            "callback": None,
            "host_id": self.host_id,
        }
        try:
            payload = self.json.dumps(message)
        except TypeError:  # bytes inside: python-socketio's binary encoding
            return await super().emit(
                event, data, namespace=namespace, room=room, skip_sid=skip_sid, **kwargs
            )
        await deliver(self, event, data, namespace, room, skip_sid)
        await self._enqueue(payload)

    async def _publish(self, data: Any) -> Any:
        await self._enqueue(self.json.dumps(data))

    async def _enqueue(self, payload: str) -> None:
        self._outbox.append(payload)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="socketio-redis-publisher")
        while len(self._outbox) > self.max_outbox and self._flusher is not None and not self._flusher.done():
            await asyncio.sleep(0.001)

    async def _flush(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                pipe = self._publisher_client().pipeline(transaction=False)
                for payload in batch:
                    pipe.publish(self.channel, payload)
                await pipe.execute()
            except Exception as exc:
                self.publish_failures += len(batch)
                log.error("cannot publish %d events to Redis (lost for other nodes): %s", len(batch), exc)

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

    async def aclose(self) -> None:
        """Send what is still in the outbox (for up to 2 s), then stop as ``SupervisedRedisManager`` does."""
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(flusher), timeout=2.0)
        await super().aclose()


__all__ = ["FastManager", "FastRedisManager", "deliver"]
