"""WebSocket text frames built once and written straight to a transport.

A server's WebSocket frames are not masked (RFC 6455, 5.1), so a frame built for one client is valid,
byte for byte, for every client of a broadcast: encode the Socket.IO packet once, frame it once, and
``transport.write`` the same ``bytes`` to each recipient. This only holds without per-message
compression, which the fast Engine.IO driver never negotiates (the Node ``socket.io`` server does not
either by default).
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


def write(transport: asyncio.Transport | None, data: bytes) -> bool:
    """Write a ready frame; False when the connection is gone or was closed for being too slow."""
    if transport is None or transport.is_closing():
        return False
    transport.write(data)
    if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
        log.warning(
            "closing a websocket whose client does not read (%d bytes pending)",
            transport.get_write_buffer_size(),
        )
        transport.abort()
        return False
    return True
