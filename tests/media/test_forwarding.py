"""The forwarding core without any network: keyframe gating, the bounded per-subscriber queue that
skips to the next keyframe, timestamp rebasing, and the keyframe-request throttle."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import MediaStreamError

from rtc_server.media.forwarding import (
    EncodedFrame,
    ForwardedTrack,
    KeyframeThrottle,
    TrackSource,
    is_vp8_keyframe,
)

KEY = b"\x10\x02\x00\x9d\x01\x2a\x40\x01\xf0\x00" + b"k" * 20  # keyframe tag + start code + 320x240
DELTA = b"\x31\x02\x00" + b"d" * 20


def video(ts: int, key: bool = False) -> EncodedFrame:
    return EncodedFrame("video", KEY if key else DELTA, ts, key)


def audio(ts: int) -> EncodedFrame:
    return EncodedFrame("audio", b"opus", ts, True, 30)


def test_vp8_keyframe_detection() -> None:
    """The VP8 frame tag's P bit and the start code tell keyframes from delta frames."""
    assert is_vp8_keyframe(KEY)
    assert not is_vp8_keyframe(DELTA)
    assert not is_vp8_keyframe(b"\x10\x02")


async def test_new_video_subscriber_waits_for_a_keyframe() -> None:
    """Delta frames before the first keyframe are dropped; the keyframe is requested on attach."""
    requests: list[int] = []
    source = TrackSource("video", "agent:1", lambda: requests.append(1))
    track = ForwardedTrack("video")
    track.attach(source)
    assert requests == [1]
    for ts in (0, 3000):
        source.deliver(video(ts))
    assert track.queued == 0 and track.stats.gated == 2
    source.deliver(video(6000, key=True))
    source.deliver(video(9000))
    first = await track.recv()
    second = await track.recv()
    assert first.keyframe and not second.keyframe
    assert (first.timestamp, second.timestamp) == (0, 3000)


async def test_full_video_queue_skips_to_the_next_keyframe() -> None:
    """A reader that stops: the queue never exceeds its bound, is emptied when full, and resumes at a
    keyframe (requested from the publisher)."""
    requests: list[int] = []
    source = TrackSource("video", "agent:1", lambda: requests.append(1), pli_interval=0.0)
    track = ForwardedTrack("video", max_frames=5)
    track.attach(source)
    source.deliver(video(0, key=True))
    for i in range(1, 20):
        source.deliver(video(i * 3000))
        assert track.queued <= 5
    assert track.stats.dropped > 0 and track.stats.skips >= 1
    assert len(requests) >= 2  # attach + overflow
    source.deliver(video(60000, key=True))
    source.deliver(video(63000))
    frame = await track.recv()
    assert frame.keyframe


async def test_lagging_video_reader_jumps_to_a_fresh_keyframe() -> None:
    """A few frames of backlog are discarded when a keyframe arrives: the reader catches up."""
    source = TrackSource("video", "agent:1")
    track = ForwardedTrack("video", max_frames=30)
    track.attach(source)
    source.deliver(video(0, key=True))
    for i in range(1, 6):
        source.deliver(video(i * 3000))
    source.deliver(video(18000, key=True))
    assert track.queued == 1
    assert (await track.recv()).keyframe


async def test_full_audio_queue_drops_the_oldest_frame() -> None:
    """Audio frames are independent: overflow drops the oldest, keeps the newest."""
    source = TrackSource("audio", "customer:1")
    track = ForwardedTrack("audio", max_frames=3)
    track.attach(source)
    for i in range(5):
        source.deliver(audio(i * 960))
    assert track.queued == 3 and track.stats.dropped == 2
    frame = await track.recv()
    assert frame.audio_level == 30
    assert frame.timestamp == 0  # rebased: the first frame out starts at 0


