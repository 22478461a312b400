"""Recording a session's forwarded media into a WebM file with PyAV, without decoding or re-encoding.

A :class:`Recorder` belongs to one session whose request asked for ``record: true``. It taps the
forwarding layer like one more subscriber: a :class:`RecordingTap` (a
:class:`~rtc_server.media.forwarding.ForwardedTrack` whose ``push`` hands each frame to the recorder
instead of queueing it for an RTP sender) is attached to every publisher's
:class:`~rtc_server.media.forwarding.TrackSource` the session forwards. Attaching asks the publisher for a
keyframe, so a video track starts at once.

Nothing blocks the event loop: ``push`` only puts the frame (a reference to its bytes, the arrival time)
into a bounded :class:`queue.Queue` drained by the recorder's own writer thread, which does every PyAV
call. When the queue is full the frame is dropped, and a video track then drops everything up to its
next keyframe (which it requests): forwarding never waits for the disk.

Files: while the session runs, each recorded track (one publisher, one kind) is written to its own
single-stream part (``<dir>/<request_id>.parts/<n>.webm``) created at its first frame (video: at its
first keyframe, whose header gives the picture size). A publisher who reconnects (a new source of the
same kind) continues the same part. Every part shares one time origin, the recorder's start: a frame's
time is its source's arrival offset plus its RTP timestamp's progress, so the streams stay aligned.
When the session ends, the parts are merged (packets copied in time order, no re-encoding) into
``<dir>/<request_id>.webm``, one stream per track, and the parts are deleted. A session without any
media leaves no file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import heapq
import logging
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from av.packet import Packet

from rtc_server.media.forwarding import CLOCK_RATES, EncodedFrame, ForwardedTrack, TrackSource

log = logging.getLogger(__name__)

#: Request kinds that may be recorded (co-browsing has no media).
RECORDABLE_KINDS = frozenset({"call", "video", "desktop", "show_screen", "conference"})
#: Frames the writer thread may lag behind before the recorder drops (about 4 s of audio + video).
QUEUE_FRAMES = 400
#: Where a recording of ``request_id`` is kept, under the recordings directory.
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def recording_path(directory: str | Path, request_id: str) -> Path:
    """The finished recording of ``request_id`` (``ValueError`` for an id that is not a plain token)."""
    if not SAFE_ID.match(request_id):
        raise ValueError(f"bad request id {request_id!r}")
    return Path(directory) / f"{request_id}.webm"


def vp8_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe's header (RFC 6386 section 9.1), or None."""
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


@dataclass(frozen=True, slots=True)
class RecordingResult:
    """A finished recording."""

    path: Path
    size: int
    """Bytes."""
    tracks: tuple[tuple[str, str], ...]
    """``(publisher key, kind)`` of every stream, in stream order."""
    duration_s: float
    dropped: int
    """Frames dropped because the writer lagged."""


class RecordingTap(ForwardedTrack):
    """A subscriber of one :class:`TrackSource` that hands every frame to a recorder (never queued here,
    never sent)."""

    def __init__(self, kind: str, on_frame: Callable[[EncodedFrame], None]) -> None:
        super().__init__(kind, track_id=None)
        self._on_frame = on_frame

    def push(self, frame: EncodedFrame) -> None:
        self.stats.pushed += 1
        self._on_frame(frame)


@dataclass(slots=True)
class _Item:
    track: str
    source: int
    frame: EncodedFrame
    arrival: float


@dataclass(slots=True)
class _Part:
    """One track's part file, in the writer thread."""

    path: Path
    kind: str
    owner: str
    container: Any = None
    stream: Any = None
    last_pts: int = -1
    first_pts: int | None = None
    source: int | None = None
    base: tuple[int, int] = (0, 0)
    """(first RTP timestamp of the current source, its pts)."""
    need_key: bool = True
    packets: int = 0


@dataclass(eq=False)
class _Track:
    """One recorded track on the loop side."""

    owner: str
    kind: str
    key: str
    taps: dict[TrackSource, RecordingTap] = field(default_factory=dict)
    skipping: bool = False
    """Video: dropping up to the next keyframe after the queue overflowed."""


