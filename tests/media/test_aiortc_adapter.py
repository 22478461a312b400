"""The seams into aiortc 1.16 internals, exercised with real aiortc peers on loopback: a publisher ->
server (receiver tapped: encoded frames, no decoding) -> server sender fed encoded frames -> subscriber
that decodes normally. Also the version pin, the VP8 packetiser and the host-address restriction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.codecs.vpx import vp8_depayload

from rtc_server.media.aiortc_adapter import (
    MAX_PAYLOAD,
    ForwardingSender,
    ReceiverTap,
    UnsupportedAiortc,
    check_aiortc_version,
    feed_sender,
    packetize_vp8,
    restrict_host_addresses,
)
from rtc_server.media.forwarding import EncodedFrame, ForwardedTrack, TrackSource
from tests.media.conftest import LOOPBACK, SyntheticAudio, SyntheticVideo, TrackReader, wait_for


async def connect(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    restrict_host_addresses(offerer, LOOPBACK)
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    restrict_host_addresses(answerer, LOOPBACK)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


@dataclass
class Chain:
    publisher: RTCPeerConnection
    server_in: RTCPeerConnection
    server_out: RTCPeerConnection
    subscriber: RTCPeerConnection
    sources: dict[str, TrackSource] = field(default_factory=dict)
    taps: dict[str, ReceiverTap] = field(default_factory=dict)
    tracks: dict[str, ForwardedTrack] = field(default_factory=dict)
    readers: dict[str, TrackReader] = field(default_factory=dict)
    frames_in: dict[str, list[EncodedFrame]] = field(default_factory=dict)
    senders: dict[str, ForwardingSender] = field(default_factory=dict)


@pytest.fixture
async def chain() -> AsyncIterator[Chain]:
    """Publisher (320x240 video + tone) -> tapped server peer -> fed server peer -> subscriber."""
    config = RTCConfiguration(iceServers=[])
    c = Chain(*(RTCPeerConnection(config) for _ in range(4)))
    c.publisher.addTrack(SyntheticVideo(320, 240))
    c.publisher.addTrack(SyntheticAudio())

    @c.server_in.on("track")
    def on_track(track: object) -> None:
        transceiver = next(t for t in c.server_in.getTransceivers() if t.receiver.track is track)
        kind = transceiver.kind
        opus = [x.payloadType for x in transceiver._codecs if x.mimeType.lower() == "audio/opus"]
        source = TrackSource(kind, "publisher", pli_interval=0.5)
        seen = c.frames_in.setdefault(kind, [])

        def deliver(frame: EncodedFrame) -> None:
            seen.append(frame)
            source.deliver(frame)

        tap = ReceiverTap(transceiver.receiver, kind, deliver, audio_payload_types=opus)
        source.set_keyframe_requester(tap.request_keyframe)
        c.sources[kind], c.taps[kind] = source, tap

    await connect(c.publisher, c.server_in)
    for kind in ("video", "audio"):
        track = ForwardedTrack(kind)
        c.senders[kind] = feed_sender(c.server_out.addTransceiver(kind, direction="sendonly").sender, track)
        track.attach(c.sources[kind])
        c.tracks[kind] = track

    @c.subscriber.on("track")
    def on_sub_track(track: object) -> None:
        reader = TrackReader(track)  # type: ignore[arg-type]
        reader.start()
        c.readers[reader.track.kind] = reader

    await connect(c.server_out, c.subscriber)
    try:
        yield c
    finally:
        for reader in c.readers.values():
            await reader.stop()
        for pc in (c.publisher, c.server_in, c.server_out, c.subscriber):
            await pc.close()


def test_version_pin() -> None:
    """Any aiortc but 1.16.0 is refused with a message naming the adapter."""
    check_aiortc_version("1.16.0")
    with pytest.raises(UnsupportedAiortc, match="aiortc_adapter"):
        check_aiortc_version("1.17.0")


@pytest.mark.parametrize("size", [1, MAX_PAYLOAD - 4, MAX_PAYLOAD - 3, 10_000])
def test_vp8_packetiser_round_trip(size: int) -> None:
    """Payloads fit the MTU budget, carry the picture id, S=1 on the first only, and depayload back."""
    data = bytes(i % 251 for i in range(size))
    payloads = packetize_vp8(data, picture_id=0x1234)
    assert all(len(p) <= MAX_PAYLOAD for p in payloads)
    assert [p[0] & 0x10 for p in payloads] == [0x10] + [0] * (len(payloads) - 1)
    assert all(((p[2] & 0x7F) << 8 | p[3]) == 0x1234 for p in payloads)
    assert b"".join(vp8_depayload(p) for p in payloads) == data


async def test_host_addresses_are_restricted() -> None:
    """Only the configured addresses appear as host candidates (aioice alone skips 127.0.0.1)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio")
        restrict_host_addresses(pc, LOOPBACK)
        await pc.setLocalDescription(await pc.createOffer())
        candidates = [line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate")]
        assert candidates and all(" 127.0.0.1 " in line for line in candidates)
    finally:
        await pc.close()


async def test_encoded_frames_are_forwarded_and_decode_at_the_publisher_resolution(chain: Chain) -> None:
    """The subscriber decodes 320x240 video and audio that the server never decoded nor encoded."""
    await wait_for(lambda: "video" in chain.readers and chain.readers["video"].frames >= 15, 10)
    await wait_for(lambda: "audio" in chain.readers and chain.readers["audio"].frames >= 25, 10)
    assert chain.readers["video"].sizes == {(320, 240)}
    video_in = chain.frames_in["video"]
    assert video_in[0].keyframe and all(isinstance(f.data, bytes) for f in video_in)
    assert chain.tracks["video"].stats.forwarded >= 15


async def test_audio_level_header_survives_forwarding(chain: Chain) -> None:
    """The RFC 6464 level the publisher computed reaches the subscriber's RTP packets unchanged."""
    sub_transceiver = next(t for t in chain.subscriber.getTransceivers() if t.kind == "audio")
    levels_out: list[int | None] = []
    original = sub_transceiver.receiver._handle_rtp_packet

    async def spy(packet: object, arrival_time_ms: int) -> None:
        level = packet.extensions.audio_level  # type: ignore[attr-defined]
        levels_out.append(None if level is None else level[1])
        await original(packet, arrival_time_ms)

    sub_transceiver.receiver._handle_rtp_packet = spy  # type: ignore[method-assign]
    await wait_for(lambda: len(levels_out) >= 10, 10)
    levels_in = {f.audio_level for f in chain.frames_in["audio"][-10:]}
    assert None not in levels_in and len(levels_in) == 1  # a steady tone
    assert set(levels_out[-5:]) == levels_in


async def test_subscriber_pli_reaches_the_publisher_throttled(chain: Chain) -> None:
    """PLIs from the subscriber become keyframe requests at the publisher, at most one per 500 ms
    (plus one trailing), and the publisher's next frames include a keyframe."""
    await wait_for(lambda: "video" in chain.readers and chain.readers["video"].frames >= 5, 10)
    publisher_sender = next(t.sender for t in chain.publisher.getTransceivers() if t.kind == "video")
    requested: list[float] = []
    original = publisher_sender._send_keyframe

    def spy() -> None:
        requested.append(asyncio.get_running_loop().time())
        original()

    publisher_sender._send_keyframe = spy  # type: ignore[method-assign]
    sub_receiver = next(t.receiver for t in chain.subscriber.getTransceivers() if t.kind == "video")
    media_ssrc = next(t.sender._ssrc for t in chain.server_out.getTransceivers() if t.kind == "video")
    keyframes_before = sum(f.keyframe for f in chain.frames_in["video"])
    await asyncio.sleep(0.6)  # let the throttle window of the subscription's own request pass
    for _ in range(10):
        await sub_receiver._send_rtcp_pli(media_ssrc)
        await asyncio.sleep(0.01)
    await wait_for(lambda: len(requested) >= 2, 5)
    await asyncio.sleep(0.3)
    assert len(requested) == 2
    assert requested[1] - requested[0] >= 0.45
    await wait_for(lambda: sum(f.keyframe for f in chain.frames_in["video"]) > keyframes_before, 5)


async def test_nacks_are_answered_with_rtx_from_the_forwarding_history(chain: Chain) -> None:
    """A NACK from the subscriber for a recent packet is answered with an RTX packet (RFC 4588:
    the RTX payload type and SSRC, the original sequence number first in the payload)."""
    await wait_for(lambda: "video" in chain.readers and chain.readers["video"].frames >= 5, 10)
    forwarding = chain.senders["video"]
    sub_receiver = next(t.receiver for t in chain.subscriber.getTransceivers() if t.kind == "video")
    rtx_seen: list[int] = []
    original = sub_receiver._handle_rtp_packet

    async def spy(packet: object, arrival_time_ms: int) -> None:
        if packet.ssrc == forwarding.sender._rtx_ssrc:  # type: ignore[attr-defined]
            rtx_seen.append(int.from_bytes(packet.payload[:2], "big"))  # type: ignore[attr-defined]
        await original(packet, arrival_time_ms)

    sub_receiver._handle_rtp_packet = spy  # type: ignore[method-assign]
    sequence, _header, _payload = max(forwarding._history.values(), key=lambda entry: entry[0])
    media_ssrc = forwarding.sender._ssrc
    await sub_receiver._send_rtcp_nack(media_ssrc, [sequence])
    await wait_for(lambda: sequence in rtx_seen, 5)
    assert forwarding.retransmissions >= 1


async def test_forwarding_sender_keeps_aiortc_counters(chain: Chain) -> None:
    """The replaced RTP loop feeds the counters behind aiortc's stats and RTCP sender reports."""
    await wait_for(lambda: "video" in chain.readers and chain.readers["video"].frames >= 5, 10)
    forwarding = chain.senders["video"]
    stats = await forwarding.sender.getStats()
    sent = [s for s in stats.values() if s.type == "outbound-rtp"][0]
    assert forwarding.packets > 0 and sent.packetsSent == forwarding.packets
    assert sent.bytesSent > 0
