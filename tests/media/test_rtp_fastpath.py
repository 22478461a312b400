"""The forwarding fast path (``rtc_server/media/rtp_fastpath.py``) against aiortc's own packetiser and
serialiser: the packets it writes, SRTP-protects in place and sends (one GSO ``sendmsg`` per frame, or one
``sendto`` per packet) are, once unprotected by a real libsrtp receiver session, byte for byte what
aiortc's ``Vp8Encoder._packetize`` + ``RtpPacket.serialize`` produce for the same frame and header
fields; the per-frame history rebuilds the same packets for NACKs; a frame is packetised once for
every subscriber."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator

import pytest
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, wrap_rtx
from pylibsrtp import Policy, Session

from rtc_server.media.forwarding import EncodedFrame, ForwardedTrack, TrackSource
from rtc_server.media.rtp_fastpath import (
    HISTORY_SIZE,
    OrderedSends,
    RtpHistory,
    SrtpWriter,
    frame_payloads,
    header_extensions,
    rtp_packet,
    rtx_packet,
)

MID_ID, LEVEL_ID = 4, 1
MID = "1"
PAYLOAD_TYPE, SSRC = 96, 0x11223344


def _extensions_map() -> HeaderExtensionsMap:
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=MID_ID, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(
                    id=LEVEL_ID, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"
                ),
            ]
        )
    )
    return extensions_map


def _serialize(payload_type: int, sequence: int, timestamp: int, extensions: bytes, payload: bytes) -> bytes:
    return rtp_packet(payload_type, True, sequence, timestamp, SSRC, extensions, payload)


def aiortc_packets(
    payloads: list[bytes], sequence: int, timestamp: int, audio_level: int | None = None
) -> list[bytes]:
    """What aiortc's sender would serialise for these payloads (mid and audio level negotiated)."""
    extensions_map = _extensions_map()
    out = []
    for index, payload in enumerate(payloads):
        packet = RtpPacket(
            payload_type=PAYLOAD_TYPE,
            marker=int(index == len(payloads) - 1),
            sequence_number=(sequence + index) & 0xFFFF,
            timestamp=timestamp,
            ssrc=SSRC,
            payload=payload,
        )
        packet.extensions.mid = MID
        if audio_level is not None:
            packet.extensions.audio_level = (False, audio_level)
        out.append(packet.serialize(extensions_map))
    return out


