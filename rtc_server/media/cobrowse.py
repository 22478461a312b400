"""Co-browsing relay over WebRTC data channels named ``cobrowse``.

Every participant of a co-browse session opens one data channel labelled ``cobrowse`` (ordered,
reliable: the defaults) on its peer connection before making its offer. All messages are JSON text.

Customer -> server -> every agent:
    one rrweb event per message (``{"type": 2, "data": {...}, "timestamp": ...}``), as emitted by
    ``@rrweb/record``; a message larger than 262,144 bytes travels in chunk envelopes, gzip-encoded
    or not (:mod:`rtc_server.media.chunks`; compressing anything above 32 KB is recommended). The server checks each event against the session's masking
    policy (:mod:`rtc_server.media.masking`), drops what is not an rrweb event, and relays the rest
    in order to every agent's channel (chunked again when needed). An unchanged event is relayed
    byte for byte.

Agent -> server -> customer:
    ``{"t": "pointer", "x": <px>, "y": <px>}`` (the agent's pointer, page coordinates),
    ``{"t": "highlight", ...}`` (an element or rectangle to highlight), ``{"t": "clear"}`` and
    ``{"t": "snapshot_request"}`` (take a fresh full snapshot: ``record.takeFullSnapshot(true)``).
    Messages of other types, or larger than 8 KB, are dropped; the server adds ``"from": <agent id>``.
    ``{"t": "hello", "enc": ["gzip"]}`` (sent once, when the channel opens) is for the server: large
    events then reach this agent gzip-encoded.

Server -> customer, on its own:
    ``{"t": "snapshot_request"}`` when an agent needs a full snapshot (it joined late, or its channel
    fell behind by more than :data:`HIGH_WATER_BYTES` and skipped events).

An agent's channel only receives events from a ``Meta``/full-snapshot pair on: the replayer cannot
start from a mutation. Handlers never raise (an exception inside an aiortc data channel handler
silently breaks the channel).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCDataChannel

from rtc_server.media.chunks import GZIP, ChunkAssembler, ChunkError, ChunkWriter, is_chunk
from rtc_server.media.masking import FULL_SNAPSHOT, META, MaskingPolicy, RrwebScrubber
from signaling.services.ports import Participant

log = logging.getLogger(__name__)

CHANNEL_LABEL = "cobrowse"
AGENT_MESSAGE_TYPES = frozenset({"pointer", "highlight", "clear", "snapshot_request"})
MAX_AGENT_MESSAGE_BYTES = 8192
HIGH_WATER_BYTES = 8 * 1024 * 1024
"""An agent channel with more than this buffered skips events until its next full snapshot."""
LOW_WATER_BYTES = 1024 * 1024
SNAPSHOT_REQUEST = json.dumps({"t": "snapshot_request"})


@dataclass(eq=False)
class _Endpoint:
    participant: Participant
    channel: RTCDataChannel
    assembler: ChunkAssembler = field(default_factory=ChunkAssembler)
    synced: bool = False
    """Agent: has received a full snapshot since it joined or last fell behind."""
    snapshot_requested: bool = False
    gzip: bool = False
    """Agent: announced ``{"t": "hello", "enc": ["gzip"]}``: large messages go compressed."""


@dataclass(slots=True)
class RelayStats:
    """Counters of one relay."""

    events_in: int = 0
    events_relayed: int = 0
    events_dropped: int = 0
    events_scrubbed: int = 0
    agent_messages: int = 0
    errors: int = 0


class CobrowseRelay:
    """Relays one session's co-browse data channels."""

    def __init__(self, policy: dict[str, Any], on_active: Callable[[], None] | None = None) -> None:
        self._scrubber = RrwebScrubber(MaskingPolicy.from_spec(policy))
        self._on_active = on_active
        self._customers: dict[str, _Endpoint] = {}
        self._agents: dict[str, _Endpoint] = {}
        self._writer = ChunkWriter()
        self._closed = False
        self.active = False
        """A full snapshot reached an agent."""
        self.stats = RelayStats()

    # -- membership ------------------------------------------------------------------------------------

    def add(self, participant: Participant, channel: RTCDataChannel) -> None:
        """Relay ``channel`` (labelled ``cobrowse``) of ``participant``."""
        if participant.kind not in ("customer", "agent"):
            log.info("co-browse channel of %s ignored: only customers and agents take part", participant.key)
            return
        endpoint = _Endpoint(participant, channel)
        group = self._customers if participant.kind == "customer" else self._agents
        group[participant.key] = endpoint

        def on_message(message: Any) -> None:
            self._on_message(endpoint, message)

        def on_close() -> None:
            self._forget(endpoint)

        channel.on("message", on_message)
        channel.on("close", on_close)
        if participant.kind == "agent":
            self._request_snapshot(endpoint)

    def remove(self, participant: Participant) -> None:
        """Stop relaying ``participant``'s channel."""
        for group in (self._customers, self._agents):
            group.pop(participant.key, None)

    def close(self) -> None:
        """Stop relaying anything."""
        self._closed = True
        self._customers.clear()
        self._agents.clear()

    def _forget(self, endpoint: _Endpoint) -> None:
        for group in (self._customers, self._agents):
            if group.get(endpoint.participant.key) is endpoint:
                del group[endpoint.participant.key]

    # -- messages ---------------------------------------------------------------------------------------

    def _on_message(self, endpoint: _Endpoint, message: Any) -> None:
        try:
            if self._closed:
                return
            if isinstance(message, bytes):
                message = message.decode("utf-8")
            if endpoint.participant.kind == "customer":
                self._from_customer(endpoint, message)
            else:
                self._from_agent(endpoint, message)
        except Exception:
            self.stats.errors += 1
            log.exception("co-browse message from %s dropped", endpoint.participant.key)

    def _from_customer(self, endpoint: _Endpoint, text: str) -> None:
        try:
            parsed = json.loads(text)
        except ValueError:
            self.stats.events_dropped += 1
            return
        if is_chunk(parsed):
            try:
                whole = endpoint.assembler.feed(parsed)
            except ChunkError as exc:
                log.warning("co-browse chunk from %s dropped: %s", endpoint.participant.key, exc)
                self.stats.events_dropped += 1
                return
            if whole is None:
                return
            text = whole
            try:
                parsed = json.loads(text)
            except ValueError:
                self.stats.events_dropped += 1
                return
        self.stats.events_in += 1
        event, changed = self._scrubber.scrub(parsed)
        if event is None:
            self.stats.events_dropped += 1
            return
        if changed:
            self.stats.events_scrubbed += 1
            text = json.dumps(event, separators=(",", ":"))
        self._relay(text, event["type"])

    def _relay(self, text: str, event_type: int) -> None:
        starts_snapshot = event_type in (META, FULL_SNAPSHOT)
        encoded: dict[bool, list[str]] = {}
        delivered_snapshot = False
        for agent in list(self._agents.values()):
            channel = agent.channel
            if channel.readyState != "open":
                continue
            if not agent.synced:
                if not starts_snapshot or channel.bufferedAmount > LOW_WATER_BYTES:
                    self._request_snapshot(agent)
                    continue
                agent.synced, agent.snapshot_requested = True, False
            elif channel.bufferedAmount > HIGH_WATER_BYTES:
                agent.synced = False
                self._request_snapshot(agent)
                continue
            messages = encoded.get(agent.gzip)
            if messages is None:
                messages = encoded[agent.gzip] = list(self._writer.messages(text, compress=agent.gzip))
            if self._send(agent, messages):
                self.stats.events_relayed += 1
                delivered_snapshot |= event_type == FULL_SNAPSHOT
        if delivered_snapshot and not self.active:
            self.active = True
            if self._on_active is not None:
                self._on_active()

    def _from_agent(self, endpoint: _Endpoint, text: str) -> None:
        if len(text) > MAX_AGENT_MESSAGE_BYTES:
            return
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("t") == "hello":
            encodings = message.get("enc")
            endpoint.gzip = isinstance(encodings, list) and GZIP in encodings
            return
        if message.get("t") not in AGENT_MESSAGE_TYPES:
            return
        self.stats.agent_messages += 1
        message["from"] = endpoint.participant.id
        out = [json.dumps(message, separators=(",", ":"))]
        for customer in list(self._customers.values()):
            self._send(customer, out)

    def _request_snapshot(self, agent: _Endpoint) -> None:
        """Ask the customer for a full snapshot on ``agent``'s behalf (once until it arrives)."""
        if agent.snapshot_requested or not self._customers:
            return
        agent.snapshot_requested = True
        for customer in list(self._customers.values()):
            self._send(customer, [SNAPSHOT_REQUEST])

    def _send(self, endpoint: _Endpoint, messages: list[str]) -> bool:
        try:
            for message in messages:
                endpoint.channel.send(message)
            return True
        except Exception as exc:  # closed channel, or a message over the peer's limit
            log.warning("co-browse send to %s failed: %s", endpoint.participant.key, exc)
            return False
