"""The Socket.IO server class the composition root uses: python-socketio's ``AsyncServer`` on the lean
Engine.IO server of :mod:`rtc_server.fastio.engine`, with acks and single-socket packets written
straight to the websocket, the events of namespace classes started without python-socketio's dispatch
chain (:meth:`FastAsyncServer.start_event`), and both Socket.IO parsers, JSON and msgpack, chosen by
each session's first packet (:mod:`rtc_server.fastio.msgpack_parser`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio
from socketio import packet as sio_packet

from rtc_server.fastio import frames, msgpack_parser
from rtc_server.fastio.engine import FastEngineServer
from rtc_server.fastio.manager import FastManager
from rtc_server.fastio.packet import EVENT_HEAD, FastPacket
from signaling import jsonfast


class FastAsyncServer(socketio.AsyncServer):
    """A standard Socket.IO v4 server (same options, same events, any official client) with less
    per-packet machinery; see ``docs/architecture.md``, "The hub's fast path"."""

    packet_class: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("client_manager") is None:  # python-socketio's would send JSON to msgpack sessions
            kwargs["client_manager"] = FastManager()
        super().__init__(*args, **kwargs)
        if self.packet_class is socketio.packet.Packet:  # the default JSON serializer
            self.packet_class = FastPacket
            # python-socketio's __init__ gave the manager the old packet class's JSON module (the standard
            # json): give it FastPacket's, as set_server means it to have the server's.
            self.manager.set_server(self)
        self.eio.start_event = self.start_event
        self._event_tasks: set[asyncio.Task[None]] = set()
        self.msgpack_sessions: set[str] = set()
        """Engine.IO sessions whose client speaks the msgpack parser (told by their first packet)."""

    def start_event(self, eio_sid: str, data: str | bytes) -> bool:
        """Start the handler of the Socket.IO EVENT ``data`` (an Engine.IO message: the JSON parser's
        text, or the msgpack parser's bytes) at once, as python-socketio would end up doing, and say so;
        False leaves the message to :meth:`_handle_eio_message` (anything else than an event for a
        namespace class, or a case that way logs or refuses).

        python-socketio's way to a handler is a chain of coroutines (``_handle_eio_message``, a packet
        object, ``_handle_event``, a task through two ``start_background_task`` wrappers,
        ``_handle_event_internal``, ``_trigger_event``'s handler lookup), behind the session's own task
        for the burst of messages. For the events of a namespace class (every call of the hub) this
        takes the same steps in one call from the websocket's ``data_received``: the same handler, in a
        task of its own (``async_handlers``), its return value sent as the ack."""
        if not self.async_handlers or self._binary_packet and eio_sid in self._binary_packet:
            return False
        if data.__class__ is not str:
            if eio_sid not in self.msgpack_sessions:
                return False  # a session's first packet decides its parser: _handle_eio_message
            try:
                pkt = msgpack_parser.decode(data)  # type: ignore[arg-type]
            except ValueError:
                return False
            if pkt.type != msgpack_parser.EVENT or not msgpack_parser.plain(pkt.data):
                return False
            return self._start_event(eio_sid, pkt.namespace, pkt.data, pkt.id)
        if self.msgpack_sessions and eio_sid in self.msgpack_sessions:
            return False  # text from a msgpack client: _handle_eio_message refuses it
        head = EVENT_HEAD.match(data)  # type: ignore[arg-type]
        if head is None:
            return False
        try:
            args = jsonfast.loads(data[head.end() :])
        except Exception:  # ValueError, RecursionError...: python-socketio's way refuses it its own way
            return False
        ack = head.group(2)
        return self._start_event(eio_sid, head.group(1), args, int(ack) if ack else None)

    def _start_event(self, eio_sid: str, namespace: str, args: Any, ack: int | None) -> bool:
        handler = self.namespace_handlers.get(namespace)
        if handler is None or namespace in self.handlers or "*" in self.handlers:
            return False
        if self.logger.isEnabledFor(logging.INFO):  # python-socketio logs every event: its way does
            return False
        if args.__class__ is not list or not args:
            return False
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return False
        task = asyncio.get_running_loop().create_task(self._run_event(handler, sid, eio_sid, args, namespace, ack))
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
        await self._send_ack(eio_sid, namespace, ack, [] if r is None else list(r) if isinstance(r, tuple) else [r])

    async def _send_ack(self, eio_sid: str, namespace: str, ack: int, data: list[Any]) -> None:
        """An ACK in the session's parser (a msgpack one without building the JSON packet first)."""
        if eio_sid in self.msgpack_sessions:
            await self._send_encoded(eio_sid, msgpack_parser.encode(msgpack_parser.ACK, namespace, data, ack))
        else:
            await self._send_packet(eio_sid, self.packet_class(sio_packet.ACK, namespace=namespace, id=ack, data=data))

    # -- the msgpack parser, per session ---------------------------------------------------------------

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """A message :meth:`start_event` did not take. A text message is the JSON parser's (python-
        socketio's way), and so is a binary one that is an attachment of its binary event; any other
        binary message is a packet of the msgpack parser (:mod:`~rtc_server.fastio.msgpack_parser`).
        A session's first packet decides its parser; a packet of the other one is refused
        (``ValueError``: the Engine.IO session closes, as for an undecodable packet)."""
        if data.__class__ is str:
            if eio_sid in self.msgpack_sessions:
                raise ValueError("a text packet from a client of the msgpack parser")
            await super()._handle_eio_message(eio_sid, data)
            return
        if eio_sid in self._binary_packet:
            await super()._handle_eio_message(eio_sid, data)
            return
        pkt = msgpack_parser.decode(data)
        if eio_sid not in self.msgpack_sessions:
            manager = self.manager
            if any(manager.sid_from_eio_sid(eio_sid, ns) is not None for ns in list(manager.get_namespaces())):
                raise ValueError("a msgpack packet from a client of the JSON parser")
            self.msgpack_sessions.add(eio_sid)
        if pkt.type == msgpack_parser.EVENT:
            if not msgpack_parser.plain(pkt.data):
                if pkt.id is not None:
                    await self._send_ack(eio_sid, pkt.namespace, pkt.id, [msgpack_parser.NOT_JSON])
                return
            if not self._start_event(eio_sid, pkt.namespace, pkt.data, pkt.id):
                await self._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif pkt.type == msgpack_parser.CONNECT:
            if not msgpack_parser.plain(pkt.data):
                raise ValueError("connect data that is not JSON")
            await self._handle_connect(eio_sid, pkt.namespace, pkt.data)
        elif pkt.type == msgpack_parser.DISCONNECT:
            await self._handle_disconnect(eio_sid, pkt.namespace, self.reason.CLIENT_DISCONNECT)
        else:
            await self._handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            self.msgpack_sessions.discard(eio_sid)

    def _engineio_server_class(self) -> type:
        return FastEngineServer

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        """Encode once, in the session's parser; a websocket session gets the frame directly, anything else
        python-engineio's way."""
        if eio_sid in self.msgpack_sessions:
            encoded: Any = msgpack_parser.encode(pkt.packet_type, pkt.namespace, pkt.data, pkt.id)
        else:
            encoded = pkt.encode()
            if not isinstance(encoded, str):  # the JSON parser's binary event: a header and attachments
                for part in encoded:
                    await self.eio.send(eio_sid, part)
                return
        await self._send_encoded(eio_sid, encoded)

    async def _send_encoded(self, eio_sid: str, encoded: str | bytes) -> None:
        """One Engine.IO message: text (``4`` and the packet on a websocket) or binary (the bytes)."""
        socket = self.eio.sockets.get(eio_sid)
        write_frame = getattr(socket, "write_frame", None)
        if write_frame is not None and write_frame(
            frames.frame("4" + encoded if encoded.__class__ is str else encoded)  # type: ignore[operator]
        ):
            return
        await self.eio.send(eio_sid, encoded)
