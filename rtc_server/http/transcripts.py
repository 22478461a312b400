"""Conversations over REST: lists, search, history and the transcript export.

Access is the hub's (``Timeline.conversation_for``): agents of the conversation's team, its assignee and
admins, or the conversation's own customer; anyone else gets ``not_found``. A customer's transcript is
built from a query that excludes notes, and notes are filtered out once more before rendering: a note's
text can never reach a customer.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from aiohttp import web

from rtc_server.app import SERVICES
from rtc_server.http.core import principal
from rtc_server.http.sniff import content_disposition
from signaling.domain.errors import Invalid
from signaling.domain.models import Message, iso, utcnow
from signaling.services.container import Services
from signaling.services.principal import Principal

PAGE = 1000
MAX_MESSAGES = 100_000


def _int_query(request: web.Request, key: str, default: int = 0) -> int:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"{key} must be an integer", field=key) from None
    if value < 0:
        raise Invalid(f"{key} must not be negative", field=key)
    return value


async def list_conversations(request: web.Request) -> web.Response:
    """``GET /api/conversations?section=unassigned|mine|team|done[&cursor=]``; a customer gets their own."""
    who = await principal(request)
    cursor = request.query.get("cursor") or None
    if cursor is not None and len(cursor) > 400:
        raise Invalid("bad cursor", field="cursor")
    page = await request.app[SERVICES].inbox.list_section(who, request.query.get("section", ""), cursor)
    return web.json_response(page)


async def search_conversations(request: web.Request) -> web.Response:
    """``GET /api/conversations/search?q=`` (agents): visitor name/email and message text, notes included."""
    who = await principal(request, "agent")
    q = request.query.get("q", "")
    if len(q) > 200:
        raise Invalid("q is longer than 200 characters", field="q")
    found = await request.app[SERVICES].inbox.search(who, q)
    return web.json_response({"conversations": found})


async def get_conversation(request: web.Request) -> web.Response:
    """``GET /api/conversations/{id}[?after_seq=]``: like ``conversation.sync``."""
    who = await principal(request)
    result = await request.app[SERVICES].inbox.sync(
        who, request.match_info["id"], _int_query(request, "after_seq")
    )
    return web.json_response(result)


async def _all_messages(services: Services, conversation_id: str, include_notes: bool) -> list[Message]:
    out: list[Message] = []
    after = 0
    while len(out) < MAX_MESSAGES:
        page = await services.store.list_messages(
            conversation_id, after_seq=after, include_notes=include_notes, limit=PAGE
        )
        out.extend(page)
        if len(page) < PAGE:
            break
        after = page[-1].seq
    return out


async def transcript_data(services: Services, who: Principal, conversation_id: str) -> dict[str, Any]:
    """The transcript the caller may read: everything for agents, never a note for a customer."""
    conv = await services.timeline.conversation_for(who, conversation_id)
    messages = await _all_messages(services, conv.id, include_notes=who.is_agent)
    if not who.is_agent:
        messages = [m for m in messages if not m.is_note]
    wire = await services.timeline.wire(conv)
    if who.is_customer:
        wire = services.timeline.customer_view(wire)
    else:
        team = await services.store.get_team(conv.team_id)
        wire["team"] = team.to_wire() if team else None
    requests = await services.store.list_requests(conv.id)
    return {
        "audience": "agent" if who.is_agent else "customer",
        "generated_at": iso(utcnow()),
        "conversation": wire,
        "messages": [m.to_wire() for m in messages],
        "requests": [r.to_wire() for r in requests],
    }


def _stamp(value: str | None) -> str:
    return (value or "")[:19].replace("T", " ") + " UTC" if value else "-"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def _line(message: dict[str, Any]) -> str:
    author = message["author"]
    kind = message["kind"]
    who = author.get("name") or ("Visitor" if author["kind"] == "customer" else author["kind"])
    body = message.get("body") or ""
    if kind == "system":
        text = f"-- {body} --"
    elif kind == "note":
        text = f"{who} (internal note): {body}"
    elif kind in ("image", "video", "audio", "file") and isinstance(message.get("attachment"), dict):
        att = message["attachment"]
        text = (
            f"{who} sent {'an' if kind in ('image', 'audio') else 'a'} {kind}: {att.get('name')} "
            f"({_size(int(att.get('size') or 0))})"
        )
        if body:
            text += f" {body}"
    elif kind == "article" and isinstance(message.get("article"), dict):
        art = message["article"]
        text = f"{who} shared an article: {art.get('title')} <{art.get('url')}>"
    elif kind == "flow":
        text = f"{who} sent the form {body!r}"
    elif kind == "flow_answer" and isinstance(message.get("flow_answer"), dict):
        fa = message["flow_answer"]
        text = f"{who} answered {fa.get('question')!r}: {fa.get('answer')}"
    else:
        text = f"{who}: {body}"
    lines = text.splitlines() or [""]
    head = f"[{_stamp(message.get('created_at'))}] {lines[0]}"
    return "\n".join([head, *("    " + rest for rest in lines[1:])])


def render_text(data: dict[str, Any]) -> str:
    """A plain-text transcript of :func:`transcript_data`'s result."""
    conv = data["conversation"]
    visitor = conv.get("visitor") or {}
    customer = visitor.get("name") or "Visitor"
    if visitor.get("email"):
        customer += f" <{visitor['email']}>"
    out = [
        f"Transcript of conversation {conv['id']}",
        f"Customer: {customer}",
        f"Started: {_stamp(conv.get('created_at'))}",
        f"Status: {conv.get('status')}",
    ]
    if conv.get("assignee"):
        out.append(f"Agent: {conv['assignee'].get('name')}")
    if data["audience"] == "agent" and conv.get("team"):
        out.append(f"Team: {conv['team'].get('name')}")
    if conv.get("page_url"):
        out.append(f"Page: {conv['page_url']}")
    out.append(f"Generated: {_stamp(data['generated_at'])}")
    out.append("")
    out.extend(_line(m) for m in data["messages"])
    return "\n".join(out) + "\n"


async def transcript(request: web.Request) -> web.Response:
    """``GET /api/conversations/{id}/transcript?format=json|text[&download=1]``."""
    who = await principal(request)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "text"):
        raise Invalid("format must be json or text", field="format")
    data = await transcript_data(request.app[SERVICES], who, request.match_info["id"])
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    if request.query.get("download") in ("1", "true"):
        stamp = utcnow().astimezone(UTC).strftime("%Y%m%d")
        name = f"transcript-{data['conversation']['id']}-{stamp}.{'txt' if fmt == 'text' else 'json'}"
        headers["Content-Disposition"] = content_disposition("attachment", name)
    if fmt == "text":
        return web.Response(
            text=render_text(data), content_type="text/plain", charset="utf-8", headers=headers
        )
    return web.json_response(data, headers=headers)


def setup(app: web.Application) -> None:
    """Register the conversation routes (``search`` before ``{id}``)."""
    app.router.add_get("/api/conversations", list_conversations)
    app.router.add_get("/api/conversations/search", search_conversations)
    app.router.add_get("/api/conversations/{id}", get_conversation)
    app.router.add_get("/api/conversations/{id}/transcript", transcript)
