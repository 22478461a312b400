"""SQL operations of the SQLite store for conversations, their messages and their requests.

Plain functions of a ``sqlite3`` connection, run in the store's writer inside a batch transaction
(see :mod:`signaling.storage.sqlite_ops`). Operations run one at a time, so the ``seq`` counter, the
compare-and-set updates and "one live request per kind" are atomic without locks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from signaling.domain.errors import Conflict, Invalid, NotFound
from signaling.domain.models import Conversation, Message, Request
from signaling.storage import sqlite_rows as s
from signaling.storage.base import (
    LIVE_REQUEST_STATES,
    AccessRule,
    AppendResult,
    ConversationCounts,
    ConversationQuery,
    _Any,
)
from signaling.storage.sqlite_ops import Conn, insert, must_get, placeholders, replace

PREVIEW_CHARS = 140
_LIVE_SQL = "(" + ", ".join(f"'{state}'" for state in LIVE_REQUEST_STATES) + ")"


# -- conversations


def update_conversation(conn: Conn, c: Conversation, expected_assignee: str | None | _Any) -> Conversation:
    """Write the mutable columns; compare-and-set on the assignee unless ``ANY``."""
    sql = (
        "UPDATE conversations SET status = ?, assignee_id = ?, team_id = ?, updated_at = ?, language = ?, "
        "page_url = ? WHERE id = ?"
    )
    params: list[Any] = [c.status, c.assignee_id, c.team_id, s.ts(c.updated_at), c.language, c.page_url, c.id]
    if not isinstance(expected_assignee, _Any):
        sql += " AND assignee_id IS ?"
        params.append(expected_assignee)
    if conn.execute(sql, params).rowcount == 0:
        current = must_get(conn, "conversations", c.id, s.conversation_from)
        raise Conflict(
            "the conversation's assignee changed", expected=expected_assignee, assignee_id=current.assignee_id
        )
    return must_get(conn, "conversations", c.id, s.conversation_from)


def list_conversations(conn: Conn, q: ConversationQuery) -> list[Conversation]:
    """Conversations matching the query, newest activity first, after its cursor."""
    found = _conversation_select(q, "*")
    if found is None:
        return []
    sql, params = found
    return [s.conversation_from(r) for r in conn.execute(sql, params)]


def count_conversations(conn: Conn, q: ConversationQuery) -> ConversationCounts:
    """How many conversations ``list_conversations`` would return, and their summed ``unread``."""
    found = _conversation_select(q, "unread")
    if found is None:
        return ConversationCounts(count=0, unread=0)
    sql, params = found
    row = conn.execute(f"SELECT COUNT(*), COALESCE(SUM(unread), 0) FROM ({sql})", params).fetchone()
    return ConversationCounts(count=int(row[0]), unread=int(row[1]))


def _conversation_select(q: ConversationQuery, columns: str) -> tuple[str, list[Any]] | None:
    """The ``SELECT`` of a conversation query (None: it matches nothing)."""
    where: list[str] = []
    params: list[Any] = []
    if q.team_ids is not None:
        if not q.team_ids:
            return None
        where.append(f"team_id IN ({placeholders(q.team_ids)})")
        params.extend(q.team_ids)
    if q.status is not None:
        where.append("status = ?")
        params.append(q.status)
    if q.assignee_id is None:
        where.append("assignee_id IS NULL")
    elif not isinstance(q.assignee_id, _Any):
        where.append("assignee_id = ?")
        params.append(q.assignee_id)
    if q.visitor_id is not None:
        where.append("visitor_id = ?")
        params.append(q.visitor_id)
    if q.before is not None:
        cursor_at, cursor_id = s.ts(q.before[0]), q.before[1]
        where.append("(updated_at < ? OR (updated_at = ? AND id < ?))")
        params.extend((cursor_at, cursor_at, cursor_id))
    sql = f"SELECT {columns} FROM conversations"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY updated_at DESC, id DESC LIMIT ?"
    params.append(max(0, q.limit))
    return sql, params


def count_open_assigned(conn: Conn, agent_ids: list[str]) -> dict[str, int]:
    """For each agent id, its number of open assigned conversations (0 included)."""
    counts = dict.fromkeys(agent_ids, 0)
    if agent_ids:
        rows = conn.execute(
            "SELECT assignee_id, COUNT(*) FROM conversations WHERE status = 'open' "
            f"AND assignee_id IN ({placeholders(agent_ids)}) GROUP BY assignee_id",
            agent_ids,
        )
        counts.update({r[0]: int(r[1]) for r in rows})
    return counts


def search_conversations(
    conn: Conn, team_ids: list[str], q: str, include_notes: bool, limit: int
) -> list[Conversation]:
    """Conversations whose messages, visitor name or email contain ``q`` (casefolded)."""
    if not team_ids or not q:
        return []
    needle = s.fold(q)
    # instr() over casefolded text rather than LIKE: case-insensitive beyond ASCII, no wildcard escaping.
    sql = (
        "SELECT c.* FROM conversations c LEFT JOIN visitors v ON v.id = c.visitor_id "
        f"WHERE c.team_id IN ({placeholders(team_ids)}) AND ("
        " instr(fold(v.name), ?) > 0 OR instr(fold(v.email), ?) > 0"
        " OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id"
        "   AND (? OR m.kind != 'note') AND instr(fold(m.body), ?) > 0)"
        ") ORDER BY c.updated_at DESC, c.id DESC LIMIT ?"
    )
    params = [*team_ids, needle, needle, int(include_notes), needle, max(0, limit)]
    return [s.conversation_from(r) for r in conn.execute(sql, params)]


# -- messages


# The append reads its conversation, then writes the new counters as plain values: the writer holds
# SQLite's write lock for the whole batch (``BEGIN IMMEDIATE``), so nothing changes the row in between.
# An ``UPDATE ... RETURNING`` did the same in one statement at about twice the cost (SQLite runs
# ``RETURNING`` through a temporary table), and an ``UPDATE`` followed by a ``SELECT`` finds the pages
# cold again.
_APPEND_READ = f"SELECT {s.CONVERSATION_COLUMNS} FROM conversations WHERE id = ?"
# A message with a client_id takes its seq only when that client_id is new in the conversation: the
# replay check rides in the read (one index probe in SQLite) instead of a statement of its own.
_NEW_CLIENT_ID = " AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = ? AND client_id = ?)"
_APPEND_WRITE = (
    "UPDATE conversations SET last_seq = ?, updated_at = ?, unread = ?, last_message_at = ?, "
    "last_message_preview = ? WHERE id = ?"
)
_MESSAGE_INSERT = "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def append_row(
    conn: Conn, row: tuple[Any, ...], rule: tuple[frozenset[str], str | None, bool] | None = None
) -> tuple[int, tuple[Any, ...]] | AppendResult:
    """Store the message of ``row`` (:func:`~signaling.storage.sqlite_rows.message_row`, its seq left 0)
    with the next ``seq`` and update the counters; idempotent on ``client_id``. With ``rule`` (an
    :class:`AccessRule` as ``(team_ids, assignee_id, everyone)``) the conversation must pass it
    (``NotFound`` otherwise, nothing written).

    A new message returns ``(seq, the conversation's row after the append)``: plain values, so that
    crossing to the writer process and back costs little (the store builds the records); a replay
    returns the stored message and the conversation as an :class:`AppendResult`.

    A new message costs three statements: the read of its conversation, which checks the access rule
    and that the client_id is new in its ``WHERE``, the ``UPDATE`` of the counters, then the ``INSERT``.
    When the read finds nothing, a second read tells a replay (answered with the stored message, access
    checked) from a refusal or a missing conversation. Must run inside a write transaction."""
    access = None if rule is None else AccessRule(*rule)
    where, where_params = _access_where(access)
    conversation_id, client_id, kind, at = row[1], row[3], row[7], row[10]
    sql = _APPEND_READ + where
    params: tuple[Any, ...] = (conversation_id, *where_params)
    if client_id:
        sql += _NEW_CLIENT_ID
        params += (conversation_id, client_id)
    found = conn.execute(sql, params).fetchone()
    if found is None:
        return _append_refused(conn, conversation_id, client_id, access)
    values = list(found)
    # The columns of CONVERSATION_COLUMNS that an append changes (times are fixed-width text: the
    # larger string is the later time, as SQLite's MAX() compares them).
    seq = values[7] = values[7] + 1
    if at > values[6]:
        values[6] = at
    if row[4] == "customer":
        values[8] += 1
    if kind != "note":
        values[15] = at
        values[16] = row[8][:PREVIEW_CHARS]
    conn.execute(_APPEND_WRITE, (seq, values[6], values[8], values[15], values[16], conversation_id))
    conn.execute(_MESSAGE_INSERT, (*row[:2], seq, *row[3:]))
    return seq, tuple(values)


def _append_refused(
    conn: Conn, conversation_id: str, client_id: str | None, access: AccessRule | None
) -> AppendResult:
    """The append's read found nothing: a replay of a stored client_id (its stored message, if
    ``access`` allows it), else ``NotFound``."""
    if client_id:
        row = conn.execute(
            "SELECT * FROM messages WHERE conversation_id = ? AND client_id = ?",
            (conversation_id, client_id),
        ).fetchone()
        if row is not None:
            conversation = must_get(conn, "conversations", conversation_id, s.conversation_from)
            if access is not None and not access.allows(conversation.team_id, conversation.assignee_id):
                raise NotFound("no such conversation")
            return AppendResult(message=s.message_from(row), created=False, conversation=conversation)
    if access is not None:
        raise NotFound("no such conversation")
    raise NotFound("no such conversation", id=conversation_id)


def _access_where(access: AccessRule | None) -> tuple[str, tuple[str, ...]]:
    """The ``AND ...`` the append's ``UPDATE`` adds for ``access``, and its parameters."""
    if access is None or access.everyone:
        return "", ()
    terms, params = [], tuple(sorted(access.team_ids))
    if params:
        terms.append(f"team_id IN ({placeholders(list(params))})")
    if access.assignee_id is not None:
        terms.append("assignee_id = ?")
        params = (*params, access.assignee_id)
    if not terms:
        return " AND 0", ()
    return f" AND ({' OR '.join(terms)})", params


