"""The Redis store's conversations and messages: create, compare-and-set update, listing through the
sorted-set indexes (:class:`_IndexWalker`), counts, search, the message stream and receipts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from signaling.domain.errors import Conflict, Invalid, NotFound
from signaling.domain.models import Conversation, Message
from signaling.storage.base import ANY, AccessRule, AppendResult, ConversationCounts, ConversationQuery, _Any
from signaling.storage.redis_codec import (
    decode,
    decode_message,
    encode,
    encode_message,
    flat,
    fold,
    micros,
    pairs,
)
from signaling.storage.redis_core import Client, RedisCore

PREVIEW_CHARS = 140


class RedisConversations(RedisCore):
    """Conversations (with their indexes and search) and their messages."""

    # -- conversations --------------------------------------------------------------------------------

    async def create_conversation(self, conversation: Conversation) -> Conversation:
        """Store a new conversation as given (``Conflict`` on a taken id)."""
        fields = encode(conversation)
        args = [self.prefix, fields["updated_at"], *flat(fields)]
        result = await self._script("CONV_CREATE", [self._conv_key(conversation.id)], args)
        if int(result[0]) == 0:
            raise Conflict("a conversation with that id exists", id=conversation.id)
        return decode(Conversation, pairs(result[1]))

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation, or None."""
        mapping = await self._read(lambda c: c.hgetall(self._conv_key(conversation_id)))
        return decode(Conversation, mapping) if mapping else None

    async def _conversations(self, ids: list[str]) -> list[Conversation]:
        if not ids:
            return []

        async def fetch(c: Client) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            for conversation_id in ids:
                pipe.hgetall(self._conv_key(conversation_id))
            return list(await pipe.execute())

        return [decode(Conversation, row) for row in await self._read(fetch) if row]

    async def update_conversation(
        self, conversation: Conversation, *, expected_assignee: str | None | _Any = ANY
    ) -> Conversation:
        """Write status, assignee, team, updated_at, language, page_url; compare-and-set on the assignee."""
        c = conversation
        if isinstance(expected_assignee, _Any):
            check, expected = "any", ""
        elif expected_assignee is None:
            check, expected = "none", ""
        else:
            check, expected = "eq", expected_assignee
        args = [
            self.prefix,
            check,
            expected,
            c.status,
            c.assignee_id or "",
            c.team_id,
            str(micros(c.updated_at)),
            c.language,
            c.page_url,
        ]
        result = await self._script("CONV_UPDATE", [self._conv_key(c.id)], args)
        status = int(result[0])
        if status == -1:
            raise NotFound("no such conversation", id=c.id)
        if status == 0:
            raise Conflict(
                "the conversation's assignee changed",
                expected=expected_assignee,
                assignee_id=result[1] or None,
            )
        return decode(Conversation, pairs(result[1]))

    def _index_for(self, q: ConversationQuery) -> list[str]:
        """The sorted sets to walk for a query: the most selective index its filters name."""
        status = q.status
        if q.visitor_id is not None:
            return [self._k("ci", "v", q.visitor_id)]
        if isinstance(q.assignee_id, str):
            if status:
                return [self._k("ci", "as", q.assignee_id, status)]
            return [self._k("ci", "a", q.assignee_id)]
        if q.team_ids is not None:
            if status:
                return [self._k("ci", "ts", t, status) for t in dict.fromkeys(q.team_ids)]
            return [self._k("ci", "t", t) for t in dict.fromkeys(q.team_ids)]
        if q.assignee_id is None:
            return [self._k("ci", "us", status) if status else self._k("ci", "u")]
        return [self._k("ci", "s", status) if status else self._k("ci", "all")]

    @staticmethod
    def _matches(c: Conversation, q: ConversationQuery) -> bool:
        if q.team_ids is not None and c.team_id not in q.team_ids:
            return False
        if q.status is not None and c.status != q.status:
            return False
        if not isinstance(q.assignee_id, _Any) and c.assignee_id != q.assignee_id:
            return False
        if q.visitor_id is not None and c.visitor_id != q.visitor_id:
            return False
        if q.before is not None:
            at, cid = micros(q.before[0]), q.before[1]
            mine = micros(c.updated_at)
            if not (mine < at or (mine == at and c.id < cid)):
                return False
        return True

    async def _walk(
        self, keys: list[str], before: tuple[datetime, str] | None, batch: int = 100
    ) -> AsyncIterator[list[Conversation]]:
        """Conversations of the union of ``keys`` in (updated_at, id) descending order, strictly after
        ``before``, in batches (each conversation once)."""
        cursor = None if before is None else (micros(before[0]), before[1])
        walkers = [_IndexWalker(key, cursor, batch) for key in keys]
        seen: set[str] = set()
        while True:
            ids: list[str] = []
            while len(ids) < batch:
                heads = [(await w.peek(self), w) for w in walkers]
                live = [(head, w) for head, w in heads if head is not None]
                if not live:
                    break
                _, walker = max(live, key=lambda hw: hw[0])
                _, member = walker.pop()
                if member not in seen:
                    seen.add(member)
                    ids.append(member)
            if not ids:
                return
            yield await self._conversations(ids)

    async def list_conversations(self, query: ConversationQuery) -> list[Conversation]:
        """Filtered, newest activity first, after the ``before`` cursor."""
        limit = max(0, query.limit)
        if limit == 0 or (query.team_ids is not None and not query.team_ids):
            return []
        out: list[Conversation] = []
        async for rows in self._walk(self._index_for(query), query.before, batch=min(max(limit, 20), 200)):
            out.extend(c for c in rows if self._matches(c, query))
            if len(out) >= limit:
                break
        out.sort(key=lambda c: (micros(c.updated_at), c.id), reverse=True)
        return out[:limit]

    async def count_conversations(self, query: ConversationQuery) -> ConversationCounts:
        """How many conversations ``list_conversations(query)`` would return, and their summed ``unread``
        (the same walk of the indexes; only the wire shapes are spared)."""
        rows = await self.list_conversations(query)
        return ConversationCounts(count=len(rows), unread=sum(c.unread for c in rows))

    async def count_open_assigned(self, agent_ids: list[str]) -> dict[str, int]:
        """For each agent id, its number of open assigned conversations (0 included)."""
        ids = list(dict.fromkeys(agent_ids))
        if not ids:
            return {}

        async def fetch(c: Client) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            for agent_id in ids:
                pipe.zcard(self._k("ci", "as", agent_id, "open"))
            return list(await pipe.execute())

        counts = await self._read(fetch)
        return {agent_id: int(n) for agent_id, n in zip(ids, counts, strict=True)}

    async def search_conversations(
        self, team_ids: list[str], q: str, *, include_notes: bool, limit: int = 20
    ) -> list[Conversation]:
        """Conversations whose messages, visitor name or email contain ``q`` (case-insensitive), among
        the ``search_scan_limit`` most recently active conversations of those teams."""
        if not team_ids or not q or limit <= 0:
            return []
        needle = fold(q)
        keys = [self._k("ci", "t", t) for t in dict.fromkeys(team_ids)]
        out: list[Conversation] = []
        scanned = 0
        async for rows in self._walk(keys, None, batch=100):
            texts = await self._search_texts(rows, include_notes)
            for conv, text in zip(rows, texts, strict=True):
                if needle in text:
                    out.append(conv)
                    if len(out) >= limit:
                        return out
            scanned += len(rows)
            if scanned >= self.search_scan_limit:
                break
        return out

    async def _search_texts(self, rows: list[Conversation], include_notes: bool) -> list[str]:
        async def fetch(c: Client) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            for conv in rows:
                pipe.hmget(self._k("visitor", conv.visitor_id), ["name", "email"])
                pipe.get(self._k("tx", conv.id))
                if include_notes:
                    pipe.get(self._k("tn", conv.id))
            return list(await pipe.execute())

        replies = await self._read(fetch)
        step = 3 if include_notes else 2
        texts = []
        for i in range(len(rows)):
            name, email = replies[i * step]
            parts = [
                fold(name or ""),
                fold(email or ""),
                *(replies[i * step + j] or "" for j in range(1, step)),
            ]
            texts.append("\0".join(parts))
        return texts

    # -- messages -------------------------------------------------------------------------------------

    async def append_message(self, message: Message, access: AccessRule | None = None) -> AppendResult:
        """Store with the next ``seq`` and update the counters; idempotent on ``client_id``. ``access`` is
        checked by the script itself, so that one round trip both authorises and appends."""
        m = message
        cid = m.conversation_id
        visible = m.kind != "note"
        keys = [
            self._conv_key(cid),
            self._k("msgs", cid),
            self._k("mcid", cid),
            self._k("mid", cid),
            self._k("cust", cid),
            self._k("tx" if visible else "tn", cid),
        ]
        fields = encode_message(m)
        args = [
            self.prefix,
            m.id,
            m.client_id or "",
            fields["created_at"],
            "1" if m.author.kind == "customer" else "0",
            "1" if visible else "0",
            m.body[:PREVIEW_CHARS],
            fold(m.body),
            *_access_args(access),
            *flat(fields),
        ]
        result = await self._script("APPEND_MESSAGE", keys, args, idempotent=True)
        status = int(result[0])
        if status == -2:
            raise NotFound("no such conversation")
        if status == -1:
            raise NotFound("no such conversation", id=cid)
        conversation = decode(Conversation, pairs(result[3]))
        if status == 0:
            return AppendResult(
                message=decode_message(pairs(result[2])), created=False, conversation=conversation
            )
        stored = decode_message(encode_message(m, int(result[1])))  # a fresh copy, as read back
        return AppendResult(message=stored, created=True, conversation=conversation)

    async def list_messages(
        self, conversation_id: str, *, after_seq: int = 0, include_notes: bool = True, limit: int = 1000
    ) -> list[Message]:
        """Messages with ``seq > after_seq``, ascending, at most ``limit``."""
        if limit <= 0:
            return []
        key = self._k("msgs", conversation_id)
        out: list[Message] = []
        start = f"{max(after_seq, 0) + 1}-0"
        while len(out) < limit:
            want = limit - len(out) if include_notes else max(limit - len(out), 100)
            entries = await self._read(self._xrange(key, start, want))
            for _, fields in entries:
                msg = decode_message(fields)
                if include_notes or msg.kind != "note":
                    out.append(msg)
                    if len(out) >= limit:
                        break
            if len(entries) < want:
                break
            start = f"({entries[-1][0]}"
        return out

    @staticmethod
    def _xrange(key: str, start: str, count: int) -> Callable[[Client], Awaitable[Any]]:
        return lambda c: c.xrange(key, min=start, max="+", count=count)

    async def mark_receipt(
        self, conversation_id: str, side: str, *, delivered_seq: int = 0, read_seq: int = 0
    ) -> Conversation:
        """Raise a side's delivered/read marks (capped at ``last_seq``); agent reads recompute ``unread``."""
        if side not in ("customer", "agent"):
            raise Invalid(f"unknown receipt side {side!r}", field="side")
        keys = [self._conv_key(conversation_id), self._k("cust", conversation_id)]
        args = [side, int(delivered_seq), int(read_seq)]
        result = await self._script("MARK_RECEIPT", keys, args, idempotent=True)
        if int(result[0]) == -1:
            raise NotFound("no such conversation", id=conversation_id)
        return decode(Conversation, pairs(result[1]))


