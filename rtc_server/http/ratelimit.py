"""Abuse limits on HTTP: Engine.IO handshakes (new Socket.IO connections), uploads, logins and visitor
creation, per client address; and the hub's own limits (events per connection, namespace connects per
address), which this module builds from the config and hands to both namespaces.

A refused call is ``429`` with ``{ok: false, error: {code: "rate_limited", message, details:
{retry_after_s}}}`` and a ``Retry-After`` header. Addresses in ``config.rate_limit_exempt`` (loopback by
default) are never limited; behind a reverse proxy listed in ``config.trusted_proxies`` the client is
the address its ``X-Forwarded-For`` names.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from aiohttp import web

from rtc_server.app import CONFIG
from rtc_server.config import Config
from rtc_server.http.core import error_response
from rtc_server.http.sockets import NAMESPACES, hub_namespace
from signaling.domain.errors import RateLimited
from signaling.services.ratelimit import AbuseLimits, LimitSettings, Rate

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LIMITS = web.AppKey("abuse_limits", AbuseLimits)

#: ``(method, path)`` -> the per-address limit it counts against.
LIMITED_ROUTES = {
    ("POST", "/api/uploads"): "uploads",
    ("POST", "/api/auth/login"): "logins",
    ("POST", "/api/visitors"): "visitors",
}
SOCKETIO_PATH = "/socket.io/"
#: What each limit refuses, for ``/metrics``: Socket.IO namespace ``connects``, Socket.IO ``events`` on a
#: connection, or ``http`` requests answered 429 (Engine.IO handshakes and the routes above).
REFUSAL_KINDS = {
    "connects": "connects",
    "events": "events",
    "handshakes": "http",
    **{limit: "http" for limit in LIMITED_ROUTES.values()},
}


def settings_from(config: Config) -> LimitSettings:
    """The limits ``config`` asks for."""
    return LimitSettings(
        events=Rate(config.rate_limit_events_per_s, config.rate_limit_events_burst),
        connects=Rate(config.rate_limit_connects_per_s, config.rate_limit_connects_burst),
        uploads=Rate(config.rate_limit_uploads_per_s, config.rate_limit_uploads_burst),
        logins=Rate(config.rate_limit_logins_per_s, config.rate_limit_logins_burst),
        visitors=Rate(config.rate_limit_visitors_per_s, config.rate_limit_visitors_burst),
        exempt=tuple(config.rate_limit_exempt),
        trusted_proxies=tuple(config.trusted_proxies),
    )


def limit_of(request: web.Request) -> str | None:
    """Which per-address limit ``request`` counts against, if any. A Socket.IO request without ``sid``
    opens a new Engine.IO session (a handshake); the requests of an open session are not counted."""
    if request.path == SOCKETIO_PATH:
        return "handshakes" if "sid" not in request.query else None
    return LIMITED_ROUTES.get((request.method, request.path))


def client_address(request: web.Request) -> str:
    """The caller's address (see :meth:`AbuseLimits.client_address`)."""
    return request.app[LIMITS].client_address(request.remote, request.headers.get("X-Forwarded-For"))


@web.middleware
async def ratelimit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a limited call over its address's budget with ``429 rate_limited``."""
    limit = limit_of(request)
    if limit is not None:
        limits = request.app[LIMITS]
        address = client_address(request)
        if not limits.allow(limit, address):
            retry = max(1, math.ceil(limits.retry_after(limit, address)))
            response = error_response(
                RateLimited(f"too many {limit} from this address; retry later", retry_after_s=retry)
            )
            response.headers["Retry-After"] = str(retry)
            return response
    return await handler(request)


def setup(app: web.Application) -> None:
    """Build the limits from the config, give them to the hub's namespaces, install the middleware."""
    limits = AbuseLimits(settings_from(app[CONFIG]))
    app[LIMITS] = limits
    for name in NAMESPACES:
        handler = hub_namespace(app, name)
        if handler is not None:
            handler.limits = limits
    app.middlewares.append(ratelimit_middleware)
