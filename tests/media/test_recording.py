"""Recording with consent: the media plane writes the forwarded VP8/Opus of every publisher into one WebM
file with PyAV (no re-encoding), and the hub offers it to the conversation's agents only.

Gateway level (aiortc clients on loopback): a recorded ``video`` session leaves a file PyAV opens, with
each side's VP8 video decodable at that side's size and each side's Opus audio; a ``recording`` event
follows ``closed``; an unrecorded session writes nothing.

End to end (a real server on port 0, Socket.IO clients, aiortc peers signalling through the hub): an
agent asks for ``record: true`` (refused when the server does not allow recordings, and for co-browsing);
the request carries ``record: true`` on both sides; after the end an agents-only note says the
recording is available, the agent downloads it over REST, and the customer can neither download it nor
see the note.
"""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest

from rtc_server.media.forwarding import EncodedFrame, TrackSource
from rtc_server.media.gateway import AiortcMediaGateway
from rtc_server.media.recording import Recorder, recording_path, vp8_size
from signaling.services.ports import SessionSpec
from tests.conftest import Client, Hub, hub_on
from tests.media.conftest import LOOPBACK, EventLog, HubPeer, Rig, SyntheticAudio, SyntheticVideo, wait_for


def streams_of(path: Path) -> list[tuple[str, int, int, int]]:
    """``(type, width, height, packets)`` of every stream of the file; video is decoded to count."""
    out: list[tuple[str, int, int, int]] = []
    with av.open(str(path)) as container:
        for stream in container.streams:
            if stream.type == "video":
                assert stream.codec_context.name == "vp8"
            else:
                assert stream.codec_context.name == "opus"
        kinds = [(s.type, s.index) for s in container.streams]
    for kind, index in kinds:
        with av.open(str(path)) as container:
            stream = container.streams[index]
            if kind == "video":
                frames = [f for f in container.decode(stream) if isinstance(f, av.VideoFrame)]
                sizes = {(f.width, f.height) for f in frames}
                assert len(sizes) == 1, sizes
                w, h = sizes.pop()
                out.append(("video", w, h, len(frames)))
            else:
                packets = [p for p in container.demux(stream) if p.size]
                out.append(("audio", 0, 0, len(packets)))
    return out


@pytest.fixture
async def recording_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    gateway = AiortcMediaGateway(host_addresses=LOOPBACK, recordings_dir=str(tmp_path / "recordings"))
    log = EventLog()
    gateway.set_event_sink(log)
    rig = Rig(gateway, log)
    try:
        yield rig
    finally:
        await rig.close()


async def pair(rig: Rig, request_id: str, record: bool) -> None:
    await rig.gateway.open_session(SessionSpec(request_id, "video", record=record))
    agent, customer = rig.client(request_id, "agent", "a1"), rig.client(request_id, "customer", "c1")
    for client, size in ((agent, (320, 240)), (customer, (256, 192))):
        client.send(SyntheticAudio())
        client.send(SyntheticVideo(*size))
    await agent.connect()
    await customer.connect()
    await wait_for(lambda: all(r.frames >= 30 for c in (agent, customer) for r in c.video_readers()), 15)


def test_vp8_size_reads_a_keyframe_header() -> None:
    """The picture size of a VP8 keyframe comes from its header; a delta frame has none."""
    key = (
        bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A])
        + (640).to_bytes(2, "little")
        + (480).to_bytes(2, "little")
    )
    assert vp8_size(key) == (640, 480)
    assert vp8_size(bytes([0x11]) + key[1:]) is None


async def test_a_recorded_video_session_leaves_a_webm_with_both_sides(
    recording_rig: Rig, tmp_path: Path
) -> None:
    """After the end, one WebM with two VP8 streams decodable at each publisher's size and two Opus
    streams with packets; ``recording`` follows ``closed``; the parts are gone."""
    await pair(recording_rig, "rq_rec1", record=True)
    await recording_rig.gateway.close_session("rq_rec1", "ended")
    await wait_for(lambda: bool(recording_rig.log.of("recording")), 15)
    event = recording_rig.log.of("recording")[0]
    types = [e.type for e in recording_rig.log.events]
    assert types.index("closed") < types.index("recording")
    path = recording_path(tmp_path / "recordings", "rq_rec1")
    assert event.data["file"] == path.name and event.data["size"] == path.stat().st_size
    assert sorted((t["publisher"], t["kind"]) for t in event.data["tracks"]) == [
        ("agent:a1", "audio"),
        ("agent:a1", "video"),
        ("customer:c1", "audio"),
        ("customer:c1", "video"),
    ]
    streams = await asyncio.to_thread(streams_of, path)
    videos = sorted((w, h) for kind, w, h, n in streams if kind == "video" and n > 10)
    assert videos == [(256, 192), (320, 240)]
    assert len([n for kind, _, _, n in streams if kind == "audio" and n > 10]) == 2
    assert not any(p.name.endswith(".parts") for p in (tmp_path / "recordings").iterdir())


