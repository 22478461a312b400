"""The Socket.IO server class the composition root uses: python-socketio's ``AsyncServer`` on the lean
Engine.IO server of :mod:`rtc_server.fastio.engine`, with acks and single-socket packets written
straight to the websocket, and the events of namespace classes started without python-socketio's
dispatch chain (:meth:`FastAsyncServer.start_event`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio
from socketio import packet as sio_packet

from rtc_server.fastio import frames
from rtc_server.fastio.engine import FastEngineServer
from rtc_server.fastio.packet import EVENT_HEAD, FastPacket
from signaling import jsonfast


class FastAsyncServer(socketio.AsyncServer):
    """A standard Socket.IO v4 server (same options, same events, any official client) with less
    per-packet machinery; see ``docs/architecture.md``, "The hub's fast path"."""

    packet_class: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.packet_class is socketio.packet.Packet:  # the default JSON serializer
            self.packet_class = FastPacket
            # python-socketio's __init__ gave the manager the old packet class's JSON module (the standard
            # json): give it FastPacket's, as set_server means it to have the server's.
            self.manager.set_server(self)
        self.eio.start_event = self.start_event
        self._event_tasks: set[asyncio.Task[None]] = set()

    def start_event(self, eio_sid: str, data: str) -> bool:
        """Start the handler of the Socket.IO EVENT ``data`` (an Engine.IO message's text) at once, as
        python-socketio would end up doing, and say so; False leaves the message to python-socketio's
        way (anything else than a JSON event for a namespace class, or a case that way logs or refuses).

        python-socketio's way to a handler is a chain of coroutines (``_handle_eio_message``, a packet
        object, ``_handle_event``, a task through two ``start_background_task`` wrappers,
        ``_handle_event_internal``, ``_trigger_event``'s handler lookup), behind the session's own task
        for the burst of messages. For the events of a namespace class (every call of the hub) this
        takes the same steps in one call from the websocket's ``data_received``: the same handler, in a
        task of its own (``async_handlers``), its return value sent as the ack."""
        if not self.async_handlers or self._binary_packet and eio_sid in self._binary_packet:
            return False
        head = EVENT_HEAD.match(data)
        if head is None:
            return False
        namespace = head.group(1)
        handler = self.namespace_handlers.get(namespace)
        if handler is None or namespace in self.handlers or "*" in self.handlers:
            return False
        if self.logger.isEnabledFor(logging.INFO):  # python-socketio logs every event: its way does
            return False
        try:
            args = jsonfast.loads(data[head.end() :])
        except Exception:  # ValueError, RecursionError...: python-socketio's way refuses it its own way
            return False
        if args.__class__ is not list or not args:
            return False
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return False
        ack = head.group(2)
        task = asyncio.get_running_loop().create_task(
            self._run_event(handler, sid, eio_sid, args, namespace, int(ack) if ack else None)
        )
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)
        return True

    async def _run_event(
        self, handler: Any, sid: str, eio_sid: str, args: list[Any], namespace: str, ack: int | None
    ) -> None:
        """``_handle_event_internal`` and ``_trigger_event`` for a namespace class's event."""
        try:
            r = await handler.trigger_event(args[0], sid, *args[1:])
        except asyncio.CancelledError:
            r = None
        if ack is None or r is self.not_handled:
            return
        data = [] if r is None else list(r) if isinstance(r, tuple) else [r]
        await self._send_packet(eio_sid, self.packet_class(sio_packet.ACK, namespace=namespace, id=ack, data=data))

    def _engineio_server_class(self) -> type:
        return FastEngineServer

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        """Encode once; a websocket session gets the frame directly, anything else python-socketio's way."""
        encoded = pkt.encode()
        if isinstance(encoded, str):
            socket = self.eio.sockets.get(eio_sid)
            write_frame = getattr(socket, "write_frame", None)
            if write_frame is not None and write_frame(frames.frame("4" + encoded)):
                return
            await self.eio.send(eio_sid, encoded)
            return
        for part in encoded:
            await self.eio.send(eio_sid, part)
