"""The REST API, health, metrics, OpenAPI and the static web pages."""

from __future__ import annotations

from aiohttp import web


def setup_http(app: web.Application) -> None:
    """Register every HTTP route and middleware on ``app``."""
    from rtc_server.http import core

    core.setup(app)
    try:
        from rtc_server.http import routes  # type: ignore[attr-defined,unused-ignore]  # the rest of the REST API, pages and OpenAPI
    except ImportError:  # pragma: no cover - only while the module is being written
        return
    routes.setup(app)
