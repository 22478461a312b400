"""``AiortcMediaGateway`` end to end with aiortc clients on loopback: 1:1 kinds, conference, late
subscribers, slow subscribers, PLI forwarding, renegotiation, glare, errors, session ends and teardown."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from rtc_server.media.gateway import AiortcMediaGateway
from signaling.domain.errors import Conflict, Invalid, NotFound
from signaling.services.ports import Participant, SessionSpec
from tests.media.conftest import Client, Rig, SyntheticAudio, SyntheticVideo, thread_count, wait_for


def kinds(rig: Rig) -> list[tuple[str, str | None, str | None]]:
    return [(e.type, e.participant.key if e.participant else None, e.reason) for e in rig.log.events]


async def start_pair(rig: Rig, kind: str, agent_setup: str, customer_setup: str) -> tuple[Client, Client]:
    """Agent and customer clients; setup strings: ``av`` send audio+video, ``a`` send audio,
    ``screen`` publish video sendonly, ``rv`` receive video only."""
    await rig.gateway.open_session(SessionSpec("r1", kind))
    agent, customer = rig.client("r1", "agent", "a1"), rig.client("r1", "customer", "c1")
    for client, setup, size in ((agent, agent_setup, (320, 240)), (customer, customer_setup, (256, 192))):
        if "a" in setup and setup != "screen":
            client.send(SyntheticAudio())
        if setup == "av":
            client.send(SyntheticVideo(*size))
        elif setup == "screen":
            client.publish(SyntheticVideo(*size))
        elif setup == "rv":
            client.receive("video")
    await agent.connect()
    await customer.connect()
    await agent.wait_connected()
    await customer.wait_connected()
    return agent, customer


async def test_video_call_forwards_both_ways_at_the_publishers_resolution(rig: Rig) -> None:
    """``video``: each side decodes the other's video at the other's resolution, and audio; events
    ``connected`` (both) then ``active``; no renegotiation needed for client-offered transceivers."""
    agent, customer = await start_pair(rig, "video", "av", "av")
    await wait_for(lambda: all(r.frames >= 10 for c in (agent, customer) for r in c.readers), 10)
    assert agent.video_readers()[0].sizes == {(256, 192)}
    assert customer.video_readers()[0].sizes == {(320, 240)}
    assert all(r.frames > 0 for r in agent.audio_readers() + customer.audio_readers())
    events = kinds(rig)
    assert ("connected", "agent:a1", None) in events and ("connected", "customer:c1", None) in events
    assert rig.log.of("active") and not rig.log.of("offer")


async def test_call_forwards_audio_only(rig: Rig) -> None:
    """``call``: audio flows both ways; a video track offered anyway is not forwarded."""
    agent, customer = await start_pair(rig, "call", "av", "a")
    await wait_for(lambda: all(r.frames >= 10 for c in (agent, customer) for r in c.audio_readers()), 10)
    await asyncio.sleep(0.3)
    assert all(r.frames == 0 for r in customer.video_readers())
    session = rig.gateway.sessions["r1"]
    assert all(
        not i.source.subscribers
        for p in session.peers.values()
        for i in p.incoming
        if i.source.kind == "video"
    )


async def test_desktop_forwards_the_customers_screen_to_the_agent(rig: Rig) -> None:
    """``desktop``: the customer's sendonly screen reaches the agent's recvonly transceiver."""
    agent, customer = await start_pair(rig, "desktop", "rv", "screen")
    await wait_for(lambda: agent.video_readers() and agent.video_readers()[0].frames >= 10, 10)
    assert agent.video_readers()[0].sizes == {(256, 192)}
    assert customer.readers == [] or all(r.frames == 0 for r in customer.readers)


async def test_show_screen_renegotiates_when_the_customer_offered_nothing_to_receive(rig: Rig) -> None:
    """``show_screen``: the customer offered no media at all (only audio it does not send): the server
    adds a sendonly video transceiver, sends an ``offer`` event, and after the answer the customer
    decodes the agent's screen; the offer names the publisher's stream."""
    await rig.gateway.open_session(SessionSpec("r1", "show_screen"))
    agent, customer = rig.client("r1", "agent", "a1", "Alice"), rig.client("r1", "customer", "c1")
    agent.publish(SyntheticVideo(320, 240))
    customer.send(SyntheticAudio())
    await agent.connect()
    await customer.connect()
    await wait_for(lambda: customer.video_readers() and customer.video_readers()[0].frames >= 10, 10)
    assert customer.video_readers()[0].sizes == {(320, 240)}
    offers = rig.log.of("offer")
    assert [o.participant.key for o in offers if o.participant] == ["customer:c1"]
    assert offers[0].data["type"] == "offer"
    assert offers[0].data["streams"] == {"agent-a1": {"kind": "agent", "id": "a1", "name": "Alice"}}
    assert "a=msid:agent-a1 " in offers[0].data["sdp"]


async def test_conference_of_four_every_participant_receives_every_other(rig: Rig) -> None:
    """``conference`` of 4 joining one after the other: every client decodes the three others' videos
    at their own resolutions (and their audio); the joiners trigger server offers; leaving one by one
    reports ``participant_left`` and finally ``closed`` with reason ``empty``."""
    await rig.gateway.open_session(SessionSpec("conf", "conference"))
    sizes = [(320, 240), (288, 216), (256, 192), (224, 168)]
    people = [("agent", "a1"), ("customer", "c1"), ("agent", "a2"), ("guest", "g1")]
    clients = []
    for (kind, pid), size in zip(people, sizes, strict=True):
        client = rig.client("conf", kind, pid)
        client.send(SyntheticAudio())
        client.send(SyntheticVideo(*size, fps=15))
        await client.connect()
        clients.append(client)

    def complete() -> bool:
        return all(
            len([r for r in c.video_readers() if r.frames >= 5]) == 3
            and len([r for r in c.audio_readers() if r.frames >= 5]) == 3
            for c in clients
        )

    await wait_for(complete, 20)
    for client, size in zip(clients, sizes, strict=True):
        seen = set().union(*(r.sizes for r in client.video_readers()))
        assert seen == set(sizes) - {size}
    assert len(rig.log.of("offer")) >= 3

    answered = [c.offers_answered for c in clients]
    await rig.gateway.leave("conf", clients[3].participant)
    await wait_for(
        lambda: all(c.offers_answered > n for c, n in zip(clients[:3], answered, strict=False)), 10
    )
    left = [e.participant.key for e in rig.log.of("participant_left") if e.participant]
    assert left == ["guest:g1"] and not rig.log.of("closed")
    for client in clients[:3]:
        await rig.gateway.leave("conf", client.participant)
    await wait_for(lambda: bool(rig.log.of("closed")), 5)
    closed = rig.log.of("closed")
    assert [e.reason for e in closed] == ["empty"]
    assert "conf" not in rig.gateway.sessions


async def test_late_subscriber_gets_a_keyframe_within_a_second(rig: Rig) -> None:
    """A participant who joins a running conference receives the publisher's video from a keyframe
    requested on its behalf, well before the publisher's own next keyframe would come."""
    await rig.gateway.open_session(SessionSpec("conf", "conference"))
    publisher = rig.client("conf", "agent", "a1")
    publisher.send(SyntheticVideo(320, 240))
    await publisher.connect()
    await publisher.wait_connected()
    await asyncio.sleep(1.5)
    late = rig.client("conf", "customer", "c1")
    late.receive("video")
    await late.connect()
    session = rig.gateway.sessions["conf"]
    source = next(i.source for i in session.peers["agent:a1"].incoming if i.source.kind == "video")
    requests_before = source.keyframe_requests_sent
    subscribed_at = time.monotonic()
    await wait_for(lambda: any(r.frames > 0 for r in late.video_readers()), 5)
    first_frame_at = next(r.first_at for r in late.video_readers() if r.first_at)
    assert first_frame_at - subscribed_at < 1.0
    slot = next(s for s in session.peers["customer:c1"].slots if s.track.source is source)
    assert slot.track.stats.gated >= 0 and source.keyframe_requests_sent >= requests_before


