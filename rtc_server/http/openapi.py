"""The OpenAPI 3.1 description of the REST API, served at ``GET /api/openapi.json``.

Written by hand next to the routes; ``tests/functional/test_http_ops.py`` checks that every route
registered on the app (pages and ``/socket.io/`` aside) is described here.
"""

from __future__ import annotations

from aiohttp import web

from rtc_server.http.openapi_ops import (
    AGENT,
    ANYONE,
    MEDIA_AUTH,
    PUBLIC,
    Json,
    crud,
    obj,
    op,
    path_id,
    query,
    rate_limited,
)
from rtc_server.http.openapi_schemas import SCHEMAS, ref
from rtc_server.http.ratelimit import LIMITED_ROUTES


def _paths() -> dict[str, Json]:
    text_q = [query("q", "Ranked search (shortcut, title, body; prefix and fuzzy).")]
    article_q = [
        query("q", "Words that must all appear (title, summary or body)."),
        query("language", "Preferred language of the results."),
    ]
    me_patch = {"oneOf": [ref("AgentSelfUpdate"), ref("VisitorUpdate")]}
    paths: dict[str, Json] = {
        "/api/auth/login": {
            "post": op(
                "Agent login",
                "auth",
                security=PUBLIC,
                body=ref("LoginRequest"),
                errors=(400, 401),
                result=obj(["token", "agent"], token={"type": "string"}, agent=ref("Agent")),
                description="Answers an agent token for `Authorization: Bearer` and the `/agent` namespace.",
            )
        },
        "/api/visitors": {
            "post": op(
                "Create a visitor (customer identity)",
                "auth",
                security=PUBLIC,
                ok=201,
                body=ref("VisitorRequest"),
                errors=(400, 403),
                result=obj(["visitor", "token"], visitor=ref("Visitor"), token={"type": "string"}),
                description="Open to other origins (CORS). With `user_id`, `user_hash` must be "
                "hex HMAC-SHA256(secret, user_id).",
            )
        },
        "/api/me": {
            "get": op(
                "Who am I",
                "auth",
                security=ANYONE,
                result={
                    "oneOf": [
                        obj(["kind", "agent"], kind={"const": "agent"}, agent=ref("Agent")),
                        obj(["kind", "visitor"], kind={"const": "customer"}, visitor=ref("Visitor")),
                    ]
                },
            ),
            "patch": op(
                "Change my profile",
                "auth",
                security=ANYONE,
                body=me_patch,
                errors=(400, 403, 409),
                result=obj(
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
                **op(
                    "Upload an attachment",
                    "uploads",
                    security=ANYONE,
                    ok=201,
                    result=obj(["attachment"], attachment=ref("Attachment")),
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
            "get": op(
                "Download an attachment",
                "uploads",
                security=MEDIA_AUTH,
                params=[path_id("attachment")],
                errors=(404, 416),
                content={"*/*": {"schema": {"type": "string", "format": "binary"}}},
                description="Participants only (others: `not_found`). The token may be given as `?token=` for "
                "`<img src>`. Supports `Range` (206, 416); inline for media, attachment otherwise.",
            )
        },
        "/api/uploads/{id}/thumbnail": {
            "get": op(
                "An image attachment's thumbnail",
                "uploads",
                security=MEDIA_AUTH,
                params=[path_id("attachment")],
                errors=(404,),
                content={"image/*": {"schema": {"type": "string", "format": "binary"}}},
                description="At most 320 px a side.",
            )
        },
        "/api/agents": {
            "get": op(
                "List agents",
                "directory",
                security=AGENT,
                params=[query("team_id", "Only this team.")],
                result=obj(["agents"], agents={"type": "array", "items": ref("Agent")}),
                description="Any agent; `status` is live presence.",
            ),
            "post": op(
                "Create an agent",
                "directory",
                security=AGENT,
                ok=201,
                body=ref("AgentCreate"),
                result=obj(["agent"], agent=ref("Agent")),
                errors=(400, 403, 404, 409),
                description="Admins only.",
            ),
        },
        "/api/agents/{id}": {
            "get": op(
                "One agent",
                "directory",
                security=AGENT,
                params=[path_id("agent")],
                result=obj(["agent"], agent=ref("Agent")),
                errors=(404,),
            ),
            "patch": op(
                "Change an agent",
                "directory",
                security=AGENT,
                params=[path_id("agent")],
                body=ref("AgentUpdate"),
                errors=(400, 403, 404, 409),
                result=obj(["agent"], agent=ref("Agent"), token={"type": "string"}),
                description="Admins only. A new `password` revokes the agent's tokens and closes "
                "their sockets; team changes apply to live sockets at once.",
            ),
        },
        "/api/teams": {
            "get": op(
                "List teams",
                "directory",
                security=AGENT,
                result=obj(["teams"], teams={"type": "array", "items": ref("Team")}),
                description="Oldest first; the first is the default team.",
            ),
            "post": op(
                "Create a team",
                "directory",
                security=AGENT,
                ok=201,
                body=ref("TeamCreate"),
                result=obj(["team"], team=ref("Team")),
                errors=(400, 403, 409),
                description="Admins only.",
            ),
        },
        "/api/teams/{id}": {
            "get": op(
                "One team",
                "directory",
                security=AGENT,
                params=[path_id("team")],
                result=obj(["team"], team=ref("Team")),
                errors=(404,),
            ),
            "patch": op(
                "Change a team",
                "directory",
                security=AGENT,
                params=[path_id("team")],
                body=ref("TeamUpdate"),
                result=obj(["team"], team=ref("Team")),
                errors=(400, 403, 404, 409),
                description="Admins only. Switching to `auto` assigns queued conversations.",
            ),
        },
        **crud(
            "textblocks",
            "textblock",
            "TextBlock",
            ref("TextBlockCreate"),
            ref("TextBlockUpdate"),
            text_q,
            "Text blocks of a team are listed to its members and admins only.",
        ),
        **crud("articles", "article", "Article", ref("ArticleCreate"), ref("ArticleUpdate"), article_q, ""),
        **crud("flows", "flow", "Flow", ref("FlowCreate"), ref("FlowUpdate"), [], ""),
        "/api/conversations": {
            "get": op(
                "List conversations",
                "conversations",
                security=ANYONE,
                errors=(400,),
                params=[
                    query("section", "Agents: which list.", {"enum": ["unassigned", "mine", "team", "done"]}),
                    query("cursor", "The `cursor` of the previous page."),
                ],
                result=obj(
                    ["conversations", "cursor"],
                    conversations={"type": "array", "items": ref("Conversation")},
                    cursor={"type": ["string", "null"]},
                ),
                description="Agents: a section, newest activity first. Customers: their own conversations.",
            )
        },
        "/api/conversations/search": {
            "get": op(
                "Search conversations",
                "conversations",
                security=AGENT,
                errors=(400, 403),
                params=[query("q", "At least 2 characters.", required=True)],
                result=obj(["conversations"], conversations={"type": "array", "items": ref("Conversation")}),
                description="Agents: visitor name or email, message and note text, in the caller's teams.",
            )
        },
        "/api/conversations/{id}": {
            "get": op(
                "A conversation with its messages",
                "conversations",
                security=ANYONE,
                errors=(400, 404),
                params=[
                    path_id("conversation"),
                    query("after_seq", "Only messages after this seq.", {"type": "integer", "minimum": 0}),
                ],
                result=ref("Sync"),
                description="Like the `conversation.sync` event (customers never get notes).",
            )
        },
        "/api/conversations/{id}/transcript": {
            "get": op(
                "Transcript export",
                "conversations",
                security=MEDIA_AUTH,
                errors=(400, 404),
                params=[
                    path_id("conversation"),
                    query("format", "json (default) or text.", {"enum": ["json", "text"]}),
                    query("download", "1: sent as a file download.", {"enum": ["1", "true"]}),
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
            "get": op(
                "Download a call's recording",
                "recordings",
                security=MEDIA_AUTH,
                errors=(404,),
                params=[path_id("request")],
                content={"video/webm": {"schema": {"type": "string", "format": "binary"}}},
                description="The WebM file (VP8 video and Opus audio of every publisher, one stream per "
                "track, as forwarded: never re-encoded) of a request created with `record: true`, once the "
                "call ended and the file is finished. Agents who may see the conversation only; a customer, "
                "anyone else, a request that was not recorded, or a file not finished yet: `not_found`.",
            )
        },
        "/api/conference/{id}/links": {
            "post": op(
                "Create a conference join link",
                "conference",
                security=AGENT,
                ok=201,
                errors=(400, 403, 404, 409),
                params=[path_id("conference request")],
                body=obj(ttl_s={"type": "integer", "minimum": 60, "description": "Lifetime (default 2 h)."}),
                result=obj(
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
            "get": op(
                "What a join link leads to",
                "conference",
                security=PUBLIC,
                errors=(401, 404),
                params=[query("t", "The link token.", required=True)],
                result=obj(
                    ["request", "host"],
                    request=obj(
                        ["id", "kind", "state"],
                        id={"type": "string"},
                        kind={"type": "string"},
                        state={"type": "string"},
                    ),
                    host=obj(["name"], name={"type": "string"}),
                ),
                description="The link token is the credential (401 when expired or forged).",
            ),
            "post": op(
                "Join a conference as a guest",
                "conference",
                security=PUBLIC,
                errors=(400, 401, 404, 409),
                body=obj(["t", "name"], t={"type": "string"}, name={"type": "string", "maxLength": 80}),
                result=obj(
                    ["token", "guest", "request_id", "expires_at"],
                    token={"type": "string", "description": "A guest token for `/customer`."},
                    guest=obj(["id", "name"], id={"type": "string"}, name={"type": "string"}),
                    request_id={"type": "string"},
                    expires_at={"type": "string", "format": "date-time"},
                ),
                description="Exchanges a link token for a guest token; connect to `/customer` with it and "
                "call `rtc.offer` for `request_id` (409 while the conference has not started or after "
                "it ended).",
            ),
        },
        "/api/openapi.json": {
            "get": op(
                "This document",
                "meta",
                security=PUBLIC,
                result={"type": "object", "description": "OpenAPI 3.1."},
            )
        },
        "/healthz": {
            "get": op("Liveness", "meta", security=PUBLIC, result=obj(["status"], status={"const": "ok"}))
        },
        "/readyz": {
            "get": op(
                "Readiness (the store answers)",
                "meta",
                security=PUBLIC,
                errors=(503,),
                result=obj(
                    ["status", "checks"],
                    status={"enum": ["ready", "not_ready"]},
                    checks={"type": "object", "additionalProperties": {"type": "boolean"}},
                ),
            )
        },
        "/metrics": {
            "get": op(
                "Prometheus metrics",
                "meta",
                security=PUBLIC,
                content={"text/plain": {"schema": {"type": "string"}}},
                description="Text exposition format 0.0.4: sockets per namespace, Engine.IO sessions per Socket.IO "
                "parser (`rtc_engineio_sessions` by `parser`: `json`, `msgpack`), hub events and errors, HTTP "
                "requests and latency per route, calls refused by the abuse limits "
                "(`rtc_rate_limited_total` by `kind`: `connects`, `events`, `http`), store health, the "
                "embedded store's writer (`rtc_store_commits_total`, `rtc_store_operations_total`, "
                "`rtc_store_writer_resident_memory_bytes`, `rtc_store_wal_writes_combined` and, when it is 1, "
                "`rtc_store_wal_writes_total` and `rtc_store_wal_write_calls_total`; the histograms "
                "`rtc_store_commit_duration_seconds`, each commit and its fsync, "
                "`rtc_store_operation_duration_seconds`, each operation's time with the writer, and "
                "`rtc_store_write_duration_seconds`, each write from submit to outcome), uptime, resident "
                "memory.",
            )
        },
    }
    for method, path in LIMITED_ROUTES:  # the rate-limit middleware may answer 429 on these
        limited = paths[path][method.lower()]
        limited["responses"] = dict(sorted({**limited["responses"], "429": rate_limited()}.items()))
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
