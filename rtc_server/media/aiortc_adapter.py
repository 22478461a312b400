"""The one place that reaches into aiortc's internals, pinned to aiortc 1.16.0.

aiortc decodes everything it receives and encodes everything it sends. An SFU wants neither, and
aiortc 1.16 has no public switch for it, so this module adapts *individual* objects (never module
globals: a test client in the same process still decodes normally) at four seams, each checked by
``tests/media/test_aiortc_adapter.py``:

1. **Receiver** (:class:`ReceiverTap`). ``RTCRtpReceiver._handle_rtp_packet`` reassembles frames in
   its jitter buffer and puts ``(codec, JitterFrame)`` on a ``queue.Queue`` read by a decoder thread
   (``__decoder_queue``). The tap replaces that queue, before ``receive()`` starts the thread, with an
   object whose ``put`` hands the still-encoded VP8 frame to a callback on the event loop, and whose
   ``get`` (called by the now idle thread) just waits for the stop sentinel. Opus packets skip the
   jitter buffer (its 4-frame prefetch would add 80 ms): a wrapper around ``_handle_rtp_packet``
   forwards each one as it arrives, with its RFC 6464 audio level, then lets aiortc do its usual
   bookkeeping (RTCP receiver reports, NACKs, RTX).
2. **Sender** (:class:`ForwardingSender`). ``RTCRtpSender.send()`` starts ``self._run_rtp(codec)``,
   which reads, encodes and packetises frames one ``RtpPacket`` object at a time; the instance gets its
   own ``_run_rtp`` that reads a :class:`~rtc_server.media.forwarding.ForwardedTrack`, packetises the
   encoded frame (VP8 payload descriptor with the sender's own picture id; Opus as is) and writes the
   RTP headers directly (about half the CPU per packet), keeping the counters aiortc's RTCP sender
   reports use, the ``__rtp_started``/``__rtp_exited`` events ``stop()`` waits for, and its own
   history for ``_retransmit`` (NACK -> RTX). Each packet is protected with the DTLS transport's SRTP
   session and written to the nominated ICE pair's socket directly (``_DirectRoute``; aiortc's
   ``_send_rtp`` when the pair is a TURN relay or the transport is not connected). RTCP stays aiortc's.
3. **Keyframe requests**. ``RTCRtpSender._handle_rtcp_packet`` answers PLI/FIR with
   ``self._send_keyframe()``, which only sets an encoder flag; the instance gets a version that asks
   the track's publisher instead (:meth:`ReceiverTap.request_keyframe` sends the RTCP PLI through the
   publisher's ``RTCRtpReceiver._send_rtcp_pli``).
4. **Host candidates** (:func:`restrict_host_addresses`). aioice's ``Connection.gather_candidates``
   passes ``get_host_addresses()`` (which never includes 127.0.0.1) to
   ``get_component_candidates``; the peer's ICE connections get a version that binds the configured
   addresses instead.

Importing this module fails with a clear message on any other aiortc version.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import aiortc
from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtp import RTP_HISTORY_SIZE
from aiortc.utils import random16, random32

from rtc_server.media.forwarding import EncodedFrame, ForwardedTrack, is_vp8_keyframe

log = logging.getLogger(__name__)

SUPPORTED_AIORTC = "1.16.0"
#: Largest RTP payload we produce (aiortc's own packetiser uses the same).
MAX_PAYLOAD = 1300
_VP8_DESCRIPTOR_SIZE = 4


class UnsupportedAiortc(RuntimeError):
    """The installed aiortc is not the version this adapter was written and tested against."""


def check_aiortc_version(version: str | None = None) -> None:
    """Raise :class:`UnsupportedAiortc` unless ``version`` (default: the installed one) is supported."""
    found = aiortc.__version__ if version is None else version
    if found != SUPPORTED_AIORTC:
        raise UnsupportedAiortc(
            f"rtc_server.media forwards encoded frames through aiortc {SUPPORTED_AIORTC} internals "
            f"(RTCRtpReceiver decoder queue, RTCRtpSender._next_encoded_frame); found aiortc {found}. "
            f"Pin aiortc=={SUPPORTED_AIORTC} or re-check rtc_server/media/aiortc_adapter.py."
        )


check_aiortc_version()


# -- receiver ------------------------------------------------------------------------------------


class _EncodedFrameQueue:
    """Stands in for the receiver's decoder ``queue.Queue``: ``put`` runs on the event loop (from
    ``_handle_rtp_packet``), ``get`` on the receiver's decoder thread, which has nothing to decode."""

    def __init__(self, on_item: Callable[[Any], None]) -> None:
        self._on_item = on_item
        self._stopped = threading.Event()

    def put(self, item: Any) -> None:
        if item is None:
            self._stopped.set()
        else:
            self._on_item(item)

    def get(self) -> None:
        self._stopped.wait()
        return None


