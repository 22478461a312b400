"""Socket.IO packets in the msgpack parser's encoding (``socket.io-msgpack-parser``), for the sessions
whose client chose it.

That parser encodes a whole packet as one MessagePack map, ``{type, nsp, data?, id?}``, sent as one
binary Engine.IO message (no attachments, so no BINARY_EVENT or BINARY_ACK). The server tells a session's
parser from its first Socket.IO packet (:class:`rtc_server.fastio.server.FastAsyncServer`): a text
message is the JSON parser's, a binary one this parser's.

What is accepted is the JSON data model, as with the JSON parser: maps with string keys, arrays,
strings, numbers, booleans and nil, at most 255 levels deep. ``undefined`` (which notepack.io 2.x, the
parser's encoder, writes as the extension ``fixext 1 [0, 0]``) reads as nil. A packet that is not a valid packet of the parser
(:func:`decode` raises ``ValueError``) closes the session, as an undecodable JSON packet does; binary
values, other extension types and keys that are not strings are not JSON values: :func:`plain` tells
them apart, and the server refuses such an event with ``invalid`` through its ack.

Encoding and decoding use ``ormsgpack`` (as fast as ``orjson`` is for JSON).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import ormsgpack

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - the "fast" extra is not installed
    _orjson = None  # type: ignore[assignment]

CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = range(7)

_UNDEFINED = b"\x00"

NOT_JSON = {
    "ok": False,
    "error": {"code": "invalid", "message": "the payload holds values JSON cannot carry (binary data, extensions)"},
}
"""The answer (through its ack) to an event whose payload is not the JSON data model."""


class Packet(NamedTuple):
    type: int
    namespace: str
    data: Any
    id: int | None


def _ext(code: int, data: bytes) -> Any:
    """notepack.io 2.x writes ``undefined`` as ``fixext 1 [0, 0]`` and an ``ArrayBuffer`` as extension 0
    with its bytes; other extension types stay what they are (and are not JSON values)."""
    if code == 0:
        return None if data == _UNDEFINED else bytes(data)
    return ormsgpack.Ext(code, data)


def decode(encoded: bytes) -> Packet:
    """One packet from a client, checked as the parser's own decoder checks it; ``ValueError`` if it is
    not one (a broken encoding, a field of the wrong type, a type a client never sends)."""
    try:
        packet = ormsgpack.unpackb(encoded, ext_hook=_ext, option=ormsgpack.OPT_NON_STR_KEYS)
    except (ValueError, TypeError) as exc:  # ormsgpack.MsgpackDecodeError is a ValueError
        raise ValueError(f"not a msgpack packet: {exc}") from None
    if packet.__class__ is not dict:
        raise ValueError("a msgpack packet must be a map")
    kind = packet.get("type")
    namespace = packet.get("nsp")
    data = packet.get("data")
    ack_id = packet.get("id")
    if kind.__class__ is not int or not CONNECT <= kind <= ACK:
        raise ValueError("invalid packet type")
    if namespace.__class__ is not str or not namespace.startswith("/"):
        raise ValueError("invalid namespace")
    if ack_id is not None and (ack_id.__class__ is not int or ack_id < 0):
        raise ValueError("invalid packet id")
    if kind == CONNECT:
        valid = data is None or data.__class__ is dict
    elif kind == DISCONNECT:
        valid = data is None
    else:
        valid = data.__class__ is list and (kind == ACK or len(data) > 0)
    if not valid:
        raise ValueError("invalid payload")
    return Packet(kind, namespace, data, ack_id)


def plain(value: Any) -> bool:
    """True if ``value`` holds only JSON values: no binary, no extension type, string keys only, at most
    255 levels deep (``orjson``'s limit: one encoding, without its output, is the fastest check)."""
    if _orjson is None:  # pragma: no cover - the "fast" extra is not installed
        return _plain(value, 255)
    try:
        _orjson.dumps(value)
    except TypeError:
        return False
    return True


def _plain(value: Any, depth: int) -> bool:
    if value is None or value.__class__ in (str, int, float, bool):
        return True
    if depth <= 0:
        return False
    if value.__class__ is list:
        return all(_plain(v, depth - 1) for v in value)
    if value.__class__ is dict:
        return all(k.__class__ is str and _plain(v, depth - 1) for k, v in value.items())
    return False


def encode(kind: int, namespace: str | None, data: Any, ack_id: int | None = None) -> bytes:
    """One packet to a client. ``data`` is left out when it is None (the parser refuses a DISCONNECT
    with ``data: null``), ``id`` when there is none; python-socketio's binary packet types become the
    plain ones, since MessagePack carries bytes itself."""
    if kind == BINARY_EVENT:
        kind = EVENT
    elif kind == BINARY_ACK:
        kind = ACK
    packet: dict[str, Any] = {"type": kind, "nsp": namespace or "/"}
    if data is not None:
        packet["data"] = data
    if ack_id is not None:
        packet["id"] = ack_id
    return ormsgpack.packb(packet)
