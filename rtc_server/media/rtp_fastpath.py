"""The per-packet work of forwarding, done once where it can be and in one pass where it cannot.

A forwarded frame reaches every subscriber with the same RTP payloads: only the 12-byte RTP header
(sequence number, timestamp, SSRC, payload type) and the header extensions differ. So:

- :func:`frame_payloads` packetises a frame once (VP8: RFC 7741 payload descriptor with a picture id
  derived from the frame's position in its source) and caches the payloads on the frame;
- :class:`SrtpWriter` writes each subscriber's packets of one frame into one preallocated buffer (the
  header with ``struct.pack_into``, then the extensions and the shared payload), SRTP-protects them in
  place with the DTLS transport's own libsrtp session, and hands them to the socket: one ``sendmsg``
  per frame with UDP generic segmentation offload (``UDP_SEGMENT``) when the kernel takes it, one
  ``sendto`` per packet otherwise;
- :class:`RtpHistory` keeps one entry per frame (not an object per packet) to answer NACKs.

Nothing here knows aiortc: :mod:`rtc_server.media.aiortc_adapter` finds the SRTP session and the socket
of a peer connection and feeds this module. It reaches into pylibsrtp's cffi binding (the same
``srtp_t`` that ``pylibsrtp.Session.protect`` uses, without its per-call allocations and copies).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from pylibsrtp import Session
from pylibsrtp._binding import ffi, lib

from rtc_server.media.forwarding import EncodedFrame

#: Largest RTP payload we produce (aiortc's own packetiser uses the same).
MAX_PAYLOAD = 1300
#: Packets kept for retransmission (aiortc keeps 128); a power of two dividing 65536.
HISTORY_SIZE = 512
_VP8_DESCRIPTOR_SIZE = 4
_RTP_HEADER = struct.Struct("!BBHII")
#: ``UDP_SEGMENT`` (linux/udp.h): the socket option of UDP GSO (Linux 4.18+).
_UDP_SEGMENT = 103
#: The kernel takes at most 64 segments and 64 KiB per GSO send.
_GSO_MAX_SEGMENTS = 64
#: Bytes of packets per send: a typical frame (a few packets) leaves in one ``sendmsg``, a keyframe in
#: a few; the kernel's limit is 64 KiB, but each writer holds its buffer (memory per sender).
_GSO_MAX_BYTES = 16_000
#: Room for one packet: RTP header, extensions, payload and the SRTP trailer (tag, MKI).
_PACKET_ROOM = 1500


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


def frame_payloads(frame: EncodedFrame) -> list[bytes]:
    """The RTP payloads of ``frame``, built on first use and cached on it: every subscriber of the
    source shares them (VP8: picture id = the frame's index in its source, modulo 2**15; Opus: the
    packet as is)."""
    payloads = frame.rtp_payloads
    if payloads is None:
        if frame.kind == "video":
            payloads = packetize_vp8(frame.data, frame.index & 0x7FFF)
        else:
            payloads = [frame.data]
        frame.rtp_payloads = payloads
    return payloads


def header_extensions(mid_id: int, mid: bytes | None, level_id: int, audio_level: int | None) -> bytes:
    """RFC 8285 one-byte header extensions (``mid``, and the RFC 6464 audio level when given), padded,
    with their ``0xBEDE`` profile header; empty when none apply."""
    elements = b""
    if mid_id and mid:
        elements += bytes(((mid_id << 4) | (len(mid) - 1),)) + mid
    if level_id and audio_level is not None:
        elements += bytes(((level_id << 4), audio_level & 0x7F))
    if not elements:
        return b""
    elements += b"\x00" * (-len(elements) % 4)
    return b"\xbe\xde" + struct.pack("!H", len(elements) // 4) + elements


def rtp_packet(
    payload_type: int,
    marker: bool,
    sequence: int,
    timestamp: int,
    ssrc: int,
    extensions: bytes,
    payload: bytes,
) -> bytes:
    """One serialized RTP packet (version 2, no padding, no CSRC; X set when ``extensions``)."""
    first = 0x90 if extensions else 0x80
    second = payload_type | 0x80 if marker else payload_type
    return _RTP_HEADER.pack(first, second, sequence, timestamp, ssrc) + extensions + payload


def rtx_packet(packet: bytes, payload_type: int, sequence: int, ssrc: int) -> bytes:
    """The RFC 4588 retransmission of ``packet`` (a serialized RTP packet with no CSRC): RTX payload
    type, sequence number and SSRC, the original sequence number in front of the payload."""
    header = 12 + (4 + 4 * int.from_bytes(packet[14:16], "big") if packet[0] & 0x10 else 0)
    return (
        bytes((packet[0], (packet[1] & 0x80) | payload_type))
        + sequence.to_bytes(2, "big")
        + packet[4:8]
        + ssrc.to_bytes(4, "big")
        + packet[12:header]
        + packet[2:4]
        + packet[header:]
    )


_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp (what ``aiortc.clock.current_ntp_time`` returns, without
    building datetimes)."""
    return int((time.time() + _NTP_EPOCH_OFFSET) * 4294967296.0)


