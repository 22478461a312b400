"""The msgpack parser (``socket.io-msgpack-parser``'s encoding) beside the JSON one, per session: a
session's first packet decides its parser, every answer and broadcast reaches it in that parser (one
encoding per parser for a broadcast), a packet of the other parser or one that does not decode closes
the session, and a payload holding values JSON cannot carry gets ``invalid`` through its ack. Real
servers on port 0, raw websocket frames; the official client with the parser is in
``test_node_client.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import ormsgpack
import pytest
import socketio

from rtc_server.fastio import msgpack_parser
from tests.functional.test_fastio_wsconn import Served, masked, raw_open, read_close, read_frame

BINARY = 0x2


class Room(socketio.AsyncNamespace):
    """Joins every socket to one room; ``say`` broadcasts to it, ``echo`` answers what it got."""

    def __init__(self, namespace: str, seen: list[Any]) -> None:
        super().__init__(namespace)
        self.seen = seen

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if isinstance(auth, dict) and auth.get("token") == "no":
            raise socketio.exceptions.ConnectionRefusedError("unauthorized", {"code": "unauthorized"})
        self.seen.append(("auth", auth))
        await self.enter_room(sid, "room")

    async def on_echo(self, sid: str, data: Any) -> Any:
        self.seen.append(("echo", data))
        return {"ok": True, "echo": data}

    async def on_say(self, sid: str, data: Any) -> Any:
        await self.emit("said", {"text": data}, room="room")
        return {"ok": True}

    async def on_blob(self, sid: str, n: int) -> Any:
        await self.emit("said", {"blob": bytes(range(n))}, room="room")
        return {"ok": True}

    async def on_kick(self, sid: str) -> None:
        await self.disconnect(sid)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Served, list[Any]]]:
    served = Served(ping_interval=5, ping_timeout=5)
    seen: list[Any] = []
    served.sio.register_namespace(Room("/ns", seen))
    await served.start()
    try:
        yield served, seen
    finally:
        await served.stop()


def nested(depth: int) -> list[Any]:
    """Lists ``depth`` levels deep (JSON values go at most 255 levels deep here)."""
    out: list[Any] = []
    for _ in range(depth - 1):
        out = [out]
    return out


def packed(**packet: Any) -> bytes:
    return masked(ormsgpack.packb(packet), opcode=BINARY)


async def next_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next frame that is not an Engine.IO ping."""
    async with asyncio.timeout(5):
        while True:
            opcode, payload = await read_frame(reader)
            if payload != b"2":
                return opcode, payload


async def next_packet(reader: asyncio.StreamReader) -> dict[str, Any]:
    opcode, payload = await next_frame(reader)
    assert opcode == BINARY, payload
    packet: dict[str, Any] = ormsgpack.unpackb(payload)
    return packet


