"""One participant's aiortc peer connection on the server: negotiation, incoming tracks (sources) and
outgoing RTP senders (slots).

Negotiation rules:

- The client makes the first offer. Its offer is cleaned (:mod:`rtc_server.media.sdp`: mDNS candidates
  out, Opus/VP8 only). In 1:1 kinds every audio/video m-section is answered ``sendrecv``-capable, so a
  client that offers ``sendrecv`` or ``recvonly`` transceivers receives the other side's media on
  them without any renegotiation. In a conference the server only receives on the client's
  transceivers and sends every other participant's tracks on transceivers of its own.
- When the server needs a sender the client did not offer (a conference participant joins, an agent
  who offered nothing receives a screen), it adds a ``sendonly`` transceiver whose ``msid`` stream id
  names the publisher (:func:`stream_id_for`) and sends an offer (the ``offer`` media event, delivered
  as ``rtc.offer``). When that publisher goes, the transceiver becomes ``inactive`` (another offer);
  the next publisher of that kind takes it back (``sendonly`` again, with its own ``msid``), so a long
  conference does not grow its SDP with every arrival.
- Server offers are coalesced, never sent before the peer is connected (so the client has applied
  the server's first answer), nor within ``offer_delay`` seconds of the server's last answer (so the
  answer's ack is on the wire first), nor while another server offer is outstanding.
- **Glare** (a client offer while a server offer is outstanding): the server is the *impolite* peer
  (aiortc 1.16 cannot roll back a local offer). The client's offer is refused with ``conflict``
  (``details.reason = "glare"``); the client, the polite peer, rolls back, answers the server's offer
  and sends its own offer again (the standard "perfect negotiation" pattern).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidStateError
from aiortc.sdp import SessionDescription

from rtc_server.media.aiortc_adapter import ReceiverTap, feed_sender, restrict_host_addresses
from rtc_server.media.forwarding import PLI_INTERVAL_S, ForwardedTrack, TrackSource
from rtc_server.media.sdp import (
    SdpDialect,
    SdpError,
    ice_ufrag,
    restrict_codecs,
    rewrite_server_offer,
    strip_mdns_candidates,
)
from signaling.domain.errors import Conflict, Invalid
from signaling.services.ports import Participant

log = logging.getLogger(__name__)

_SENDING = ("sendonly", "sendrecv")
_RECEIVING = ("recvonly", "sendrecv")
_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9.\-]")


def stream_id_for(participant: Participant) -> str:
    """The ``msid`` stream id of the tracks the server forwards from ``participant``:
    ``<kind>-<id>`` with every character outside ``[A-Za-z0-9.-]`` of the id written ``_XX`` (hex)."""
    escaped = _TOKEN_UNSAFE.sub(lambda m: "".join(f"_{b:02x}" for b in m.group(0).encode()), participant.id)
    return f"{participant.kind}-{escaped}"


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """Settings shared by every server peer."""

    host_addresses: tuple[str, ...] | None = None
    """Addresses to offer host candidates on; ``None``: every interface aioice finds (never loopback)."""
    ice_servers: tuple[RTCIceServer, ...] = ()
    """STUN/TURN servers the server's own peers use (none by default: the server is reachable)."""
    pli_interval: float = PLI_INTERVAL_S
    """Minimum interval between keyframe requests sent to one publisher."""
    offer_delay: float = 0.1
    """Minimum delay between the server's answer to a client and a server offer to that client."""
    rejoin_grace: float = 20.0
    """How long a 1:1 session waits for a participant whose peer connection dropped to offer again
    before it counts them as gone (0: at once)."""
    recordings_dir: str | None = None
    """Where recordings are written (:mod:`rtc_server.media.recording`); ``None``: never recorded."""


