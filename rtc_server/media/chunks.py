"""The chunk envelope: JSON messages larger than a data channel message may be.

Chromium and aiortc refuse data channel messages above 262,144 bytes, and a co-browsed page's full
snapshot can be several megabytes. A JSON message whose UTF-8 encoding is larger than
:data:`MAX_MESSAGE_BYTES` travels as consecutive text messages, each one an envelope::

    {"t": "chunk", "id": "<message id>", "i": <index>, "n": <count>, "d": "<piece>"}

- ``id``: a string (1-64 characters) naming the message, unique among the sender's recent messages;
- ``i``: the piece's 0-based index; ``n``: how many pieces (1 to :data:`MAX_PIECES`);
- ``d``: a piece of the original message's JSON *text*.

The receiver concatenates the ``d`` of pieces ``0 .. n-1`` of one ``id`` and parses the result as the
original message. The pieces of a message are sent consecutively, in order, on the ordered channel;
a piece out of sequence, a new ``id`` before the last piece, or a reassembled text larger than
:data:`MAX_REASSEMBLED_BYTES` discards the partial message. Splitting the JSON text into pieces of
at most 65,536 UTF-16 code units (JavaScript string indices) always keeps an envelope under the limit
(at most 3 UTF-8 bytes per code unit, an escaped quote is 2 bytes); the server, which writes ASCII-only
JSON, uses pieces of :data:`SERVER_PIECE_CHARS` characters (ASCII texts) or half of that.

Compression (optional, recommended above :data:`COMPRESS_ABOVE_BYTES`): the first envelope of a message
may carry ``"enc": "gzip"``; the concatenated ``d`` is then the base64 of the gzip-compressed UTF-8 JSON
text (a browser makes it with ``CompressionStream("gzip")`` and reads it with
``DecompressionStream("gzip")``). A 876 KB page snapshot becomes about 90 KB, which matters: aiortc's
SCTP costs the server about 0.3 s of CPU per megabyte, each way (measured on loopback), and a large
snapshot otherwise takes seconds to reach an agent. A compressed message may use a single envelope
(``n`` = 1). The server accepts compressed messages from customers,
and compresses its large messages to an agent that announced ``{"t": "hello", "enc": ["gzip"]}`` on
its channel. The decompressed text is capped at :data:`MAX_REASSEMBLED_BYTES` like any other.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import itertools
import json
import zlib
from collections.abc import Iterator
from typing import Any

MAX_MESSAGE_BYTES = 262_144
"""Largest data channel message, in bytes, in both directions."""
MAX_PIECES = 1024
MAX_REASSEMBLED_BYTES = 32 * 1024 * 1024
CLIENT_PIECE_CHARS = 65_536
SERVER_PIECE_CHARS = 120_000
MAX_ID_CHARS = 64
COMPRESS_ABOVE_BYTES = 32 * 1024
"""The server compresses messages larger than this to agents that accept gzip."""
GZIP = "gzip"
_GZIP_PIECE_CHARS = 200_000


class ChunkError(ValueError):
    """A chunk envelope broke the rules; the partial message was discarded."""


def is_chunk(message: Any) -> bool:
    """Whether a parsed message is a chunk envelope."""
    return isinstance(message, dict) and message.get("t") == "chunk"


class ChunkAssembler:
    """Reassembles the chunked messages of one channel."""

    def __init__(self, max_bytes: int = MAX_REASSEMBLED_BYTES) -> None:
        self._max_bytes = max_bytes
        self._id: str | None = None
        self._parts: list[str] = []
        self._size = 0
        self._count = 0
        self._encoding: str | None = None

    @property
    def pending(self) -> bool:
        """A message is partly received."""
        return self._id is not None

    def feed(self, envelope: dict[str, Any]) -> str | None:
        """Add one envelope; returns the whole JSON text after its last piece, else ``None``.

        Raises :class:`ChunkError` (and forgets the partial message) on a broken sequence."""
        msg_id, index, count, piece = (
            envelope.get("id"),
            envelope.get("i"),
            envelope.get("n"),
            envelope.get("d"),
        )
        if not (isinstance(msg_id, str) and 0 < len(msg_id) <= MAX_ID_CHARS):
            raise self._fail("chunk id must be a string of 1-64 characters")
        if not (isinstance(count, int) and isinstance(index, int) and _is_int(count) and _is_int(index)):
            raise self._fail("chunk i/n must be integers")
        if not (1 <= count <= MAX_PIECES and 0 <= index < count):
            raise self._fail("chunk i/n out of range")
        if not isinstance(piece, str):
            raise self._fail("chunk d must be a string")
        if index == 0:
            encoding = envelope.get("enc")
            if encoding not in (None, GZIP):
                raise self._fail(f"unknown chunk encoding {encoding!r}")
            self._reset()
            self._id, self._count, self._encoding = msg_id, count, encoding
        elif msg_id != self._id or count != self._count or index != len(self._parts):
            raise self._fail("chunk out of sequence")
        self._parts.append(piece)
        self._size += len(piece)
        if self._size > self._max_bytes:
            raise self._fail("chunked message too large")
        if index < count - 1:
            return None
        text = "".join(self._parts)
        encoding = self._encoding
        self._reset()
        return text if encoding is None else self._gunzip(text)

    def _gunzip(self, text: str) -> str:
        try:
            compressed = base64.b64decode(text, validate=True)
            inflater = zlib.decompressobj(wbits=31)  # gzip framing
            data = inflater.decompress(compressed, self._max_bytes + 1)
            if len(data) > self._max_bytes or inflater.unconsumed_tail:
                raise ChunkError("compressed message too large once inflated")
            return data.decode("utf-8")
        except (binascii.Error, zlib.error, UnicodeDecodeError, ValueError) as exc:
            raise ChunkError(f"bad gzip message: {exc}") from exc

    def _reset(self) -> None:
        self._id, self._parts, self._size, self._count, self._encoding = None, [], 0, 0, None

    def _fail(self, reason: str) -> ChunkError:
        self._reset()
        return ChunkError(reason)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class ChunkWriter:
    """Splits the server's outgoing JSON texts into envelopes when needed."""

    def __init__(self, prefix: str = "s", piece_chars: int = SERVER_PIECE_CHARS) -> None:
        self._prefix = prefix
        self._piece_chars = piece_chars
        self._ids = itertools.count(1)

    def messages(self, text: str, compress: bool = False) -> Iterator[str]:
        """``text`` itself when it fits in one data channel message (and is not worth compressing),
        else its chunk envelopes (gzip-encoded when ``compress`` and larger than
        :data:`COMPRESS_ABOVE_BYTES`)."""
        if compress and len(text) > COMPRESS_ABOVE_BYTES:
            yield from self._gzip_messages(text)
            return
        if len(text) <= MAX_MESSAGE_BYTES // 4 or len(text.encode("utf-8")) <= MAX_MESSAGE_BYTES:
            yield text
            return
        msg_id = f"{self._prefix}{next(self._ids)}"
        # The text is valid JSON: no raw control characters, so a character costs at most 2 bytes
        # in the envelope when ASCII (an escaped quote or backslash), else at most 4 (UTF-8).
        step = self._piece_chars if text.isascii() else self._piece_chars // 2
        count = -(-len(text) // step)
        for index in range(count):
            piece = text[index * step : (index + 1) * step]
            envelope = {"t": "chunk", "id": msg_id, "i": index, "n": count, "d": piece}
            yield json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)

    def _gzip_messages(self, text: str) -> Iterator[str]:
        packed = base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=5, mtime=0)).decode(
            "ascii"
        )
        msg_id = f"{self._prefix}{next(self._ids)}"
        step = _GZIP_PIECE_CHARS
        count = max(1, -(-len(packed) // step))
        for index in range(count):
            envelope: dict[str, Any] = {"t": "chunk", "id": msg_id, "i": index, "n": count}
            if index == 0:
                envelope["enc"] = GZIP
            envelope["d"] = packed[index * step : (index + 1) * step]
            yield json.dumps(envelope, separators=(",", ":"))