async def test_a_subscriber_that_stops_reading_does_not_slow_the_others(rig: Rig) -> None:
    """Conference: one subscriber's client stops reading; another keeps receiving at full rate and the
    server's queues for the stalled one stay bounded."""
    await rig.gateway.open_session(SessionSpec("conf", "conference"))
    publisher = rig.client("conf", "agent", "a1")
    publisher.send(SyntheticVideo(320, 240))
    await publisher.connect()
    subscribers = []
    for pid in ("s1", "s2"):
        sub = rig.client("conf", "guest", pid)
        sub.receive("video")
        await sub.connect()
        subscribers.append(sub)
    healthy, stalled = subscribers
    await wait_for(
        lambda: all(s.video_readers() and s.video_readers()[0].frames > 5 for s in subscribers), 10
    )
    assert all(len(s.video_readers()) == 1 for s in subscribers)  # nothing on their own recvonly offers
    stalled.video_readers()[0].paused = True
    before = healthy.video_readers()[0].frames
    await asyncio.sleep(2.0)
    received = healthy.video_readers()[0].frames - before
    assert received >= 40  # 2 s of 30 fps, with slack for a loaded machine
    session = rig.gateway.sessions["conf"]
    for slot in session.peers["guest:s2"].slots:
        assert slot.track.queued <= 30