class _IndexWalker:
    """Pages through one conversation index (a sorted set) in (score, member) descending order,
    strictly after a cursor, fetching ``batch`` entries at a time."""

    def __init__(self, key: str, cursor: tuple[int, str] | None, batch: int) -> None:
        self.key = key
        self.cursor = cursor
        self.batch = batch
        self.buffer: list[tuple[int, str]] = []
        self.max_score = "+inf" if cursor is None else str(cursor[0])
        self.offset = 0
        self.exhausted = False

    async def peek(self, store: RedisCore) -> tuple[int, str] | None:
        while not self.buffer and not self.exhausted:
            await self._fill(store)
        return self.buffer[0] if self.buffer else None

    def pop(self) -> tuple[int, str]:
        return self.buffer.pop(0)

    async def _fill(self, store: RedisCore) -> None:
        key, top, offset, n = self.key, self.max_score, self.offset, self.batch
        rows = await store._read(
            lambda c: c.zrange(
                key, top, "-inf", desc=True, byscore=True, offset=offset, num=n, withscores=True
            )
        )
        if not rows:
            self.exhausted = True
            return
        entries = [(int(score), str(member)) for member, score in rows]
        last = entries[-1][0]
        ties = sum(1 for score, _ in entries if score == last)
        # The next page starts at the last score again, skipping the members of that score seen so far.
        self.offset = offset + ties if str(last) == self.max_score else ties
        self.max_score = str(last)
        if len(rows) < n:
            self.exhausted = True
        for score, member in entries:
            if self.cursor is not None and score == self.cursor[0] and member >= self.cursor[1]:
                continue
            self.buffer.append((score, member))


def _access_args(access: AccessRule | None) -> tuple[str, str, str]:
    """The append script's access arguments: kind (``''``, ``all``, ``rule``), assignee, NUL-framed teams."""
    if access is None:
        return "", "", ""
    if access.everyone:
        return "all", "", ""
    teams = "".join(f"\0{t}" for t in sorted(access.team_ids))
    return "rule", access.assignee_id or "", teams + "\0" if teams else ""