async def test_a_publisher_who_reconnects_continues_their_streams(recording_rig: Rig, tmp_path: Path) -> None:
    """In a recorded call the customer's peer drops and they offer again within the grace: the file
    still has one stream per track (four), and the customer's video decodes across both connections."""
    await pair(recording_rig, "rq_rejoin", record=True)
    first = next(c for c in recording_rig.clients if c.participant.kind == "customer")
    await first.close()
    await wait_for(lambda: bool(recording_rig.log.of("reconnecting")), 10)
    again = recording_rig.client("rq_rejoin", "customer", "c1")
    again.send(SyntheticAudio())
    again.send(SyntheticVideo(256, 192))
    await again.connect()
    agent = next(c for c in recording_rig.clients if c.participant.kind == "agent")
    before = sum(r.frames for r in agent.video_readers())
    await wait_for(lambda: sum(r.frames for r in agent.video_readers()) > before + 30, 15)
    await recording_rig.gateway.close_session("rq_rejoin", "ended")
    await wait_for(lambda: bool(recording_rig.log.of("recording")), 15)
    assert len(recording_rig.log.of("recording")[0].data["tracks"]) == 4
    streams = await asyncio.to_thread(streams_of, recording_path(tmp_path / "recordings", "rq_rejoin"))
    assert len(streams) == 4
    customer_video = [n for kind, w, h, n in streams if kind == "video" and (w, h) == (256, 192)]
    assert customer_video and customer_video[0] > 60


async def test_an_unrecorded_session_writes_nothing(recording_rig: Rig, tmp_path: Path) -> None:
    """Without ``record`` the session writes no file and reports no ``recording``."""
    await pair(recording_rig, "rq_plain", record=False)
    await recording_rig.gateway.close_session("rq_plain", "ended")
    await asyncio.sleep(0.3)
    assert not recording_rig.log.of("recording")
    assert not (tmp_path / "recordings").exists() or not any((tmp_path / "recordings").iterdir())