async def msgpack_session(port: int, auth: Any = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer, _ = await raw_open(port)
    connect: dict[str, Any] = {"type": 0, "nsp": "/ns"}
    if auth is not None:
        connect["data"] = auth
    writer.write(packed(**connect))
    answer = await next_packet(reader)
    assert answer["type"] == 0 and answer["nsp"] == "/ns" and isinstance(answer["data"]["sid"], str), answer
    return reader, writer


async def test_a_msgpack_session_gets_every_answer_in_msgpack(served: tuple[Served, list[Any]]) -> None:
    server, seen = served
    reader, writer = await msgpack_session(server.port, {"token": "t"})
    assert seen == [("auth", {"token": "t"})]
    value = {"text": "été ✓", "n": 2**40, "f": 1.5, "none": None, "list": [True, False]}
    writer.write(packed(type=2, nsp="/ns", id=7, data=["echo", value]))
    ack = await next_packet(reader)
    assert ack == {"type": 3, "nsp": "/ns", "id": 7, "data": [{"ok": True, "echo": value}]}
    # An event with no ack id runs its handler and answers nothing.
    writer.write(packed(type=2, nsp="/ns", data=["echo", "quiet"]))
    writer.write(packed(type=2, nsp="/ns", id=8, data=["echo", "loud"]))
    assert (await next_packet(reader))["id"] == 8
    assert seen[-2:] == [("echo", "quiet"), ("echo", "loud")]
    # A server-side disconnect carries no data (the parser refuses ``data: null``).
    writer.write(packed(type=2, nsp="/ns", data=["kick"]))
    assert await next_packet(reader) == {"type": 1, "nsp": "/ns"}
    writer.close()


async def test_undefined_auth_is_none_and_a_refusal_is_a_connect_error(served: tuple[Served, list[Any]]) -> None:
    server, seen = served
    reader, writer, _ = await raw_open(server.port)
    # notepack.io 2.x, socket.io-msgpack-parser's encoder, writes ``undefined`` as fixext 1 [0, 0]
    writer.write(masked(ormsgpack.packb({"type": 0, "nsp": "/ns", "data": ormsgpack.Ext(0, b"\x00")}), opcode=BINARY))
    assert (await next_packet(reader))["type"] == 0
    assert seen == [("auth", None)]
    writer.close()
    reader, writer, _ = await raw_open(server.port)
    writer.write(packed(type=0, nsp="/ns", data={"token": "no"}))
    refused = await next_packet(reader)
    assert refused == {"type": 4, "nsp": "/ns", "data": {"message": "unauthorized", "data": {"code": "unauthorized"}}}
    writer.close()


async def test_a_broadcast_reaches_each_session_in_its_parser(served: tuple[Served, list[Any]]) -> None:
    server, _ = served
    mp_reader, mp_writer = await msgpack_session(server.port)
    js_reader, js_writer, _ = await raw_open(server.port)
    js_writer.write(masked(b"40/ns,"))
    opcode, payload = await next_frame(js_reader)
    assert opcode == 0x1 and payload.startswith(b"40/ns,{"), payload
    js_writer.write(masked(b'42/ns,1["say","hi"]'))
    assert await next_frame(js_reader) == (0x1, b'42/ns,["said",{"text":"hi"}]')
    assert await next_frame(js_reader) == (0x1, b'43/ns,1[{"ok":true}]')
    assert await next_packet(mp_reader) == {"type": 2, "nsp": "/ns", "data": ["said", {"text": "hi"}]}
    mp_writer.write(packed(type=2, nsp="/ns", id=1, data=["say", "ho"]))
    assert await next_packet(mp_reader) == {"type": 2, "nsp": "/ns", "data": ["said", {"text": "ho"}]}
    assert await next_packet(mp_reader) == {"type": 3, "nsp": "/ns", "id": 1, "data": [{"ok": True}]}
    assert await next_frame(js_reader) == (0x1, b'42/ns,["said",{"text":"ho"}]')
    mp_writer.close()
    js_writer.close()


@pytest.mark.parametrize(
    "value",
    [b"\x01\x02", ormsgpack.Ext(5, b"x"), ormsgpack.Ext(0, b"array buffer"), {"nested": [b"bin"]}, {1: "int key"},
     {b"k": "bin key"}, nested(300)],
    ids=["bin", "ext", "arraybuffer", "nested", "int-key", "bin-key", "deep"],
)
async def test_values_json_cannot_carry_are_invalid(served: tuple[Served, list[Any]], value: Any) -> None:
    server, seen = served
    reader, writer = await msgpack_session(server.port)
    packet = {"type": 2, "nsp": "/ns", "id": 3, "data": ["echo", value]}
    try:
        encoded = ormsgpack.packb(packet, option=ormsgpack.OPT_NON_STR_KEYS)
    except TypeError:  # deeper than ormsgpack writes
        encoded = msgpack.packb(packet)
    writer.write(masked(encoded, opcode=BINARY))
    ack = await next_packet(reader)
    assert ack == {"type": 3, "nsp": "/ns", "id": 3, "data": [msgpack_parser.NOT_JSON]}
    assert msgpack_parser.NOT_JSON["error"]["code"] == "invalid"  # type: ignore[index]
    assert [s for s in seen if s[0] == "echo"] == []  # the handler never saw it
    writer.write(packed(type=2, nsp="/ns", id=4, data=["echo", "still here"]))
    assert (await next_packet(reader))["data"] == [{"ok": True, "echo": "still here"}]
    writer.close()


@pytest.mark.parametrize(
    "frame",
    [
        masked(b"\xc1", opcode=BINARY),  # never used in MessagePack
        masked(ormsgpack.packb([2, "/ns"]), opcode=BINARY),  # not a map
        packed(type=9, nsp="/ns", data=["echo"]),  # no such type
        packed(type=5, nsp="/ns", data=["echo"]),  # the JSON parser's binary event: not this parser's
        packed(type=2, nsp=3, data=["echo"]),  # a namespace that is not a string
        packed(type=2, nsp="/ns", data={"echo": 1}),  # an event that is not an array
        packed(type=2, nsp="/ns", data=[]),  # an event with no name
        packed(type=2, nsp="/ns", id=-1, data=["echo"]),  # a negative id
        packed(type=1, nsp="/ns", data="bye"),  # a DISCONNECT with data
        masked(b'42/ns,1["echo",1]'),  # text from a session of the msgpack parser
    ],
    ids=["c1", "array", "type", "binary-event", "nsp", "data", "empty", "id", "disconnect-data", "text"],
)
async def test_a_packet_that_does_not_decode_closes_the_session(served: tuple[Served, list[Any]], frame: bytes) -> None:
    server, seen = served
    reader, writer = await msgpack_session(server.port)
    writer.write(frame)
    assert await read_close(reader) == 1000
    writer.close()
    await asyncio.sleep(0.05)
    assert [s for s in seen if s[0] == "echo"] == []
    assert not server.sio.msgpack_sessions  # forgotten with the session


async def test_a_json_session_cannot_switch_to_msgpack(served: tuple[Served, list[Any]]) -> None:
    server, seen = served
    reader, writer, _ = await raw_open(server.port)
    writer.write(masked(b"40/ns,"))
    assert (await next_frame(reader))[1].startswith(b"40/ns,{")
    writer.write(packed(type=2, nsp="/ns", id=1, data=["echo", "x"]))
    assert await read_close(reader) == 1000
    writer.close()
    assert [s for s in seen if s[0] == "echo"] == []


async def test_a_broadcast_with_bytes_is_attachments_for_json_and_bin_for_msgpack(
    served: tuple[Served, list[Any]],
) -> None:
    """What the server itself sends may hold bytes: the JSON parser's sessions get a binary event (its
    header, then the attachment), the msgpack parser's get MessagePack's bin, in one packet."""
    server, _ = served
    mp_reader, mp_writer = await msgpack_session(server.port)
    js_reader, js_writer, _ = await raw_open(server.port)
    js_writer.write(masked(b"40/ns,"))
    assert (await next_frame(js_reader))[1].startswith(b"40/ns,{")
    mp_writer.write(packed(type=2, nsp="/ns", id=1, data=["blob", 3]))
    assert await next_packet(mp_reader) == {"type": 2, "nsp": "/ns", "data": ["said", {"blob": b"\x00\x01\x02"}]}
    assert await next_packet(mp_reader) == {"type": 3, "nsp": "/ns", "id": 1, "data": [{"ok": True}]}
    assert await next_frame(js_reader) == (0x1, b'451-/ns,["said",{"blob":{"_placeholder":true,"num":0}}]')
    assert await next_frame(js_reader) == (BINARY, b"\x00\x01\x02")
    mp_writer.close()
    js_writer.close()
