"""A websocket taken over from aiohttp after its handshake (``rtc_server.fastio.wsconn``) is still a full
RFC 6455 / Engine.IO v4 websocket: it answers pings (WebSocket and Engine.IO), reassembles fragments,
reads what came with the handshake, closes on a bad frame or invalid UTF-8, enforces ``maxPayload``,
survives the polling -> websocket upgrade, is closed when the server shuts down, and releases the
aiohttp request while it lives and its own objects once closed. Real servers on port 0, real clients."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import struct
import weakref
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from rtc_server.fastio import FastAsyncServer, wsconn

HANDSHAKE = (
    b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Served:
    """A FastAsyncServer on an aiohttp app on 127.0.0.1:0, recording requests and disconnects."""

    def __init__(self, **options: Any) -> None:
        self.sio = FastAsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False, **options)
        self.gone: list[tuple[str, Any]] = []
        self.requests: list[weakref.ref[web.BaseRequest]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

        @self.sio.on("disconnect")
        async def on_disconnect(sid: str, reason: Any = None) -> None:
            self.gone.append((sid, reason))

        @self.sio.on("echo")
        async def echo(sid: str, data: Any) -> Any:
            return {"echo": data}

    async def start(self) -> Served:
        @web.middleware
        async def remember(request: web.Request, handler: Any) -> web.StreamResponse:
            self.requests.append(weakref.ref(request))
            return await handler(request)

        app = web.Application(middlewares=[remember])
        self.sio.attach(app)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.sio.shutdown()
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    s = await Served(ping_interval=0.3, ping_timeout=2.0).start()
    try:
        yield s
    finally:
        await s.stop()


def masked(payload: bytes, opcode: int = 0x1, fin: bool = True, mask: bool = True) -> bytes:
    """A client frame (masked unless told otherwise)."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes((first, (0x80 if mask else 0) | n))
    elif n < 65536:
        head = bytes((first, (0x80 if mask else 0) | 126)) + struct.pack("!H", n)
    else:
        head = bytes((first, (0x80 if mask else 0) | 127)) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One server frame: (opcode, payload)."""
    b0, b1 = await reader.readexactly(2)
    assert not b1 & 0x80, "server frames are not masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


async def raw_open(port: int, extra: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A raw websocket to Engine.IO, through the 101 and the OPEN packet; returns the Engine.IO sid."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HANDSHAKE + extra)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # RFC 6455's example key
    opcode, payload = await read_frame(reader)
    assert opcode == 0x1 and payload.startswith(b"0")
    return reader, writer, json.loads(payload[1:])["sid"]


async def read_close(reader: asyncio.StreamReader) -> int:
    """Skip text frames until a close frame; its status code."""
    async with asyncio.timeout(5):
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 0x8:
                assert await reader.read() == b"", "the server closes the TCP connection after it"
                return int(struct.unpack("!H", payload[:2])[0])


async def test_the_websocket_leaves_aiohttp_and_answers_pings(served: Served) -> None:
    """After the handshake the connection runs on a WsConnection: aiohttp's server no longer lists it,
    the upgrade request is freed, WebSocket pings get pongs, Engine.IO pings are answered across several
    ping cycles, and events are acknowledged."""
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(served.url + "/socket.io/?EIO=4&transport=websocket", autoping=False)
        sid = json.loads((await ws.receive_str())[1:])["sid"]
        session = served.sio.eio.sockets[sid]
        assert isinstance(session.conn, wsconn.WsConnection)
        assert session.transport is not None and session.transport.get_protocol() is session.conn
        await ws.send_str("40")
        assert (await ws.receive_str()).startswith("40")
        assert served.runner is not None and served.runner.server is not None
        for _ in range(5):
            gc.collect()
            if not served.runner.server.connections and all(ref() is None for ref in served.requests):
                break
            await asyncio.sleep(0.05)
        assert served.runner.server.connections == []
        assert all(ref() is None for ref in served.requests), "the upgrade request is released"
        await ws.ping(b"hello")
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.PONG and msg.data == b"hello"
        pings = 0
        async with asyncio.timeout(10):
            while pings < 4:  # four ping cycles of 0.3 s, each answered
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT
                if msg.data == "2":
                    pings += 1
                    await ws.send_str("3")
        await ws.send_str('421["echo",{"x":"é"}]')
        async with asyncio.timeout(5):
            while (reply := await ws.receive_str()) == "2":
                await ws.send_str("3")
        assert reply == '431[{"echo":{"x":"é"}}]'
        assert sid in served.sio.eio.sockets and not served.gone
        await ws.close()
    for _ in range(100):
        if sid not in served.sio.eio.sockets:
            break
        await asyncio.sleep(0.02)
    assert sid not in served.sio.eio.sockets
    assert served.gone and served.gone[0][1] == served.sio.reason.CLIENT_DISCONNECT or served.gone


async def test_frames_sent_with_the_handshake_and_fragments_are_read(served: Served) -> None:
    """A CONNECT sent in the same segment as the handshake is read, and a message in three fragments
    (with a WebSocket ping between them) is reassembled."""
    reader, writer, _ = await raw_open(served.port, extra=masked(b"40"))
    try:
        opcode, payload = await read_frame(reader)
        assert opcode == 0x1 and payload.startswith(b"40{")
        body = b'21["echo","fragmented"]'
        writer.write(masked(b"4", fin=False) + masked(body[:5], opcode=0x0, fin=False))
        writer.write(masked(b"ping!", opcode=0x9))
        writer.write(masked(body[5:], opcode=0x0))
        seen = []
        async with asyncio.timeout(5):
            while len(seen) < 2:
                opcode, payload = await read_frame(reader)
                if payload != b"2":
                    seen.append((opcode, payload))
        assert (0xA, b"ping!") in seen
        assert (0x1, b'431[{"echo":"fragmented"}]') in seen
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (masked(b"40", mask=False), 1002),  # clients must mask
        (masked(b"\xff\xfe"), 1007),  # not UTF-8
        (masked(b"40", opcode=0x0), 1002),  # a continuation of nothing
        (masked(b"x" * 126, opcode=0x9), 1002),  # a control frame over 125 bytes
        (masked(b"40", opcode=0x3), 1002),  # a reserved opcode
    ],
)
async def test_a_bad_frame_closes_the_connection_and_the_session(
    served: Served, frame: bytes, code: int
) -> None:
    """A protocol error or invalid UTF-8 gets a close frame with its code, the TCP connection ends and
    the Engine.IO session is closed and forgotten."""
    reader, writer, sid = await raw_open(served.port)
    try:
        writer.write(frame)
        assert await read_close(reader) == code
    finally:
        writer.close()
    for _ in range(100):
        if sid not in served.sio.eio.sockets:
            break
        await asyncio.sleep(0.02)
    assert sid not in served.sio.eio.sockets


async def test_max_payload_is_enforced() -> None:
    """A message above ``max_http_buffer_size`` (the OPEN packet's ``maxPayload``) closes the websocket with
    1009 before being handled; one just below it is handled."""
    s = await Served(max_http_buffer_size=2000).start()
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(s.url + "/socket.io/?EIO=4&transport=websocket")
            opened = json.loads((await ws.receive_str())[1:])
            assert opened["maxPayload"] == 2000
            await ws.send_str("40")
            assert (await ws.receive_str()).startswith("40")
            small = "x" * 1900
            await ws.send_str(f'421["echo","{small}"]')
            assert (await ws.receive_str()) == f'431[{{"echo":"{small}"}}]'
            await ws.send_str('42["echo","' + "x" * 2100 + '"]')
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1009
        for _ in range(100):
            if s.gone:
                break
            await asyncio.sleep(0.02)
        assert s.gone
    finally:
        await s.stop()


async def test_polling_client_upgrades_onto_the_lean_websocket(served: Served) -> None:
    """The official python-socketio client starting on polling upgrades; its session then writes through
    a WsConnection, gets acks, and disconnects cleanly (the session is forgotten)."""
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(served.url, transports=["polling", "websocket"], wait_timeout=5)
        for _ in range(100):
            if client.transport() == "websocket":
                break
            await asyncio.sleep(0.02)
        assert client.transport() == "websocket"
        (session,) = served.sio.eio.sockets.values()
        assert isinstance(session.conn, wsconn.WsConnection) and session.conn.state == wsconn.OPEN
        assert await client.call("echo", "up", timeout=5) == {"echo": "up"}
    finally:
        await client.disconnect()
    for _ in range(100):
        if not served.sio.eio.sockets:
            break
        await asyncio.sleep(0.02)
    assert not served.sio.eio.sockets


async def test_a_failed_upgrade_leaves_the_polling_session() -> None:
    """A websocket upgrade that does not send the probe is closed; the session goes on polling."""
    s = await Served().start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(s.url + "/socket.io/?EIO=4&transport=polling") as resp:
                sid = json.loads((await resp.text())[1:])["sid"]
            ws = await http.ws_connect(s.url + f"/socket.io/?EIO=4&transport=websocket&sid={sid}")
            await ws.send_str("5")  # not the probe
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            session = s.sio.eio.sockets[sid]
            for _ in range(100):
                if session.conn is None:
                    break
                await asyncio.sleep(0.02)
            assert not session.upgrading and not session.upgraded and not session.closed
            async with http.post(s.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}", data="40") as resp:
                assert resp.status == 200
            async with http.get(s.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}") as resp:
                assert (await resp.text()).startswith("40")
    finally:
        await s.stop()


async def test_closed_connection_releases_its_objects_and_shutdown_closes_the_others() -> None:
    """Once a websocket is closed its Engine.IO session is forgotten and its WsConnection is garbage; a
    server shutdown closes the websockets still open (1001 going away)."""
    s = await Served().start()
    try:
        reader, writer, sid = await raw_open(s.port)
        session = s.sio.eio.sockets[sid]
        conn_ref = weakref.ref(session.conn)
        writer.write(masked(struct.pack("!H", 1000), opcode=0x8))
        assert await read_close(reader) == 1000
        writer.close()
        for _ in range(100):
            if sid not in s.sio.eio.sockets:
                break
            await asyncio.sleep(0.02)
        assert sid not in s.sio.eio.sockets and session.closed
        assert session.conn is None and session.transport is None
        for _ in range(5):
            gc.collect()
            if conn_ref() is None:
                break
            await asyncio.sleep(0.05)
        assert conn_ref() is None
        reader, writer, _ = await raw_open(s.port)
        await s.stop()
        assert await read_close(reader) == 1001
        writer.close()
    finally:
        await s.stop()


async def test_a_client_that_does_not_read_is_cut_off(served: Served) -> None:
    """The MAX_WRITE_BUFFER rule holds on the lean path: past 16 MB unsent to a client that does not
    read, the server aborts the connection and the session is closed."""
    reader, writer, sid = await raw_open(served.port)
    try:
        writer.write(masked(b"40"))
        opcode, payload = await read_frame(reader)
        sio_sid = json.loads(payload[2:])["sid"]
        chunk = "x" * 1_000_000
        for _ in range(40):  # 40 MB, never read by the client (the kernel takes a few of them)
            await served.sio.emit("big", chunk, to=sio_sid)
        for _ in range(200):
            if sid not in served.sio.eio.sockets:
                break
            await asyncio.sleep(0.02)
        assert sid not in served.sio.eio.sockets
        assert served.gone
    finally:
        writer.close()


async def test_frames_split_anywhere_are_reassembled(served: Served) -> None:
    """Frames arriving in pieces cut anywhere (inside the header, the mask, a 64-bit length, the payload)
    are reassembled: a 70 kB fragmented event and the small one after it are both acknowledged."""
    reader, writer, _ = await raw_open(served.port)
    try:
        writer.write(masked(b"40"))
        opcode, payload = await read_frame(reader)
        assert payload.startswith(b"40{")
        big = "y" * 70_000
        data = (
            masked(b"4", fin=False)
            + masked(f'21["echo","{big}"]'.encode(), opcode=0x0)
            + masked(b'422["echo","small"]')
        )
        rng = random.Random(5)
        pos = 0
        while pos < len(data):
            step = rng.choice((1, 2, 3, 5, 9, 4000, 30000))
            writer.write(data[pos : pos + step])
            await writer.drain()
            await asyncio.sleep(0.001)
            pos += step
        acks = []
        async with asyncio.timeout(10):
            while len(acks) < 2:
                opcode, payload = await read_frame(reader)
                if payload != b"2":
                    acks.append(payload)
        assert sorted(acks) == sorted([f'431[{{"echo":"{big}"}}]'.encode(), b'432[{"echo":"small"}]'])
    finally:
        writer.close()


async def test_declined_requests_keep_aiohttps_websocket(monkeypatch: pytest.MonkeyPatch) -> None:
    """When a request cannot be taken over (here ``accept`` declines them all), the websocket is served by
    aiohttp's WebSocketResponse as before: direct and upgraded clients get acks and leave cleanly; an
    invalid handshake is refused by aiohttp (400)."""
    monkeypatch.setattr(wsconn, "accept", lambda request, session: None)
    s = await Served().start()
    try:
        for transports in (["websocket"], ["polling", "websocket"]):
            client = socketio.AsyncClient(reconnection=False)
            try:
                await client.connect(s.url, transports=transports, wait_timeout=5)
                for _ in range(100):
                    if client.transport() == "websocket":
                        break
                    await asyncio.sleep(0.02)
                assert client.transport() == "websocket"
                (session,) = s.sio.eio.sockets.values()
                assert session.conn is None and session.transport is not None
                assert await client.call("echo", transports, timeout=5) == {"echo": transports}
            finally:
                await client.disconnect()
            for _ in range(100):
                if not s.sio.eio.sockets:
                    break
                await asyncio.sleep(0.02)
            assert not s.sio.eio.sockets
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(HANDSHAKE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"c2hvcnQ="))  # a key of 5 bytes, not 16
        try:
            assert (await reader.readline()).startswith(b"HTTP/1.1 400")
        finally:
            writer.close()
    finally:
        await s.stop()