def list_messages(
    conn: Conn, conversation_id: str, after_seq: int, include_notes: bool, limit: int
) -> list[Message]:
    """Messages with ``seq > after_seq``, ascending, at most ``limit``."""
    sql = "SELECT * FROM messages WHERE conversation_id = ? AND seq > ?"
    if not include_notes:
        sql += " AND kind != 'note'"
    sql += " ORDER BY seq LIMIT ?"
    return [s.message_from(r) for r in conn.execute(sql, (conversation_id, after_seq, max(0, limit)))]


def mark_receipt(
    conn: Conn, conversation_id: str, side: str, delivered_seq: int, read_seq: int
) -> Conversation:
    """Raise a side's delivered/read marks (capped at ``last_seq``); agent reads recompute ``unread``."""
    if side not in ("customer", "agent"):
        raise Invalid(f"unknown receipt side {side!r}", field="side")
    row = conn.execute(
        f"SELECT last_seq, {side}_delivered_seq, {side}_read_seq FROM conversations WHERE id = ?",
        (conversation_id,),
    ).fetchone()
    if row is None:
        raise NotFound("no such conversation", id=conversation_id)
    last_seq, old_delivered, old_read = int(row[0]), int(row[1]), int(row[2])
    # Capped at last_seq: a mark above it would silently swallow the next messages.
    read = max(old_read, min(read_seq, last_seq))
    delivered = max(old_delivered, min(delivered_seq, last_seq), read)
    conn.execute(
        f"UPDATE conversations SET {side}_delivered_seq = ?, {side}_read_seq = ? WHERE id = ?",
        (delivered, read, conversation_id),
    )
    if side == "agent" and read_seq > 0:
        conn.execute(
            "UPDATE conversations SET unread = (SELECT COUNT(*) FROM messages WHERE conversation_id = ? "
            "AND author_kind = 'customer' AND seq > ?) WHERE id = ?",
            (conversation_id, read, conversation_id),
        )
    return must_get(conn, "conversations", conversation_id, s.conversation_from)