async def test_a_new_client_peer_connection_replaces_the_old_one(rig: Rig) -> None:
    """A participant who offers from a new RTCPeerConnection (other ICE credentials) gets a new server
    peer: no ``participant_left``, the old server peer is closed, media flows to the new one."""
    await rig.gateway.open_session(SessionSpec("conf", "conference"))
    publisher = rig.client("conf", "agent", "a1")
    publisher.send(SyntheticVideo(320, 240))
    await publisher.connect()
    first = rig.client("conf", "guest", "g1")
    first.receive("video")
    await first.connect()
    await wait_for(lambda: any(r.frames > 3 for r in first.video_readers()), 10)
    old_peer = rig.gateway.sessions["conf"].peers["guest:g1"]
    second = rig.client("conf", "guest", "g1")  # same participant, new peer connection
    second.receive("video")
    await second.connect()
    await wait_for(lambda: any(r.frames > 3 for r in second.video_readers()), 10)
    assert old_peer.closed and rig.gateway.sessions["conf"].peers["guest:g1"] is not old_peer
    assert not rig.log.of("participant_left") and not rig.log.of("closed")


async def test_a_left_publishers_transceiver_is_reused_for_the_next_one(rig: Rig) -> None:
    """Conference churn: after a publisher leaves, the subscriber's transceiver for it goes inactive;
    the next publisher's video takes it back (no new m-section) and reaches the subscriber."""
    await rig.gateway.open_session(SessionSpec("conf", "conference"))
    watcher = rig.client("conf", "agent", "a1")
    watcher.receive("video")
    await watcher.connect()
    first = rig.client("conf", "guest", "g1")
    first.publish(SyntheticVideo(320, 240))
    await first.connect()
    await wait_for(lambda: any(r.sizes == {(320, 240)} for r in watcher.video_readers()), 10)
    answered = watcher.offers_answered
    await rig.gateway.leave("conf", first.participant)
    await wait_for(lambda: watcher.offers_answered > answered, 10)
    transceivers = len(watcher.pc.getTransceivers())
    second = rig.client("conf", "guest", "g2")
    second.publish(SyntheticVideo(256, 192))
    await second.connect()
    await wait_for(lambda: any((256, 192) in r.sizes for r in watcher.video_readers()), 10)
    assert len(watcher.pc.getTransceivers()) == transceivers
    assert "guest-g2" in watcher.stream_ids


async def test_subscriber_pli_is_forwarded_to_the_publisher(rig: Rig) -> None:
    """A PLI from the agent's client reaches the customer's video sender as a keyframe request."""
    agent, customer = await start_pair(rig, "video", "av", "av")
    await wait_for(lambda: agent.video_readers() and agent.video_readers()[0].frames >= 5, 10)
    await asyncio.sleep(0.6)
    sender = next(t.sender for t in customer.pc.getTransceivers() if t.kind == "video")
    asked: list[int] = []
    original = sender._send_keyframe

    def spy() -> None:
        asked.append(1)
        original()

    sender._send_keyframe = spy  # type: ignore[method-assign]
    receiver = next(t.receiver for t in agent.pc.getTransceivers() if t.kind == "video")
    media_ssrc = next(iter(receiver.getSynchronizationSources())).source
    for _ in range(5):
        await receiver._send_rtcp_pli(media_ssrc)
    await wait_for(lambda: len(asked) >= 1, 5)
    await asyncio.sleep(0.2)
    assert len(asked) == 1  # throttled: the trailing one comes 500 ms later


async def test_leave_ends_a_one_to_one_session(rig: Rig) -> None:
    """``leave`` in a call: ``participant_left`` (reason ``left``) then ``closed`` (reason ``ended``)."""
    agent, customer = await start_pair(rig, "call", "a", "a")
    await rig.gateway.leave("r1", customer.participant)
    await wait_for(lambda: bool(rig.log.of("closed")), 5)
    assert kinds(rig)[-2:] == [("participant_left", "customer:c1", "left"), ("closed", None, "ended")]
    with pytest.raises(NotFound):
        await rig.gateway.offer("r1", customer.participant, "v=0", "offer")


async def test_a_dropped_peer_closes_a_one_to_one_session(rig: Rig) -> None:
    """Without a rejoin grace, the customer's peer connection going away closes the session at once:
    ``participant_left`` and ``closed``, both ``peer_dropped`` (no ``reconnecting``)."""
    rig.gateway.config = dataclasses.replace(rig.gateway.config, rejoin_grace=0)
    agent, customer = await start_pair(rig, "video", "av", "av")
    await customer.close()
    await wait_for(lambda: bool(rig.log.of("closed")), 10)
    assert rig.log.of("closed")[0].reason == "peer_dropped"
    assert ("participant_left", "customer:c1", "peer_dropped") in kinds(rig)
    assert not rig.log.of("reconnecting")


