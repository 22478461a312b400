"""WebSocket text frames built once, and written to transports in one batch per event-loop iteration.

A server's WebSocket frames are not masked (RFC 6455, 5.1), so a frame built for one client is valid,
byte for byte, for every client of a broadcast: encode the Socket.IO packet once, frame it once, and
hand the same ``bytes`` to each recipient. This only holds without per-message compression, which the
fast Engine.IO driver never negotiates (the Node ``socket.io`` server does not either by default).

Writes are corked: :class:`Writer` collects the frames queued for each transport during one iteration
of the event loop and writes each transport's frames with one ``writelines`` (one ``send`` system call
instead of one per frame) from a callback scheduled with ``call_soon``. An ack and the broadcast that
precede it, or the messages of several conversations reaching one agent, leave in one segment.
"""

from __future__ import annotations

import asyncio
import logging
import struct

log = logging.getLogger(__name__)

_LEN1 = struct.Struct("!BB").pack
_LEN2 = struct.Struct("!BBH").pack
_LEN3 = struct.Struct("!BBQ").pack
_TEXT = 0x81  # FIN + text opcode
_BINARY = 0x82  # FIN + binary opcode

#: A client whose unsent bytes exceed this is too slow to keep up: its connection is closed rather than
#: letting the server's memory grow without bound (it reconnects and syncs).
MAX_WRITE_BUFFER = 16 * 1024 * 1024


def frame(payload: str | bytes) -> bytes:
    """One unmasked, uncompressed, final WebSocket frame (text for ``str``, binary for ``bytes``)."""
    if isinstance(payload, str):
        data = payload.encode()
        first = _TEXT
    else:
        data = bytes(payload)
        first = _BINARY
    n = len(data)
    if n < 126:
        return _LEN1(first, n) + data
    if n < 65536:
        return _LEN2(first, 126, n) + data
    return _LEN3(first, 127, n) + data


class Writer:
    """Corked writes to many transports of one event loop (one per Engine.IO server)."""

    def __init__(self) -> None:
        self._pending: dict[asyncio.Transport, list[bytes]] = {}
        self._scheduled = False

    def write(self, transport: asyncio.Transport | None, data: bytes) -> bool:
        """Queue a ready frame for ``transport``; False when the connection is gone."""
        if transport is None or transport.is_closing():
            return False
        queued = self._pending.get(transport)
        if queued is None:
            self._pending[transport] = [data]
            if not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self.flush)
        else:
            queued.append(data)
        return True

    def flush(self) -> None:
        """Write everything queued (called once per loop iteration)."""
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for transport, queued in pending.items():
            _send(transport, queued)

    def flush_one(self, transport: asyncio.Transport) -> None:
        """Write what is queued for ``transport`` now (before closing it)."""
        queued = self._pending.pop(transport, None)
        if queued:
            _send(transport, queued)


def _send(transport: asyncio.Transport, queued: list[bytes]) -> None:
    if transport.is_closing():
        return
    if len(queued) == 1:
        transport.write(queued[0])
    else:
        transport.write(b"".join(queued))
    if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
        log.warning(
            "closing a websocket whose client does not read (%d bytes pending)",
            transport.get_write_buffer_size(),
        )
        transport.abort()
