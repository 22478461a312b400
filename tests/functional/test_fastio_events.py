"""Events of namespace classes start straight from the websocket (``FastAsyncServer.start_event``) and
behave as python-socketio's own dispatch would: the same acks byte for byte (one value, several, none,
no ack for an unhandled event), handlers started in the order the events came even when a burst arrives
in one read, and every case the shortcut declines (an explicit handler in the namespace, an attachment,
a socket not in the namespace, an undecodable event, a server that logs events) taking python-socketio's
way with its outcome. Real servers on port 0, raw websocket frames."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

from tests.functional.test_fastio_wsconn import Served, masked, raw_open, read_frame


class Recorder(socketio.AsyncNamespace):
    """A namespace class noting which handler started, in order."""

    def __init__(self, namespace: str, started: list[Any]) -> None:
        super().__init__(namespace)
        self.started = started

    async def on_echo(self, sid: str, data: Any) -> Any:
        self.started.append(("echo", data))
        return {"echo": data}

    async def on_slow(self, sid: str, data: Any) -> str:
        self.started.append(("slow", data))
        await asyncio.sleep(0.2)
        return "slow done"

    async def on_pair(self, sid: str, a: Any, b: Any) -> tuple[Any, Any]:
        self.started.append(("pair", a))
        return a, b

    async def on_nothing(self, sid: str) -> None:
        self.started.append(("nothing", None))

    async def on_blob(self, sid: str, n: int) -> bytes:
        self.started.append(("blob", n))
        return bytes(range(n))


class Counted:
    """The server's ``start_event``, counting what it took and what it left to python-socketio."""

    def __init__(self, served: Served) -> None:
        self.taken = 0
        self.declined = 0
        inner = served.sio.eio.start_event
        assert inner is not None

        def start_event(eio_sid: str, data: str | bytes) -> bool:
            took = inner(eio_sid, data)
            if not isinstance(data, str) or data[:1] not in "25":  # a CONNECT, an attachment...: not events
                return took
            if took:
                self.taken += 1
            else:
                self.declined += 1
            return took

        served.sio.eio.start_event = start_event


@pytest.fixture
async def hub() -> AsyncIterator[tuple[Served, list[Any], Counted]]:
    served = Served(ping_interval=5, ping_timeout=5)
    started: list[Any] = []
    served.sio.register_namespace(Recorder("/ns", started))
    served.sio.register_namespace(Recorder("/other", started))

    @served.sio.on("echo", namespace="/explicit")
    async def explicit_echo(sid: str, data: Any) -> Any:
        started.append(("explicit", data))
        return {"explicit": data}

    await served.start()
    try:
        yield served, started, Counted(served)
    finally:
        await served.stop()


