"""Agents, teams and the caller's own profile.

Every agent may read the directory (``GET``); only admins create or change agents and teams. An agent
changes their own locale, name and password through ``PATCH /api/me``; a password change revokes every
token issued before (``services.auth.change_password``) and closes the sockets opened with them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from rtc_server.app import SERVICES
from rtc_server.http import sockets
from rtc_server.http import validate as v
from rtc_server.http.core import principal, read_json, require_admin
from signaling.domain.auth import hash_password, verify_password
from signaling.domain.errors import Conflict, Forbidden, Invalid, NotFound
from signaling.domain.models import ROUTING_MODES, Agent, Team, new_id
from signaling.services.container import Services
from signaling.services.principal import Principal

PASSWORD_MIN = 4
PASSWORD_MAX = 1000
MAX_TEAMS_PER_AGENT = 50
AGENT_FIELDS = {"email", "name", "password", "team_ids", "is_admin", "capacity", "locale"}


async def _agent_reader(request: web.Request) -> Principal:
    return await principal(request, "agent")


def _password(body: dict[str, Any], key: str = "password", *, required: bool = False) -> Any:
    value = v.text(body, key, required=required, max_len=PASSWORD_MAX, strip=False)
    if value is not None and len(value) < PASSWORD_MIN:
        raise Invalid(f"{key} must have at least {PASSWORD_MIN} characters", field=key)
    return value


async def _team_ids(services: Services, body: dict[str, Any]) -> list[str] | None:
    ids = v.string_list(body, "team_ids", max_items=MAX_TEAMS_PER_AGENT, max_len=200)
    if ids is None:
        return None
    for team_id in ids:
        if await services.store.get_team(team_id) is None:
            raise NotFound(f"no such team {team_id[:60]!r}", field="team_ids")
    return ids


async def _agent_wire(services: Services, agent: Agent) -> dict[str, Any]:
    wire = agent.to_wire()
    online = agent.id in await services.store.presence_online()
    wire["status"] = services.presence.effective(agent, online)
    return wire


async def _agent(services: Services, agent_id: str) -> Agent:
    agent = await services.store.get_agent(agent_id)
    if agent is None:
        raise NotFound("no such agent")
    return agent


# -- agents ---------------------------------------------------------------------------------------------


async def list_agents(request: web.Request) -> web.Response:
    """``GET /api/agents[?team_id=]``: every agent with their live presence."""
    await _agent_reader(request)
    services = request.app[SERVICES]
    agents = await services.presence.list_agents()
    team_id = request.query.get("team_id")
    if team_id:
        agents = [a for a in agents if team_id in a["team_ids"]]
    return web.json_response({"agents": agents})


async def get_agent(request: web.Request) -> web.Response:
    """``GET /api/agents/{id}``."""
    await _agent_reader(request)
    services = request.app[SERVICES]
    agent = await _agent(services, request.match_info["id"])
    return web.json_response({"agent": await _agent_wire(services, agent)})


async def create_agent(request: web.Request) -> web.Response:
    """``POST /api/agents`` (admin): ``{email, name, password, team_ids?, is_admin?, capacity?, locale?}``."""
    await require_admin(request)
    services = request.app[SERVICES]
    body = await read_json(request)
    v.only(body, AGENT_FIELDS)
    email = v.email(body, required=True)
    password = _password(body, required=True)
    agent = Agent(
        id=new_id("ag"),
        email=email,
        name=v.text(body, "name", max_len=120) or email.split("@", 1)[0],
        password_hash=await asyncio.to_thread(hash_password, password),
        team_ids=await _team_ids(services, body) or [],
        is_admin=v.boolean(body, "is_admin", default=False),
        capacity=v.integer(body, "capacity", minimum=0, maximum=1000, default=5),
        locale=v.language(body, "locale", default="en"),
    )
    agent = await services.store.create_agent(agent)
    return web.json_response({"agent": await _agent_wire(services, agent)}, status=201)


async def update_agent(request: web.Request) -> web.Response:
    """``PATCH /api/agents/{id}`` (admin): any of the create fields; a new password revokes the agent's
    tokens and closes their sockets."""
    admin = await require_admin(request)
    services = request.app[SERVICES]
    body = await read_json(request)
    v.only(body, AGENT_FIELDS)
    agent = await _agent(services, request.match_info["id"])
    if (email := v.email(body)) is not None:
        if not email:
            raise Invalid("email must not be empty", field="email")
        agent.email = email
    if (name := v.text(body, "name", max_len=120)) is not None:
        if not name:
            raise Invalid("name must not be empty", field="name")
        agent.name = name
    if (team_ids := await _team_ids(services, body)) is not None:
        agent.team_ids = team_ids
    if (capacity := v.integer(body, "capacity", minimum=0, maximum=1000)) is not None:
        agent.capacity = capacity
    if locale := v.language(body, "locale"):
        agent.locale = locale
    is_admin = v.boolean(body, "is_admin")
    if is_admin is False and agent.is_admin:
        others = [a for a in await services.store.list_agents() if a.is_admin and a.id != agent.id]
        if not others:
            raise Conflict("this is the last admin; make someone else admin first", field="is_admin")
    if is_admin is not None:
        agent.is_admin = is_admin
    password = _password(body)
    out: dict[str, Any] = {}
    if password is not None:
        token, agent = await services.auth.change_password(agent, password)
        await sockets.revoke_agent_sockets(request.app, agent.id, "password_changed")
        if agent.id == admin.id:
            out["token"] = token
    else:
        agent = await services.store.update_agent(agent)
        await sockets.refresh_agent_sockets(request.app, agent)
    out["agent"] = await _agent_wire(services, agent)
    return web.json_response(out)


# -- the caller's own profile ----------------------------------------------------------------------------


async def update_me(request: web.Request) -> web.Response:
    """``PATCH /api/me``: an agent changes ``locale``, ``name`` or ``password`` (with
    ``current_password``; answers a fresh ``token``); a customer changes ``name``, ``email``, ``locale``."""
    who = await principal(request)
    services = request.app[SERVICES]
    body = await read_json(request)
    if who.visitor is not None:
        v.only(body, {"name", "email", "locale"})
        visitor = await services.store.get_visitor(who.visitor.id)
        if visitor is None:
            raise NotFound("no such visitor")
        if (name := v.text(body, "name", max_len=120)) is not None:
            visitor.name = name
        if (email := v.email(body)) is not None:
            visitor.email = email
        if (locale := v.language(body, "locale")) is not None:
            visitor.locale = locale
        visitor = await services.store.update_visitor(visitor)
        return web.json_response({"kind": "customer", "visitor": visitor.to_wire()})
    assert who.agent is not None
    v.only(body, {"name", "locale", "password", "current_password"})
    agent = await _agent(services, who.agent.id)
    if (name := v.text(body, "name", max_len=120)) is not None:
        if not name:
            raise Invalid("name must not be empty", field="name")
        agent.name = name
    if locale := v.language(body, "locale"):
        agent.locale = locale
    password = _password(body)
    out: dict[str, Any] = {"kind": "agent"}
    if password is not None:
        current = v.text(body, "current_password", max_len=PASSWORD_MAX, strip=False)
        ok = current is not None and await asyncio.to_thread(verify_password, current, agent.password_hash)
        if not ok:
            raise Forbidden("current_password is wrong", field="current_password")
        out["token"], agent = await services.auth.change_password(agent, password)
        await sockets.revoke_agent_sockets(request.app, agent.id, "password_changed")
    else:
        agent = await services.store.update_agent(agent)
        await sockets.refresh_agent_sockets(request.app, agent)
    out["agent"] = await _agent_wire(services, agent)
    return web.json_response(out)


# -- teams ----------------------------------------------------------------------------------------------


def _routing(body: dict[str, Any], default: str | None = None) -> Any:
    routing = v.text(body, "routing", max_len=10, default=default)
    if routing is not None and routing not in ROUTING_MODES:
        raise Invalid(f"routing must be one of {', '.join(ROUTING_MODES)}", field="routing")
    return routing


async def _team(services: Services, team_id: str) -> Team:
    team = await services.store.get_team(team_id)
    if team is None:
        raise NotFound("no such team")
    return team


async def _team_wire(services: Services, team: Team) -> dict[str, Any]:
    wire = team.to_wire()
    wire["agent_ids"] = [a.id for a in await services.store.list_agents(team.id)]
    return wire


async def list_teams(request: web.Request) -> web.Response:
    """``GET /api/teams``: oldest first (the first is the default team), with member ids."""
    await _agent_reader(request)
    services = request.app[SERVICES]
    teams = await services.store.list_teams()
    return web.json_response({"teams": [await _team_wire(services, t) for t in teams]})


async def get_team(request: web.Request) -> web.Response:
    """``GET /api/teams/{id}``."""
    await _agent_reader(request)
    services = request.app[SERVICES]
    team = await _team(services, request.match_info["id"])
    return web.json_response({"team": await _team_wire(services, team)})


async def create_team(request: web.Request) -> web.Response:
    """``POST /api/teams`` (admin): ``{name, routing?}``."""
    await require_admin(request)
    services = request.app[SERVICES]
    body = await read_json(request)
    v.only(body, {"name", "routing"})
    team = Team(
        id=new_id("tm"),
        name=v.text(body, "name", required=True, max_len=64),
        routing=_routing(body, "manual"),
    )
    team = await services.store.create_team(team)
    await sockets.team_created(request.app, team.id)
    return web.json_response({"team": await _team_wire(services, team)}, status=201)


async def update_team(request: web.Request) -> web.Response:
    """``PATCH /api/teams/{id}`` (admin): ``{name?, routing?}``; switching to ``auto`` assigns the
    team's queued conversations to free agents at once."""
    await require_admin(request)
    services = request.app[SERVICES]
    body = await read_json(request)
    v.only(body, {"name", "routing"})
    team = await _team(services, request.match_info["id"])
    if (name := v.text(body, "name", max_len=64)) is not None:
        if not name:
            raise Invalid("name must not be empty", field="name")
        team.name = name
    routing = _routing(body)
    became_auto = routing == "auto" and team.routing != "auto"
    if routing is not None:
        team.routing = routing
    team = await services.store.update_team(team)
    if became_auto:
        await services.conversations.drain_queue([team.id])
    return web.json_response({"team": await _team_wire(services, team)})


def setup(app: web.Application) -> None:
    """Register the directory routes."""
    app.router.add_get("/api/agents", list_agents)
    app.router.add_post("/api/agents", create_agent)
    app.router.add_get("/api/agents/{id}", get_agent)
    app.router.add_patch("/api/agents/{id}", update_agent)
    app.router.add_patch("/api/me", update_me)
    app.router.add_get("/api/teams", list_teams)
    app.router.add_post("/api/teams", create_team)
    app.router.add_get("/api/teams/{id}", get_team)
    app.router.add_patch("/api/teams/{id}", update_team)