class _Unwrapper:
    """Unwraps 32-bit RTP timestamps into a never-decreasing (modulo reordering) integer."""

    def __init__(self) -> None:
        self._last: int | None = None
        self._cycles = 0

    def __call__(self, timestamp: int) -> int:
        last = self._last
        if last is not None:
            if timestamp < last and last - timestamp > 0x80000000:
                self._cycles += 1 << 32
            elif timestamp > last and timestamp - last > 0x80000000:
                return timestamp + self._cycles - (1 << 32)  # a late packet from before the wrap
        self._last = timestamp
        return timestamp + self._cycles


class ReceiverTap:
    """Makes one server-side :class:`RTCRtpReceiver` yield encoded frames to ``on_frame``.

    ``audio_payload_types`` are the negotiated Opus payload types (audio packets of any other type
    are not forwarded). Install it before the receiver starts (the ``track`` event of
    ``setRemoteDescription`` is the natural place).
    """

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        kind: str,
        on_frame: Callable[[EncodedFrame], None],
        audio_payload_types: Iterable[int] = (),
    ) -> None:
        if kind not in ("audio", "video"):
            raise ValueError(f"unsupported kind {kind!r}")
        if getattr(receiver, "_RTCRtpReceiver__decoder_thread", None) is not None:
            raise RuntimeError("the receiver already started its decoder")
        if not hasattr(receiver, "_RTCRtpReceiver__decoder_queue"):
            raise UnsupportedAiortc("RTCRtpReceiver has no decoder queue to replace")
        self.receiver = receiver
        self.kind = kind
        self.ssrc: int | None = None
        """SSRC of the publisher's stream, once a packet arrived."""
        self.packets = 0
        self._on_frame = on_frame
        self._audio_pts = frozenset(audio_payload_types)
        self._unwrap = _Unwrapper()
        self._pli_tasks: set[asyncio.Task[None]] = set()
        self._failed = False
        self._original_handle = receiver._handle_rtp_packet
        receiver._RTCRtpReceiver__decoder_queue = _EncodedFrameQueue(self._on_jitter_frame)  # type: ignore[attr-defined]
        receiver._handle_rtp_packet = self._handle_rtp_packet  # type: ignore[method-assign]

    async def _handle_rtp_packet(self, packet: Any, arrival_time_ms: int) -> None:
        self.packets += 1
        self.ssrc = packet.ssrc
        if self.kind == "audio" and packet.payload and packet.payload_type in self._audio_pts:
            level = packet.extensions.audio_level
            self._emit(
                EncodedFrame(
                    "audio",
                    packet.payload,
                    self._unwrap(packet.timestamp),
                    True,
                    None if level is None else level[1],
                )
            )
        await self._original_handle(packet, arrival_time_ms)

    def _on_jitter_frame(self, item: Any) -> None:
        if self.kind != "video":
            return  # audio went out directly from _handle_rtp_packet
        _codec, jitter_frame = item
        data = jitter_frame.data
        self._emit(EncodedFrame("video", data, jitter_frame.timestamp, is_vp8_keyframe(data)))

    def _emit(self, frame: EncodedFrame) -> None:
        # Runs inside aiortc's packet handling: an exception here would end the DTLS transport.
        try:
            self._on_frame(frame)
        except Exception:
            if not self._failed:
                self._failed = True
                log.exception("forwarding a %s frame failed", self.kind)

    def request_keyframe(self) -> None:
        """Send an RTCP PLI to the publisher (no-op before its first packet)."""
        if self.ssrc is None or self.kind != "video":
            return
        task = asyncio.ensure_future(self.receiver._send_rtcp_pli(self.ssrc))
        self._pli_tasks.add(task)
        task.add_done_callback(self._pli_tasks.discard)

    def close(self) -> None:
        """Forget the callback (the receiver itself is stopped by its peer connection)."""
        self._on_frame = _ignore
        for task in list(self._pli_tasks):
            task.cancel()


def _ignore(frame: EncodedFrame) -> None:
    return None


# -- sender --------------------------------------------------------------------------------------


def packetize_vp8(data: bytes, picture_id: int) -> list[bytes]:
    """Split one VP8 frame into RTP payloads (RFC 7741): each starts with a 4-byte descriptor
    (X=1, S=1 on the first, I=1 with a 15-bit picture id)."""
    pid_hi = 0x80 | ((picture_id >> 8) & 0x7F)
    pid_lo = picture_id & 0xFF
    first = bytes((0x90, 0x80, pid_hi, pid_lo))
    rest = bytes((0x80, 0x80, pid_hi, pid_lo))
    step = MAX_PAYLOAD - _VP8_DESCRIPTOR_SIZE
    if len(data) <= step:
        return [first + data]
    payloads = [first + data[:step]]
    payloads.extend(rest + data[pos : pos + step] for pos in range(step, len(data), step))
    return payloads


