"""Everything HTTP beyond ``core``: uploads, the admin directory and catalog, conversations and
transcripts, metrics, the OpenAPI document, CORS for the widget, and the built web pages (last, since
they end with a catch-all)."""

from __future__ import annotations

from aiohttp import web

from rtc_server.http import (
    admin,
    catalog,
    cors,
    metrics,
    openapi,
    pages,
    ratelimit,
    recordings,
    transcripts,
    uploads,
)
from rtc_server.http import conference as conference_routes


async def _api_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: API answers are never sniffed into another type."""
    if request.path.startswith("/api/") and "X-Content-Type-Options" not in response.headers:
        response.headers["X-Content-Type-Options"] = "nosniff"


def setup(app: web.Application) -> None:
    """Register the routes, middlewares and hooks of this package (after ``core.setup``)."""
    metrics.setup(app)
    cors.setup(app)
    ratelimit.setup(app)
    app.on_response_prepare.append(_api_headers)
    uploads.setup(app)
    admin.setup(app)
    catalog.setup(app)
    transcripts.setup(app)
    conference_routes.setup(app)
    recordings.setup(app)
    openapi.setup(app)
    pages.setup(app)