class RtpHistory:
    """The last :data:`HISTORY_SIZE` packets one sender sent, for NACKs, found in constant time (a NACK
    storm must stay cheap): slot ``sequence % HISTORY_SIZE`` points at the entry of the packet's frame
    ``(first sequence, timestamp, extensions, payloads)`` (the frame's shared payloads), so recording a
    frame costs one tuple and one slice assignment, whatever its packet count."""

    def __init__(self, payload_type: int = 0, ssrc: int = 0) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc
        self._slots: list[tuple[int, int, bytes, list[bytes]] | None] = [None] * HISTORY_SIZE

    def add(self, first_sequence: int, timestamp: int, extensions: bytes, payloads: list[bytes]) -> None:
        """Record the packets of one frame, sent from ``first_sequence`` on."""
        entry = (first_sequence, timestamp, extensions, payloads)
        count = min(len(payloads), HISTORY_SIZE)
        start = (first_sequence + len(payloads) - count) % HISTORY_SIZE
        end = start + count
        slots = self._slots
        if end <= HISTORY_SIZE:
            slots[start:end] = [entry] * count
        else:
            slots[start:] = [entry] * (HISTORY_SIZE - start)
            slots[: end - HISTORY_SIZE] = [entry] * (end - HISTORY_SIZE)

    def get(self, sequence: int) -> tuple[bytes, bytes] | None:
        """The RTP packet sent with ``sequence`` as ``(header with extensions, payload)``, if still
        held."""
        entry = self._slots[sequence % HISTORY_SIZE]
        if entry is None:
            return None
        first, timestamp, extensions, payloads = entry
        offset = (sequence - first) & 0xFFFF
        if offset >= len(payloads):
            return None
        second = self.payload_type | 0x80 if offset == len(payloads) - 1 else self.payload_type
        first_byte = 0x90 if extensions else 0x80
        header = _RTP_HEADER.pack(first_byte, second, sequence, timestamp, self.ssrc) + extensions
        return header, payloads[offset]

    def values(self) -> Iterator[tuple[int, bytes, bytes]]:
        """``(sequence, header with extensions, payload)`` of every packet held, in slot order."""
        for slot, entry in enumerate(self._slots):
            if entry is not None:
                sequence = (entry[0] + (slot - entry[0]) % HISTORY_SIZE) & 0xFFFF
                packet = self.get(sequence)
                if packet is not None:
                    yield sequence, packet[0], packet[1]