_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def _ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp (what ``aiortc.clock.current_ntp_time`` returns, without
    building datetimes)."""
    return int((time.time() + _NTP_EPOCH_OFFSET) * 4294967296.0)


_MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
_AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
_RTP_HEADER = struct.Struct("!BBHII")


class ForwardingSender:
    """Turns one server :class:`RTCRtpSender` into a forwarder of a :class:`ForwardedTrack`.

    The sender's own RTP loop (``_run_rtp``: an ``RtpPacket`` object, two wall-clock reads, a generic
    header-extension packer and a ``RtpPacket`` kept for NACKs, per packet) is replaced by one that
    writes each RTP header with one ``struct.pack``, builds the header extensions (``mid``, and the audio
    level on audio) once per frame, and keeps the serialized packets for retransmission
    (``_retransmit``, RTX when negotiated). Everything else stays aiortc's: ``send()`` (wrapped only to
    learn the negotiated extension ids), SRTP and ICE through ``transport._send_rtp``, the RTCP sender
    reports (fed with the same counters), ``stop()``. The ``abs-send-time`` extension is not written:
    the server does not adapt bitrates, and without it subscribers do not send it REMB feedback.
    """

    def __init__(self, sender: RTCRtpSender, track: ForwardedTrack) -> None:
        if sender.kind != track.kind:
            raise ValueError(f"cannot feed a {track.kind} track to a {sender.kind} sender")
        for name in ("_run_rtp", "_retransmit", "_send_keyframe", "_RTCRtpSender__rtp_started"):
            if not hasattr(sender, name):
                raise UnsupportedAiortc(f"RTCRtpSender has no {name}")
        self.sender = sender
        self.track = track
        self.packets = 0
        """RTP packets sent (retransmissions excluded)."""
        self.retransmissions = 0
        self._history: dict[int, tuple[int, bytes, bytes]] = {}
        self._mid: bytes | None = None
        self._mid_id = 0
        self._level_id = 0
        self._rtx_payload_type: int | None = None
        self._rtx_sequence = random16() % 32768
        self._configured = False
        self._original_send = sender.send
        sender.replaceTrack(track)
        sender.send = self._send  # type: ignore[method-assign]
        sender._run_rtp = self._run_rtp  # type: ignore[method-assign]
        sender._retransmit = self._retransmit  # type: ignore[method-assign]
        sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]

    async def _send(self, parameters: Any) -> None:
        if not self._configured:
            self._configured = True
            self._mid = parameters.muxId.encode() if parameters.muxId else None
            for extension in parameters.headerExtensions:
                if extension.uri == _MID_URI:
                    self._mid_id = extension.id
                elif extension.uri == _AUDIO_LEVEL_URI:
                    self._level_id = extension.id
            base = parameters.codecs[0].payloadType
            for codec in parameters.codecs:
                if codec.name.lower() == "rtx" and codec.parameters.get("apt") == base:
                    self._rtx_payload_type = codec.payloadType
        await self._original_send(parameters)

    def _extensions(self, audio_level: int | None) -> bytes:
        """RFC 8285 one-byte header extensions of one frame (empty when none apply)."""
        elements = b""
        if self._mid_id and self._mid:
            elements += bytes(((self._mid_id << 4) | (len(self._mid) - 1),)) + self._mid
        if self._level_id and audio_level is not None:
            elements += bytes(((self._level_id << 4), audio_level & 0x7F))
        if not elements:
            return b""
        elements += b"\x00" * (-len(elements) % 4)
        return b"\xbe\xde" + struct.pack("!H", len(elements) // 4) + elements

    async def _run_rtp(self, codec: Any) -> None:
        sender = self.sender
        sender._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]
        track = self.track
        video = track.kind == "video"
        payload_type = codec.payloadType
        ssrc = sender._ssrc
        sequence = random16() % 32768
        origin = random32()
        picture_id = random16() & 0x7FFF
        history = self._history
        pack = _RTP_HEADER.pack
        track.trim_backlog()
        video_extensions: bytes | None = None
        try:
            while True:
                frame = await track.recv()
                if not sender._enabled:
                    continue
                if video:
                    payloads = packetize_vp8(frame.data, picture_id)
                    picture_id = (picture_id + 1) & 0x7FFF
                    extensions = video_extensions
                    if extensions is None:
                        extensions = video_extensions = self._extensions(None)
                else:
                    payloads = [frame.data]
                    extensions = self._extensions(frame.audio_level)
                first = 0x90 if extensions else 0x80
                timestamp = (origin + frame.timestamp) & 0xFFFFFFFF
                last = len(payloads) - 1
                route = _direct_route(sender.transport)
                octets = 0
                for index, payload in enumerate(payloads):
                    second = payload_type | 0x80 if index == last else payload_type
                    header = pack(first, second, sequence, timestamp, ssrc) + extensions
                    history[sequence % RTP_HISTORY_SIZE] = (sequence, header, payload)
                    if route is None:
                        await sender.transport._send_rtp(header + payload)
                    else:
                        route.send(header + payload)
                    octets += len(payload)
                    sequence = (sequence + 1) & 0xFFFF
                self.packets += len(payloads)
                sender._RTCRtpSender__ntp_timestamp = _ntp_now()  # type: ignore[attr-defined]
                sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
                sender._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]
                sender._RTCRtpSender__packet_count += len(payloads)  # type: ignore[attr-defined]
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:
            log.exception("forwarding RTP loop failed")
        finally:
            track.stop()
            sender._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]

    async def _retransmit(self, sequence_number: int) -> None:
        """Answer a NACK from the history (RTX when negotiated, RFC 4588)."""
        entry = self._history.get(sequence_number % RTP_HISTORY_SIZE)
        if entry is None or entry[0] != sequence_number:
            return
        _, header, payload = entry
        if self._rtx_payload_type is not None:
            marker = header[1] & 0x80
            _, _, _, timestamp, _ = _RTP_HEADER.unpack_from(header)
            rtx_header = _RTP_HEADER.pack(
                header[0],
                marker | self._rtx_payload_type,
                self._rtx_sequence,
                timestamp,
                self.sender._rtx_ssrc,
            )
            data = rtx_header + header[_RTP_HEADER.size :] + struct.pack("!H", sequence_number) + payload
            self._rtx_sequence = (self._rtx_sequence + 1) & 0xFFFF
        else:
            data = header + payload
        self.retransmissions += 1
        try:
            await self.sender.transport._send_rtp(data)
        except ConnectionError:
            pass


class _DirectRoute:
    """SRTP-protect and send one RTP packet synchronously on the nominated ICE pair: what
    ``RTCDtlsTransport._send_rtp`` -> ``RTCIceTransport._send`` -> ``Connection.sendto`` ->
    ``StunProtocol.send_data`` do, without the four coroutine layers (about 10% of the CPU per packet)."""

    __slots__ = ("dtls", "protect", "sendto", "address")

    def __init__(self, dtls: Any, pair: Any) -> None:
        self.dtls = dtls
        self.protect = dtls._tx_srtp.protect
        self.sendto = pair.protocol.transport.sendto
        self.address = pair.remote_addr

    def send(self, data: bytes) -> None:
        protected = self.protect(data)
        self.sendto(protected, self.address)
        self.dtls._RTCDtlsTransport__tx_bytes += len(protected)
        self.dtls._RTCDtlsTransport__tx_packets += 1


def _direct_route(dtls: Any) -> _DirectRoute | None:
    """The direct route of a connected DTLS transport over a plain UDP pair; ``None`` otherwise (not
    connected yet or any more, or a TURN relay): then aiortc's own ``_send_rtp`` is used."""
    if dtls._state is not DtlsState.CONNECTED:
        return None
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None or type(pair.protocol) is not StunProtocol or pair.protocol.transport is None:
        return None
    return _DirectRoute(dtls, pair)


