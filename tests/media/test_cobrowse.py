"""Co-browsing through the gateway with aiortc data channels on loopback: customer -> agents relay
with masking enforced, chunked snapshots both ways, agent pointer -> customer, late agents asking
for a snapshot, ``active`` on the first relayed full snapshot, and exception-safe handlers."""

from __future__ import annotations

import asyncio
import base64
import gzip as gzip_module
import json
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCDataChannel

from rtc_server.media.chunks import CLIENT_PIECE_CHARS, MAX_MESSAGE_BYTES, ChunkAssembler, is_chunk
from signaling.services.ports import SessionSpec
from tests.media.conftest import Client, Rig, wait_for
from tests.media.rrweb_samples import CARD, NAME, TOKEN, checkout_snapshot, find, input_event, meta, mutation

POLICY = {"mask_text_class": "rr-mask", "block_class": "rr-block", "mask_all_inputs": True}


@dataclass
class Endpoint:
    """A client's ``cobrowse`` channel and the messages it received (chunks reassembled)."""

    client: Client
    channel: RTCDataChannel
    received: list[Any] = field(default_factory=list)
    raw_sizes: list[int] = field(default_factory=list)
    assembler: ChunkAssembler = field(default_factory=ChunkAssembler)

    def send(self, message: Any, gzip: bool = False) -> None:
        text = json.dumps(message)
        if gzip:  # what a widget using CompressionStream("gzip") sends
            packed = base64.b64encode(gzip_module.compress(text.encode())).decode()
            pieces = [packed[i : i + 200_000] for i in range(0, len(packed), 200_000)]
            for index, piece in enumerate(pieces):
                envelope = {"t": "chunk", "id": "z1", "i": index, "n": len(pieces), "d": piece}
                if index == 0:
                    envelope["enc"] = "gzip"
                self.channel.send(json.dumps(envelope))
            return
        if len(text.encode()) <= MAX_MESSAGE_BYTES:
            self.channel.send(text)
            return
        pieces = [text[i : i + CLIENT_PIECE_CHARS] for i in range(0, len(text), CLIENT_PIECE_CHARS)]
        for index, piece in enumerate(pieces):  # what the widget does
            self.channel.send(
                json.dumps({"t": "chunk", "id": "m1", "i": index, "n": len(pieces), "d": piece})
            )

    def events(self) -> list[dict[str, Any]]:
        return [m for m in self.received if isinstance(m, dict) and "type" in m]

    def controls(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if isinstance(m, dict) and m.get("t") == kind]


async def join(rig: Rig, kind: str, id_: str) -> Endpoint:
    client = rig.client("cb", kind, id_)
    channel = client.pc.createDataChannel("cobrowse")
    endpoint = Endpoint(client, channel)

    @channel.on("message")
    def on_message(message: str) -> None:
        endpoint.raw_sizes.append(len(message.encode()))
        parsed = json.loads(message)
        if is_chunk(parsed):
            whole = endpoint.assembler.feed(parsed)
            if whole is None:
                return
            parsed = json.loads(whole)
        endpoint.received.append(parsed)

    await client.connect()
    await wait_for(lambda: channel.readyState == "open", 10)
    return endpoint


async def test_customer_events_reach_every_agent_masked(rig: Rig) -> None:
    """Two agents receive the customer's events in order, with card number, hidden token and masked
    text scrubbed; input events masked; junk dropped; ``active`` once the snapshot was relayed; the
    customer was asked for a snapshot when each agent joined."""
    await rig.gateway.open_session(SessionSpec("cb", "cobrowse", POLICY))
    customer = await join(rig, "customer", "c1")
    agents = [await join(rig, "agent", "a1"), await join(rig, "agent", "a2")]
    await wait_for(lambda: len(customer.controls("snapshot_request")) >= 1, 5)

    customer.send(meta())
    customer.send(checkout_snapshot())
    customer.channel.send("not json")
    customer.send({"type": 6, "data": {"plugin": "rrweb/console@1"}, "timestamp": 3})
    customer.send(input_event(10, CARD))
    customer.send(mutation(texts=[{"id": 16, "value": "John Smith"}]))
    await wait_for(lambda: all(len(a.events()) == 4 for a in agents), 10)
    for agent in agents:
        meta_event, snapshot, typed, changed = agent.events()
        assert meta_event == meta()
        raw = json.dumps(agent.received)
        assert CARD not in raw and TOKEN not in raw and NAME not in raw
        assert find(snapshot["data"]["node"], 23)["childNodes"][0]["textContent"] == "Order total: 42 EUR"
        assert typed["data"]["text"] == "*" * len(CARD)
        assert changed["data"]["texts"][0]["value"] == "**** *****"
    await wait_for(lambda: bool(rig.log.of("active")), 5)
    assert len(rig.log.of("active")) == 1


async def test_large_snapshots_are_chunked_both_ways(rig: Rig) -> None:
    """A 300 KB snapshot sent in chunk envelopes arrives whole (and scrubbed) at the agent, which
    received it as several messages each under 262,144 bytes."""
    await rig.gateway.open_session(SessionSpec("cb", "cobrowse", POLICY))
    customer = await join(rig, "customer", "c1")
    agent = await join(rig, "agent", "a1")
    big = checkout_snapshot(filler=2200)
    assert len(json.dumps(big)) > 300_000
    customer.send(meta())
    customer.send(big)
    await wait_for(lambda: len(agent.events()) == 2, 15)
    snapshot = agent.events()[1]
    assert find(snapshot["data"]["node"], 10)["attributes"]["value"] == "**** **** **** ****"
    assert find(snapshot["data"]["node"], 1001 + 2 * 2199) is not None
    assert max(agent.raw_sizes) <= MAX_MESSAGE_BYTES and len(agent.raw_sizes) >= 3


