"""One media session (one accepted request): its participants' peers, who receives what, and when it ends.

Forwarding policy by request kind (:data:`FORWARDED_KINDS`, :func:`may_forward`):

============  =====================================================================================
kind          forwarded
============  =====================================================================================
call          every participant's audio to every other participant
video         audio and video, every participant to every other
desktop       the customer's video (their screen) to every other participant
show_screen   an agent's video (their screen) to every other participant
conference    audio and video, every participant to every other; join and leave at any time
cobrowse      no media: the ``cobrowse`` data channels (:mod:`rtc_server.media.cobrowse`)
============  =====================================================================================

End of a session (``closed`` event): a conference ends with reason ``empty`` when its last participant
has gone; any other kind ends as soon as one side is gone (no customer, or no agent, left): reason
``peer_dropped`` when a peer connection failed or was closed by the client, ``ended`` after
:meth:`Session.leave`; :meth:`Session.close` ends it with the caller's reason.

Rejoin grace (the :data:`REJOIN_KINDS`: ``call``, ``video``, ``desktop``, ``show_screen``): when a
participant's peer connection fails or is closed by the client (a network blip, a page reload), the
participant is *away*, not gone: the session reports ``reconnecting`` and keeps their place for
``PeerConfig.rejoin_grace`` seconds. An offer from them in that time makes a new server peer
(``rejoined`` once it connects; attaching the new tracks asks the publishers for keyframes); when the
grace runs out they are gone (``participant_left``, ``peer_dropped``) and the session ends as above.
Co-browsing keeps an agent's place the same way (a reloaded console finds the page again), never the
customer's: their page is what is shared.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCDataChannel

from rtc_server.media.cobrowse import CHANNEL_LABEL, CobrowseRelay
from rtc_server.media.forwarding import TrackSource
from rtc_server.media.peer import Peer, PeerConfig, Slot, stream_id_for
from rtc_server.media.recording import RECORDABLE_KINDS, Recorder
from signaling.domain.errors import Invalid, NotFound
from signaling.services.ports import MediaEvent, Participant, SessionSpec

log = logging.getLogger(__name__)

#: Media kinds forwarded, by request kind.
FORWARDED_KINDS: dict[str, frozenset[str]] = {
    "call": frozenset({"audio"}),
    "video": frozenset({"audio", "video"}),
    "desktop": frozenset({"video"}),
    "show_screen": frozenset({"video"}),
    "conference": frozenset({"audio", "video"}),
    "cobrowse": frozenset(),
}


def may_forward(kind: str, publisher: Participant, subscriber: Participant, media: str) -> bool:
    """Whether a session of ``kind`` forwards ``publisher``'s ``media`` track to ``subscriber``."""
    return publisher.key != subscriber.key and may_record(kind, publisher, media)


#: Request kinds whose participants get a grace period to come back after their peer dropped.
REJOIN_KINDS = frozenset({"call", "video", "desktop", "show_screen"})


def may_record(kind: str, publisher: Participant, media: str) -> bool:
    """Whether a session of ``kind`` takes ``publisher``'s ``media`` track at all: what it forwards to
    the others, and what a recorded session records."""
    if media not in FORWARDED_KINDS.get(kind, ()):
        return False
    if kind == "desktop":
        return publisher.kind == "customer"
    if kind == "show_screen":
        return publisher.kind == "agent"
    return True


Reporter = Callable[[MediaEvent], None]