async def test_timestamps_continue_across_a_source_change() -> None:
    """Switching the source keeps outgoing timestamps increasing (rebased on wall-clock time)."""
    first, second = TrackSource("audio", "a"), TrackSource("audio", "b")
    track = ForwardedTrack("audio")
    track.attach(first)
    first.deliver(audio(1_000_000))
    out1 = await track.recv()
    track.attach(second)
    assert first.subscribers == () and second.subscribers == (track,)
    second.deliver(audio(5))
    second.deliver(audio(965))
    out2, out3 = await track.recv(), await track.recv()
    assert out2.timestamp > out1.timestamp
    assert out3.timestamp - out2.timestamp == 960


async def test_slow_subscriber_does_not_affect_others() -> None:
    """Fan-out never blocks: a subscriber nobody reads keeps a bounded queue, the other gets all."""
    source = TrackSource("video", "agent:1")
    stalled, healthy = ForwardedTrack("video", max_frames=4), ForwardedTrack("video", max_frames=4)
    stalled.attach(source)
    healthy.attach(source)
    received = 0
    for i in range(100):
        source.deliver(video(i * 3000, key=i % 10 == 0))
        while healthy.queued:
            await healthy.recv()
            received += 1
    assert received == 100
    assert stalled.queued <= 4


async def test_recv_waits_and_stop_ends_the_track() -> None:
    """``recv`` waits for the next frame; ``stop`` wakes it with MediaStreamError."""
    source = TrackSource("audio", "a")
    track = ForwardedTrack("audio")
    track.attach(source)
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    source.deliver(audio(0))
    assert (await waiting).data == b"opus"
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiting
    assert source.subscribers == ()


async def test_source_close_detaches_subscribers() -> None:
    """Closing a source leaves its subscribers idle (attached to nothing)."""
    source = TrackSource("video", "a")
    track = ForwardedTrack("video")
    track.attach(source)
    source.close()
    assert track.source is None and source.closed


def test_kind_mismatch_is_refused() -> None:
    """An audio source cannot feed a video track."""
    with pytest.raises(ValueError):
        ForwardedTrack("video").attach(TrackSource("audio", "a"))


async def test_keyframe_throttle_sends_one_request_per_interval_plus_a_trailing_one() -> None:
    """A burst of PLIs costs the publisher one immediate and one trailing keyframe request."""
    sent: list[float] = []
    loop = asyncio.get_running_loop()
    throttle = KeyframeThrottle(lambda: sent.append(loop.time()), interval=0.2)
    for _ in range(30):
        throttle.request()
    assert len(sent) == 1
    await asyncio.sleep(0.3)
    assert len(sent) == 2
    assert sent[1] - sent[0] >= 0.19
    assert throttle.requested == 30 and throttle.sent == 2
    throttle.close()


async def test_keyframe_throttle_close_cancels_the_trailing_request() -> None:
    """Closing the throttle (source gone) cancels its pending timer."""
    sent: list[int] = []
    throttle = KeyframeThrottle(lambda: sent.append(1), interval=0.1)
    throttle.request()
    throttle.request()
    throttle.close()
    await asyncio.sleep(0.15)
    assert sent == [1]


def test_audio_sources_ignore_keyframe_requests() -> None:
    """Audio has no keyframes: requests are not forwarded to the publisher."""
    requests: list[int] = []
    source = TrackSource("audio", "a", lambda: requests.append(1))
    source.request_keyframe()
    assert requests == []


def test_backlog_trim_keeps_the_latest_keyframe_or_newest_audio() -> None:
    """When a sender starts late, video restarts at its newest queued keyframe, audio at its newest frame."""
    source = TrackSource("video", "a")
    track = ForwardedTrack("video", max_frames=30)
    track.attach(source)
    for ts, key in ((0, True), (1, False), (2, True), (3, False)):
        track.push(video(ts, key))
    track.trim_backlog()
    assert [f.timestamp for f in track._queue] == [2, 3]
    voice = ForwardedTrack("audio")
    voice.attach(TrackSource("audio", "a"))
    for ts in range(5):
        voice.push(audio(ts))
    voice.trim_backlog()
    assert [f.timestamp for f in voice._queue] == [4]
