"""Cross-origin access for what the widget calls from other sites: visitor creation, uploads and
downloads, the customer's profile, conversation history and transcript, and the OpenAPI document.

The origin is echoed in ``Access-Control-Allow-Origin`` when ``config.allowed_origins`` is empty or lists
it. Authentication is a bearer token, never a cookie, so credentials are not allowed (no
``Access-Control-Allow-Credentials``). Preflights (``OPTIONS`` with ``Access-Control-Request-Method``)
are answered here, before routing would refuse the method.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from rtc_server.app import SERVICES
from rtc_server.http.core import error_response
from signaling.domain.errors import Forbidden

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Paths open to other origins.
CORS_PATHS = re.compile(
    r"^/api/(visitors|me|openapi\.json|uploads(/[^/]+(/thumbnail)?)?|conversations/[^/]+(/transcript)?)$"
)
ALLOW_METHODS = "GET, HEAD, POST, PATCH, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, Range, If-Range, If-None-Match, If-Modified-Since"
EXPOSE_HEADERS = "Content-Disposition, Content-Range, Accept-Ranges, Content-Length, ETag, Last-Modified"
MAX_AGE_S = "600"


def _applies(request: web.Request) -> str | None:
    """The request's ``Origin`` if the path is open to other origins and the origin is allowed."""
    origin = request.headers.get("Origin")
    if not origin or not CORS_PATHS.match(request.path):
        return None
    if not request.app[SERVICES].origin_allowed(origin):
        return None
    return origin


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer CORS preflights of the open paths."""
    if (
        request.method == "OPTIONS"
        and "Access-Control-Request-Method" in request.headers
        and CORS_PATHS.match(request.path)
        and request.headers.get("Origin")
    ):
        origin = _applies(request)
        if origin is None:
            return error_response(Forbidden("origin not allowed"))
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": MAX_AGE_S,
                "Vary": "Origin",
            },
        )
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the CORS headers of every answer on an open path, errors included."""
    if "Access-Control-Allow-Origin" in response.headers:
        return
    origin = _applies(request)
    if origin is None:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    vary = response.headers.get("Vary")
    response.headers["Vary"] = (
        f"{vary}, Origin" if vary and "origin" not in vary.lower() else (vary or "Origin")
    )


def setup(app: web.Application) -> None:
    """Install the preflight middleware and the response hook."""
    app.middlewares.append(cors_middleware)
    app.on_response_prepare.append(add_cors_headers)
