"""Selective forwarding of encoded media: one incoming track fanned out to many subscriber tracks.

Nothing here decodes or encodes. A :class:`TrackSource` receives :class:`EncodedFrame` values (a whole
VP8 frame or one Opus packet, exactly as the publisher encoded it) and pushes each one, without
awaiting, into the :class:`ForwardedTrack` of every subscriber. A ``ForwardedTrack`` is what the
server's RTP sender reads from (see :mod:`rtc_server.media.aiortc_adapter`), so one slow subscriber
only ever fills its own bounded queue:

- a video subscriber receives nothing until a keyframe (a decoder cannot start from a delta frame);
- when its queue is full it drops everything, asks the publisher for a keyframe and waits for it;
- when a keyframe arrives while it lags by a few frames, it skips straight to that keyframe;
- audio frames are independent: the oldest one is dropped when the queue is full.

Keyframe requests (a subscriber's PLI, a new subscriber, a skip) go to the publisher through a
:class:`KeyframeThrottle`: at most one per interval, and one trailing request when others arrived in
between, so a burst of PLIs from 30 subscribers costs the publisher one keyframe.

The module depends on aiortc only for the :class:`~aiortc.MediaStreamTrack` base class.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger(__name__)

#: RTP clock rates of the forwarded codecs (VP8 and Opus).
CLOCK_RATES = {"audio": 48000, "video": 90000}
#: Default bound of a subscriber queue, in frames (about one second of media).
DEFAULT_MAX_FRAMES = {"audio": 50, "video": 30}
#: A video subscriber lagging by more than this many frames skips ahead to the next keyframe.
SKIP_AHEAD_FRAMES = 3
#: Default minimum interval between two keyframe requests sent to one publisher, in seconds.
PLI_INTERVAL_S = 0.5


@dataclass(slots=True)
class EncodedFrame:
    """One encoded media frame as it travels through the server."""

    kind: str
    """``audio`` or ``video``."""
    data: bytes
    """The codec bitstream: a whole VP8 frame (no RTP payload descriptor) or one Opus packet."""
    timestamp: int
    """RTP timestamp in the codec's clock (90 kHz video, 48 kHz audio), unwrapped (never decreases
    across the 32-bit wrap)."""
    keyframe: bool
    """True for a VP8 keyframe; every audio frame counts as one."""
    audio_level: int | None = None
    """RFC 6464 audio level of the frame (0 = loudest, 127 = silence, i.e. ``-dBov``), if known."""
    index: int = 0
    """Position of the frame in its source (set by :meth:`TrackSource.deliver`): the VP8 picture id
    of the forwarded frame derives from it, so every subscriber gets the same RTP payloads."""
    rtp_payloads: list[bytes] | None = None
    """The frame's RTP payloads, built by the first sender that sends it and shared by the others
    (see :func:`rtc_server.media.rtp_fastpath.frame_payloads`)."""


def is_vp8_keyframe(data: bytes) -> bool:
    """Whether ``data`` (a VP8 frame, RFC 6386 section 9.1) starts a keyframe.

    The frame tag's lowest bit is 0 for a keyframe, whose tag is followed by the start code
    ``9d 01 2a``.
    """
    return len(data) >= 10 and not data[0] & 0x01 and data[3:6] == b"\x9d\x01\x2a"


@dataclass(slots=True)
class ForwardStats:
    """Counters of one subscriber track."""

    pushed: int = 0
    """Frames offered by the source."""
    forwarded: int = 0
    """Frames handed to the RTP sender."""
    gated: int = 0
    """Video frames dropped while waiting for a keyframe."""
    dropped: int = 0
    """Frames dropped because the reader lagged (queue full or skip to a keyframe)."""
    skips: int = 0
    """Times the queue was cut (video: skip to a keyframe; audio: oldest frame dropped)."""


class KeyframeThrottle:
    """Calls ``send`` at most once per ``interval`` seconds, plus one trailing call for requests that
    arrived in between. Uses a loop timer, never a task; :meth:`close` cancels it."""

    def __init__(
        self,
        send: Callable[[], None],
        interval: float = PLI_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.sent = 0
        """Requests actually sent."""
        self.requested = 0
        """Requests received."""

    def request(self) -> None:
        """Ask for a keyframe now, or as soon as the interval allows."""
        self.requested += 1
        if self._timer is not None:
            return
        now = self._clock()
        wait = 0.0 if self._last is None else self._last + self._interval - now
        if wait <= 0:
            self._fire()
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._last = self._clock()
        self.sent += 1
        try:
            self._send()
        except Exception:
            log.exception("keyframe request failed")

    def close(self) -> None:
        """Cancel a pending trailing request."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class TrackSource:
    """One publisher's incoming track, fanned out to the subscriber tracks attached to it."""

    def __init__(
        self,
        kind: str,
        owner: str,
        request_keyframe: Callable[[], None] | None = None,
        pli_interval: float = PLI_INTERVAL_S,
    ) -> None:
        self.kind = kind
        self.owner = owner
        """Key of the participant who publishes this track."""
        self._subscribers: list[ForwardedTrack] = []
        self._pli_interval = pli_interval
        self._throttle: KeyframeThrottle | None = None
        if request_keyframe is not None:
            self.set_keyframe_requester(request_keyframe)
        self.frames = 0
        """Frames received from the publisher."""
        self.closed = False

    def set_keyframe_requester(self, request_keyframe: Callable[[], None]) -> None:
        """How to ask the publisher for a keyframe (video only; throttled)."""
        if self.kind == "video":
            if self._throttle is not None:
                self._throttle.close()
            self._throttle = KeyframeThrottle(request_keyframe, self._pli_interval)

    @property
    def subscribers(self) -> tuple[ForwardedTrack, ...]:
        """The tracks currently attached."""
        return tuple(self._subscribers)

    @property
    def keyframe_requests_sent(self) -> int:
        """Keyframe requests that actually reached the publisher (after throttling)."""
        return self._throttle.sent if self._throttle else 0

    def deliver(self, frame: EncodedFrame) -> None:
        """Hand one frame to every subscriber; never blocks."""
        frame.index = self.frames
        self.frames += 1
        for track in self._subscribers:
            track.push(frame)

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (throttled; a no-op for audio)."""
        if self._throttle is not None and not self.closed:
            self._throttle.request()

    def _add(self, track: ForwardedTrack) -> None:
        if track not in self._subscribers:
            self._subscribers.append(track)

    def _remove(self, track: ForwardedTrack) -> None:
        if track in self._subscribers:
            self._subscribers.remove(track)

    def close(self) -> None:
        """Detach every subscriber and stop requesting keyframes."""
        self.closed = True
        for track in list(self._subscribers):
            track.detach()
        if self._throttle is not None:
            self._throttle.close()


class ForwardedTrack(MediaStreamTrack):
    """What the server sends to one subscriber on one RTP sender: the frames of whichever
    :class:`TrackSource` is attached, through a bounded queue.

    ``recv()`` yields :class:`EncodedFrame` values whose timestamps are rebased so that the outgoing
    stream stays continuous when the source changes (a publisher who reconnects, another participant
    taking the slot). A track lives as long as its RTP sender; :meth:`detach` leaves it idle.
    """

    def __init__(
        self,
        kind: str,
        track_id: str | None = None,
        max_frames: int | None = None,
        on_first_frame: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        if kind not in CLOCK_RATES:
            raise ValueError(f"unsupported kind {kind!r}")
        self.kind = kind
        if track_id is not None:
            self._id = track_id
        self._max = max_frames or DEFAULT_MAX_FRAMES[kind]
        self._queue: deque[EncodedFrame] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._source: TrackSource | None = None
        self._need_keyframe = kind == "video"
        self._clock_rate = CLOCK_RATES[kind]
        self._offset: int | None = None
        self._last_out: int | None = None
        self._last_out_at = 0.0
        self._on_first_frame = on_first_frame
        self._sink: Callable[[], None] | None = None
        self.stats = ForwardStats()

    @property
    def source(self) -> TrackSource | None:
        """The source currently attached, if any."""
        return self._source

    @property
    def queued(self) -> int:
        """Frames waiting for the sender."""
        return len(self._queue)

    def attach(self, source: TrackSource) -> None:
        """Start forwarding ``source`` (video: from its next keyframe, which is requested)."""
        if source.kind != self.kind:
            raise ValueError(f"cannot forward {source.kind} on a {self.kind} track")
        if source is self._source:
            return
        self.detach()
        self._source = source
        self._offset = None
        self._need_keyframe = self.kind == "video"
        source._add(self)
        source.request_keyframe()

    def detach(self) -> None:
        """Stop forwarding; the track stays live and idle."""
        if self._source is not None:
            self._source._remove(self)
            self._source = None
        self._queue.clear()

    def trim_backlog(self) -> None:
        """Drop what queued up before the sender started: video keeps its latest keyframe and what
        follows it, audio its newest frame."""
        queue = self._queue
        if self.kind == "audio":
            while len(queue) > 1:
                queue.popleft()
                self.stats.dropped += 1
            return
        last_key = max((i for i, frame in enumerate(queue) if frame.keyframe), default=0)
        for _ in range(last_key):
            queue.popleft()
            self.stats.dropped += 1

    def set_sink(self, sink: Callable[[], None] | None) -> None:
        """Have ``sink`` called, synchronously, whenever a frame is queued and when the track ends,
        instead of waking :meth:`recv`: a sender that drains the queue with :meth:`take` right away
        costs no task switch per frame. ``None`` goes back to :meth:`recv`."""
        self._sink = sink

    def request_keyframe(self) -> None:
        """The subscriber lost picture data (PLI/FIR): ask the publisher for a keyframe."""
        if self._source is not None:
            self._source.request_keyframe()

    def push(self, frame: EncodedFrame) -> None:
        """Queue one frame from the source; drops as described in the module docstring."""
        stats = self.stats
        stats.pushed += 1
        queue = self._queue
        if self._need_keyframe:
            if not frame.keyframe:
                stats.gated += 1
                return
            self._need_keyframe = False
        elif frame.keyframe and self.kind == "video" and len(queue) > SKIP_AHEAD_FRAMES:
            stats.dropped += len(queue)
            stats.skips += 1
            queue.clear()
        if len(queue) >= self._max:
            stats.skips += 1
            if self.kind == "video":
                stats.dropped += len(queue) + 1
                queue.clear()
                self._need_keyframe = True
                self.request_keyframe()
                return
            stats.dropped += 1
            queue.popleft()
        queue.append(frame)
        if self._sink is not None:
            self._sink()
            return
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        """The next frame to send, with its outgoing timestamp."""
        queue = self._queue
        while not queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        frame, out = self._pop()
        return EncodedFrame(frame.kind, frame.data, out, frame.keyframe, frame.audio_level, frame.index)

    def take(self) -> tuple[EncodedFrame, int] | None:
        """The next queued frame (as the source delivered it) and its outgoing timestamp, or ``None``
        when the queue is empty; what :meth:`recv` returns, without waiting nor copying the frame."""
        if not self._queue:
            return None
        return self._pop()

    def _pop(self) -> tuple[EncodedFrame, int]:
        frame = self._queue.popleft()
        now = time.monotonic()
        if self._offset is None:
            if self._last_out is None:
                out = 0
            else:
                gap = max(1, int((now - self._last_out_at) * self._clock_rate))
                out = self._last_out + gap
            self._offset = out - frame.timestamp
        out = frame.timestamp + self._offset
        self._last_out = out
        self._last_out_at = now
        self.stats.forwarded += 1
        if self._on_first_frame is not None:
            callback, self._on_first_frame = self._on_first_frame, None
            try:
                callback()
            except Exception:
                log.exception("first-frame callback failed")
        return frame, out

    def stop(self) -> None:
        """End the track for good: ``recv()`` raises :class:`MediaStreamError`."""
        self.detach()
        super().stop()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if self._sink is not None:
            self._sink()
