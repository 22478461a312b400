"""The hub's fast path (``rtc_server.fastio``) stays a standard Socket.IO v4 server: the same bytes as
python-socketio for every packet, the polling transport and the polling -> websocket upgrade still work,
broadcasts reach websocket and polling sockets alike, and a dropped socket leaves cleanly."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import aiohttp
import socketio
from aiohttp import web
from socketio.packet import ACK, EVENT, Packet

from rtc_server.fastio import FastAsyncServer, frames
from rtc_server.fastio.packet import FastPacket
from tests.conftest import Client, Hub, RunningServer


def test_fast_packet_encodes_like_python_socketio() -> None:
    """Events and acks, with or without namespace and id, JSON or with bytes inside: the same packet type,
    header and attachments as python-socketio, the same JSON value (byte for byte when ASCII)."""
    payloads = [
        ["message.new", {"message": {"id": "m1", "body": "hello", "data": {"n": [1, 2.5, None, True]}}}],
        ["message.new", {"message": {"body": 'héllo \u2028 \U0001f600 "q" \\'}}],
        [{"ok": True, "message": {"seq": 3}}],
        [{"big": 2**70}],
        None,
        ["blob", b"\x00\x01"],
        ["nested", {"k": [bytearray(b"z"), 1]}],
    ]
    for data in payloads:
        for namespace, ack_id in ((None, None), ("/agent", 7), ("/", 0)):
            for kind in (EVENT, ACK):
                fast = FastPacket(kind, data, namespace, ack_id).encode()
                stock = Packet(kind, data, namespace, ack_id).encode()
                if isinstance(stock, list):  # binary: placeholders and attachments
                    assert fast == stock
                    continue
                cut = stock.find("[") if data is not None else len(stock)
                assert fast[:cut] == stock[:cut]
                assert json.loads(fast[cut:] or "null") == json.loads(stock[cut:] or "null")
                if fast.isascii():
                    assert fast == stock


def test_fast_packet_decodes_like_python_socketio() -> None:
    """Incoming events and acks decode to the same namespace, id and data."""
    for text in (
        '2/agent,12["message.send",{"body":"h\\u00e9","n":[1,2]}]',
        '3/customer,4[{"ok":true}]',
        '2["x"]',
    ):
        fast, stock = FastPacket(encoded_packet=text), Packet(encoded_packet=text)
        assert (fast.packet_type, fast.namespace, fast.id, fast.data) == (
            stock.packet_type,
            stock.namespace,
            stock.id,
            stock.data,
        )


def test_frames_have_rfc6455_headers() -> None:
    """Unmasked final frames: 7-bit, 16-bit and 64-bit lengths; text for str, binary for bytes."""
    for n in (0, 125, 126, 65535, 65536):
        wire = frames.frame("x" * n)
        assert wire[0] == 0x81 and wire[1] & 0x80 == 0
        if n < 126:
            assert wire[1] == n and len(wire) == 2 + n
        elif n < 65536:
            assert wire[1] == 126 and struct.unpack("!H", wire[2:4])[0] == n and len(wire) == 4 + n
        else:
            assert wire[1] == 127 and struct.unpack("!Q", wire[2:10])[0] == n and len(wire) == 10 + n
    assert frames.frame(b"\x01\x02")[:2] == b"\x82\x02"
    assert frames.frame("é") == b"\x81\x02" + "é".encode()


async def _chat(agent: Client, customer: Client) -> None:
    started = await customer.ok("conversation.start", {"body": "hello over polling"})
    conv_id = started["conversation"]["id"]
    await agent.events.wait("conversation.new", lambda d: d["conversation"]["id"] == conv_id)
    await agent.ok("conversation.assign", {"conversation_id": conv_id})
    await customer.ok(
        "message.send", {"conversation_id": conv_id, "client_id": "c1", "kind": "text", "body": "q"}
    )
    await agent.events.wait("message.new", lambda d: d["message"]["client_id"] == "c1")
    await agent.ok(
        "message.send", {"conversation_id": conv_id, "client_id": "a1", "kind": "text", "body": "a"}
    )
    got = await customer.events.wait("message.new", lambda d: d["message"]["client_id"] == "a1")
    assert got["message"]["body"] == "a"


async def test_polling_and_upgraded_clients_chat(hub: Hub) -> None:
    """An agent that starts on polling and upgrades, and a customer that stays on polling, chat both ways."""
    login = await hub.login("alice@example.com")
    agent = await hub.connect("/agent", login["token"], transports=["polling", "websocket"])
    visitor = await hub.visitor(name="Polly")
    customer = await hub.connect("/customer", visitor["token"], transports=["polling"])
    await _chat(agent, customer)
    assert agent.sio.transport() == "websocket"
    assert customer.sio.transport() == "polling"


async def test_websocket_clients_chat_and_disconnect(hub: Hub, server: RunningServer) -> None:
    """Websocket clients chat; after the customer disconnects, its Engine.IO session is gone and the agent
    still receives events."""
    agent = await hub.agent()
    customer = await hub.customer(name="Wes")
    await _chat(agent, customer)
    from rtc_server.app import SIO

    eio = server.app[SIO].eio
    before = len(eio.sockets)
    await customer.disconnect()
    for _ in range(100):
        if len(eio.sockets) < before:
            break
        await asyncio.sleep(0.02)
    assert len(eio.sockets) == before - 1
    other = await hub.customer(name="Next")
    started = await other.ok("conversation.start", {"body": "still there?"})
    await agent.events.wait(
        "conversation.new", lambda d: d["conversation"]["id"] == started["conversation"]["id"]
    )


async def _raw_session(url: str, http: aiohttp.ClientSession) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    ws = await http.ws_connect(url + "/socket.io/?EIO=4&transport=websocket")
    opened = await ws.receive_str()
    assert opened.startswith("0")
    return ws, json.loads(opened[1:])["sid"]


async def test_silent_client_is_dropped_and_server_disconnect_closes_the_socket() -> None:
    """A websocket client that never answers pings is disconnected by the ping monitor, its TCP connection
    closed; a client disconnected by the server gets the CLOSE packet and then the end of the stream."""
    sio = FastAsyncServer(
        async_mode="aiohttp", ping_interval=0.2, ping_timeout=0.3, logger=False, engineio_logger=False
    )
    gone: list[str] = []

    @sio.on("disconnect")
    async def on_disconnect(sid: str, reason: Any = None) -> None:
        gone.append(sid)

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http:
            silent, _ = await _raw_session(url, http)
            await silent.send_str("40")
            assert (await silent.receive_str()).startswith("40")
            seen = []
            async with asyncio.timeout(5):
                while True:
                    msg = await silent.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    seen.append(msg.data)
            assert "2" in seen  # it was pinged, did not answer, and the server hung up
            assert gone, "the disconnect handler ran"

            polite, eio_sid = await _raw_session(url, http)
            await polite.send_str("40")
            connected = await polite.receive_str()
            sid = json.loads(connected[2:])["sid"]
            await sio.disconnect(sid)
            frames_seen = []
            async with asyncio.timeout(5):
                while True:
                    msg = await polite.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    frames_seen.append(msg.data)
            assert "41" in frames_seen  # Socket.IO DISCONNECT for the namespace
            assert eio_sid not in sio.eio.sockets or sio.eio.sockets[eio_sid].closed
    finally:
        await sio.shutdown()
        await runner.cleanup()


async def test_upgraded_session_outlives_many_ping_cycles() -> None:
    """A client that starts on polling and upgrades to websocket keeps its session through many short
    ping cycles (no long-poll left hanging, pongs handled on the direct path) and still gets acks."""
    sio = FastAsyncServer(
        # short cycles, but a pong may be late by a loaded machine's stall without ending the session
        async_mode="aiohttp",
        ping_interval=0.2,
        ping_timeout=2.0,
        logger=False,
        engineio_logger=False,
    )

    @sio.on("echo")
    async def echo(sid: str, data: Any) -> Any:
        return {"echo": data}

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(url, transports=["polling", "websocket"], wait_timeout=5)
        for _ in range(50):
            if client.transport() == "websocket":
                break
            await asyncio.sleep(0.05)
        assert client.transport() == "websocket"
        sid = client.get_sid()
        await asyncio.sleep(2.0)  # ten ping intervals
        assert client.connected and client.get_sid() == sid
        assert await client.call("echo", [1, "é"], timeout=5) == {"echo": [1, "é"]}
    finally:
        await client.disconnect()
        await sio.shutdown()
        await runner.cleanup()


async def test_a_polling_close_answers_the_pending_long_poll(server: RunningServer) -> None:
    """A polling client that sends CLOSE while its long-poll GET is pending gets that GET answered (a
    NOOP, as Node's engine.io does) instead of it hanging until the ping timeout: python-socketio's
    client waits for that GET in ``disconnect()``."""
    base = f"{server.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            opened = json.loads((await resp.text())[1:])
        url = f"{base}&sid={opened['sid']}"
        assert opened["pingInterval"] >= 5000  # the GET below would otherwise end by itself soon
        poll = asyncio.ensure_future(http.get(url))
        await asyncio.sleep(0.3)  # the GET is now waiting on the server
        assert not poll.done()
        async with http.post(url, data="1") as resp:  # CLOSE
            assert resp.status == 200
        async with asyncio.timeout(5):  # far below the ping interval
            resp = await poll
        assert resp.status == 200 and await resp.text() == "6"  # NOOP
        resp.release()
