"""The records of the business and their wire shapes (see docs/protocol.md).

Records are plain dataclasses; stores persist them field by field. ``to_wire()`` gives the public
shape of PROTOCOL.md: snake_case names, ISO-8601 UTC times, opaque string ids.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ROUTING_MODES = ("manual", "auto")
CONVERSATION_STATUSES = ("open", "done")
AGENT_STATUSES = ("online", "away", "offline")
AUTHOR_KINDS = ("customer", "agent", "system")
MESSAGE_KINDS = (
    "text",
    "note",
    "image",
    "video",
    "audio",
    "file",
    "article",
    "flow",
    "flow_answer",
    "chatblock",
    "system",
)
#: Message kinds a client may send with ``message.send`` (``note`` goes through ``note.add``,
#: ``system`` is written by the server only).
CLIENT_MESSAGE_KINDS = ("text", "image", "video", "audio", "file", "article", "flow", "flow_answer", "chatblock")
ATTACHMENT_KINDS = ("image", "video", "audio", "file")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def iso(ts: datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z`` suffix and millisecond precision, or None."""
    if ts is None:
        return None
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    # formatted by hand: about half the cost of astimezone + strftime, several times per message
    return (
        f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
        f".{ts.microsecond // 1000:03d}Z"
    )


def parse_iso(value: str | None) -> datetime | None:
    """The inverse of :func:`iso` (accepts any ISO-8601 string Python understands)."""
    if value is None:
        return None
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def new_id(prefix: str) -> str:
    """A random opaque id such as ``cv_3kTq9...``: unguessable, URL-safe."""
    return f"{prefix}_{secrets.token_urlsafe(12)}"


SORTED_ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
"""The base64url characters in byte order: a number written with them sorts as a string does."""


_PAIRS = tuple(a + b for a in SORTED_ALPHABET for b in SORTED_ALPHABET)
"""Every 12-bit number as its two :data:`SORTED_ALPHABET` characters."""


def time_chars(ms: int) -> str:
    """``ms`` (milliseconds since the epoch) as 7 :data:`SORTED_ALPHABET` characters (42 bits, until
    the year 2109): later times give strings that sort after earlier ones. (Runs for nearly every
    message at low rates, where each lands in a millisecond of its own: a table of character pairs
    makes it 0.4 us instead of 1.5.)"""
    return SORTED_ALPHABET[(ms >> 36) & 63] + _PAIRS[(ms >> 24) & 4095] + _PAIRS[(ms >> 12) & 4095] + _PAIRS[ms & 4095]


class IdPool:
    """Ids for hot paths (an id per message), shaped as :func:`new_id`'s (``<prefix>_`` and 16 base64url
    characters) but ordered by time: 7 characters of the millisecond (:func:`time_chars`), then 9 random
    ones (54 bits from the OS's CSPRNG: one millisecond would need ~6 million ids for a 1-in-1,000 chance
    of a repeat, which the id's unique index would refuse).

    Why ordered: SQLite keeps every message id in a B-tree index, and random ids land each insert on a
    leaf page of their own, which the commit writes to the WAL and syncs (~4 KB per message). Ids that
    grow with time land together at the index's right edge: a handful of pages per commit.

    The random characters come from one ``os.urandom`` read per ``batch`` ids instead of one
    ``getrandom`` system call each (a call that also releases the GIL, handing it to another thread):
    every base64 character of random bytes is 6 random bits, so the encoding of a whole buffer, cut
    every 9 characters, gives independent draws. Each draw is handed out once; a forked child starts
    from an empty pool (it would otherwise repeat its parent's next ids)."""

    __slots__ = ("_batch", "_chars", "_pos", "_ms", "_stamp", "__weakref__")

    def __init__(self, batch: int = 256) -> None:
        self._batch = batch
        self._chars = ""
        self._pos = 0
        self._ms = -1
        self._stamp = ""
        _POOLS.add(self)

    def new(self, prefix: str) -> str:
        """An id ``<prefix>_<7 characters of the time><9 random characters>``."""
        ms = time.time_ns() // 1_000_000
        if ms != self._ms:
            self._ms = ms
            self._stamp = time_chars(ms)
        pos = self._pos
        if pos + 9 > len(self._chars):
            self._chars = base64.urlsafe_b64encode(os.urandom(12 * self._batch)).decode()
            pos = 0
        self._pos = pos + 9
        return f"{prefix}_{self._stamp}{self._chars[pos : pos + 9]}"


_POOLS: weakref.WeakSet[IdPool] = weakref.WeakSet()
"""Every live pool: one at-fork hook empties them all (a hook per pool would outlive its pool)."""


def _forget_all() -> None:
    for pool in list(_POOLS):
        pool._chars = ""
        pool._pos = 0


os.register_at_fork(after_in_child=_forget_all)


@dataclass(slots=True)
class Team:
    id: str
    name: str
    routing: str = "manual"
    """``manual`` (agents press "Assign to me") or ``auto`` (the server assigns)."""
    created_at: datetime = field(default_factory=utcnow)

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "routing": self.routing, "created_at": iso(self.created_at)}


@dataclass(slots=True)
class Agent:
    id: str
    email: str
    name: str
    password_hash: str
    team_ids: list[str] = field(default_factory=list)
    is_admin: bool = False
    capacity: int = 5
    """How many open conversations auto-routing may give this agent at once."""
    locale: str = "en"
    status: str = "offline"
    """Presence: ``online`` / ``away`` / ``offline`` (derived from connected sockets and the agent's choice)."""
    token_version: int = 0
    """Bumped on password change: tokens carrying an older version are refused."""
    created_at: datetime = field(default_factory=utcnow)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "team_ids": list(self.team_ids),
            "is_admin": self.is_admin,
            "capacity": self.capacity,
            "locale": self.locale,
            "status": self.status,
        }

    def public(self) -> dict[str, Any]:
        """What a customer may learn about an agent."""
        return {"id": self.id, "name": self.name}