def feed_sender(sender: RTCRtpSender, track: ForwardedTrack) -> ForwardingSender:
    """Make ``sender`` send ``track``'s encoded frames as they are, and pass PLI/FIR to its source."""
    return ForwardingSender(sender, track)


# -- ICE host candidates ---------------------------------------------------------------------------


def ice_transports(pc: RTCPeerConnection) -> Iterator[RTCIceTransport]:
    """The ICE transports a peer connection currently uses (one per transceiver / SCTP, bundled
    ones repeated)."""
    for transceiver in pc.getTransceivers():
        yield transceiver.receiver.transport.transport
    if pc.sctp is not None:
        yield pc.sctp.transport.transport


def restrict_host_addresses(pc: RTCPeerConnection, addresses: Iterable[str]) -> None:
    """Make every not-yet-gathered ICE transport of ``pc`` offer host candidates on ``addresses``
    only (e.g. ``["127.0.0.1"]``). Call before each ``setLocalDescription``."""
    chosen = list(addresses)
    for transport in ice_transports(pc):
        gatherer = transport.iceGatherer
        connection = gatherer._connection
        if gatherer.state != "new" or getattr(connection, "_rtc_host_addresses", None) is not None:
            continue
        original = connection.get_component_candidates

        async def get_component_candidates(
            component: int, addresses: list[str], timeout: int = 5, _original: Any = original
        ) -> Any:
            return await _original(component=component, addresses=chosen, timeout=timeout)

        connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]
        connection._rtc_host_addresses = chosen  # type: ignore[attr-defined]