class PeerListener(Protocol):
    """What a :class:`Peer` tells its session."""

    def on_peer_changed(self, peer: Peer) -> None:
        """Sources or their directions changed: route again."""

    def on_peer_connected(self, peer: Peer) -> None:
        """The peer connection reached ``connected`` (first time only)."""

    def on_peer_gone(self, peer: Peer, reason: str) -> None:
        """The peer connection failed or was closed by the remote side."""

    def on_peer_datachannel(self, peer: Peer, channel: RTCDataChannel) -> None:
        """The client opened a data channel."""

    def on_peer_offer(self, peer: Peer, sdp: str, streams: dict[str, str]) -> None:
        """The server made an offer the client must answer."""

    def on_first_forward(self, peer: Peer) -> None:
        """The first media frame was sent to this peer."""


@dataclass(eq=False)
class Slot:
    """One server RTP sender towards the client, fed by a :class:`ForwardedTrack`."""

    kind: str
    transceiver: RTCRtpTransceiver
    track: ForwardedTrack
    dedicated: bool
    """Added by the server for one publisher (else: offered by the client, reusable)."""
    stream_id: str
    usable: bool = True
    """The client receives on it (its direction lets the server send)."""
    retired: bool = False
    """Made ``inactive`` after its publisher left (until :meth:`Peer.add_slot` brings it back)."""

    @property
    def free(self) -> bool:
        return self.usable and not self.retired and self.track.source is None


@dataclass(eq=False)
class IncomingTrack:
    """A track the client sends: the receiver tap and the source that fans it out."""

    transceiver: RTCRtpTransceiver
    tap: ReceiverTap
    source: TrackSource
    active: bool = True
    """The client currently sends on it."""


