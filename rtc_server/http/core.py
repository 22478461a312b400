"""Error envelope, caller authentication, login, visitors, health and readiness."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from signaling.domain.errors import DomainError, Invalid, Unauthorized
from signaling.services.principal import Principal

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(exc: DomainError) -> web.Response:
    return web.json_response({"ok": False, "error": exc.to_wire()}, status=exc.http_status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors into ``{ok: false, error: {code, message}}`` with the matching status."""
    try:
        return await handler(request)
    except DomainError as exc:
        return error_response(exc)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return web.json_response({"ok": False, "error": {"code": "internal", "message": "internal error"}},
                                 status=500)


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        raise Invalid("the body must be JSON") from None
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    return body


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query.get("token")


async def principal(request: web.Request, kind: str | None = None) -> Principal:
    """The caller named by ``Authorization: Bearer <token>`` (or ``?token=``); ``unauthorized`` if none."""
    from rtc_server.app import SERVICES

    token = bearer(request)
    if not token:
        raise Unauthorized("a bearer token is required")
    return await request.app[SERVICES].auth.authenticate(token, expected_kind=kind)


async def require_admin(request: web.Request) -> Principal:
    from signaling.domain.errors import Forbidden

    who = await principal(request, "agent")
    if who.agent is None or not who.agent.is_admin:
        raise Forbidden("admins only")
    return who


def _str(body: dict[str, Any], key: str, *, required: bool = False, max_len: int = 300) -> str:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise Invalid(f"{key} is required", field=key)
        return ""
    if not isinstance(value, str) or len(value) > max_len:
        raise Invalid(f"{key} must be a string of at most {max_len} characters", field=key)
    return value


async def login(request: web.Request) -> web.Response:
    from rtc_server.app import SERVICES

    body = await read_json(request)
    token, agent = await request.app[SERVICES].auth.login(
        _str(body, "email", required=True), _str(body, "password", required=True, max_len=1000))
    return web.json_response({"token": token, "agent": agent.to_wire()})


async def me(request: web.Request) -> web.Response:
    who = await principal(request)
    if who.agent is not None:
        return web.json_response({"kind": "agent", "agent": who.agent.to_wire()})
    assert who.visitor is not None
    return web.json_response({"kind": "customer", "visitor": who.visitor.to_wire()})


async def create_visitor(request: web.Request) -> web.Response:
    from rtc_server.app import SERVICES

    body = await read_json(request) if request.can_read_body else {}
    visitor, token = await request.app[SERVICES].auth.create_visitor(
        name=_str(body, "name", max_len=120),
        email=_str(body, "email", max_len=254),
        user_id=_str(body, "user_id", max_len=200),
        user_hash=_str(body, "user_hash", max_len=200),
        locale=_str(body, "locale", max_len=16),
    )
    return web.json_response({"visitor": visitor.to_wire(), "token": token}, status=201)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    from rtc_server.app import SIO, STORE

    checks: dict[str, bool] = {}
    try:
        checks["store"] = bool(await request.app[STORE].ping())
    except Exception:
        checks["store"] = False
    listener_healthy = getattr(request.app[SIO].manager, "listener_healthy", None)
    if listener_healthy is not None:  # several nodes: the Redis pub/sub listener must be subscribed and alive
        checks["pubsub"] = bool(listener_healthy())
    ready = all(checks.values())
    return web.json_response({"status": "ready" if ready else "not_ready", "checks": checks},
                             status=200 if ready else 503)


def setup(app: web.Application) -> None:
    app.middlewares.append(errors_middleware)
    app.router.add_post("/api/auth/login", login)
    app.router.add_get("/api/me", me)
    app.router.add_post("/api/visitors", create_visitor)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