@pytest.fixture
def sessions() -> tuple[Session, Session]:
    """An outbound SRTP session (what the DTLS transport holds) and the matching inbound one."""
    key = os.urandom(28)
    profile = Policy.SRTP_PROFILE_AEAD_AES_128_GCM
    return (
        Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)),
        Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile)),
    )


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    """A UDP socket on loopback, port 0."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


def sending_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def vp8_frame(size: int, index: int) -> EncodedFrame:
    data = bytes((i * 7 + index) % 256 for i in range(size))
    return EncodedFrame("video", data, 3000 * index, index == 0, None, index)


@pytest.mark.parametrize("gso", [True, False])
@pytest.mark.parametrize("size", [100, 1296, 1297, 3900, 70_000])
def test_sent_packets_are_aiortc_packets(
    sessions: tuple[Session, Session], receiver: socket.socket, gso: bool, size: int
) -> None:
    """Every datagram unprotects to the packet aiortc would have built for the frame (same payloads as
    ``Vp8Encoder._packetize`` with the same picture id, same header and extensions), in order, the
    sequence numbers wrapping; a 70 kB keyframe leaves in several GSO batches."""
    outbound, inbound = sessions
    frame = vp8_frame(size, index=0x1234)
    payloads = frame_payloads(frame)
    assert payloads == Vp8Encoder._packetize(frame.data, 0x1234)
    sequence, timestamp = 65530, 0xFFFFFF00
    extensions = header_extensions(MID_ID, MID.encode(), LEVEL_ID, None)
    writer = SrtpWriter(outbound, sending_socket(), receiver.getsockname(), gso=gso)
    try:
        sent = writer.send_frame(PAYLOAD_TYPE, sequence, timestamp, SSRC, extensions, payloads)
        received = [receiver.recv(2048) for _ in payloads]
    finally:
        writer.close()
    assert sent == sum(map(len, received)) and writer.dropped == 0
    assert [inbound.unprotect(data) for data in received] == aiortc_packets(payloads, sequence, timestamp)


def test_audio_packets_carry_the_level(sessions: tuple[Session, Session], receiver: socket.socket) -> None:
    """An Opus frame is one packet with the mid and RFC 6464 level extensions, as aiortc writes them."""
    outbound, inbound = sessions
    frame = EncodedFrame("audio", b"\xfc" + bytes(range(80)), 960, True, 42)
    extensions = header_extensions(MID_ID, MID.encode(), LEVEL_ID, frame.audio_level)
    writer = SrtpWriter(outbound, sending_socket(), receiver.getsockname())
    try:
        writer.send_frame(PAYLOAD_TYPE, 7, 960, SSRC, extensions, frame_payloads(frame))
        data = receiver.recv(2048)
    finally:
        writer.close()
    assert inbound.unprotect(data) == aiortc_packets([frame.data], 7, 960, audio_level=42)[0]


def test_history_rebuilds_sent_packets_for_nacks() -> None:
    """A NACKed sequence number gives back the packet that was sent (across the 16-bit wrap) for the
    last HISTORY_SIZE packets, and nothing for older or unsent ones."""
    history = RtpHistory(PAYLOAD_TYPE, SSRC)
    extensions = header_extensions(MID_ID, MID.encode(), 0, None)
    sequence = 65000
    sent: dict[int, bytes] = {}
    for index in range(2 * HISTORY_SIZE // 3):
        payloads = frame_payloads(vp8_frame(3000, index))
        history.add(sequence, 3000 * index, extensions, payloads)
        for offset, packet in enumerate(aiortc_packets(payloads, sequence, 3000 * index)):
            sent[(sequence + offset) & 0xFFFF] = packet
        sequence = (sequence + len(payloads)) & 0xFFFF
    order = list(sent)
    for number in order[-HISTORY_SIZE:]:
        packet = history.get(number)
        assert packet is not None and packet[0] + packet[1] == sent[number]
    assert all(history.get(number) is None for number in order[: -HISTORY_SIZE - 2])
    assert history.get(sequence) is None  # not sent yet
    held = sorted(history.values(), key=lambda item: order.index(item[0]))
    assert [item[0] for item in held] == order[-HISTORY_SIZE:]


async def test_retransmission_leaves_on_the_writer(
    sessions: tuple[Session, Session], receiver: socket.socket
) -> None:
    """A retransmitted packet (as the NACK handler sends it) unprotects to the packet given."""
    outbound, inbound = sessions
    packet = aiortc_packets([b"\x90\x80\x80\x01" + bytes(500)], 9, 1234)[0]
    writer = SrtpWriter(outbound, sending_socket(), receiver.getsockname())
    try:
        assert writer.send_packet(packet) > len(packet)
        assert inbound.unprotect(receiver.recv(2048)) == packet
    finally:
        writer.close()


def test_a_frame_is_packetised_once_for_every_subscriber() -> None:
    """Subscribers of one source get the very same payload objects; the picture id is the frame's
    index in its source."""
    source = TrackSource("video", "publisher")
    tracks = [ForwardedTrack("video") for _ in range(3)]
    for track in tracks:
        track.attach(source)
    for index in range(2):
        source.deliver(vp8_frame(5000, index))
    taken = [[track.take() for _ in range(2)] for track in tracks]
    firsts = [items[1] for items in taken]
    assert all(item is not None for item in firsts)
    payload_lists = [frame_payloads(item[0]) for item in firsts if item is not None]
    assert all(p is payload_lists[0] for p in payload_lists)
    assert (payload_lists[0][0][2] & 0x7F) << 8 | payload_lists[0][0][3] == 1


def test_sink_drains_frames_as_they_are_queued() -> None:
    """With a sink, a pushed frame is handed over at once (no task switch) and the end of the track
    reaches the sink too."""
    source = TrackSource("video", "publisher")
    track = ForwardedTrack("video")
    track.attach(source)
    got: list[tuple[int, int]] = []
    calls = []

    def sink() -> None:
        calls.append(track.readyState)
        while (item := track.take()) is not None:
            got.append((item[0].index, item[1]))

    track.set_sink(sink)
    source.deliver(vp8_frame(100, 0))
    source.deliver(vp8_frame(100, 1))
    assert got == [(0, 0), (1, 3000)]
    track.stop()
    assert calls[-1] == "ended"


def test_rtx_packets_are_aiortc_rtx_packets() -> None:
    """A retransmission (RFC 4588) is what aiortc's ``wrap_rtx`` makes of the same packet, with and
    without header extensions."""
    for extensions in (header_extensions(MID_ID, MID.encode(), LEVEL_ID, 12), b""):
        packet = RtpPacket.parse(
            _serialize(PAYLOAD_TYPE, 5, 90_000, extensions, b"payload bytes"), _extensions_map()
        )
        expected = wrap_rtx(packet, payload_type=97, sequence_number=42, ssrc=0x55667788)
        assert rtx_packet(
            _serialize(PAYLOAD_TYPE, 5, 90_000, extensions, b"payload bytes"), 97, 42, 0x55667788
        ) == expected.serialize(_extensions_map())


async def test_relayed_packets_leave_in_order_until_the_connection_fails() -> None:
    """The TURN path (an awaited send per packet) keeps the packets' order across frames, and a
    ConnectionError drops what is left instead of ending in an unhandled task error."""
    sent: list[bytes] = []
    gate = asyncio.Event()

    async def send(data: bytes) -> None:
        await gate.wait()
        if data == b"fail":
            raise ConnectionError
        sent.append(data)

    sends = OrderedSends(send)
    sends.extend([b"1", b"2"])
    sends.extend([b"3"])
    gate.set()
    await asyncio.sleep(0.01)
    assert sent == [b"1", b"2", b"3"]
    sends.extend([b"fail", b"4"])
    await asyncio.sleep(0.01)
    assert sent == [b"1", b"2", b"3"]
    sends.extend([b"5"])
    await asyncio.sleep(0.01)
    assert sent[-1] == b"5"
    sends.close()
