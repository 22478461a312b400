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
2. **Sender** (:class:`ForwardingSender`). ``RTCRtpSender.send()`` starts ``self._run_rtp(codec)``, a
   task that awaits, encodes and packetises each frame and awaits four layers per ``RtpPacket``; the
   instance gets its own ``_run_rtp`` that makes itself the sink of a
   :class:`~rtc_server.media.forwarding.ForwardedTrack`: each queued frame is sent at once, with the
   frame's shared payloads, through :mod:`rtc_server.media.rtp_fastpath` (headers written in place,
   SRTP with the DTLS transport's own session, one GSO send per frame on a duplicate of the nominated
   ICE pair's socket: ``_DirectRoute``), or through aiortc's ``_send_rtp`` on a TURN relay. It keeps
   the counters of aiortc's RTCP sender reports, the ``__rtp_started``/``__rtp_exited`` events
   ``stop()`` waits for, and a history for ``_retransmit`` (NACK -> RTX). RTCP stays aiortc's.
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
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import aiortc
from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.utils import random16, random32

from rtc_server.media.forwarding import EncodedFrame, ForwardedTrack, is_vp8_keyframe
from rtc_server.media.rtp_fastpath import MAX_PAYLOAD as MAX_PAYLOAD
from rtc_server.media.rtp_fastpath import (
    OrderedSends,
    RtpHistory,
    SrtpWriter,
    frame_payloads,
    header_extensions,
    ntp_now,
    rtp_packet,
    rtx_packet,
)
from rtc_server.media.rtp_fastpath import packetize_vp8 as packetize_vp8

log = logging.getLogger(__name__)

SUPPORTED_AIORTC = "1.16.0"


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


_MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
_AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


class ForwardingSender:
    """Turns one server :class:`RTCRtpSender` into a forwarder of a :class:`ForwardedTrack` (seam 2 of
    the module docstring). ``send()`` is wrapped only to learn the negotiated extension ids; RTCP and
    ``stop()`` stay aiortc's. ``abs-send-time`` is not written: the server does not adapt bitrates, and
    without it subscribers send it no REMB feedback."""

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
        self._history = RtpHistory()
        self._mid: bytes | None = None
        self._mid_id = 0
        self._level_id = 0
        self._extensions: dict[int | None, bytes] = {}
        self._rtx_payload_type: int | None = None
        self._rtx_sequence = random16() % 32768
        self._payload_type = 0
        self._sequence = 0
        self._origin = 0
        self._frames = 0
        self._route: _DirectRoute | None = None
        self._ended: asyncio.Future[None] | None = None
        self._relayed = OrderedSends(lambda data: self.sender.transport._send_rtp(data))
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

    async def _run_rtp(self, codec: Any) -> None:
        sender = self.sender
        sender._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]
        track = self.track
        self._payload_type = codec.payloadType
        self._history = RtpHistory(codec.payloadType, sender._ssrc)
        self._sequence = random16() % 32768
        self._origin = random32()
        self._ended = ended = asyncio.get_running_loop().create_future()
        track.trim_backlog()
        track.set_sink(self._drain)
        try:
            self._drain()
            await ended
        except asyncio.CancelledError:
            pass
        finally:
            track.set_sink(None)
            track.stop()
            self._drop_route()
            self._relayed.close()
            sender._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]

    def _drain(self) -> None:
        """The track's sink: send every queued frame now."""
        ended = self._ended
        if ended is None or ended.done():
            return
        track = self.track
        item = track.take()
        if item is None:  # nothing queued: the track ended (or a spurious call)
            if track.readyState != "live":
                ended.set_result(None)
            return
        try:
            while item is not None:
                if self.sender._enabled:
                    self._send_frame(item[0], item[1])
                item = track.take()
        except ConnectionError:
            ended.set_result(None)
        except Exception:
            log.exception("forwarding RTP failed")
            ended.set_result(None)

    def _send_frame(self, frame: EncodedFrame, timestamp: int) -> None:
        sender = self.sender
        payloads = frame.rtp_payloads or frame_payloads(frame)
        level = frame.audio_level  # None on video
        extensions = self._extensions.get(level)
        if extensions is None:
            extensions = header_extensions(self._mid_id, self._mid, self._level_id, level)
            self._extensions[level] = extensions
        timestamp = (self._origin + timestamp) & 0xFFFFFFFF
        sequence = self._sequence
        count = len(payloads)
        ssrc = sender._ssrc
        dtls: Any = sender.transport
        route = self._route
        if route is None or not route.usable(dtls):
            route = self._reroute(dtls)
        if route is not None:
            sent = route.writer.send_frame(
                self._payload_type, sequence, timestamp, ssrc, extensions, payloads
            )
            dtls._RTCDtlsTransport__tx_bytes += sent
            dtls._RTCDtlsTransport__tx_packets += count
        elif dtls._state is not DtlsState.CONNECTED:
            raise ConnectionError("the DTLS transport is not connected")
        else:
            pt = self._payload_type
            self._relayed.extend(
                rtp_packet(pt, i == count - 1, (sequence + i) & 0xFFFF, timestamp, ssrc, extensions, payload)
                for i, payload in enumerate(payloads)
            )
        self._history.add(sequence, timestamp, extensions, payloads)
        self._sequence = (sequence + count) & 0xFFFF
        self.packets += count
        self._frames += 1
        if self._frames & 7 == 1:  # a (wall clock, RTP timestamp) pair for the sender reports
            sender._RTCRtpSender__ntp_timestamp = ntp_now()  # type: ignore[attr-defined]
            sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += sum(map(len, payloads))  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count += count  # type: ignore[attr-defined]

    def _reroute(self, dtls: Any) -> _DirectRoute | None:
        self._drop_route()
        self._route = _direct_route(dtls)
        return self._route

    def _drop_route(self) -> None:
        if self._route is not None:
            self._route.writer.close()
            self._route = None

    async def _retransmit(self, sequence_number: int) -> None:
        """Answer a NACK from the history (RTX when negotiated, RFC 4588)."""
        packet = self._history.get(sequence_number)
        if packet is None:
            return
        data = packet[0] + packet[1]
        if self._rtx_payload_type is not None:
            data = rtx_packet(data, self._rtx_payload_type, self._rtx_sequence, self.sender._rtx_ssrc)
            self._rtx_sequence = (self._rtx_sequence + 1) & 0xFFFF
        self.retransmissions += 1
        dtls: Any = self.sender.transport
        route = self._route
        if route is not None and route.usable(dtls):
            dtls._RTCDtlsTransport__tx_bytes += route.writer.send_packet(data)
            dtls._RTCDtlsTransport__tx_packets += 1
            return
        try:
            await dtls._send_rtp(data)
        except ConnectionError:
            pass