async def test_client_offer_during_a_server_offer_is_refused_as_glare(rig: Rig) -> None:
    """Glare: while a server offer is outstanding the client's offer gets ``conflict``/``glare``; an
    unusable answer is ``invalid`` and leaves the offer outstanding; after answering the server's offer
    the client's offer is accepted."""
    await rig.gateway.open_session(SessionSpec("r1", "show_screen"))
    agent, customer = rig.client("r1", "agent", "a1"), rig.client("r1", "customer", "c1")
    rig.log.auto_answer = False
    agent.publish(SyntheticVideo(320, 240))
    customer.send(SyntheticAudio())
    await agent.connect()
    await customer.connect()
    await wait_for(lambda: bool(rig.log.of("offer")), 10)
    offer = await customer.pc.createOffer()
    with pytest.raises(Conflict) as refused:
        await rig.gateway.offer("r1", customer.participant, offer.sdp, "offer")
    assert refused.value.details["reason"] == "glare"
    bogus = rig.log.of("offer")[0].data["sdp"]  # an offer is not a valid answer (setup:actpass)
    with pytest.raises(Invalid):
        await rig.gateway.answer("r1", customer.participant, bogus, "answer")
    await customer.on_server_offer(rig.log.of("offer")[0].data)
    customer.send(SyntheticAudio())
    await customer.connect()
    await wait_for(lambda: customer.video_readers() and customer.video_readers()[0].frames > 3, 10)


async def test_errors(rig: Rig) -> None:
    """Unknown session -> NotFound; bad SDP or type -> Invalid; an answer with no server offer ->
    Conflict; a failed first offer leaves no peer behind."""
    someone = Participant("customer", "c1")
    with pytest.raises(NotFound):
        await rig.gateway.offer("nope", someone, "v=0", "offer")
    await rig.gateway.open_session(SessionSpec("r1", "call"))
    await rig.gateway.open_session(SessionSpec("r1", "call"))  # idempotent
    with pytest.raises(Invalid):
        await rig.gateway.offer("r1", someone, "not sdp", "offer")
    with pytest.raises(Invalid):
        await rig.gateway.offer("r1", someone, "v=0", "answer")
    assert rig.gateway.sessions["r1"].peers == {}
    client = rig.client("r1", "customer", "c1")
    client.send(SyntheticAudio())
    await client.connect()
    with pytest.raises(Conflict):
        await rig.gateway.answer("r1", someone, client.pc.localDescription.sdp, "answer")
    with pytest.raises(NotFound):
        await rig.gateway.answer("r1", Participant("agent", "x"), "v=0", "answer")
    await rig.gateway.close_session("r1", "ended")
    await rig.gateway.close_session("r1", "ended")  # idempotent
    await wait_for(lambda: bool(rig.log.of("closed")), 5)
    assert [e.reason for e in rig.log.of("closed")] == ["ended"]


async def test_no_peers_or_tasks_leak_after_shutdown() -> None:
    """After a session with media and ``shutdown()``: ``closed`` (``shutdown``) reported, no session,
    no task and no receiver thread left behind."""
    threads_before = thread_count()
    gateway = AiortcMediaGateway(host_addresses=["127.0.0.1"])
    from tests.media.conftest import EventLog

    log = EventLog()
    gateway.set_event_sink(log)
    rig = Rig(gateway, log)
    await gateway.open_session(SessionSpec("r1", "video"))
    agent, customer = rig.client("r1", "agent", "a1"), rig.client("r1", "customer", "c1")
    for client in (agent, customer):
        client.send(SyntheticAudio())
        client.send(SyntheticVideo(160, 120))
        await client.connect()
    await wait_for(
        lambda: all(r.frames > 3 for c in (agent, customer) for r in c.readers) and len(agent.readers) == 2
    )
    await gateway.shutdown()
    assert [e.reason for e in log.of("closed")] == ["shutdown"]
    assert gateway.sessions == {}
    for client in (agent, customer):
        await client.close()
    current = asyncio.current_task()
    await wait_for(lambda: not [t for t in asyncio.all_tasks() if t is not current], 5)
    # aiortc's clients leave the default executor's worker threads; receiver threads are gone
    await wait_for(
        lambda: not [t for t in __import__("threading").enumerate() if t.name.endswith("-decoder")], 5
    )
    assert thread_count() <= threads_before + 8