async def _connected(port: int, *namespaces: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer, _ = await raw_open(port)
    for namespace in namespaces:
        writer.write(masked(f"40{namespace},".encode()))
        opcode, payload = await read_frame(reader)
        assert opcode == 0x1 and payload.startswith(f"40{namespace},{{".encode()), payload
    return reader, writer


async def _texts(reader: asyncio.StreamReader, count: int) -> list[str]:
    """The next ``count`` text frames that are not Engine.IO pings."""
    out: list[str] = []
    async with asyncio.timeout(5):
        while len(out) < count:
            opcode, payload = await read_frame(reader)
            if opcode == 0x1 and payload != b"2":
                out.append(payload.decode())
    return out


async def test_acks_are_the_ones_python_socketio_sends(hub: tuple[Served, list[Any], Counted]) -> None:
    """One value, a tuple (several ack arguments), None (an empty ack, as for an event the namespace
    has no handler for), bytes (a binary ack); all started without python-socketio's chain."""
    served, _, counted = hub
    reader, writer = await _connected(served.port, "/ns")
    try:
        writer.write(masked('42/ns,1["echo",{"a":[1,"é"]}]'.encode()))
        writer.write(masked(b'42/ns,2["pair","x",{"y":2}]'))
        writer.write(masked(b'42/ns,3["nothing"]'))
        writer.write(masked(b'42/ns,4["unknown",1]'))  # no handler: python-socketio's namespace answers None
        writer.write(masked(b'42/ns,5["echo","last"]'))
        assert await _texts(reader, 5) == [
            '43/ns,1[{"echo":{"a":[1,"é"]}}]',
            '43/ns,2["x",{"y":2}]',
            "43/ns,3[]",
            "43/ns,4[]",
            '43/ns,5[{"echo":"last"}]',
        ]
        assert counted.taken == 5 and counted.declined == 0
        writer.write(masked(b'42/ns,6["blob",3]'))  # bytes in the answer: a binary ack and its attachment
        assert await _texts(reader, 1) == ['461-/ns,6[{"_placeholder":true,"num":0}]']
        opcode, payload = await read_frame(reader)
        assert (opcode, payload) == (0x2, b"\x00\x01\x02")
        assert counted.taken == 6
    finally:
        writer.close()


async def test_a_burst_in_one_read_starts_its_handlers_in_order(hub: tuple[Served, list[Any], Counted]) -> None:
    """Events that arrive in one TCP segment start in the order they were sent; a slow handler does
    not hold back the events after it (python-socketio's ``async_handlers``)."""
    served, started, counted = hub
    reader, writer = await _connected(served.port, "/ns", "/other")
    try:
        burst = [masked(b'42/ns,1["slow",0]')]
        burst += [masked(f'42/{"ns" if i % 2 else "other"},{i + 2}["echo",{i}]'.encode()) for i in range(20)]
        writer.write(b"".join(burst))
        acks = await _texts(reader, 21)
        assert started == [("slow", 0), *(("echo", i) for i in range(20))]
        assert acks[-1] == '43/ns,1["slow done"]', "the slow handler answered last"
        assert counted.taken == 21
    finally:
        writer.close()


async def test_what_the_shortcut_declines_takes_python_socketios_way(
    hub: tuple[Served, list[Any], Counted],
) -> None:
    """A namespace with a decorated handler, an event with a binary attachment, and a namespace the
    socket did not join go python-socketio's way, with its outcomes: the handler's ack, the attachment
    put back in its place, nothing at all."""
    served, started, counted = hub
    reader, writer = await _connected(served.port, "/ns", "/explicit")
    try:
        writer.write(masked(b'42/explicit,1["echo","hi"]'))
        assert await _texts(reader, 1) == ['43/explicit,1[{"explicit":"hi"}]']
        assert (counted.taken, counted.declined) == (0, 1)
        writer.write(masked(b'451-/ns,2["echo",{"_placeholder":true,"num":0}]'))
        writer.write(masked(b"\x01\x02", opcode=0x2))
        opcode, payload = await read_frame(reader)
        while payload == b"2":
            opcode, payload = await read_frame(reader)
        assert payload == b'461-/ns,2[{"echo":{"_placeholder":true,"num":0}}]'  # the ack carries the bytes
        assert (await read_frame(reader))[1] == b"\x01\x02"
        assert (counted.taken, counted.declined) == (0, 2)
        writer.write(masked(b'42/other,3["echo","not joined"]'))  # dropped, as python-socketio does
        writer.write(masked(b'42/ns,4["echo","after"]'))
        assert await _texts(reader, 1) == ['43/ns,4[{"echo":"after"}]']
        assert ("echo", "not joined") not in started
        assert counted.declined == 3  # "after" was started at once, or queued behind the declined one
    finally:
        writer.close()


@pytest.mark.parametrize(
    "event",
    [b'42/ns,1["echo",{"a":]', b"42/ns,1" + b"[" * 100_000 + b"]" * 100_000],
    ids=["truncated JSON", "100,000 nested arrays"],
)
async def test_an_undecodable_event_closes_the_session_as_before(
    hub: tuple[Served, list[Any], Counted], event: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """JSON that does not parse (or nests past the parsers' limits) is left to python-socketio's decoder,
    which refuses it: the session is closed, as it was before the shortcut, and nothing raises into the
    event loop (no traceback in the log)."""
    served, _, counted = hub
    reader, writer, sid = await raw_open(served.port)
    try:
        writer.write(masked(b"40/ns,"))
        await _texts(reader, 1)
        writer.write(masked(event))
        async with asyncio.timeout(5):
            while True:  # until the close frame, or the end of the stream
                try:
                    opcode, _ = await read_frame(reader)
                except asyncio.IncompleteReadError:
                    break
                if opcode == 0x8:
                    break
        assert (counted.taken, counted.declined) == (0, 1)
        for _ in range(100):
            if sid not in served.sio.eio.sockets:
                break
            await asyncio.sleep(0.02)
        assert sid not in served.sio.eio.sockets
        assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    finally:
        writer.close()


async def test_a_server_that_logs_events_keeps_python_socketios_way() -> None:
    """With python-socketio's logger at INFO (it logs every event), events take its own way, logs
    included, and are answered the same."""
    served = Served(ping_interval=5, ping_timeout=5)
    served.sio.logger.setLevel("INFO")
    started: list[Any] = []
    served.sio.register_namespace(Recorder("/ns", started))
    await served.start()
    counted = Counted(served)
    try:
        reader, writer = await _connected(served.port, "/ns")
        writer.write(masked(b'42/ns,1["echo",1]'))
        assert await _texts(reader, 1) == ['43/ns,1[{"echo":1}]']
        assert counted.taken == 0 and counted.declined == 1
        writer.close()
    finally:
        served.sio.logger.setLevel("ERROR")
        await served.stop()
