"""The OpenAPI 3.1 description of the REST API, served at ``GET /api/openapi.json``.

Written by hand next to the routes; ``tests/functional/test_http_openapi.py`` checks that every route
registered on the app (pages and ``/socket.io/`` aside) is described here.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rtc_server.http.openapi_schemas import SCHEMAS, ref
from rtc_server.http.ratelimit import LIMITED_ROUTES

Json = dict[str, Any]

ERRORS = {
    400: ("invalid", "The payload or a parameter is malformed (`invalid`)."),
    401: ("unauthorized", "No valid token (`unauthorized`)."),
    403: ("forbidden", "The caller may not do this (`forbidden`)."),
    404: ("not_found", "No such thing, or the caller may not know it exists (`not_found`)."),
    409: ("conflict", "The state changed or the value is taken (`conflict`)."),
    413: ("too_large", "Above a size cap (`too_large`)."),
    416: ("", "The requested byte range is outside the file (no body)."),
    429: (
        "rate_limited",
        "Too many calls of this kind from the caller's address (`rate_limited`); "
        "`details.retry_after_s` and the `Retry-After` header say when to try again.",
    ),
    503: ("unavailable", "A dependency cannot serve the call now."),
}
AGENT: list[Json] = [{"bearer": []}]
ANYONE: list[Json] = [{"bearer": []}]
MEDIA_AUTH: list[Json] = [{"bearer": []}, {"token_query": []}]
PUBLIC: list[Json] = []


def _json(schema: Json) -> Json:
    return {"application/json": {"schema": schema}}


def _obj(required: list[str] | None = None, **props: Json) -> Json:
    out: Json = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def _op(
    summary: str,
    tag: str,
    *,
    security: list[Json],
    ok: int = 200,
    result: Json | None = None,
    body: Json | None = None,
    params: list[Json] | None = None,
    errors: tuple[int, ...] = (),
    description: str = "",
    content: Json | None = None,
) -> Json:
    op: Json = {"summary": summary, "tags": [tag], "security": security}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(body)}
    responses: Json = {}
    if ok == 204:
        responses["204"] = {"description": "Done (no body)."}
    else:
        responses[str(ok)] = {
            "description": "Success.",
            "content": content if content is not None else _json(result or {"type": "object"}),
        }
    codes = set(errors)
    if security:
        codes.add(401)
    for code in sorted(codes):
        if code == 416:  # no body: the unsatisfiable range is in ``Content-Range: bytes */<size>``
            responses["416"] = {
                "description": ERRORS[code][1],
                "headers": {"Content-Range": {"schema": {"type": "string"}}},
            }
        elif code == 429:
            responses["429"] = _rate_limited()
        else:
            responses[str(code)] = {"description": ERRORS[code][1], "content": _json(ref("Error"))}
    op["responses"] = responses
    return op


def _rate_limited() -> Json:
    """The 429 answer of the rate-limit middleware (``rtc_server/http/ratelimit.py``)."""
    return {
        "description": ERRORS[429][1],
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before calling again.",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
        "content": _json(ref("RateLimitedError")),
    }


def _path_id(what: str) -> Json:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": f"The {what}'s id.",
        "schema": {"type": "string"},
    }


def _query(name: str, description: str, schema: Json | None = None, required: bool = False) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _crud(
    name: str, singular: str, schema: str, create: Json, update: Json, extra_list: list[Json], note: str
) -> dict[str, Json]:
    one = _obj([singular], **{singular: ref(schema)})
    many = _obj([name], **{name: {"type": "array", "items": ref(schema)}})
    tag = name
    return {
        f"/api/{name}": {
            "get": _op(
                f"List {name}",
                tag,
                security=AGENT,
                result=many,
                params=extra_list,
                description=f"Any agent. {note}",
            ),
            "post": _op(
                f"Create a {singular}",
                tag,
                security=AGENT,
                ok=201,
                result=one,
                body=create,
                errors=(400, 403, 404, 409),
                description="Admins only.",
            ),
        },
        f"/api/{name}/{{id}}": {
            "get": _op(
                f"One {singular}", tag, security=AGENT, result=one, params=[_path_id(singular)], errors=(404,)
            ),
            "patch": _op(
                f"Change a {singular}",
                tag,
                security=AGENT,
                result=one,
                body=update,
                params=[_path_id(singular)],
                errors=(400, 403, 404, 409),
                description="Admins only; only the fields given change.",
            ),
            "delete": _op(
                f"Delete a {singular}",
                tag,
                security=AGENT,
                ok=204,
                params=[_path_id(singular)],
                errors=(403, 404),
                description="Admins only.",
            ),
        },
    }


def _paths() -> dict[str, Json]:
    text_q = [_query("q", "Ranked search (shortcut, title, body; prefix and fuzzy).")]
    article_q = [
        _query("q", "Words that must all appear (title, summary or body)."),
        _query("language", "Preferred language of the results."),
    ]
    me_patch = {"oneOf": [ref("AgentSelfUpdate"), ref("VisitorUpdate")]}
    paths: dict[str, Json] = {
        "/api/auth/login": {
            "post": _op(
                "Agent login",
                "auth",
                security=PUBLIC,
                body=ref("LoginRequest"),
                errors=(400, 401),
                result=_obj(["token", "agent"], token={"type": "string"}, agent=ref("Agent")),
                description="Answers an agent token for `Authorization: Bearer` and the `/agent` namespace.",
            )
        },
        "/api/visitors": {
            "post": _op(
                "Create a visitor (customer identity)",
                "auth",
                security=PUBLIC,
                ok=201,
                body=ref("VisitorRequest"),
                errors=(400, 403),
                result=_obj(["visitor", "token"], visitor=ref("Visitor"), token={"type": "string"}),
                description="Open to other origins (CORS). With `user_id`, `user_hash` must be "
                "hex HMAC-SHA256(secret, user_id).",
            )
        },
        "/api/me": {
            "get": _op(
                "Who am I",
                "auth",
                security=ANYONE,
                result={
                    "oneOf": [
                        _obj(["kind", "agent"], kind={"const": "agent"}, agent=ref("Agent")),
                        _obj(["kind", "visitor"], kind={"const": "customer"}, visitor=ref("Visitor")),
                    ]
                },
            ),
            "patch": _op(
                "Change my profile",
                "auth",
                security=ANYONE,
                body=me_patch,
                errors=(400, 403, 409),
                result=_obj(
                    ["kind"],
                    kind={"type": "string"},
                    agent=ref("Agent"),
                    visitor=ref("Visitor"),
                    token={"type": "string"},
                ),
                description="An agent changes `name`, `locale` or `password` (with "
                "`current_password`): a password change revokes every earlier token, "
                "closes the agent's sockets after a `session.revoked` event, and answers "
                "a fresh `token`. A customer changes `name`, `email`, `locale`.",
            ),
        },
        "/api/uploads": {
            "post": {
                **_op(
                    "Upload an attachment",
                    "uploads",
                    security=ANYONE,
                    ok=201,
                    result=_obj(["attachment"], attachment=ref("Attachment")),
                    errors=(400, 404, 413),
                    description="A participant of the conversation (agent of its team or its customer). The "
                    "type is sniffed from the content (png, jpeg, gif, webp, mp4, webm, ogg, mp3, "
                    "wav, m4a, pdf, zip, plain text); anything else is stored as an "
                    "`application/octet-stream` download, and content that does not match a "
                    "claimed image/video/audio type is refused. Images get a thumbnail.",
                ),
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": ref("UploadForm")}},
                },
            }
        },
        "/api/uploads/{id}": {
            "get": _op(
                "Download an attachment",
                "uploads",
                security=MEDIA_AUTH,
                params=[_path_id("attachment")],
                errors=(404, 416),
                content={"*/*": {"schema": {"type": "string", "format": "binary"}}},
                description="Participants only (others: `not_found`). The token may be given as `?token=` for "
                "`<img src>`. Supports `Range` (206, 416); inline for media, attachment otherwise.",
            )
        },
        "/api/uploads/{id}/thumbnail": {
            "get": _op(
                "An image attachment's thumbnail",
                "uploads",
                security=MEDIA_AUTH,
                params=[_path_id("attachment")],
                errors=(404,),
                content={"image/*": {"schema": {"type": "string", "format": "binary"}}},
                description="At most 320 px a side.",
            )
        },
        "/api/agents": {
            "get": _op(
                "List agents",
                "directory",
                security=AGENT,
                params=[_query("team_id", "Only this team.")],
                result=_obj(["agents"], agents={"type": "array", "items": ref("Agent")}),
                description="Any agent; `status` is live presence.",
            ),
            "post": _op(
                "Create an agent",
                "directory",
                security=AGENT,
                ok=201,
                body=ref("AgentCreate"),
                result=_obj(["agent"], agent=ref("Agent")),
                errors=(400, 403, 404, 409),
                description="Admins only.",
            ),
        },
        "/api/agents/{id}": {
            "get": _op(
                "One agent",
                "directory",
                security=AGENT,
                params=[_path_id("agent")],
                result=_obj(["agent"], agent=ref("Agent")),
                errors=(404,),
            ),
            "patch": _op(
                "Change an agent",
                "directory",
                security=AGENT,
                params=[_path_id("agent")],
                body=ref("AgentUpdate"),
                errors=(400, 403, 404, 409),
                result=_obj(["agent"], agent=ref("Agent"), token={"type": "string"}),
                description="Admins only. A new `password` revokes the agent's tokens and closes "
                "their sockets; team changes apply to live sockets at once.",
            ),
        },
        "/api/teams": {
            "get": _op(
                "List teams",
                "directory",
                security=AGENT,
                result=_obj(["teams"], teams={"type": "array", "items": ref("Team")}),
                description="Oldest first; the first is the default team.",
            ),
            "post": _op(
                "Create a team",
                "directory",
                security=AGENT,
                ok=201,
                body=ref("TeamCreate"),
                result=_obj(["team"], team=ref("Team")),
                errors=(400, 403, 409),
                description="Admins only.",
            ),
        },
        "/api/teams/{id}": {
            "get": _op(
                "One team",
                "directory",
                security=AGENT,
                params=[_path_id("team")],
                result=_obj(["team"], team=ref("Team")),
                errors=(404,),
            ),
            "patch": _op(
                "Change a team",
                "directory",
                security=AGENT,
                params=[_path_id("team")],
                body=ref("TeamUpdate"),
                result=_obj(["team"], team=ref("Team")),
                errors=(400, 403, 404, 409),
                description="Admins only. Switching to `auto` assigns queued conversations.",
            ),
        },
        **_crud(
            "textblocks",
            "textblock",
            "TextBlock",
            ref("TextBlockCreate"),
            ref("TextBlockUpdate"),
            text_q,
            "Text blocks of a team are listed to its members and admins only.",
        ),
        **_crud("articles", "article", "Article", ref("ArticleCreate"), ref("ArticleUpdate"), article_q, ""),
        **_crud("flows", "flow", "Flow", ref("FlowCreate"), ref("FlowUpdate"), [], ""),
        "/api/conversations": {
            "get": _op(
                "List conversations",
                "conversations",
                security=ANYONE,
                errors=(400,),
                params=[
                    _query(
                        "section", "Agents: which list.", {"enum": ["unassigned", "mine", "team", "done"]}
                    ),
                    _query("cursor", "The `cursor` of the previous page."),
                ],
                result=_obj(
                    ["conversations", "cursor"],
                    conversations={"type": "array", "items": ref("Conversation")},
                    cursor={"type": ["string", "null"]},
                ),
                description="Agents: a section, newest activity first. Customers: their own conversations.",
            )
        },
        "/api/conversations/search": {
            "get": _op(
                "Search conversations",
                "conversations",
                security=AGENT,
                errors=(400, 403),
                params=[_query("q", "At least 2 characters.", required=True)],
                result=_obj(["conversations"], conversations={"type": "array", "items": ref("Conversation")}),
                description="Agents: visitor name or email, message and note text, in the caller's teams.",
            )
        },
        "/api/conversations/{id}": {
            "get": _op(
                "A conversation with its messages",
                "conversations",
                security=ANYONE,
                errors=(400, 404),
                params=[
                    _path_id("conversation"),
                    _query("after_seq", "Only messages after this seq.", {"type": "integer", "minimum": 0}),
                ],
                result=ref("Sync"),
                description="Like the `conversation.sync` event (customers never get notes).",
            )
        },
        "/api/conversations/{id}/transcript": {
            "get": _op(
                "Transcript export",
                "conversations",
                security=MEDIA_AUTH,
                errors=(400, 404),
                params=[
                    _path_id("conversation"),
                    _query("format", "json (default) or text.", {"enum": ["json", "text"]}),
                    _query("download", "1: sent as a file download.", {"enum": ["1", "true"]}),
                ],
                content={
                    "application/json": {"schema": ref("Transcript")},
                    "text/plain": {"schema": {"type": "string"}},
                },
                description="Agents of the team get every message, notes included; the conversation's customer "
                "gets a version without notes; anyone else `not_found`.",
            )
        },
        "/api/requests/{id}/recording": {
            "get": _op(
                "Download a call's recording",
                "recordings",
                security=MEDIA_AUTH,
                errors=(404,),
                params=[_path_id("request")],
                content={"video/webm": {"schema": {"type": "string", "format": "binary"}}},
                description="The WebM file (VP8 video and Opus audio of every publisher, one stream per "
                "track, as forwarded: never re-encoded) of a request created with `record: true`, once the "
                "call ended and the file is finished. Agents who may see the conversation only; a customer, "
                "anyone else, a request that was not recorded, or a file not finished yet: `not_found`.",
            )
        },
        "/api/conference/{id}/links": {
            "post": _op(
                "Create a conference join link",
                "conference",
                security=AGENT,
                ok=201,
                errors=(400, 403, 404, 409),
                params=[_path_id("conference request")],
                body=_obj(ttl_s={"type": "integer", "minimum": 60, "description": "Lifetime (default 2 h)."}),
                result=_obj(
                    ["url", "token", "expires_at"],
                    url={"type": "string", "description": "The join page, `/join/?t=<token>`."},
                    token={"type": "string"},
                    expires_at={"type": "string", "format": "date-time"},
                ),
                description="An agent of the conversation; the request must be a live `conference`. Anyone "
                "with the link may join as a guest until it expires (or the conference ends).",
            )
        },
        "/api/conference/join": {
            "get": _op(
                "What a join link leads to",
                "conference",
                security=PUBLIC,
                errors=(401, 404),
                params=[_query("t", "The link token.", required=True)],
                result=_obj(
                    ["request", "host"],
                    request=_obj(
                        ["id", "kind", "state"],
                        id={"type": "string"},
                        kind={"type": "string"},
                        state={"type": "string"},
                    ),
                    host=_obj(["name"], name={"type": "string"}),
                ),
                description="The link token is the credential (401 when expired or forged).",
            ),
            "post": _op(
                "Join a conference as a guest",
                "conference",
                security=PUBLIC,
                errors=(400, 401, 404, 409),
                body=_obj(["t", "name"], t={"type": "string"}, name={"type": "string", "maxLength": 80}),
                result=_obj(
                    ["token", "guest", "request_id", "expires_at"],
                    token={"type": "string", "description": "A guest token for `/customer`."},
                    guest=_obj(["id", "name"], id={"type": "string"}, name={"type": "string"}),
                    request_id={"type": "string"},
                    expires_at={"type": "string", "format": "date-time"},
                ),
                description="Exchanges a link token for a guest token; connect to `/customer` with it and "
                "call `rtc.offer` for `request_id` (409 while the conference has not started or after "
                "it ended).",
            ),
        },
        "/api/openapi.json": {
            "get": _op(
                "This document",
                "meta",
                security=PUBLIC,
                result={"type": "object", "description": "OpenAPI 3.1."},
            )
        },
        "/healthz": {
            "get": _op("Liveness", "meta", security=PUBLIC, result=_obj(["status"], status={"const": "ok"}))
        },
        "/readyz": {
            "get": _op(
                "Readiness (the store answers)",
                "meta",
                security=PUBLIC,
                errors=(503,),
                result=_obj(
                    ["status", "checks"],
                    status={"enum": ["ready", "not_ready"]},
                    checks={"type": "object", "additionalProperties": {"type": "boolean"}},
                ),
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                "meta",
                security=PUBLIC,
                content={"text/plain": {"schema": {"type": "string"}}},
                description="Text exposition format 0.0.4: sockets per namespace, hub events and errors, HTTP "
                "requests and latency per route, calls refused by the abuse limits "
                "(`rtc_rate_limited_total` by `kind`: `connects`, `events`, `http`), store health, uptime, "
                "resident memory.",
            )
        },
    }
    for method, path in LIMITED_ROUTES:  # the rate-limit middleware may answer 429 on these
        op = paths[path][method.lower()]
        op["responses"] = dict(sorted({**op["responses"], "429": _rate_limited()}.items()))
    return paths


def build_document(server_url: str | None = None) -> Json:
    """The whole OpenAPI 3.1 document."""
    doc: Json = {
        "openapi": "3.1.0",
        "info": {
            "title": "rtc-engage REST API",
            "version": "0.1.0",
            "description": (
                "REST side of the customer-engagement server. Real-time traffic (chat, requests, WebRTC "
                "signalling) goes over Socket.IO namespaces `/agent` and `/customer`, described in "
                "docs/protocol.md. Every error is `{ok: false, error: {code, message}}` with a stable `code`."
            ),
        },
        "tags": [
            {"name": n}
            for n in (
                "auth",
                "uploads",
                "directory",
                "textblocks",
                "articles",
                "flows",
                "conversations",
                "conference",
                "recordings",
                "meta",
            )
        ],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An agent token (`POST /api/auth/login`) or a customer token "
                    "(`POST /api/visitors`).",
                },
                "token_query": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "The same token in the URL, for `<img src>` and `<video src>`.",
                },
            },
        },
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


async def openapi(request: web.Request) -> web.Response:
    """``GET /api/openapi.json``."""
    return web.json_response(build_document(), headers={"Cache-Control": "no-cache"})


def setup(app: web.Application) -> None:
    """Register the document's route."""
    app.router.add_get("/api/openapi.json", openapi)
