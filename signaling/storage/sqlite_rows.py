"""The mapping between SQLite rows and domain records, and the value codecs it uses.

Times are stored as fixed-width ISO-8601 UTC strings with microseconds (``2026-05-09T07:35:25.123456+00:00``),
which sort lexicographically in time order, so ``ORDER BY`` and cursor comparisons work on the text.
Lists and dicts are stored as JSON text. The tables themselves are :mod:`~signaling.storage.sqlite_schema`.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import sqlite3
from datetime import UTC, datetime
from typing import Any

from signaling.domain.models import (
    Agent,
    Article,
    Attachment,
    Author,
    Conversation,
    Flow,
    Message,
    Request,
    Team,
    TextBlock,
    Visitor,
)

# -- value codecs --------------------------------------------------------------------------------------


_TS = "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00"


def utc(value: datetime) -> datetime:
    """``value`` in UTC (naive datetimes are taken as UTC)."""
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def ts(value: datetime | None) -> str | None:
    """A datetime as fixed-width ISO-8601 UTC text (naive datetimes are taken as UTC): what
    ``isoformat(timespec="microseconds")`` of its UTC value gives, formatted by hand (a third of the cost;
    once per message)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = utc(value)
    return _TS % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def dt(value: str | None) -> datetime | None:
    """The inverse of :func:`ts`: a timezone-aware UTC datetime, or None."""
    if value is None:
        return None
    return datetime.fromisoformat(value).astimezone(UTC)


def dt_req(value: str) -> datetime:
    """:func:`dt` for NOT NULL columns."""
    return datetime.fromisoformat(value).astimezone(UTC)