class Peer:
    """The server's :class:`RTCPeerConnection` for one participant of one session."""

    def __init__(
        self,
        participant: Participant,
        config: PeerConfig,
        listener: PeerListener,
        send_on_client_transceivers: bool,
    ) -> None:
        self.participant = participant
        self.send_on_client_transceivers = send_on_client_transceivers
        """Answer client-offered transceivers so the server may send on them (1:1 kinds); else the
        server only receives on them and adds its own sendonly transceivers (conference)."""
        self.config = config
        self._listener = listener
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=list(config.ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.dialect = SdpDialect()
        self.incoming: list[IncomingTrack] = []
        self.slots: list[Slot] = []
        self.offers_sent = 0
        self.connected = False
        self.closed = False
        self._lock = asyncio.Lock()
        self._dirty = False
        self._negotiation: asyncio.Task[None] | None = None
        self._last_answer_at = 0.0
        self._slot_count = 0
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.pc.on("datachannel", self._on_datachannel)

    # -- negotiation ---------------------------------------------------------------------------------

    async def accept_offer(self, sdp: str) -> str:
        """Apply the client's offer and return the server's answer SDP."""
        try:
            cleaned = restrict_codecs(strip_mdns_candidates(sdp))
            str(SessionDescription.parse(cleaned))  # serialising catches what parsing lets through
        except SdpError as exc:
            raise Invalid(str(exc), field="sdp") from exc
        except Exception as exc:
            raise Invalid(f"malformed SDP: {exc}", field="sdp") from exc
        async with self._lock:
            self._check_open()
            if self.pc.signalingState == "have-local-offer":
                raise Conflict(
                    "the server's offer is outstanding: answer it, then offer again", reason="glare"
                )
            self.dialect.learn(sdp)
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(cleaned, "offer"))
            except InvalidStateError as exc:
                raise Conflict(str(exc)) from exc
            except Exception as exc:  # OperationError, ValueError, ... from a description aiortc refuses
                raise Invalid(f"unusable offer: {exc}", field="sdp") from exc
            try:
                self._adopt_transceivers()
                answer = await self.pc.createAnswer()
                self._restrict_hosts()
                await self.pc.setLocalDescription(answer)
            except Exception as exc:  # m-sections aiortc accepted but cannot answer (no mid, no transport)
                raise Invalid(f"unusable offer: {exc}", field="sdp") from exc
            self._last_answer_at = time.monotonic()
            local = self.pc.localDescription.sdp
        self._listener.on_peer_changed(self)
        return local

    async def accept_answer(self, sdp: str) -> None:
        """Apply the client's answer to the server's outstanding offer."""
        try:
            cleaned = strip_mdns_candidates(sdp)
            SessionDescription.parse(cleaned)
        except Exception as exc:
            raise Invalid(f"malformed SDP: {exc}", field="sdp") from exc
        async with self._lock:
            self._check_open()
            if self.pc.signalingState != "have-local-offer":
                raise Conflict("no server offer is outstanding", reason="no_offer")
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(cleaned, "answer"))
            except InvalidStateError as exc:
                raise Conflict(str(exc)) from exc
            except Exception as exc:  # OperationError, ValueError, ... from a description aiortc refuses
                raise Invalid(f"unusable answer: {exc}", field="sdp") from exc
            self._refresh_directions()
        if self._dirty:
            self._schedule_negotiation()
        self._listener.on_peer_changed(self)

    def is_new_connection(self, sdp: str) -> bool:
        """Whether an offer comes from another client peer connection than the current one (its ICE
        credentials differ; aiortc cannot restart ICE, so such an offer needs a new server peer)."""
        current = self.pc.remoteDescription
        if current is None:
            return False
        return ice_ufrag(sdp) != ice_ufrag(current.sdp)

    def _check_open(self) -> None:
        if self.closed:
            raise Conflict("this participant's peer is closed", reason="closed")

    def _restrict_hosts(self) -> None:
        if self.config.host_addresses is not None:
            restrict_host_addresses(self.pc, self.config.host_addresses)

    def _adopt_transceivers(self) -> None:
        """Make new client-offered transceivers forwarding-ready, and refresh directions."""
        known = {id(s.transceiver) for s in self.slots}
        for transceiver in self.pc.getTransceivers():
            if id(transceiver) in known:
                continue
            _prefer_forwarded_codecs(transceiver)
            # answered as and(direction, what the client offered)
            transceiver.direction = "sendrecv" if self.send_on_client_transceivers else "recvonly"
            self._slot_count += 1
            track = ForwardedTrack(
                transceiver.kind,
                track_id=f"slot-{transceiver.kind}-{self._slot_count}",
                on_first_frame=self._first_forward,
            )
            feed_sender(transceiver.sender, track)
            slot = Slot(
                transceiver.kind, transceiver, track, dedicated=False, stream_id=transceiver.sender._stream_id
            )
            self.slots.append(slot)
        self._refresh_directions()

    def _refresh_directions(self) -> None:
        for slot in self.slots:
            if not slot.dedicated:
                slot.usable = (
                    self.send_on_client_transceivers
                    and (slot.transceiver._offerDirection or "inactive") in _SENDING
                )
                if not slot.usable:
                    slot.track.detach()
        for incoming in self.incoming:
            offered = incoming.transceiver._offerDirection or incoming.transceiver.currentDirection
            incoming.active = (offered or "inactive") in _RECEIVING and not self.closed

    # -- server-initiated renegotiation ---------------------------------------------------------------

    def add_slot(self, kind: str, stream_id: str) -> Slot:
        """A ``sendonly`` sender for one publisher's track, announced by the next server offer: a
        retired one of that kind brought back (its m-section is reused, so a long conference does not
        grow its SDP with every arrival), else a new transceiver."""
        for slot in self.slots:
            if (
                slot.dedicated
                and slot.retired
                and slot.kind == kind
                and slot.transceiver.currentDirection == "inactive"
                and slot.track.readyState == "live"
            ):
                slot.retired = False
                slot.stream_id = stream_id
                slot.transceiver.direction = "sendonly"
                slot.transceiver.sender._stream_id = stream_id
                self._schedule_negotiation()
                return slot
        transceiver = self.pc.addTransceiver(kind, direction="sendonly")
        _prefer_forwarded_codecs(transceiver)
        transceiver.sender._stream_id = stream_id
        self._slot_count += 1
        track = ForwardedTrack(
            kind, track_id=f"{stream_id}-{kind}-{self._slot_count}", on_first_frame=self._first_forward
        )
        feed_sender(transceiver.sender, track)
        slot = Slot(kind, transceiver, track, dedicated=True, stream_id=stream_id)
        self.slots.append(slot)
        self._schedule_negotiation()
        return slot

    def retire_slot(self, slot: Slot) -> None:
        """Stop a dedicated sender: ``inactive`` at the next server offer."""
        if slot.retired:
            return
        slot.retired = True
        slot.track.detach()
        slot.transceiver.direction = "inactive"
        self._schedule_negotiation()

    @property
    def negotiating(self) -> bool:
        """An offer or answer is being applied: transceivers must not be added now (aiortc's answer
        would include them); the session routes again when it is done."""
        return self._lock.locked()

    def free_slot(self, kind: str) -> Slot | None:
        """A client-offered sender of ``kind`` with nothing attached."""
        return next((s for s in self.slots if s.kind == kind and not s.dedicated and s.free), None)

    def _schedule_negotiation(self) -> None:
        self._dirty = True
        if self.closed or (self._negotiation is not None and not self._negotiation.done()):
            return
        self._negotiation = asyncio.ensure_future(self._negotiate())

    async def _negotiate(self) -> None:
        try:
            if not self.connected:
                return  # resumed by the connected state
            wait = self._last_answer_at + self.config.offer_delay - time.monotonic()
            await asyncio.sleep(max(0.0, wait))
            async with self._lock:
                if self.closed or not self._dirty or self.pc.signalingState != "stable":
                    return  # a pending offer's answer resumes it
                self._dirty = False
                offer = await self.pc.createOffer()
                sdp = rewrite_server_offer(offer.sdp, self.dialect)
                self._restrict_hosts()
                await self.pc.setLocalDescription(RTCSessionDescription(sdp, "offer"))
                local = self.pc.localDescription.sdp
                self.offers_sent += 1
            streams = {s.stream_id: s.track.id for s in self.slots if s.dedicated and not s.retired}
            self._listener.on_peer_offer(self, local, streams)
            self._listener.on_peer_changed(self)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("renegotiation with %s failed", self.participant.key)

    # -- events ----------------------------------------------------------------------------------------

    def _on_track(self, track: Any) -> None:
        try:
            transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
            kind = transceiver.kind
            opus = [
                c.payloadType
                for c in transceiver._codecs
                if c.mimeType.lower() == "audio/opus" and c.payloadType is not None
            ]
            source = TrackSource(kind, self.participant.key, pli_interval=self.config.pli_interval)
            tap = ReceiverTap(transceiver.receiver, kind, source.deliver, audio_payload_types=opus)
            source.set_keyframe_requester(tap.request_keyframe)
            self.incoming.append(IncomingTrack(transceiver, tap, source))
        except Exception:
            log.exception("cannot forward a track of %s", self.participant.key)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and not self.connected:
            self.connected = True
            self._listener.on_peer_connected(self)
            if self._dirty:
                self._schedule_negotiation()
        elif state in ("failed", "closed") and not self.closed:
            self._listener.on_peer_gone(self, "peer_dropped")

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        try:
            self._listener.on_peer_datachannel(self, channel)
        except Exception:
            log.exception("data channel %r of %s refused", channel.label, self.participant.key)

    def _first_forward(self) -> None:
        self._listener.on_first_forward(self)

    # -- teardown ----------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the peer connection and everything forwarding to or from it (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._negotiation is not None and not self._negotiation.done():
            self._negotiation.cancel()
            await asyncio.gather(self._negotiation, return_exceptions=True)
        for incoming in self.incoming:
            incoming.active = False
            incoming.source.close()
            incoming.tap.close()
        for slot in self.slots:
            slot.track.stop()
        # shielded: cancelling a waiter of aiortc's shared close future would break a concurrent close
        await asyncio.shield(self.pc.close())


def _prefer_forwarded_codecs(transceiver: RTCRtpTransceiver) -> None:
    """Offer only the forwarded codec (and VP8's RTX) on this transceiver from now on."""
    wanted = ("audio/opus",) if transceiver.kind == "audio" else ("video/vp8", "video/rtx")
    capabilities = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    transceiver.setCodecPreferences([c for c in capabilities if c.mimeType.lower() in wanted])
