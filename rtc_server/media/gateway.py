"""``AiortcMediaGateway``: the media plane behind the ``MediaGateway`` port.

One :class:`~rtc_server.media.session.Session` per accepted request, one aiortc peer connection per
participant per session, encoded media forwarded between them (:mod:`rtc_server.media.forwarding`),
co-browse data channels relayed (:mod:`rtc_server.media.cobrowse`). Media events reach the sink in the
order they happened, through one queue drained by one task, so a slow sink never stalls media work.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rtc_server.media.peer import PeerConfig
from rtc_server.media.session import Session
from signaling.domain.errors import Invalid, NotFound
from signaling.services.ports import MediaEvent, MediaEventSink, Participant, SessionSpec

log = logging.getLogger(__name__)


class _EventPump:
    """Delivers media events to the sink in order, from one task."""

    def __init__(self) -> None:
        self.sink: MediaEventSink | None = None
        self._queue: asyncio.Queue[MediaEvent] | None = None
        self._task: asyncio.Task[None] | None = None

    def put(self, event: MediaEvent) -> None:
        if self.sink is None:
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run(self._queue))
        self._queue.put_nowait(event)

    async def _run(self, queue: asyncio.Queue[MediaEvent]) -> None:
        while True:
            event = await queue.get()
            try:
                if self.sink is not None:
                    await self.sink(event)
            except Exception:
                log.exception("media event sink failed on %s", event.type)
            finally:
                queue.task_done()

    async def close(self) -> None:
        """Deliver what is queued, then stop."""
        if self._queue is not None and self._task is not None and not self._task.done():
            await self._queue.join()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


class AiortcMediaGateway:
    """The aiortc media plane (implements ``signaling.services.ports.MediaGateway``).

    :param host_addresses: addresses the server's peers offer host candidates on (for example
        ``["127.0.0.1"]`` on a loopback-only machine, or the node's public address); ``None``: every
        interface aioice finds (which never includes loopback).
    :param ice_servers: STUN/TURN servers for browsers, as ``RTCConfiguration.iceServers`` entries
        (``{"urls": ..., "username"?: ..., "credential"?: ...}``); returned by :meth:`ice_servers`.
        The server's own peers use none: they are reachable on their host candidates.
    :param rejoin_grace: seconds a 1:1 session keeps the place of a participant whose peer dropped
        (``reconnecting`` event) for them to offer again (see :mod:`rtc_server.media.session`).
    :param recordings_dir: where sessions opened with ``record`` write their recording
        (:mod:`rtc_server.media.recording`); ``None``: nothing is recorded.
    """

    def __init__(
        self,
        host_addresses: list[str] | None = None,
        ice_servers: list[dict[str, Any]] | None = None,
        *,
        pli_interval: float = 0.5,
        rejoin_grace: float = 20.0,
        recordings_dir: str | None = None,
    ) -> None:
        self._ice_servers = [dict(entry) for entry in ice_servers or []]
        for entry in self._ice_servers:
            if "urls" not in entry:
                raise ValueError(f"ICE server entry without urls: {entry!r}")
        self.config = PeerConfig(
            host_addresses=tuple(host_addresses) if host_addresses else None,
            pli_interval=pli_interval,
            rejoin_grace=rejoin_grace,
            recordings_dir=recordings_dir,
        )
        self._background: set[asyncio.Task[Any]] = set()
        self._sessions: dict[str, Session] = {}
        self._events = _EventPump()
        self._closed = False

    @property
    def sessions(self) -> dict[str, Session]:
        """Open sessions by request id (read-only use: tests, metrics)."""
        return self._sessions

    def set_event_sink(self, sink: MediaEventSink) -> None:
        """Where :class:`MediaEvent` values go."""
        self._events.sink = sink

    def ice_servers(self) -> list[dict[str, Any]]:
        """The STUN/TURN servers browsers should use."""
        return [dict(entry) for entry in self._ice_servers]

    async def open_session(self, spec: SessionSpec) -> None:
        """Prepare the session of an accepted request (idempotent)."""
        if self._closed:
            raise NotFound("the media plane is shut down")
        current = self._sessions.get(spec.request_id)
        if current is not None and not current.closed:
            return
        self._sessions[spec.request_id] = Session(spec, self.config, self._report, self._background)

    async def offer(self, request_id: str, participant: Participant, sdp: str, type: str) -> dict[str, str]:
        """Apply a client's offer; returns ``{sdp, type: "answer"}``."""
        if type != "offer":
            raise Invalid("type must be offer", field="type")
        answer = await self._session(request_id).offer(participant, sdp)
        return {"sdp": answer, "type": "answer"}

    async def answer(self, request_id: str, participant: Participant, sdp: str, type: str) -> None:
        """Apply a client's answer to the server's offer (the ``offer`` media event)."""
        if type != "answer":
            raise Invalid("type must be answer", field="type")
        await self._session(request_id).answer(participant, sdp)

    async def leave(self, request_id: str, participant: Participant) -> None:
        """Close one participant's peer (a conference goes on while others remain)."""
        session = self._sessions.get(request_id)
        if session is not None:
            await session.leave(participant)

    async def close_session(self, request_id: str, reason: str) -> None:
        """Close every peer of the session and report ``closed`` (idempotent)."""
        session = self._sessions.get(request_id)
        if session is not None:
            await session.close(reason)

    async def shutdown(self) -> None:
        """Close every session (reason ``shutdown``) and deliver the last events."""
        self._closed = True
        sessions = list(self._sessions.values())
        await asyncio.gather(*(s.close("shutdown") for s in sessions), return_exceptions=True)
        self._sessions.clear()
        await asyncio.gather(*list(self._background), return_exceptions=True)  # recordings being finished
        await self._events.close()

    def _session(self, request_id: str) -> Session:
        session = self._sessions.get(request_id)
        if session is None or session.closed:
            raise NotFound("no media session for this request")
        return session

    def _report(self, event: MediaEvent) -> None:
        if event.type == "closed":
            session = self._sessions.get(event.request_id)
            if session is not None and session.closed:
                del self._sessions[event.request_id]
        self._events.put(event)