def to_json(value: Any) -> str:
    """Compact JSON text for dict/list columns."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def fold(value: str) -> str:
    """The case-insensitive key of names, emails and search text."""
    return value.casefold()


# -- records <-> rows ----------------------------------------------------------------------------------


def team_row(t: Team) -> tuple[Any, ...]:
    return (t.id, t.name, fold(t.name), t.routing, ts(t.created_at))


def team_from(r: sqlite3.Row) -> Team:
    return Team(id=r["id"], name=r["name"], routing=r["routing"], created_at=dt_req(r["created_at"]))


def agent_row(a: Agent) -> tuple[Any, ...]:
    return (
        a.id,
        a.email,
        fold(a.email),
        a.name,
        a.password_hash,
        to_json(list(a.team_ids)),
        int(a.is_admin),
        a.capacity,
        a.locale,
        a.status,
        a.token_version,
        ts(a.created_at),
    )


def agent_from(r: sqlite3.Row) -> Agent:
    return Agent(
        id=r["id"],
        email=r["email"],
        name=r["name"],
        password_hash=r["password_hash"],
        team_ids=json.loads(r["team_ids"]),
        is_admin=bool(r["is_admin"]),
        capacity=r["capacity"],
        locale=r["locale"],
        status=r["status"],
        token_version=r["token_version"],
        created_at=dt_req(r["created_at"]),
    )


def visitor_row(v: Visitor) -> tuple[Any, ...]:
    return (v.id, v.name, v.email, v.user_id, int(v.verified), v.locale, ts(v.created_at))


def visitor_from(r: sqlite3.Row) -> Visitor:
    return Visitor(
        id=r["id"],
        name=r["name"],
        email=r["email"],
        user_id=r["user_id"],
        verified=bool(r["verified"]),
        locale=r["locale"],
        created_at=dt_req(r["created_at"]),
    )


CONVERSATION_COLUMNS = (
    "id, visitor_id, team_id, status, assignee_id, created_at, updated_at, last_seq, unread, page_url, "
    "language, customer_delivered_seq, customer_read_seq, agent_delivered_seq, agent_read_seq, "
    "last_message_at, last_message_preview"
)


def conversation_row(c: Conversation) -> tuple[Any, ...]:
    return (
        c.id,
        c.visitor_id,
        c.team_id,
        c.status,
        c.assignee_id,
        ts(c.created_at),
        ts(c.updated_at),
        c.last_seq,
        c.unread,
        c.page_url,
        c.language,
        c.customer_delivered_seq,
        c.customer_read_seq,
        c.agent_delivered_seq,
        c.agent_read_seq,
        ts(c.last_message_at),
        c.last_message_preview,
    )


def conversation_from(r: sqlite3.Row) -> Conversation:
    return Conversation(
        id=r["id"],
        visitor_id=r["visitor_id"],
        team_id=r["team_id"],
        status=r["status"],
        assignee_id=r["assignee_id"],
        created_at=dt_req(r["created_at"]),
        updated_at=dt_req(r["updated_at"]),
        last_seq=r["last_seq"],
        unread=r["unread"],
        page_url=r["page_url"],
        language=r["language"],
        customer_delivered_seq=r["customer_delivered_seq"],
        customer_read_seq=r["customer_read_seq"],
        agent_delivered_seq=r["agent_delivered_seq"],
        agent_read_seq=r["agent_read_seq"],
        last_message_at=dt(r["last_message_at"]),
        last_message_preview=r["last_message_preview"],
    )


def conversation_from_values(
    r: sqlite3.Row | tuple[Any, ...], known: tuple[str | None, datetime] | None = None
) -> Conversation:
    """:func:`conversation_from` for a row of :data:`CONVERSATION_COLUMNS` in that order, read by
    position (the append's read of its conversation: once per message). ``known``: a time's text
    (:func:`ts`) and its datetime, reused for the time columns holding that text instead of parsing them
    again."""
    updated_at, last_message_at = r[6], r[15]
    return Conversation(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        dt_req(r[5]),
        known[1] if known is not None and updated_at == known[0] else dt_req(updated_at),
        r[7],
        r[8],
        r[9],
        r[10],
        r[11],
        r[12],
        r[13],
        r[14],
        known[1] if known is not None and last_message_at == known[0] else dt(last_message_at),
        r[16],
    )


_MESSAGE_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(Message)))
_AUTHOR_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(Author)))


def clone_message(m: Message) -> Message:
    """A shallow copy of a message (several times cheaper than ``dataclasses.replace``)."""
    return Message(*_MESSAGE_FIELDS(m))


def clone_author(a: Author) -> Author:
    """A copy of an author."""
    return Author(*_AUTHOR_FIELDS(a))


def message_row(m: Message, seq: int, data: str, at: str | None) -> tuple[Any, ...]:
    """The ``messages`` row of ``m`` at ``seq``; ``data`` (its JSON) and ``at`` (its time as :func:`ts`)
    come from the caller, which already made them."""
    return (
        m.id,
        m.conversation_id,
        seq,
        m.client_id or None,
        m.author.kind,
        m.author.id,
        m.author.name,
        m.kind,
        m.body,
        data,
        at,
    )


def message_from(r: sqlite3.Row) -> Message:
    return Message(
        id=r["id"],
        conversation_id=r["conversation_id"],
        seq=r["seq"],
        client_id=r["client_id"] or "",
        author=Author(kind=r["author_kind"], id=r["author_id"], name=r["author_name"]),
        kind=r["kind"],
        body=r["body"],
        data=json.loads(r["data"]),
        created_at=dt_req(r["created_at"]),
    )


def request_row(q: Request) -> tuple[Any, ...]:
    return (
        q.id,
        q.conversation_id,
        q.kind,
        q.state,
        q.requested_by,
        ts(q.created_at),
        ts(q.updated_at),
        ts(q.expires_at),
        q.reason,
        ts(q.accepted_at),
        ts(q.active_at),
        ts(q.ended_at),
        int(bool(q.record)),
    )


def request_from(r: sqlite3.Row) -> Request:
    return Request(
        id=r["id"],
        conversation_id=r["conversation_id"],
        kind=r["kind"],
        state=r["state"],
        requested_by=r["requested_by"],
        created_at=dt_req(r["created_at"]),
        updated_at=dt_req(r["updated_at"]),
        expires_at=dt(r["expires_at"]),
        reason=r["reason"],
        accepted_at=dt(r["accepted_at"]),
        active_at=dt(r["active_at"]),
        ended_at=dt(r["ended_at"]),
        record=bool(r["record"]),
    )


def textblock_row(b: TextBlock) -> tuple[Any, ...]:
    return (b.id, b.shortcut, b.title, b.body, b.language, b.team_id, ts(b.created_at))


def textblock_from(r: sqlite3.Row) -> TextBlock:
    return TextBlock(
        id=r["id"],
        shortcut=r["shortcut"],
        title=r["title"],
        body=r["body"],
        language=r["language"],
        team_id=r["team_id"],
        created_at=dt_req(r["created_at"]),
    )


def article_row(a: Article) -> tuple[Any, ...]:
    return (a.id, a.title, a.summary, a.url, a.body, a.language, ts(a.created_at))


def article_from(r: sqlite3.Row) -> Article:
    return Article(
        id=r["id"],
        title=r["title"],
        summary=r["summary"],
        url=r["url"],
        body=r["body"],
        language=r["language"],
        created_at=dt_req(r["created_at"]),
    )


def flow_row(f: Flow) -> tuple[Any, ...]:
    return (f.id, f.name, to_json(f.steps), f.language, ts(f.created_at))


def flow_from(r: sqlite3.Row) -> Flow:
    return Flow(
        id=r["id"],
        name=r["name"],
        steps=json.loads(r["steps"]),
        language=r["language"],
        created_at=dt_req(r["created_at"]),
    )


def attachment_row(a: Attachment) -> tuple[Any, ...]:
    return (
        a.id,
        a.conversation_id,
        a.uploader_kind,
        a.uploader_id,
        a.name,
        a.mime,
        a.size,
        a.storage_name,
        a.kind,
        int(a.has_thumbnail),
        ts(a.created_at),
    )


def attachment_from(r: sqlite3.Row) -> Attachment:
    return Attachment(
        id=r["id"],
        conversation_id=r["conversation_id"],
        uploader_kind=r["uploader_kind"],
        uploader_id=r["uploader_id"],
        name=r["name"],
        mime=r["mime"],
        size=r["size"],
        storage_name=r["storage_name"],
        kind=r["kind"],
        has_thumbnail=bool(r["has_thumbnail"]),
        created_at=dt_req(r["created_at"]),
    )
