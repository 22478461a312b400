"""The Socket.IO sockets connected to this node, as the HTTP layer needs them: counts for ``/metrics``,
and keeping an agent's live sockets in step after an admin edits the agent (rooms, revocation)."""

from __future__ import annotations

import logging

from aiohttp import web

from rtc_server.app import SERVICES, SIO
from signaling.domain.models import Agent
from signaling.hub.namespaces import HubNamespace

log = logging.getLogger(__name__)

NAMESPACES = ("/agent", "/customer")


def hub_namespace(app: web.Application, name: str) -> HubNamespace | None:
    """The hub's namespace handler ``name`` on this node, if registered."""
    handler = app[SIO].namespace_handlers.get(name)
    return handler if isinstance(handler, HubNamespace) else None


def parser_counts(app: web.Application) -> dict[str, int]:
    """Engine.IO sessions on this node by Socket.IO parser (a session counts as JSON until its first packet
    says otherwise)."""
    sio = app[SIO]
    msgpack = len(getattr(sio, "msgpack_sessions", ()))
    return {"json": max(0, len(sio.eio.sockets) - msgpack), "msgpack": msgpack}


def connected_counts(app: web.Application) -> dict[str, int]:
    """Authenticated sockets per namespace on this node."""
    counts: dict[str, int] = {}
    for name in NAMESPACES:
        handler = hub_namespace(app, name)
        counts[name] = len(handler.principals) if handler is not None else 0
    return counts


def _agent_sids(app: web.Application, agent_id: str) -> list[str]:
    handler = hub_namespace(app, "/agent")
    if handler is None:
        return []
    return [
        sid
        for sid, who in list(handler.principals.items())
        if who.agent is not None and who.agent.id == agent_id
    ]


async def revoke_agent_sockets(app: web.Application, agent_id: str, reason: str) -> int:
    """Tell the agent's sockets on this node ``session.revoked`` and disconnect them (their token is
    no longer valid: they must log in again). Returns how many were closed."""
    sio = app[SIO]
    sids = _agent_sids(app, agent_id)
    for sid in sids:
        try:
            await sio.emit("session.revoked", {"reason": reason}, to=sid, namespace="/agent")
            await sio.disconnect(sid, namespace="/agent")
        except Exception:  # a socket that vanished meanwhile is already what we want
            log.debug("could not disconnect %s", sid, exc_info=True)
    return len(sids)


async def refresh_agent_sockets(app: web.Application, agent: Agent) -> None:
    """Give the agent's live sockets on this node the updated record and the team rooms it now
    belongs to (admins: every team), so that a membership change applies without reconnecting."""
    sio = app[SIO]
    handler = hub_namespace(app, "/agent")
    if handler is None:
        return
    if agent.is_admin:
        wanted = {f"team:{t.id}" for t in await app[SERVICES].store.list_teams()}
    else:
        wanted = {f"team:{t}" for t in agent.team_ids}
    for sid in _agent_sids(app, agent.id):
        who = handler.principals.get(sid)
        if who is None:
            continue
        who.agent = agent
        current = {room for room in sio.rooms(sid, namespace="/agent") if room.startswith("team:")}
        for room in sorted(wanted - current):
            await sio.enter_room(sid, room, namespace="/agent")
        for room in sorted(current - wanted):
            await sio.leave_room(sid, room, namespace="/agent")


async def team_created(app: web.Application, team_id: str) -> None:
    """Admins' live sockets join a new team's room (they see every team)."""
    sio = app[SIO]
    handler = hub_namespace(app, "/agent")
    if handler is None:
        return
    for sid, who in list(handler.principals.items()):
        if who.agent is not None and who.agent.is_admin:
            await sio.enter_room(sid, f"team:{team_id}", namespace="/agent")
