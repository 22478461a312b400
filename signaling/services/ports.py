"""Ports the services declare and ``rtc_server`` implements: the media plane.

The media plane knows nothing of conversations. The hub asks it to open a session for an accepted
request, passes SDP through it, and closes it; the plane reports back with :class:`MediaEvent` values
through the ``on_event`` callback it was given, which drive the request from ``accepted`` to ``active``
to ``ended``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Participant:
    """Who is at one end of a peer connection."""

    kind: str
    """``agent``, ``customer`` or ``guest`` (a conference participant who joined by link)."""
    id: str
    """Agent id, visitor id, or a guest id minted for the link."""
    name: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """What the hub asks the media plane to open for an accepted request."""

    request_id: str
    kind: str
    """Request kind: ``cobrowse``, ``call``, ``video``, ``desktop``, ``show_screen`` or ``conference``."""
    policy: dict[str, Any] = field(default_factory=dict)
    """Kind-specific settings, e.g. the co-browse masking policy."""
    record: bool = False
    """Record the forwarded media (the customer consented by accepting a ``record: true`` request)."""


@dataclass(frozen=True, slots=True)
class MediaEvent:
    """Something the media plane reports about a session.

    ``type`` is one of:

    - ``connected``: ``participant``'s peer connection reached ``connected``.
    - ``active``: media or co-browse data is flowing (first RTP / first full snapshot).
    - ``participant_left``: ``participant``'s peer closed or failed (``reason`` says why).
    - ``reconnecting``: ``participant``'s peer dropped in a 1:1 session; their place is kept for the
      rejoin grace (an offer from them then is ``rejoined``, else ``participant_left`` follows).
    - ``rejoined``: ``participant``'s new peer connected within the grace.
    - ``recording``: the recording of the session is finished (after ``closed``); ``data`` is
      ``{file, size, duration_s, tracks: [{publisher, kind}]}``.
    - ``closed``: the whole session ended (``reason``: ``peer_dropped``, ``ended``, ``shutdown`` ...).
    - ``offer``: the server renegotiates with ``participant``; ``data`` is ``{sdp, type: "offer"}`` to
      deliver as the server event ``rtc.offer``.
    """

    type: str
    request_id: str
    participant: Participant | None = None
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


MediaEventSink = Callable[[MediaEvent], Awaitable[None]]


class MediaGateway(Protocol):
    """The media plane as the hub sees it."""

    def set_event_sink(self, sink: MediaEventSink) -> None:
        """Where the plane sends :class:`MediaEvent` values (called once at start-up)."""

    async def open_session(self, spec: SessionSpec) -> None:
        """Prepare a session for an accepted request (idempotent)."""

    async def offer(self, request_id: str, participant: Participant, sdp: str, type: str) -> dict[str, str]:
        """Apply a client's offer; returns the server peer's ``{sdp, type: "answer"}``.
        Raises ``NotFound`` when no session is open for the request, ``Invalid`` for a bad SDP."""

    async def answer(self, request_id: str, participant: Participant, sdp: str, type: str) -> None:
        """Apply a client's answer to an offer the server sent (``MediaEvent`` ``offer``)."""

    async def leave(self, request_id: str, participant: Participant) -> None:
        """Close one participant's peer (conference: the room goes on while others remain)."""

    async def close_session(self, request_id: str, reason: str) -> None:
        """Close every peer of the session (idempotent); reports ``closed``."""

    def ice_servers(self) -> list[dict[str, Any]]:
        """The ICE servers (STUN/TURN) browsers should use, as ``RTCConfiguration.iceServers``."""


class NullMediaGateway:
    """A media plane that refuses every session: for deployments and tests without media."""

    def set_event_sink(self, sink: MediaEventSink) -> None:
        self._sink = sink

    async def open_session(self, spec: SessionSpec) -> None:
        return None

    async def offer(self, request_id: str, participant: Participant, sdp: str, type: str) -> dict[str, str]:
        from signaling.domain.errors import Unavailable

        raise Unavailable("no media plane on this server")

    async def answer(self, request_id: str, participant: Participant, sdp: str, type: str) -> None:
        from signaling.domain.errors import Unavailable

        raise Unavailable("no media plane on this server")

    async def leave(self, request_id: str, participant: Participant) -> None:
        return None

    async def close_session(self, request_id: str, reason: str) -> None:
        return None

    def ice_servers(self) -> list[dict[str, Any]]:
        return []
