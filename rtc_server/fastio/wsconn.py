"""The websocket transport of an Engine.IO session on a lean asyncio protocol of its own.

aiohttp serves a websocket from inside a request handler that must keep running for the connection's
whole life: the ``RequestHandler`` protocol with its HTTP parser, the request (headers, URL, match info),
the ``WebSocketResponse`` with its reader, queue and writer, and every coroutine frame of the handler
chain (the middlewares, python-engineio's ``handle_request`` and its WSGI-style ``environ``) stay alive
for as long as the socket is open: more than half of an idle connection's memory.

Here the handler answers the upgrade itself (``101 Switching Protocols``, RFC 6455 4.2.2) and hands the
TCP transport over to a :class:`WsConnection` (``transport.set_protocol``), all in one synchronous step,
so that no byte can reach aiohttp after the request; aiohttp is told that the connection is gone (its
``RequestHandler.connection_lost``, which unregisters it and sets it to not close the transport) and the
handler returns a response that writes nothing. The request, aiohttp's protocol and the handler chain
are then released; the connection is this object, a small frame reader and the Engine.IO session.

:class:`WsConnection` reads client frames (masked, RFC 6455 5.2), answers WebSocket pings, enforces the
server's ``max_http_buffer_size`` (close 1009), closes on a protocol error (1002) or invalid UTF-8
(1007), and passes each message on in order: a pong at once, anything else through one short-lived task
per burst of messages (created when the first message of a burst arrives, gone when they are all
handled), so an idle connection holds no task. Writes go through the server's corked
:class:`~rtc_server.fastio.frames.Writer`, as before.

:func:`accept` returns None when the request cannot be taken over (not a valid RFC 6455 upgrade, a
pipelined request behind it, or an aiohttp whose protocol lacks what is used here); the caller then
keeps aiohttp's ``WebSocketResponse`` path.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import struct
from collections import deque
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rtc_server.fastio import frames

try:  # aiohttp's C helper (unmasks in place)
    from aiohttp._websocket.helpers import websocket_mask as _mask
except ImportError:  # pragma: no cover - an aiohttp without it

    def _mask(mask: bytes, data: bytearray) -> None:
        n = len(data)
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        data[:] = (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")


if TYPE_CHECKING:
    from rtc_server.fastio.engine import FastEngineSocket

log = logging.getLogger(__name__)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""RFC 6455's fixed key suffix for ``Sec-WebSocket-Accept``."""

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL, CLOSE_INVALID_DATA, CLOSE_TOO_BIG = (
    1000,
    1001,
    1002,
    1007,
    1009,
)

PAUSE_AT = 64
"""Messages waiting for the handler task beyond which the connection stops reading (back-pressure)."""

#: States of a connection: the polling -> websocket upgrade's probe, then its UPGRADE packet, then open.
PROBE, UPGRADE, OPEN = 0, 1, 2

_LOST = object()
"""Queued after the last message when the TCP connection ends: the session closes after the messages."""

_H2 = struct.Struct("!H").unpack_from
_H8 = struct.Struct("!Q").unpack_from


def close_frame(code: int) -> bytes:
    """A server close frame with ``code`` and no reason."""
    return bytes((0x88, 2)) + code.to_bytes(2, "big")


def control_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked control frame (payload at most 125 bytes)."""
    return bytes((0x80 | opcode, len(payload))) + payload


def handshake(request: web.BaseRequest) -> bytes | None:
    """The ``101`` answer to a valid RFC 6455 opening handshake (no subprotocol, no extension), else None."""
    if request.method != "GET" or request.version < (1, 1):
        return None
    headers = request.headers
    if headers.get("Upgrade", "").strip().lower() != "websocket":
        return None
    if "upgrade" not in (part.strip().lower() for part in headers.get("Connection", "").split(",")):
        return None
    if headers.get("Sec-WebSocket-Version", "").strip() != "13":
        return None
    key = headers.get("Sec-WebSocket-Key", "").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


class Detached(web.StreamResponse):
    """What the handler returns once the connection is handed over: aiohttp writes nothing for it (the
    ``101`` is already sent) and, its protocol having been told the connection is gone, closes nothing."""

    def __init__(self) -> None:
        super().__init__(status=101)

    async def prepare(self, request: web.BaseRequest) -> None:  # type: ignore[override]
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def _detach(request: web.BaseRequest) -> tuple[asyncio.Transport, bytes] | None:
    """Take the TCP transport away from aiohttp: returns it with the bytes already received after the
    request, or None (nothing changed) if aiohttp's protocol is not in the expected state."""
    protocol: Any = request.protocol
    transport = request.transport
    if transport is None or transport.is_closing():
        return None
    tail = getattr(protocol, "_message_tail", None)
    if (
        not isinstance(tail, bytes)
        or getattr(protocol, "_payload_parser", True) is not None
        or not getattr(protocol, "_upgraded", False)
        or getattr(protocol, "_messages", True)  # a pipelined request after the upgrade: let aiohttp answer
        or not hasattr(protocol, "_current_request")
        or not hasattr(transport, "set_protocol")
    ):
        return None
    protocol._message_tail = b""
    protocol._current_request = None  # nothing to fail: the request is answered
    protocol.transport = None  # the protocol no longer owns it: its force_close() must not close it
    protocol.connection_lost(None)  # unregister, release the parser, end its request loop
    return transport, tail  # type: ignore[return-value]