async def test_gzip_both_ways(rig: Rig) -> None:
    """A gzip-encoded 300 KB snapshot from the customer is inflated, scrubbed and relayed: compressed
    to the agent that announced gzip (a fraction of the bytes), plain chunks to the one that did not."""
    await rig.gateway.open_session(SessionSpec("cb", "cobrowse", POLICY))
    customer = await join(rig, "customer", "c1")
    zipped, plain = await join(rig, "agent", "a1"), await join(rig, "agent", "a2")
    zipped.send({"t": "hello", "enc": ["gzip"]})
    await wait_for(lambda: len(customer.controls("snapshot_request")) >= 1, 5)
    await asyncio.sleep(0.2)
    big = checkout_snapshot(filler=2200)
    customer.send(meta())
    customer.send(big, gzip=True)
    await wait_for(lambda: len(zipped.events()) == 2 and len(plain.events()) == 2, 15)
    for agent in (zipped, plain):
        snapshot = agent.events()[1]
        assert find(snapshot["data"]["node"], 10)["attributes"]["value"] == "**** **** **** ****"
    assert sum(zipped.raw_sizes) * 5 < sum(plain.raw_sizes)


async def test_agent_pointer_reaches_the_customer_and_unknown_messages_do_not(rig: Rig) -> None:
    """``pointer``/``highlight``/``snapshot_request`` from an agent reach the customer, tagged with the
    agent id; other types and oversized messages are dropped; customers' messages never reach the
    customer back."""
    await rig.gateway.open_session(SessionSpec("cb", "cobrowse", POLICY))
    customer = await join(rig, "customer", "c1")
    agent = await join(rig, "agent", "a1")
    await wait_for(lambda: len(customer.controls("snapshot_request")) == 1, 5)
    agent.send({"t": "evil", "x": 1})
    agent.send({"t": "pointer", "x": 1, "y": 2, "pad": "x" * 10_000})
    agent.send({"t": "pointer", "x": 10, "y": 20})
    agent.send({"t": "highlight", "selector": "#pay"})
    await wait_for(lambda: bool(customer.controls("highlight")), 5)
    assert customer.controls("pointer") == [{"t": "pointer", "x": 10, "y": 20, "from": "a1"}]
    assert not customer.controls("evil") and not customer.events()


async def test_late_agent_gets_a_fresh_snapshot_and_nothing_before_it(rig: Rig) -> None:
    """An agent joining after the recording started: the customer gets ``snapshot_request``; the
    late agent's first events are the new Meta + full snapshot, while the first agent got everything."""
    await rig.gateway.open_session(SessionSpec("cb", "cobrowse", POLICY))
    customer = await join(rig, "customer", "c1")
    early = await join(rig, "agent", "a1")
    customer.send(meta(1))
    customer.send(checkout_snapshot(2))
    customer.send(mutation(ts=3, texts=[{"id": 24, "value": "Order total: 43 EUR"}]))
    await wait_for(lambda: len(early.events()) == 3, 5)
    requests_before = len(customer.controls("snapshot_request"))
    late = await join(rig, "agent", "a2")
    await wait_for(lambda: len(customer.controls("snapshot_request")) > requests_before, 5)
    customer.send(mutation(ts=4, texts=[{"id": 24, "value": "Order total: 44 EUR"}]))
    customer.send(meta(5))
    customer.send(checkout_snapshot(6))
    await wait_for(lambda: len(late.events()) == 2 and len(early.events()) == 6, 5)
    assert [e["timestamp"] for e in late.events()] == [5, 6]
    assert [e["timestamp"] for e in early.events()] == [1, 2, 3, 4, 5, 6]


async def test_a_failing_handler_does_not_break_the_channel(rig: Rig) -> None:
    """An exception while relaying one message is contained: later messages still flow."""
    await rig.gateway.open_session(SessionSpec("cb", "cobrowse", POLICY))
    customer = await join(rig, "customer", "c1")
    agent = await join(rig, "agent", "a1")
    relay = rig.gateway.sessions["cb"].cobrowse
    assert relay is not None
    scrubber = relay._scrubber
    original = scrubber.scrub
    calls = 0

    def flaky(event: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return original(event)

    scrubber.scrub = flaky  # type: ignore[method-assign]
    customer.send(meta(1))
    customer.send(meta(2))
    customer.send(checkout_snapshot(3))
    await wait_for(lambda: len(agent.events()) == 2, 5)
    assert [e["timestamp"] for e in agent.events()] == [2, 3]
    assert relay.stats.errors == 1


async def test_customer_leaving_ends_the_cobrowse_session(rig: Rig) -> None:
    """The customer's peer goes: ``closed`` with reason ``peer_dropped``."""
    await rig.gateway.open_session(SessionSpec("cb", "cobrowse", POLICY))
    customer = await join(rig, "customer", "c1")
    await join(rig, "agent", "a1")
    await customer.client.close()
    await wait_for(lambda: bool(rig.log.of("closed")), 10)
    assert rig.log.of("closed")[0].reason == "peer_dropped"
    await asyncio.sleep(0)
