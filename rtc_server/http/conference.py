"""Conference join links over REST (``signaling.services.conference``).

- ``POST /api/conference/{id}/links`` (an agent of the conversation): a signed, expiring link for
  external participants, ``{url, expires_at}``; the URL opens the join page ``/join/?t=<token>``.
- ``GET /api/conference/join?t=`` (the link is the credential): the room's state and who hosts it.
- ``POST /api/conference/join {t, name}``: a guest token for ``/customer`` (see docs/protocol.md,
  "Conference calls").
"""

from __future__ import annotations

from aiohttp import web

from rtc_server.app import SERVICES
from rtc_server.http.core import principal, read_json
from signaling.domain.errors import Invalid
from signaling.domain.models import iso
from signaling.services.conference import grant_to_wire

JOIN_PAGE = "/join/"


def _origin(request: web.Request) -> str:
    """Where the join page is served: the console's origin (the browser says it), else this request's."""
    origin = request.headers.get("Origin", "")
    if origin.startswith(("http://", "https://")) and "/" not in origin.split("://", 1)[1]:
        return origin
    return str(request.url.origin())


async def create_link(request: web.Request) -> web.Response:
    """``POST /api/conference/{id}/links {ttl_s?}`` -> 201 ``{url, token, expires_at}``."""
    who = await principal(request, "agent")
    body = await read_json(request) if request.can_read_body else {}
    ttl = body.get("ttl_s")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int)):
        raise Invalid("ttl_s must be an integer", field="ttl_s")
    token, expires = await request.app[SERVICES].conference.create_link(who, request.match_info["id"], ttl)
    url = f"{_origin(request)}{JOIN_PAGE}?t={token}"
    return web.json_response({"url": url, "token": token, "expires_at": iso(expires)}, status=201)


async def describe(request: web.Request) -> web.Response:
    """``GET /api/conference/join?t=<link token>`` -> ``{request: {id, kind, state}, host: {name}}``."""
    info = await request.app[SERVICES].conference.describe_link(request.query.get("t", ""))
    return web.json_response(info, headers={"Cache-Control": "no-store"})


async def join(request: web.Request) -> web.Response:
    """``POST /api/conference/join {t, name}`` -> ``{token, guest: {id, name}, request_id, expires_at}``."""
    body = await read_json(request)
    name = body.get("name")
    if not isinstance(name, str) or len(name) > 200:
        raise Invalid("name must be a string", field="name")
    grant = await request.app[SERVICES].conference.join(body.get("t"), name)
    return web.json_response(grant_to_wire(grant), headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    """Register the conference routes."""
    app.router.add_post("/api/conference/{id}/links", create_link)
    app.router.add_get("/api/conference/join", describe)
    app.router.add_post("/api/conference/join", join)