class Session:
    """The peers of one request and the forwarding between them."""

    def __init__(
        self,
        spec: SessionSpec,
        config: PeerConfig,
        report: Reporter,
        background: set[asyncio.Task[Any]] | None = None,
    ) -> None:
        if spec.kind not in FORWARDED_KINDS:
            raise Invalid(f"unknown session kind {spec.kind!r}", field="kind")
        self.spec = spec
        self.config = config
        self._report = report
        self.peers: dict[str, Peer] = {}
        self.closed = False
        self.close_reason: str | None = None
        self._active_reported = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._teardown: asyncio.Future[None] | None = None
        self.away: dict[str, tuple[Participant, asyncio.Task[None]]] = {}
        """Participants whose peer dropped, by key, with the task that ends their grace."""
        self._rejoining: set[str] = set()
        self.cobrowse = (
            CobrowseRelay(spec.policy, on_active=self._on_active) if spec.kind == "cobrowse" else None
        )
        self.recorder: Recorder | None = None
        if spec.record and config.recordings_dir and spec.kind in RECORDABLE_KINDS:
            self.recorder = Recorder(config.recordings_dir, spec.request_id)
        self._background = background if background is not None else set()
        """Work that outlives the session (finishing its recording); the gateway waits for it."""

    @property
    def request_id(self) -> str:
        return self.spec.request_id

    @property
    def kind(self) -> str:
        return self.spec.kind

    # -- calls from the gateway ------------------------------------------------------------------------

    async def offer(self, participant: Participant, sdp: str) -> str:
        """Apply ``participant``'s offer (creating their peer on the first one, replacing it when the
        offer comes from a new client peer connection: other ICE credentials); returns the answer."""
        self._check_open()
        peer = self.peers.get(participant.key)
        if peer is not None and not peer.closed and peer.is_new_connection(sdp):
            # A new RTCPeerConnection on the client (page reload, reconnect): it replaces the old peer;
            # the participant stays in the session.
            del self.peers[participant.key]
            if self.cobrowse is not None:
                self.cobrowse.remove(participant)
            await peer.close()
            self._route()
            peer = None
        created = peer is None or peer.closed
        if created:
            self._back(participant.key)
            peer = Peer(participant, self.config, self, send_on_client_transceivers=self.kind != "conference")
            self.peers[participant.key] = peer
        assert peer is not None
        try:
            answer = await peer.accept_offer(sdp)
        except BaseException:
            if created and self.peers.get(participant.key) is peer:
                del self.peers[participant.key]
                try:  # aiortc may fail to close a half-negotiated peer: keep the first error
                    await peer.close()
                except Exception:
                    log.debug("closing a refused peer failed", exc_info=True)
            raise
        return answer

    async def answer(self, participant: Participant, sdp: str) -> None:
        """Apply ``participant``'s answer to the server's offer."""
        self._check_open()
        peer = self.peers.get(participant.key)
        if peer is None:
            raise NotFound("no peer for this participant in the session")
        await peer.accept_answer(sdp)

    async def leave(self, participant: Participant) -> None:
        """Close ``participant``'s peer; reports ``participant_left`` (and ``closed`` if it ends)."""
        if self.closed:
            return
        if participant.key in self.away and participant.key not in self.peers:
            self._back(participant.key, rejoining=False)
            await self._gone(participant, "left", closing_reason="ended")
            return
        peer = self.peers.get(participant.key)
        if peer is None:
            return
        await self._depart(peer, "left", closing_reason="ended")

    async def close(self, reason: str) -> None:
        """Report ``closed`` and close every peer (idempotent; every caller waits for the teardown)."""
        if self._teardown is None:
            self.closed = True
            self.close_reason = reason
            self._report(MediaEvent("closed", self.request_id, reason=reason))
            self._teardown = asyncio.ensure_future(self._close_all())
        await asyncio.shield(self._teardown)

    async def _close_all(self) -> None:
        self.away.clear()
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        peers = list(self.peers.values())
        self.peers.clear()
        if self.cobrowse is not None:
            self.cobrowse.close()
        await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
        await asyncio.gather(*pending, return_exceptions=True)
        if self.recorder is not None:
            task = asyncio.ensure_future(self._finish_recording(self.recorder))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _finish_recording(self, recorder: Recorder) -> None:
        """Close and merge the recording (in its thread), then report ``recording``."""
        try:
            result = await recorder.finish()
        except Exception:
            log.exception("the recording of %s failed", self.request_id)
            return
        if result is None:
            return
        data: dict[str, Any] = {
            "file": result.path.name,
            "size": result.size,
            "duration_s": result.duration_s,
            "tracks": [{"publisher": owner, "kind": kind} for owner, kind in result.tracks],
        }
        self._report(MediaEvent("recording", self.request_id, data=data))

    def _check_open(self) -> None:
        if self.closed:
            raise NotFound("the media session is closed")

    # -- departures ----------------------------------------------------------------------------------------

    async def _depart(self, peer: Peer, reason: str, closing_reason: str) -> None:
        if self.peers.get(peer.participant.key) is not peer:
            return
        del self.peers[peer.participant.key]
        if self.cobrowse is not None:
            self.cobrowse.remove(peer.participant)
        await peer.close()
        if reason == "peer_dropped" and self._may_rejoin(peer.participant):
            self._report(MediaEvent("reconnecting", self.request_id, peer.participant, reason=reason))
            task = asyncio.ensure_future(self._grace(peer.participant, closing_reason))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self.away[peer.participant.key] = (peer.participant, task)
            self._route()
            return
        await self._gone(peer.participant, reason, closing_reason)

    async def _gone(self, participant: Participant, reason: str, closing_reason: str) -> None:
        self._report(MediaEvent("participant_left", self.request_id, participant, reason=reason))
        if self._should_end():
            await self.close("empty" if self.kind == "conference" else closing_reason)
        else:
            self._route()

    def _may_rejoin(self, participant: Participant) -> bool:
        """Whether ``participant``'s place is kept for the grace: in a 1:1 call, anyone's; in co-browsing,
        an agent's (a reloaded console comes back to the page; the customer's page is the session)."""
        kind_ok = self.kind in REJOIN_KINDS or (self.kind == "cobrowse" and participant.kind == "agent")
        return not self.closed and kind_ok and self.config.rejoin_grace > 0

    async def _grace(self, participant: Participant, closing_reason: str) -> None:
        """Wait for ``participant`` to offer again; past the grace they are gone."""
        await asyncio.sleep(self.config.rejoin_grace)
        entry = self.away.get(participant.key)
        if entry is None or entry[1] is not asyncio.current_task() or self.closed:
            return
        del self.away[participant.key]
        await self._gone(participant, "peer_dropped", closing_reason)

    def _back(self, key: str, rejoining: bool = True) -> None:
        """An away participant offers again (or leaves): their grace ends without a departure."""
        entry = self.away.pop(key, None)
        if entry is not None:
            if rejoining:
                self._rejoining.add(key)
            entry[1].cancel()

    def _should_end(self) -> bool:
        if self.kind == "conference":
            return not self.peers
        kinds = {p.participant.kind for p in self.peers.values()}
        kinds |= {participant.kind for participant, _ in self.away.values()}
        return "customer" not in kinds or not (kinds - {"customer"})

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- routing ------------------------------------------------------------------------------------------------

    def _sources(self) -> list[tuple[Peer, TrackSource]]:
        return [
            (peer, incoming.source)
            for peer in self.peers.values()
            if not peer.closed
            for incoming in peer.incoming
            if incoming.active and not incoming.source.closed
        ]

    def _route(self) -> None:
        """Attach every allowed source to a sender of every subscriber; release the rest."""
        if self.closed:
            return
        sources = self._sources()
        for sub in self.peers.values():
            if sub.closed:
                continue
            wanted = {
                src: pub
                for pub, src in sources
                if may_forward(self.kind, pub.participant, sub.participant, src.kind)
            }
            attached: dict[TrackSource, Slot] = {}
            for slot in sub.slots:
                src = slot.track.source
                if src is not None and (src not in wanted or not slot.usable):
                    slot.track.detach()
                    src = None
                if src is None:
                    if slot.dedicated and not slot.retired:
                        sub.retire_slot(slot)
                else:
                    attached[src] = slot
            for src, pub in wanted.items():
                if src in attached:
                    continue
                free = None if self.kind == "conference" else sub.free_slot(src.kind)
                if free is None:
                    if sub.negotiating:
                        continue  # routed again once its negotiation is done
                    free = sub.add_slot(src.kind, stream_id_for(pub.participant))
                free.track.attach(src)
        if self.recorder is not None:
            self.recorder.sync(
                [
                    (pub.participant.key, src)
                    for pub, src in sources
                    if may_record(self.kind, pub.participant, src.kind)
                ]
            )

    # -- PeerListener ----------------------------------------------------------------------------------------------

    def on_peer_changed(self, peer: Peer) -> None:
        self._route()

    def on_peer_connected(self, peer: Peer) -> None:
        if peer.participant.key in self._rejoining:
            self._rejoining.discard(peer.participant.key)
            self._report(MediaEvent("rejoined", self.request_id, peer.participant))
        self._report(MediaEvent("connected", self.request_id, peer.participant))

    def on_peer_gone(self, peer: Peer, reason: str) -> None:
        if not self.closed:
            self._spawn(self._depart(peer, reason, closing_reason=reason))

    def on_peer_datachannel(self, peer: Peer, channel: RTCDataChannel) -> None:
        if self.cobrowse is not None and channel.label == CHANNEL_LABEL:
            self.cobrowse.add(peer.participant, channel)
        else:
            log.info(
                "ignoring data channel %r of %s in a %s session",
                channel.label,
                peer.participant.key,
                self.kind,
            )

    def on_peer_offer(self, peer: Peer, sdp: str, streams: dict[str, str]) -> None:
        if not self.closed and not peer.closed:
            data: dict[str, Any] = {"sdp": sdp, "type": "offer", "streams": self._stream_names(streams)}
            self._report(MediaEvent("offer", self.request_id, peer.participant, data=data))

    def on_first_forward(self, peer: Peer) -> None:
        self._on_active()

    def _on_active(self) -> None:
        if not self._active_reported and not self.closed:
            self._active_reported = True
            self._report(MediaEvent("active", self.request_id))

    def _stream_names(self, streams: dict[str, str]) -> dict[str, dict[str, str]]:
        """Stream id -> who publishes it, for the client's display."""
        names: dict[str, dict[str, str]] = {}
        for stream_id in streams:
            for peer in self.peers.values():
                if stream_id_for(peer.participant) == stream_id:
                    p = peer.participant
                    names[stream_id] = {"kind": p.kind, "id": p.id, "name": p.name}
        return names