def accept(request: web.BaseRequest, session: FastEngineSocket) -> Detached | None:
    """Answer the upgrade and run ``session``'s websocket on a :class:`WsConnection`; None if the request
    cannot be taken over (the caller then uses aiohttp's websocket)."""
    answer = handshake(request)
    if answer is None:
        return None
    detached = _detach(request)
    if detached is None:
        return None
    transport, tail = detached
    conn = WsConnection(session, transport)
    transport.set_protocol(conn)
    transport.write(answer)
    session.attach(conn)
    if tail:
        conn.data_received(tail)
    try:
        transport.resume_reading()  # aiohttp may have paused it for a large tail
    except (AttributeError, NotImplementedError, RuntimeError):
        pass
    return Detached()


class WsConnection(asyncio.Protocol):
    """One websocket of an Engine.IO session, after the handshake (see the module docstring)."""

    __slots__ = (
        "session",
        "transport",
        "state",
        "_buf",
        "_frag",
        "_frag_op",
        "_pending",
        "_task",
        "_paused",
        "_done",
        "__weakref__",
    )

    def __init__(self, session: FastEngineSocket, transport: asyncio.Transport) -> None:
        self.session = session
        self.transport = transport
        self.state = OPEN
        self._buf: bytearray | None = None
        """Bytes of an incomplete frame."""
        self._frag: list[bytes] | None = None
        """Payloads of a fragmented message so far."""
        self._frag_op = 0
        self._pending: deque[Any] | None = None
        """Messages for the handler task (None while no task runs)."""
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._done = False
        """True once closing: further bytes are ignored."""

    # -- asyncio.Protocol -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # pragma: no cover - set_protocol
        return None

    def pause_writing(self) -> None:
        """The transport's buffer is above its high-water mark: :mod:`frames` enforces the limit."""

    def resume_writing(self) -> None:
        """See :meth:`pause_writing`."""

    def eof_received(self) -> None:
        return None  # the transport closes itself

    def connection_lost(self, exc: BaseException | None) -> None:
        self._done = True
        self._buf = self._frag = None
        session = self.session
        if self.state < 0:  # abandoned at shutdown
            return
        if self.state != OPEN:  # a failed upgrade: the session goes on polling
            session.upgrading = False
            session.upgraded = False
            if session.conn is self:
                session.conn = None
            return
        self._queue(_LOST)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        buf = self._buf
        if buf is not None:
            buf += data
            data = buf  # type: ignore[assignment]
        n = len(data)
        pos = 0
        limit = self.session.server.max_http_buffer_size
        while n - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            opcode = b0 & 0x0F
            length = b1 & 0x7F
            head = pos + 6
            if length == 126:
                if n - pos < 4:
                    break
                length = _H2(data, pos + 2)[0]
                head = pos + 8
            elif length == 127:
                if n - pos < 10:
                    break
                length = _H8(data, pos + 2)[0]
                head = pos + 14
            if not b1 & 0x80 or b0 & 0x70:  # clients must mask; no extension was negotiated
                return self._fail(CLOSE_PROTOCOL)
            if opcode >= 0x8:
                if length > 125 or not b0 & 0x80:
                    return self._fail(CLOSE_PROTOCOL)
            elif length > limit or (self._frag is not None and length + sum(map(len, self._frag)) > limit):
                return self._fail(CLOSE_TOO_BIG)
            end = head + length
            if end > n:
                break
            payload = bytearray(data[head:end])
            _mask(bytes(data[head - 4 : head]), payload)
            pos = end
            if not self._frame(b0 & 0x80, opcode, payload):
                return
        if pos == n:
            self._buf = None
        elif buf is not None:
            del buf[:pos]
        else:
            self._buf = bytearray(data[pos:])

    # -- frames and messages --------------------------------------------------------------------------

    def _frame(self, fin: int, opcode: int, payload: bytearray) -> bool:
        """Handle one frame; False once the connection is closing."""
        if opcode == OP_PING:
            self.session.server.writer.write(self.transport, control_frame(OP_PONG, bytes(payload)))
            return True
        if opcode == OP_PONG:
            return True
        if opcode == OP_CLOSE:
            code = _H2(payload)[0] if len(payload) >= 2 else CLOSE_NORMAL
            self._close(close_frame(code) if 1000 <= code < 5000 else close_frame(CLOSE_PROTOCOL))
            return False
        if opcode == OP_CONT:
            if self._frag is None:
                self._fail(CLOSE_PROTOCOL)
                return False
            self._frag.append(bytes(payload))
            if not fin:
                return True
            opcode, data = self._frag_op, b"".join(self._frag)
            self._frag = None
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._frag is not None:
                self._fail(CLOSE_PROTOCOL)
                return False
            if not fin:
                self._frag, self._frag_op = [bytes(payload)], opcode
                return True
            data = bytes(payload)
        else:
            self._fail(CLOSE_PROTOCOL)
            return False
        if opcode == OP_BINARY:
            self._message(data)
            return not self._done
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self._fail(CLOSE_INVALID_DATA)
            return False
        self._message(text)
        return not self._done

    def _message(self, msg: str | bytes) -> None:
        state = self.state
        if state == OPEN:
            if self._pending is None:  # nothing before it still being handled: at once if it can be
                session = self.session
                if msg == "3":  # a pong
                    session.schedule_ping()
                    return
                if not session.closed and session.message_now(msg):
                    return
            self._queue(msg)
            return
        session = self.session
        if state == PROBE:  # the polling -> websocket upgrade (as python-engineio does it)
            if msg != "2probe":
                log.info("engine.io: %s failed websocket upgrade, no probe", session.sid)
                self._close(close_frame(CLOSE_NORMAL))
                return
            session.server.writer.write(self.transport, frames.frame("3probe"))
            session.queue_noop()  # ends the pending long-poll
            self.state = UPGRADE
            return
        if msg != "5":
            log.info("engine.io: %s failed websocket upgrade, no UPGRADE packet", session.sid)
            self._close(close_frame(CLOSE_NORMAL))
            return
        session.upgraded = True
        session.upgrading = False
        self.state = OPEN
        session.go_direct(self.transport)

    def _queue(self, item: Any) -> None:
        pending = self._pending
        if pending is None:
            self._pending = deque((item,))
            self._task = asyncio.get_running_loop().create_task(self._run())
            return
        pending.append(item)
        if len(pending) > PAUSE_AT and not self._paused and not self._done:
            self._paused = True
            self.transport.pause_reading()

    async def _run(self) -> None:
        """Hand the queued messages to the session in order (one task per burst)."""
        session = self.session
        pending = self._pending
        try:
            while pending:
                item = pending.popleft()
                if item is _LOST:
                    await session.transport_lost()
                    return
                if not session.closed:
                    await session.handle_message(item)
                if self._paused and len(pending) <= PAUSE_AT // 2 and not self._done:
                    self._paused = False
                    self.transport.resume_reading()
        except Exception:  # pragma: no cover - handle_message logs and closes on its own errors
            log.exception("engine.io: message handling failed for %s", session.sid)
            self.transport.abort()
        finally:
            if self._pending is pending:
                self._pending = None
                self._task = None

    # -- closing --------------------------------------------------------------------------------------

    def abandon(self) -> None:
        """The server shuts down: close the connection (``1001 going away``) without closing the session
        (as aiohttp's shutdown cancels a websocket handler)."""
        self.state = -1
        self._close(close_frame(CLOSE_GOING_AWAY))

    def _fail(self, code: int) -> None:
        log.info("engine.io: closing %s's websocket (%d)", self.session.sid, code)
        self._close(close_frame(code))

    def _close(self, frame: bytes) -> None:
        """Send ``frame`` (a close frame) after what is queued, then close the TCP connection."""
        self._done = True
        self._buf = self._frag = None
        transport = self.transport
        if transport.is_closing():
            return
        writer = self.session.server.writer
        writer.flush_one(transport)
        transport.write(frame)
        transport.close()