# -- requests


def _live_request_id(conn: Conn, r: Request) -> str | None:
    row = conn.execute(
        f"SELECT id FROM requests WHERE conversation_id = ? AND kind = ? AND state IN {_LIVE_SQL} AND id != ?",
        (r.conversation_id, r.kind, r.id),
    ).fetchone()
    return None if row is None else str(row[0])


def create_request(conn: Conn, r: Request) -> Request:
    """Insert a request; ``Conflict`` on a live one of its kind, ``NotFound`` without the conversation."""
    if conn.execute("SELECT 1 FROM conversations WHERE id = ?", (r.conversation_id,)).fetchone() is None:
        raise NotFound("no such conversation", id=r.conversation_id)
    if r.state in LIVE_REQUEST_STATES:
        live = _live_request_id(conn, r)
        if live is not None:
            raise Conflict(f"a {r.kind} request is already live in this conversation", request_id=live)
    return insert(conn, "requests", r.id, s.request_row(r), s.request_from)


def update_request(conn: Conn, r: Request, expected_state: str) -> Request:
    """Replace a request's fields if its stored state is ``expected_state``, else ``Conflict``."""
    row = conn.execute("SELECT state FROM requests WHERE id = ?", (r.id,)).fetchone()
    if row is None:
        raise NotFound("no such request", id=r.id)
    if row[0] != expected_state:
        raise Conflict(
            f"the request is {row[0]}, not {expected_state}", state=row[0], expected_state=expected_state
        )
    if r.state in LIVE_REQUEST_STATES and (live := _live_request_id(conn, r)) is not None:
        raise Conflict(f"a {r.kind} request is already live in this conversation", request_id=live)
    return replace(conn, "requests", s.request_row(r), s.request_from)


def list_requests(conn: Conn, conversation_id: str, live_only: bool) -> list[Request]:
    """The conversation's requests (only live ones with ``live_only``), oldest first."""
    sql = "SELECT * FROM requests WHERE conversation_id = ?"
    if live_only:
        sql += f" AND state IN {_LIVE_SQL}"
    sql += " ORDER BY created_at, rowid"
    return [s.request_from(r) for r in conn.execute(sql, (conversation_id,))]


def list_due_requests(conn: Conn, now: datetime) -> list[Request]:
    """Pending requests with ``expires_at <= now``, soonest first."""
    rows = conn.execute(
        "SELECT * FROM requests WHERE state = 'pending' AND expires_at IS NOT NULL AND expires_at <= ? "
        "ORDER BY expires_at, rowid",
        (s.ts(now),),
    )
    return [s.request_from(r) for r in rows]
