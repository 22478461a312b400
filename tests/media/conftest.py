"""Helpers for the media tests: aiortc peers that behave like the browser client (signalling to the
gateway directly, or through the hub), synthetic tracks, and a gateway on loopback whose events are
recorded and whose offers reach the right client."""

from __future__ import annotations

import asyncio
import fractions
import math
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

from rtc_server.media.aiortc_adapter import restrict_host_addresses
from rtc_server.media.gateway import AiortcMediaGateway
from signaling.services.ports import MediaEvent, Participant
from tests.conftest import Client as HubClient

LOOPBACK = ["127.0.0.1"]


class SyntheticVideo(MediaStreamTrack):
    """Frames of a fixed size whose luma encodes the frame number (a moving grey level)."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 30) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._start: float | None = None
        self._count = 0

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._start + self._count / self.fps - time.monotonic()))
        frame = VideoFrame(self.width, self.height, "yuv420p")
        for i, plane in enumerate(frame.planes):
            plane.update(bytes([(self._count * 3) % 256 if i == 0 else 128]) * plane.buffer_size)
        frame.pts = self._count * (90000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self._count += 1
        return frame


class SyntheticAudio(MediaStreamTrack):
    """A 440 Hz tone, 20 ms frames of 48 kHz mono s16."""

    kind = "audio"

    def __init__(self, amplitude: float = 0.3) -> None:
        super().__init__()
        self._start: float | None = None
        self._count = 0
        samples = [int(amplitude * 32767 * math.sin(2 * math.pi * 440 * n / 48000)) for n in range(960)]
        self._payload = struct.pack(f"<{len(samples)}h", *samples)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._start + self._count * 0.02 - time.monotonic()))
        frame = AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(self._payload)
        frame.sample_rate = 48000
        frame.pts = self._count * 960
        frame.time_base = fractions.Fraction(1, 48000)
        self._count += 1
        return frame


@dataclass
class TrackReader:
    """Reads one received track in a task and remembers what it saw."""

    track: MediaStreamTrack
    frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    first_at: float | None = None
    paused: bool = False
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while True:
                if self.paused:
                    await asyncio.sleep(0.05)
                    continue
                frame = await self.track.recv()
                self.frames += 1
                if self.first_at is None:
                    self.first_at = time.monotonic()
                if isinstance(frame, VideoFrame):
                    self.sizes.add((frame.width, frame.height))
        except (MediaStreamError, asyncio.CancelledError):
            pass

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class Peer:
    """An aiortc peer acting like a participant's browser: what it sends, and a reader per track it
    receives. Subclasses say how an offer reaches the server (:meth:`exchange`)."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.readers: list[TrackReader] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            reader = TrackReader(track)
            reader.start()
            self.readers.append(reader)

    def send(self, track: MediaStreamTrack) -> None:
        """Send ``track`` on a new ``sendrecv`` transceiver."""
        self.pc.addTransceiver(track, direction="sendrecv")

    def publish(self, track: MediaStreamTrack) -> None:
        """Send ``track`` on a ``sendonly`` transceiver (a shared screen)."""
        self.pc.addTransceiver(track, direction="sendonly")

    def receive(self, kind: str) -> None:
        """Offer a ``recvonly`` transceiver of ``kind``."""
        self.pc.addTransceiver(kind, direction="recvonly")

    async def exchange(self, sdp: str) -> str:
        """Hand the offer ``sdp`` to the server; its answer SDP."""
        raise NotImplementedError

    async def connect(self) -> str:
        """Offer to the server and apply its answer; returns the answer SDP."""
        offer = await self.pc.createOffer()
        restrict_host_addresses(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(offer)
        answer = await self.exchange(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        return answer

    def video_readers(self) -> list[TrackReader]:
        return [r for r in self.readers if r.track.kind == "video"]

    def audio_readers(self) -> list[TrackReader]:
        return [r for r in self.readers if r.track.kind == "audio"]

    def video_frames(self) -> int:
        return sum(r.frames for r in self.video_readers())

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await wait_for(lambda: self.pc.connectionState == "connected", timeout)

    async def close(self) -> None:
        for reader in self.readers:
            await reader.stop()
        await self.pc.close()


class Client(Peer):
    """A peer signalling straight to the gateway (``offer`` / ``answer``), as the hub would for it."""

    def __init__(self, gateway: AiortcMediaGateway, request_id: str, participant: Participant) -> None:
        super().__init__()
        self.gateway = gateway
        self.request_id = request_id
        self.participant = participant
        self.stream_ids: list[str] = []
        self.offers_answered = 0
        self.channels: dict[str, Any] = {}

    async def exchange(self, sdp: str) -> str:
        answer = await self.gateway.offer(self.request_id, self.participant, sdp, "offer")
        return str(answer["sdp"])

    async def on_server_offer(self, data: dict[str, Any]) -> None:
        """Answer a server offer, as the browser does on ``rtc.offer``."""
        await self.pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "offer"))
        answer = await self.pc.createAnswer()
        restrict_host_addresses(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(answer)
        await self.gateway.answer(self.request_id, self.participant, self.pc.localDescription.sdp, "answer")
        self.offers_answered += 1
        self.stream_ids.extend(data.get("streams", {}))


class HubPeer(Peer):
    """A peer that signals like the pages: ``rtc.offer`` through the hub, as ``client``."""

    def __init__(self, client: HubClient, request_id: str) -> None:
        super().__init__()
        self.client = client
        self.request_id = request_id

    async def exchange(self, sdp: str) -> str:
        res = await self.client.ok("rtc.offer", {"request_id": self.request_id, "sdp": sdp, "type": "offer"})
        return str(res["sdp"])


class EventLog:
    """The gateway's event sink: records events and hands server offers to the right client."""

    def __init__(self) -> None:
        self.events: list[MediaEvent] = []
        self.clients: dict[str, Client] = {}
        self.auto_answer = True
        self.tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, event: MediaEvent) -> None:
        self.events.append(event)
        if event.type == "offer" and self.auto_answer and event.participant is not None:
            client = self.clients.get(f"{event.request_id}/{event.participant.key}")
            if client is not None:
                # Like the hub: deliver, do not wait for the client.
                task = asyncio.ensure_future(client.on_server_offer(event.data))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    def of(self, type_: str, request_id: str | None = None) -> list[MediaEvent]:
        return [
            e for e in self.events if e.type == type_ and (request_id is None or e.request_id == request_id)
        ]


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Wait until ``predicate()`` holds (fails the test after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


@dataclass
class Rig:
    """A gateway on loopback with its event log and clients."""

    gateway: AiortcMediaGateway
    log: EventLog
    clients: list[Client] = field(default_factory=list)

    def client(self, request_id: str, kind: str, id_: str, name: str = "") -> Client:
        client = Client(self.gateway, request_id, Participant(kind, id_, name or id_))
        self.clients.append(client)
        self.log.clients[f"{request_id}/{client.participant.key}"] = client
        return client

    async def close(self) -> None:
        self.log.auto_answer = False
        for task in list(self.log.tasks):
            task.cancel()
        await asyncio.gather(*self.log.tasks, return_exceptions=True)
        for client in self.clients:
            await client.close()
        await self.gateway.shutdown()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """A fresh gateway (host address 127.0.0.1, PLI interval 0.5 s) and event log."""
    gateway = AiortcMediaGateway(host_addresses=LOOPBACK)
    log = EventLog()
    gateway.set_event_sink(log)
    rig = Rig(gateway, log)
    try:
        yield rig
    finally:
        await rig.close()


def thread_count() -> int:
    return threading.active_count()