class OrderedSends:
    """Packets for an awaited send function (aiortc's ``_send_rtp`` on a TURN relay), sent in order by
    one task; at most ``limit`` wait (the oldest are dropped). A :class:`ConnectionError` drops the
    rest."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], limit: int = 256) -> None:
        self._send = send
        self._packets: deque[bytes] = deque(maxlen=limit)
        self._task: asyncio.Task[None] | None = None

    def extend(self, packets: Iterable[bytes]) -> None:
        """Queue ``packets`` and make sure the sending task runs."""
        self._packets.extend(packets)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        packets = self._packets
        try:
            while packets:
                await self._send(packets.popleft())
        except ConnectionError:
            packets.clear()

    def close(self) -> None:
        """Drop what waits and stop the task."""
        self._packets.clear()
        if self._task is not None:
            self._task.cancel()


class SrtpError(RuntimeError):
    """libsrtp refused to protect a packet."""


class SrtpWriter:
    """SRTP-protects a frame's RTP packets in place and sends them to ``address`` on ``sock``.

    ``session`` is the DTLS transport's outbound :class:`pylibsrtp.Session` (RTP and RTCP share it);
    ``sock`` a socket of its own (a duplicate of the ICE pair's descriptor: the event loop's transport
    object offers no ``sendmsg``) that this writer closes in :meth:`close`. A full send buffer drops the
    packets (UDP; NACKs recover them), like the loop's transport would once its buffer is full.
    """

    def __init__(self, session: Session, sock: socket.socket, address: Any, gso: bool | None = None) -> None:
        self._session = session  # owns the srtp_t below: it must outlive every use
        self._srtp = session._srtp[0]
        self._cdata = ffi.new("char[]", _GSO_MAX_BYTES + _PACKET_ROOM)
        self._buffer = ffi.buffer(self._cdata)
        self._view = memoryview(self._buffer)
        self._length = ffi.new("int *")
        self.sock = sock
        self.address = address
        self.gso = sys.platform.startswith("linux") if gso is None else gso
        """Whether frames leave in one GSO ``sendmsg``; turned off for good the first time the kernel
        refuses one."""
        self.dropped = 0
        """Packets the socket did not take (buffer full, network errors)."""

    def send_frame(
        self,
        payload_type: int,
        sequence: int,
        timestamp: int,
        ssrc: int,
        extensions: bytes,
        payloads: list[bytes],
    ) -> int:
        """Protect and send one frame's packets (sequence numbers from ``sequence``, the marker on the
        last); returns the protected bytes handed to the socket."""
        buffer, cdata, length, view = self._buffer, self._cdata, self._length, self._view
        pack_into = _RTP_HEADER.pack_into
        protect = lib.srtp_protect
        srtp = self._srtp
        first = 0x90 if extensions else 0x80
        head = _RTP_HEADER.size + len(extensions)
        last = len(payloads) - 1
        capacity = _GSO_MAX_BYTES
        start = offset = 0  # the GSO batch being built is buffer[start:offset]: `count` packets
        segment = count = sent = 0  # of `segment` bytes each (the last one may be shorter)
        for index, payload in enumerate(payloads):
            if offset > capacity or count == _GSO_MAX_SEGMENTS:
                sent += self._flush(start, offset, segment, count)
                start = offset = segment = count = 0
            pack_into(
                buffer, offset, first, payload_type | 0x80 if index == last else payload_type,
                (sequence + index) & 0xFFFF, timestamp, ssrc,
            )  # fmt: skip
            if extensions:
                buffer[offset + _RTP_HEADER.size : offset + head] = extensions
            end = offset + head + len(payload)
            buffer[offset + head : end] = payload
            length[0] = end - offset
            status = protect(srtp, cdata + offset, length)
            if status:
                raise SrtpError(f"srtp_protect failed ({status})")
            size = length[0]
            if not self.gso:
                sent += self._sendto(view[offset : offset + size], 1)
                continue
            if count and size > segment:  # only the last segment of a batch may be shorter
                sent += self._flush(start, offset, segment, count)
                start, count = offset, 0
            if not count:
                segment = size
            offset += size
            count += 1
            if size < segment:  # a shorter segment ends its batch
                sent += self._flush(start, offset, segment, count)
                start = offset = segment = count = 0
        if count:
            sent += self._flush(start, offset, segment, count)
        return sent

    def send_packet(self, packet: bytes) -> int:
        """Protect and send one serialized RTP packet (a retransmission); returns the bytes sent."""
        size = len(packet)
        self._buffer[0:size] = packet
        self._length[0] = size
        status = lib.srtp_protect(self._srtp, self._cdata, self._length)
        if status:
            raise SrtpError(f"srtp_protect failed ({status})")
        return self._sendto(self._view[: self._length[0]], 1)

    def _flush(self, start: int, end: int, segment: int, count: int) -> int:
        if count == 1:
            return self._sendto(self._view[start:end], 1)
        if not self.gso:
            return self._send_each(start, end, segment)
        try:
            self.sock.sendmsg(
                [self._view[start:end]],
                [(socket.SOL_UDP, _UDP_SEGMENT, segment.to_bytes(2, sys.byteorder))],
                0,
                self.address,
            )
            return end - start
        except (BlockingIOError, InterruptedError):
            self.dropped += count
            return 0
        except OSError as error:
            if error.errno not in (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
                self.dropped += count
                return 0
            self.gso = False  # no segmentation offload on this route: one packet per send from now on
            return self._send_each(start, end, segment)

    def _send_each(self, start: int, end: int, segment: int) -> int:
        sent = 0
        for offset in range(start, end, segment):
            sent += self._sendto(self._view[offset : min(offset + segment, end)], 1)
        return sent

    def _sendto(self, data: memoryview, count: int) -> int:
        try:
            return self.sock.sendto(data, self.address)
        except OSError:  # BlockingIOError included: the kernel's buffer is full
            self.dropped += count
            return 0

    def close(self) -> None:
        """Close the writer's socket (the ICE pair's own descriptor stays open)."""
        self.sock.close()
        self._view.release()