def vp8_frames(count: int, gop: int) -> list[tuple[bytes, bool]]:
    """``count`` encoded 160x120 VP8 frames, a keyframe every ``gop``."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 160, 120, "yuv420p"  # type: ignore[attr-defined]
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.gop_size = gop  # type: ignore[attr-defined]
    out: list[tuple[bytes, bool]] = []
    for i in range(count):
        frame = av.VideoFrame(160, 120, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 7) % 256]) * plane.buffer_size)
        frame.pts = i
        out.extend((bytes(p), p.is_keyframe) for p in encoder.encode(frame))  # type: ignore[attr-defined]
    return out


async def test_a_writer_that_falls_behind_drops_to_the_next_keyframe(tmp_path: Path) -> None:
    """Frames pushed much faster than the writer thread writes, into a queue of 4: frames are dropped
    (the forwarding side never waits), the publisher is asked for a keyframe, and every frame in the
    file decodes (after a drop the video resumes at a keyframe)."""
    frames = await asyncio.to_thread(vp8_frames, 400, 10)
    source = TrackSource("video", "customer:c1", pli_interval=0.01)
    asked: list[int] = []
    source.set_keyframe_requester(lambda: asked.append(1))
    recorder = Recorder(tmp_path, "rq_slow", max_frames=4)
    recorder.sync([("customer:c1", source)])
    for i, (data, key) in enumerate(frames):
        source.deliver(EncodedFrame("video", data, i * 3000, key))
        if i % 50 == 49:
            await asyncio.sleep(0.02)  # the writer drains some; the loop never waits for it
    await asyncio.sleep(0.05)  # the throttled trailing keyframe request
    result = await recorder.finish()
    assert result is not None and recorder.dropped > 0 and len(asked) >= 2  # attach + a drop

    def decode() -> tuple[int, int]:
        with av.open(str(result.path)) as container:
            packets = [p for p in container.demux(video=0) if p.size]
            decoder = av.CodecContext.create("vp8", "r")
            decoded = sum(len(decoder.decode(p)) for p in packets)
            return len(packets), decoded

    packets, decoded = await asyncio.to_thread(decode)
    assert 0 < packets < len(frames) and decoded == packets


# -- end to end ----------------------------------------------------------------------------------------


@pytest.fixture
async def recording_hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """A server that allows recordings."""
    async with hub_on(tmp_path, recordings=True) as h:
        yield h


async def chat(hub: Hub) -> tuple[Client, Client, dict[str, Any]]:
    agent = await hub.agent("alice@example.com")
    customer = await hub.customer(name="Ann")
    conv = (await customer.ok("conversation.start", {"body": "help"}))["conversation"]
    await agent.ok("conversation.assign", {"conversation_id": conv["id"]})
    return agent, customer, conv


async def test_record_is_refused_when_recordings_are_off(hub: Hub) -> None:
    """The default server does not record: ``record: true`` is ``invalid`` with
    ``details.reason = "recordings_disabled"`` and no request is created."""
    agent, _, conv = await chat(hub)
    res = await agent.call("request.create", {"conversation_id": conv["id"], "kind": "video", "record": True})
    assert res["ok"] is False and res["error"]["code"] == "invalid"
    assert res["error"]["details"]["reason"] == "recordings_disabled"
    ok = await agent.ok("request.create", {"conversation_id": conv["id"], "kind": "video"})
    assert ok["request"]["record"] is False


async def test_recorded_video_call_end_to_end(recording_hub: Hub) -> None:
    """``record: true``: refused for co-browsing; the request says ``record: true`` to both sides; after
    the call an agents-only note announces the recording, the agent downloads a WebM with both sides'
    video, the customer gets 404 and never sees the note."""
    agent, customer, conv = await chat(recording_hub)
    res = await agent.call(
        "request.create", {"conversation_id": conv["id"], "kind": "cobrowse", "record": True}
    )
    assert res["ok"] is False and res["error"]["details"]["reason"] == "not_recordable"
    created = await agent.ok(
        "request.create", {"conversation_id": conv["id"], "kind": "video", "record": True}
    )
    rid = created["request"]["id"]
    prompt = await customer.events.wait("request.updated", lambda d: d["request"]["id"] == rid)
    assert prompt["request"]["record"] is True
    await customer.ok("request.respond", {"request_id": rid, "accept": True})
    peers: list[HubPeer] = []
    for client, size in ((agent, (320, 240)), (customer, (256, 192))):
        peer = HubPeer(client, rid)
        peer.send(SyntheticAudio())
        peer.send(SyntheticVideo(*size))
        await peer.connect()
        peers.append(peer)
    try:
        await wait_for(lambda: all(p.video_frames() >= 30 for p in peers), 20)
        await agent.ok("request.end", {"request_id": rid})
        note = await agent.events.wait(
            "message.new", lambda d: d["message"].get("code") == "recording.available", 20
        )
        message = note["message"]
        assert message["kind"] == "note" and message["params"]["request_id"] == rid
        url = f"{recording_hub.server.url}/api/requests/{rid}/recording"
        token = (await recording_hub.login("alice@example.com"))["token"]
        async with recording_hub.http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["Content-Type"].startswith("video/webm")
            body = await resp.read()
        downloaded = Path(str(recording_hub.server.config.data_dir)) / "downloaded.webm"
        downloaded.write_bytes(body)
        streams = await asyncio.to_thread(streams_of, downloaded)
        assert sorted((w, h) for kind, w, h, n in streams if kind == "video" and n > 10) == [
            (256, 192),
            (320, 240),
        ]
        assert [kind for kind, *_ in streams].count("audio") == 2
        customer_token = customer.token  # type: ignore[attr-defined]
        async with recording_hub.http.get(url, headers={"Authorization": f"Bearer {customer_token}"}) as resp:
            assert resp.status in (403, 404)
        async with recording_hub.http.get(url) as resp:
            assert resp.status == 401
        await asyncio.sleep(0.2)
        assert not [
            d for d in customer.events.of("message.new") if d["message"].get("code") == "recording.available"
        ]
        sync = await customer.ok("conversation.sync", {"conversation_id": conv["id"], "after_seq": 0})
        assert not [
            m for m in sync["messages"] if m.get("code") == "recording.available" or m["kind"] == "note"
        ]
    finally:
        for peer in peers:
            await peer.close()