class Recorder:
    """Records the tracks of one session (see the module docstring)."""

    def __init__(self, directory: str | Path, request_id: str, max_frames: int = QUEUE_FRAMES) -> None:
        self.path = recording_path(directory, request_id)
        self.parts_dir = self.path.with_suffix(".parts")
        self.request_id = request_id
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_frames)
        self._tracks: dict[str, _Track] = {}
        self._source_ids: dict[TrackSource, int] = {}
        self._start = time.monotonic()
        self._done: asyncio.Future[RecordingResult | None] | None = None
        self._thread: threading.Thread | None = None
        self.dropped = 0
        """Frames dropped on the loop side (queue full, or waiting for a keyframe after that)."""
        self.frames = 0
        """Frames handed to the writer."""
        self.closed = False

    # -- the loop side ------------------------------------------------------------------------------------

    def sync(self, sources: list[tuple[str, TrackSource]]) -> None:
        """Record exactly these ``(publisher key, source)`` pairs from now on: new sources get a tap, the
        taps of sources no longer listed are detached."""
        if self.closed:
            return
        wanted = {src for _, src in sources if not src.closed}
        for track in self._tracks.values():
            for src in [s for s in track.taps if s not in wanted]:
                track.taps.pop(src).stop()
        for owner, src in sources:
            if src.closed:
                continue
            key = f"{owner}/{src.kind}"
            if key not in self._tracks:
                self._tracks[key] = _Track(owner, src.kind, key)
            track = self._tracks[key]
            if src in track.taps:
                continue
            source_id = self._source_ids.setdefault(src, len(self._source_ids) + 1)
            tap = RecordingTap(src.kind, self._receiver(track, source_id))
            track.taps[src] = tap
            tap.attach(src)

    def _receiver(self, track: _Track, source_id: int) -> Callable[[EncodedFrame], None]:
        def receive(frame: EncodedFrame) -> None:
            if self.closed:
                return
            if track.skipping:
                if not frame.keyframe:
                    self.dropped += 1
                    return
                track.skipping = False
            if self._thread is None:
                self._start_thread()
            try:
                self._queue.put_nowait(_Item(track.key, source_id, frame, time.monotonic()))
                self.frames += 1
            except queue.Full:
                self.dropped += 1
                if track.kind == "video":
                    track.skipping = True
                    for src in track.taps:
                        src.request_keyframe()

        return receive

    def _start_thread(self) -> None:
        self._done = asyncio.get_running_loop().create_future()
        self._thread = threading.Thread(
            target=self._run,
            args=(asyncio.get_running_loop(), self._done),
            name=f"recorder-{self.request_id}",
            daemon=True,
        )
        self._thread.start()

    async def finish(self) -> RecordingResult | None:
        """Stop recording, close and merge the file (in the writer thread); the result, or None when
        nothing was recorded (idempotent)."""
        if not self.closed:
            self.closed = True
            for track in self._tracks.values():
                for tap in track.taps.values():
                    tap.stop()
                track.taps.clear()
            if self._thread is not None:  # waits (off the loop) only while the writer drains a full queue
                await asyncio.to_thread(self._queue.put, None)
        if self._done is None:
            return None
        return await asyncio.shield(self._done)

    # -- the writer thread ----------------------------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[RecordingResult | None]) -> None:
        parts: dict[str, _Part] = {}
        result: RecordingResult | None = None
        error: BaseException | None = None
        try:
            self.parts_dir.mkdir(parents=True, exist_ok=True)
            while True:
                item = self._queue.get()
                if item is None:
                    break
                try:
                    self._write(parts, item)
                except Exception:
                    log.exception("recording %s: a frame could not be written", self.request_id)
            for part in parts.values():
                if part.container is not None:
                    part.container.close()
            result = self._merge([p for p in parts.values() if p.packets])
        except BaseException as exc:  # reported to the loop
            error = exc
            log.exception("recording %s failed", self.request_id)
        finally:
            for part in parts.values():
                if part.container is not None:
                    with contextlib.suppress(Exception):
                        part.container.close()
            shutil.rmtree(self.parts_dir, ignore_errors=True)

        def resolve() -> None:
            if done.done():
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)

        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            loop.call_soon_threadsafe(resolve)

    def _write(self, parts: dict[str, _Part], item: _Item) -> None:
        frame = item.frame
        kind = frame.kind
        part = parts.get(item.track)
        if part is None:
            owner = item.track.rsplit("/", 1)[0]
            part = parts[item.track] = _Part(self.parts_dir / f"{len(parts) + 1}.webm", kind, owner)
        if item.source != part.source:  # a first or a new source (the publisher reconnected)
            part.source = item.source
            part.need_key = kind == "video"
            offset = int((item.arrival - self._start) * CLOCK_RATES[kind])
            part.base = (frame.timestamp, max(offset, part.last_pts + 1))
        if part.need_key:
            if not frame.keyframe:
                return
            part.need_key = False
        if part.container is None:
            if not self._open_part(part, frame):
                return
        pts = part.base[1] + frame.timestamp - part.base[0]
        if pts <= part.last_pts:
            pts = part.last_pts + 1
        part.last_pts = pts
        if part.first_pts is None:
            part.first_pts = pts
        packet = Packet(frame.data)
        packet.stream = part.stream
        packet.time_base = fractions.Fraction(1, CLOCK_RATES[kind])
        packet.pts = packet.dts = pts
        if kind == "video":
            packet.is_keyframe = frame.keyframe
        part.container.mux(packet)
        part.packets += 1

    def _open_part(self, part: _Part, frame: EncodedFrame) -> bool:
        container = av.open(str(part.path), "w", format="webm")
        stream: Any
        if part.kind == "video":
            size = vp8_size(frame.data)
            if size is None:
                container.close()
                return False
            stream = container.add_stream("libvpx", rate=30)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
        else:
            stream = container.add_stream("libopus", rate=48000)
            stream.layout = "stereo"
        stream.time_base = fractions.Fraction(1, CLOCK_RATES[part.kind])
        part.container, part.stream = container, stream
        return True

    def _merge(self, parts: list[_Part]) -> RecordingResult | None:
        """Copy the parts' packets, in time order, into the one recording file."""
        if not parts:
            return None
        tmp = self.path.with_suffix(".tmp.webm")
        inputs = [av.open(str(p.path)) for p in parts]
        try:
            out = av.open(str(tmp), "w", format="webm")
            try:
                outs = [out.add_stream_from_template(c.streams[0]) for c in inputs]
                for packet, index in heapq.merge(*(_timed(c, i) for i, c in enumerate(inputs)), key=_at):
                    packet.stream = outs[index]
                    out.mux(packet)
            finally:
                out.close()
        finally:
            for c in inputs:
                c.close()
        tmp.replace(self.path)
        end = max(
            (p.last_pts - (p.first_pts or 0)) / CLOCK_RATES[p.kind] + (p.first_pts or 0) / CLOCK_RATES[p.kind]
            for p in parts
        )
        return RecordingResult(
            path=self.path,
            size=self.path.stat().st_size,
            tracks=tuple((p.owner, p.kind) for p in parts),
            duration_s=round(end, 3),
            dropped=self.dropped,
        )


def _timed(container: Any, index: int) -> Iterator[tuple[Any, int]]:
    for packet in container.demux(container.streams[0]):
        if packet.size == 0:  # the demuxer's flush packet
            continue
        yield packet, index


def _at(pair: tuple[Any, int]) -> tuple[float, int]:
    """A packet's time in seconds (and its input's index): the merge order."""
    packet, index = pair
    ts = packet.dts if packet.dts is not None else (packet.pts or 0)
    return (float(ts * packet.time_base), index)


def sweep_recordings(directory: str | Path, keep_days: float, now: float | None = None) -> int:
    """Delete the finished recordings (``<request_id>.webm``) last written more than ``keep_days`` ago;
    returns how many. Recordings still being written (their ``.parts`` folders) are never touched, nor is
    anything else in the folder. ``keep_days <= 0`` keeps everything."""
    folder = Path(directory)
    if keep_days <= 0 or not folder.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - keep_days * 86400
    removed = 0
    for path in folder.glob("*.webm"):
        if not SAFE_ID.match(path.stem):
            continue
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