class _DirectRoute:
    """The nominated plain-UDP ICE pair of a connected DTLS transport and an :class:`SrtpWriter` on a
    duplicate of its socket: what ``RTCDtlsTransport._send_rtp`` -> ``RTCIceTransport._send`` ->
    ``Connection.sendto`` -> ``StunProtocol.send_data`` do, without the four awaited layers."""

    def __init__(self, dtls: Any, pair: Any, transport: Any, writer: SrtpWriter) -> None:
        self.dtls, self.pair, self.transport, self.writer = dtls, pair, transport, writer

    def usable(self, dtls: Any) -> bool:
        """Whether this is still ``dtls``'s route: connected, same pair, socket open."""
        return (
            dtls is self.dtls
            and dtls._state is DtlsState.CONNECTED
            and dtls.transport._connection._nominated.get(1) is self.pair
            and not self.transport.is_closing()
        )


def _direct_route(dtls: Any) -> _DirectRoute | None:
    """The direct route of a connected DTLS transport over a plain UDP pair; ``None`` otherwise (not
    connected yet or any more, or a TURN relay): then aiortc's own ``_send_rtp`` is used."""
    if dtls._state is not DtlsState.CONNECTED:
        return None
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None or type(pair.protocol) is not StunProtocol:
        return None
    transport = pair.protocol.transport
    if transport is None or transport.is_closing() or not hasattr(dtls._tx_srtp, "_srtp"):
        return None  # (no pylibsrtp context to protect with: aiortc's path)
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    fd = os.dup(sock.fileno())
    try:
        own = socket.socket(fileno=fd)
    except OSError:
        os.close(fd)
        return None
    own.setblocking(False)  # already so: the flag belongs to the shared open file
    return _DirectRoute(dtls, pair, transport, SrtpWriter(dtls._tx_srtp, own, pair.remote_addr))


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
