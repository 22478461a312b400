"""A leaner Engine.IO v4 server for aiohttp: same protocol, fewer tasks, no per-socket queue.

python-engineio's websocket transport runs, per connection, a writer task fed by an ``asyncio.Queue``
and a ping task, and per incoming frame a new task wrapped in ``wait_for`` plus one more task to
dispatch the message. Here, once a socket is on the websocket transport:

- outgoing packets are framed and written straight to the transport (no queue, no writer task),
  corked per event-loop iteration (:class:`rtc_server.fastio.frames.Writer`);
- incoming frames are read in the connection's own handler and handed to Socket.IO inline
  (python-socketio still runs each *event* in its own task, so a slow handler never blocks the socket);
- the server's pings are ``call_later`` timers, not sleeping tasks; a silent client is still dropped by
  python-engineio's service task (``check_ping_timeout``), which now also closes the transport;
- permessage-deflate is not negotiated (as with the Node ``socket.io`` server's default), so one frame
  can be written to many sockets.

The polling transport and the polling -> websocket upgrade keep python-engineio's code paths (queue
and all) until the upgrade completes; what was queued is then flushed and the socket goes direct.

The websocket itself no longer lives inside aiohttp's request handler: the handshake is answered and the
TCP transport handed to a :class:`rtc_server.fastio.wsconn.WsConnection` (see that module), so the
request, aiohttp's protocol, the middlewares' and python-engineio's coroutine frames are released once
the socket is open. python-socketio keeps each session's connect ``environ``: it gets
:func:`slim_environ`'s copy, without the aiohttp request. :class:`FastWebSocket` (aiohttp's
``WebSocketResponse``) remains the path for a request :func:`wsconn.accept` declines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import engineio
from aiohttp import WSMsgType, web
from engineio import async_socket, exceptions, packet

from rtc_server.fastio import frames, wsconn

log = logging.getLogger(__name__)

PING_FRAME = frames.frame("2")


class FastWebSocket:
    """The aiohttp websocket driver (replaces ``engineio.async_drivers.aiohttp.WebSocket``)."""

    def __init__(self, handler: Any, server: Any) -> None:
        self.handler = handler
        self.server = server
        self._sock: web.WebSocketResponse | None = None
        self.transport: asyncio.Transport | None = None
        self.environ: dict[str, Any] = {}

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request: web.Request = environ["aiohttp.request"]
        sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await sock.prepare(request)
        self._sock = sock
        self.transport = request.transport  # type: ignore[assignment]
        self.environ = environ
        await self.handler(self)
        return sock

    @property
    def sock(self) -> web.WebSocketResponse:
        assert self._sock is not None
        return self._sock

    async def close(self) -> None:
        await self.sock.close()

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self.sock.send_bytes(message)
        else:
            await self.sock.send_str(message)

    async def wait(self) -> str | bytes:
        msg = await self.sock.receive()
        if not isinstance(msg.data, bytes | str):
            raise OSError()
        return msg.data


class _DirectQueue:
    """Stands in for the ``asyncio.Queue`` of a session that writes directly (saves its memory: a queue
    with its deques, an event and their waiters per connection). Nothing may be queued any more."""

    __slots__ = ()

    def empty(self) -> bool:
        return True

    def qsize(self) -> int:
        return 0

    def get_nowait(self) -> Any:
        raise asyncio.QueueEmpty

    async def join(self) -> None:
        return None

    def task_done(self) -> None:
        return None

    def put_nowait(self, item: Any) -> None:
        raise RuntimeError("this Engine.IO session writes directly to its websocket")

    async def put(self, item: Any) -> None:
        self.put_nowait(item)


class FastEngineSocket(async_socket.AsyncSocket):
    """An Engine.IO session that writes straight to its websocket once it has one."""

    last_ping: float | None
    connected: bool
    queue: Any

    def __init__(self, server: Any, sid: str) -> None:
        super().__init__(server, sid)
        self.transport: asyncio.Transport | None = None
        """Set while the session is on the websocket transport: packets go straight to it."""
        self.conn: wsconn.WsConnection | None = None
        """The websocket on our own protocol (:mod:`rtc_server.fastio.wsconn`), from its handshake on."""
        self._ping_timer: asyncio.TimerHandle | None = None

    # -- sending --------------------------------------------------------------------------------------

    async def send(self, pkt: packet.Packet) -> None:
        """Send a packet: a direct write on websocket, python-engineio's queue on polling."""
        transport = self.transport
        if transport is not None:
            if not self.closed:
                self.server.writer.write(transport, frames.frame(pkt.encode()))
            return
        await super().send(pkt)

    def write_frame(self, data: bytes) -> bool:
        """Write a ready WebSocket frame (a broadcast's); False if this socket cannot take it directly."""
        transport = self.transport
        if transport is None or self.closed:
            return False
        return bool(self.server.writer.write(transport, data))

    # -- pings ----------------------------------------------------------------------------------------

    def schedule_ping(self) -> None:
        if self.last_ping:
            self.last_ping = None
            loop = asyncio.get_running_loop()
            self._ping_timer = loop.call_later(self.server.ping_interval, self._ping_due)

    def _ping_due(self) -> None:
        self._ping_timer = None
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        if self.transport is not None:
            self.server.writer.write(self.transport, PING_FRAME)
        else:
            task = asyncio.ensure_future(super().send(packet.Packet(packet.PING)))
            self.server.background.add(task)
            task.add_done_callback(self.server.background.discard)

    # -- closing --------------------------------------------------------------------------------------

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        was_open = not (self.closed or self.closing)
        await super().close(wait=wait, abort=abort, reason=reason)
        if was_open and abort and self.transport is None and isinstance(self.queue, asyncio.Queue):
            # On polling, a client's CLOSE (or an abort) must also answer its pending long-poll GET, as
            # Node's engine.io does with a NOOP: python-engineio leaves it hanging until the ping timeout,
            # and a python-socketio client's disconnect() waits for it.
            self.queue.put_nowait(packet.Packet(packet.NOOP))
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        transport, self.transport = self.transport, None
        conn, self.conn = self.conn, None
        if transport is None and conn is not None:  # closed during a polling -> websocket upgrade
            transport = conn.transport
        if transport is not None and not transport.is_closing():
            self.server.writer.flush_one(transport)  # the CLOSE packet, if any, leaves first
            if conn is not None:
                transport.write(wsconn.close_frame(wsconn.CLOSE_NORMAL))
            transport.close()  # ends the reader

    # -- the websocket transport on our own protocol (wsconn) ----------------------------------------

    async def _upgrade_websocket(self, environ: dict[str, Any]) -> Any:
        """Take the connection over from aiohttp (:func:`wsconn.accept`) when possible, else run
        python-engineio's websocket on aiohttp's (:class:`FastWebSocket`)."""
        if self.upgraded:
            raise OSError("Socket has been upgraded already")
        request = environ.get("aiohttp.request")
        if request is not None and not (self.closed or self.closing):
            response = wsconn.accept(request, self)
            if response is not None:
                return response
        return await super()._upgrade_websocket(environ)

    def attach(self, conn: wsconn.WsConnection) -> None:
        """``conn`` answered this session's websocket handshake: a new session goes direct at once, one on
        polling starts the upgrade (probe, then UPGRADE, handled by ``conn``)."""
        self.conn = conn
        if self.connected:
            self.upgrading = True
            conn.state = wsconn.PROBE
        else:
            self.connected = True
            self.upgraded = True
            self.go_direct(conn.transport)

    def queue_noop(self) -> None:
        """A NOOP for the pending long-poll (the upgrade's probe was answered)."""
        self.queue.put_nowait(packet.Packet(packet.NOOP))

    def message_now(self, data: str | bytes) -> bool:
        """Handle the message ``data`` at once if it is a Socket.IO event the server starts without
        awaiting anything (the websocket calls this only when nothing it received before is still being
        handled, so order is kept); False: :meth:`handle_message` takes it, in order. A text message is
        ``4`` and the packet; a binary one is all packet."""
        start_event = self.server.start_event
        if start_event is None:
            return False
        if data.__class__ is str:
            return data[:1] == "4" and start_event(self.sid, data[1:])  # type: ignore[index]
        return start_event(self.sid, data)

    async def handle_message(self, data: str | bytes) -> None:
        """One message from the websocket (as :meth:`_read_loop` handles them)."""
        if isinstance(data, bytes):
            on_message = self.server.handlers.get("message")
            if on_message is not None:
                await self._dispatch(on_message, self.sid, data)
            return
        if not data:
            await self.close(wait=False, abort=True)
            return
        head = data[0]
        if head == "4":
            on_message = self.server.handlers.get("message")
            if on_message is not None:
                await self._dispatch(on_message, self.sid, data[1:])
            return
        if head == "3":
            self.schedule_ping()
            return
        try:
            await self.receive(packet.Packet(encoded_packet=data))
        except exceptions.SocketIsClosedError:
            pass
        except Exception as exc:  # an unknown or undecodable Engine.IO packet: close, as Node does
            log.info("engine.io: closing %s after a bad packet: %r", self.sid, str(exc)[:200])
            await self.close(wait=False, abort=True)

    async def transport_lost(self) -> None:
        """The websocket's TCP connection ended (after its last message was handled)."""
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        if self.server.sockets.get(self.sid) is self:
            del self.server.sockets[self.sid]

    # -- the websocket transport on aiohttp's WebSocketResponse (when the connection cannot be taken over)

    async def _websocket_handler(self, ws: FastWebSocket) -> None:  # type: ignore[override]
        if self.connected:
            if not await self._upgrade_handshake(ws):
                return
        else:
            self.connected = True
            self.upgraded = True
        self.go_direct(ws.transport)
        await self._read_loop(ws)
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)

    async def _upgrade_handshake(self, ws: FastWebSocket) -> bool:
        """The polling -> websocket upgrade (probe ping/pong, then UPGRADE), as python-engineio does it."""
        self.upgrading = True
        try:
            pkt = await ws.wait()
        except OSError:
            self.upgrading = False
            return False
        decoded = packet.Packet(encoded_packet=pkt)
        if decoded.packet_type != packet.PING or decoded.data != "probe":
            self.upgrading = False
            return False
        await ws.send(packet.Packet(packet.PONG, data="probe").encode())
        await self.queue.put(packet.Packet(packet.NOOP))  # ends the pending poll
        try:
            pkt = await ws.wait()
        except OSError:
            self.upgrading = False
            return False
        decoded = packet.Packet(encoded_packet=pkt)
        if decoded.packet_type != packet.UPGRADE:
            self.upgraded = False
            self.upgrading = False
            return False
        self.upgraded = True
        self.upgrading = False
        return True

    def go_direct(self, transport: asyncio.Transport | None) -> None:
        """Flush what was queued (OPEN, or packets sent during an upgrade), then write directly."""
        while True:
            try:
                pkt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if pkt is not None and pkt.packet_type != packet.NOOP:
                self.server.writer.write(transport, frames.frame(pkt.encode()))
        if transport is None:  # the connection is already gone: the reader loop ends at once
            return
        old_queue, self.queue = self.queue, self.server.direct_queue
        self.transport = transport
        # A long-poll request still waiting on the old queue (a client that upgraded without letting its
        # last poll return) gets a NOOP and ends, instead of timing out and closing the session.
        old_queue.put_nowait(packet.Packet(packet.NOOP))

    async def _read_loop(self, ws: FastWebSocket) -> None:
        """The messages of an aiohttp websocket (the path :func:`wsconn.accept` declined), handled as
        :class:`~rtc_server.fastio.wsconn.WsConnection` hands them over, until either side closes."""
        receive = ws.sock.receive
        while not self.closed:
            msg = await receive()
            if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
                break  # closed, closing or a protocol error
            await self.handle_message(msg.data)

    async def _dispatch(self, handler: Any, sid: str, data: Any) -> None:
        try:
            await handler(sid, data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            log.info("engine.io: closing %s after an undecodable packet: %s", sid, str(exc)[:200])
            await self.close(wait=False, abort=True)
        except Exception:
            log.exception("engine.io: message handler failed for %s", sid)


ENVIRON_KEYS = (
    "REQUEST_METHOD",
    "PATH_INFO",
    "QUERY_STRING",
    "HTTP_ORIGIN",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_USER_AGENT",
)
"""What python-socketio keeps of a connect's ``environ`` for the session's life (namespace connects
read it later): the keys the hub reads, plus ``REMOTE_ADDR`` set to the real peer address."""


def slim_environ(environ: dict[str, Any]) -> dict[str, Any]:
    """The connect ``environ`` python-socketio stores per session, without the aiohttp request (which
    would keep the whole request, its protocol and its headers alive as long as the session)."""
    slim = {key: environ[key] for key in ENVIRON_KEYS if key in environ}
    remote = getattr(environ.get("aiohttp.request"), "remote", None)
    slim["REMOTE_ADDR"] = remote if isinstance(remote, str) else environ.get("REMOTE_ADDR", "")
    return slim


class FastEngineServer(engineio.AsyncServer):
    """python-engineio's server with :class:`FastEngineSocket` sessions and :class:`FastWebSocket`."""

    _async: dict[str, Any] | None
    start_service_task: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.background: set[asyncio.Future[Any]] = set()
        self.writer = frames.Writer()
        """Corked writes to every websocket session of this server."""
        self.direct_queue = _DirectQueue()
        """What direct sessions hold instead of a queue (stateless, shared by them)."""
        self.start_event: Callable[[str, str | bytes], bool] | None = None
        """Set by the Socket.IO server: starts an event's handler from a message's text at once, or
        returns False (:meth:`FastEngineSocket.message_now`)."""
        if self._async is not None and self._async.get("websocket") is not None:
            self._async = {**self._async, "websocket": FastWebSocket}

    def attach(self, app: Any, engineio_path: str = "engine.io") -> None:
        """python-engineio's ``attach``, and close the websockets taken over from aiohttp when the app
        shuts down (aiohttp no longer knows them)."""
        super().attach(app, engineio_path)
        on_shutdown = getattr(app, "on_shutdown", None)
        if on_shutdown is not None:
            on_shutdown.append(self._close_websockets)

    async def _close_websockets(self, app: Any) -> None:
        for socket in list(self.sockets.values()):
            conn = getattr(socket, "conn", None)
            if conn is not None:
                conn.abandon()

    async def _handle_connect(self, environ: dict[str, Any], transport: str, jsonp_index: Any = None) -> Any:
        """python-engineio 4.x's connect handling, creating a :class:`FastEngineSocket`."""
        if self.start_service_task:
            self.start_service_task = False
            self.service_task_handle = self.start_background_task(self._service_task)
        sid = self.generate_id()
        s = FastEngineSocket(self, sid)
        self.sockets[sid] = s
        pkt = packet.Packet(
            packet.OPEN,
            {
                "sid": sid,
                "upgrades": self._upgrades(sid, transport),
                "pingTimeout": int(self.ping_timeout * 1000),
                "pingInterval": int(self.ping_interval + self.ping_interval_grace_period) * 1000,
                "maxPayload": self.max_http_buffer_size,
            },
        )
        await s.send(pkt)
        ret = await self._trigger_event("connect", sid, slim_environ(environ), run_async=False)
        if ret is not None and ret is not True:
            del self.sockets[sid]
            self.logger.warning("Application rejected connection")
            return self._unauthorized(ret or None)
        s.schedule_ping()
        if transport == "websocket":
            ret = await s.handle_get_request(environ)
            if s.closed and sid in self.sockets:
                del self.sockets[sid]
            return ret
        s.connected = True
        headers = None
        if self.cookie:
            attributes = (
                self.cookie
                if isinstance(self.cookie, dict)
                else {"name": self.cookie, "path": "/", "SameSite": "Lax"}
            )
            headers = [("Set-Cookie", self._generate_sid_cookie(sid, attributes))]
        try:
            return self._ok(await s.poll(), headers=headers, jsonp_index=jsonp_index)
        except exceptions.QueueEmpty:
            return self._bad_request()