@dataclass(slots=True)
class Visitor:
    id: str
    name: str = ""
    email: str = ""
    user_id: str = ""
    verified: bool = False
    """True when the site proved ``user_id`` with ``user_hash``."""
    locale: str = ""
    created_at: datetime = field(default_factory=utcnow)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "user_id": self.user_id,
            "verified": self.verified,
            "locale": self.locale,
            "created_at": iso(self.created_at),
        }


@dataclass(slots=True)
class Conversation:
    id: str
    visitor_id: str
    team_id: str
    status: str = "open"
    assignee_id: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    last_seq: int = 0
    """Highest ``seq`` stored in this conversation (notes included)."""
    unread: int = 0
    """Customer messages the agents have not read yet."""
    page_url: str = ""
    language: str = ""
    customer_delivered_seq: int = 0
    customer_read_seq: int = 0
    agent_delivered_seq: int = 0
    agent_read_seq: int = 0
    last_message_at: datetime | None = None
    last_message_preview: str = ""
    """The body of the last message a customer may see (never a note), cut to 140 characters."""

    def to_wire(self, visitor: Visitor | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "visitor": visitor.to_wire() if visitor else {"id": self.visitor_id},
            "status": self.status,
            "assignee_id": self.assignee_id,
            "team_id": self.team_id,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "last_seq": self.last_seq,
            "unread": self.unread,
            "page_url": self.page_url,
            "language": self.language,
            "receipts": {
                "customer": {"delivered_seq": self.customer_delivered_seq, "read_seq": self.customer_read_seq},
                "agent": {"delivered_seq": self.agent_delivered_seq, "read_seq": self.agent_read_seq},
            },
            "last_message_at": iso(self.last_message_at),
            "last_message_preview": self.last_message_preview,
        }


@dataclass(slots=True)
class Author:
    kind: str
    """``customer``, ``agent`` or ``system``."""
    id: str
    name: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "name": self.name}


@dataclass(slots=True)
class Message:
    id: str
    conversation_id: str
    seq: int
    client_id: str
    author: Author
    kind: str
    body: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    """Kind-specific payload: ``attachment``, ``article``, ``flow``, ``flow_answer``, ``textblock_id``,
    and for ``system`` messages ``code`` + ``params`` (rendered in the reader's language)."""
    created_at: datetime = field(default_factory=utcnow)

    @property
    def is_note(self) -> bool:
        return self.kind == "note"

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "seq": self.seq,
            "client_id": self.client_id,
            "author": self.author.to_wire(),
            "kind": self.kind,
            "body": self.body,
            "created_at": iso(self.created_at),
        }
        for key in ("attachment", "article", "flow", "flow_answer", "textblock_id", "code", "params", "request_id"):
            if key in self.data:
                out[key] = self.data[key]
        return out


@dataclass(slots=True)
class Request:
    """A consent request (co-browse, call, ...) and where it stands; see ``domain.requests``."""

    id: str
    conversation_id: str
    kind: str
    state: str
    requested_by: str
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    expires_at: datetime | None = None
    reason: str | None = None
    accepted_at: datetime | None = None
    active_at: datetime | None = None
    ended_at: datetime | None = None
    record: bool = False
    """The media is recorded (asked by the agent, consented to by the customer's accept)."""

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "kind": self.kind,
            "state": self.state,
            "requested_by": self.requested_by,
            "record": bool(self.record),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "expires_at": iso(self.expires_at),
            "accepted_at": iso(self.accepted_at),
            "active_at": iso(self.active_at),
            "ended_at": iso(self.ended_at),
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(slots=True)
class TextBlock:
    id: str
    shortcut: str
    title: str
    body: str
    language: str = "en"
    team_id: str | None = None
    """None: every team may use it."""
    created_at: datetime = field(default_factory=utcnow)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "shortcut": self.shortcut,
            "title": self.title,
            "body": self.body,
            "language": self.language,
            "team_id": self.team_id,
        }


@dataclass(slots=True)
class Article:
    id: str
    title: str
    summary: str
    url: str
    body: str = ""
    language: str = "en"
    created_at: datetime = field(default_factory=utcnow)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "summary": self.summary,
            "url": self.url,
            "language": self.language,
        }


@dataclass(slots=True)
class Flow:
    """A scripted form run in the widget: ``steps`` is a list of
    ``{id, question, buttons: [str] | [], free_text: bool}``."""

    id: str
    name: str
    steps: list[dict[str, Any]]
    language: str = "en"
    created_at: datetime = field(default_factory=utcnow)

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "steps": self.steps, "language": self.language}


@dataclass(slots=True)
class Attachment:
    id: str
    conversation_id: str
    uploader_kind: str
    uploader_id: str
    name: str
    mime: str
    size: int
    storage_name: str
    """Random file name under the data dir's uploads folder; never derived from ``name``."""
    kind: str = "file"
    """``image``, ``video``, ``audio`` or ``file``, from the sniffed content type."""
    has_thumbnail: bool = False
    created_at: datetime = field(default_factory=utcnow)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "mime": self.mime,
            "size": self.size,
            "kind": self.kind,
            "url": f"/api/uploads/{self.id}",
        }
        if self.has_thumbnail:
            out["thumbnail_url"] = f"/api/uploads/{self.id}/thumbnail"
        return out
