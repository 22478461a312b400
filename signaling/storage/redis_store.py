"""The several-nodes store: every record in one Redis, shared by every node.

Same contract as :mod:`signaling.storage.sqlite` (``tests/contract`` runs against both). How each rule
holds across nodes:

- Durability: Redis runs with its append-only file and ``appendfsync always`` (see ``docs/deploy.md``);
  Redis answers a write only after it is in the file, so a returned call is durable.
- Atomicity: every write that checks something (``seq`` and ``client_id``, compare-and-set, one live
  request per kind, unique names and emails, presence counts) is one Lua script
  (:mod:`signaling.storage.redis_scripts`); Redis runs scripts one at a time.
- The message log of a conversation is a Redis Stream whose entry ids are ``<seq>-0``: replayable by
  ``seq`` with ``XRANGE``.
- Listing and search read secondary indexes: sorted sets by ``updated_at`` per team, status,
  assignee and visitor, kept by the same scripts that write the conversation. Search scans at most
  ``search_scan_limit`` of the teams' most recently active conversations (their folded text).

Connections come from a ``BlockingConnectionPool`` (a busy pool waits instead of raising
``MaxConnectionsError``). redis-py's own command retries are off: a write that failed after Redis
applied it must not be applied twice. Reads and idempotent writes (``append_message`` deduplicates
by message id and ``client_id``) are retried here instead, once the connection is back; any other
failure reaches the caller as ``Unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from signaling.domain.errors import Conflict, DomainError, Invalid, NotFound, Unavailable
from signaling.domain.models import (
    Agent,
    Article,
    Attachment,
    Conversation,
    Flow,
    Message,
    Request,
    Team,
    TextBlock,
    Visitor,
)
from signaling.storage import redis_scripts as lua
from signaling.storage.base import (
    ANY,
    LIVE_REQUEST_STATES,
    AppendResult,
    ConversationCounts,
    ConversationQuery,
    _Any,
)
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

log = logging.getLogger(__name__)

T = TypeVar("T")

PREVIEW_CHARS = 140
SCHEMA_VERSION = 1
US = "\x1f"
"""Separates node and sid (and agent and sid) in presence members."""

_RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)

Client = Any
"""A ``redis.asyncio.Redis`` with ``decode_responses=True`` (its stubs type every reply ``bytes | str``;
with that option every reply is ``str``)."""


@dataclass(frozen=True, slots=True)
class _Kind:
    """Where one kind of plain record lives."""

    cls: type
    name: str
    unique: Callable[[Any], str] | None = None
    ordered: bool = True
    parent: Callable[[Any], str] | None = None


_TEAM = _Kind(Team, "team", unique=lambda t: fold(t.name))
_AGENT = _Kind(Agent, "agent", unique=lambda a: fold(a.email))
_VISITOR = _Kind(Visitor, "visitor", ordered=False)
_TEXTBLOCK = _Kind(TextBlock, "textblock")
_ARTICLE = _Kind(Article, "article")
_FLOW = _Kind(Flow, "flow")
_ATTACHMENT = _Kind(Attachment, "attachment", ordered=False, parent=lambda a: f"conv:{a.conversation_id}")


class RedisStore:
    """The shared :class:`~signaling.storage.base.Store` (see the module docstring for the design)."""

    def __init__(
        self,
        url: str,
        *,
        node_id: str,
        max_connections: int = 1000,
        key_prefix: str = "rtc:",
        pool_timeout: float = 10.0,
        connect_timeout: float = 2.0,
        search_scan_limit: int = 2000,
        retries: int = 3,
        close_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.node_id = node_id
        self.max_connections = max_connections
        self.prefix = key_prefix
        self.pool_timeout = pool_timeout
        self.connect_timeout = connect_timeout
        self.search_scan_limit = search_scan_limit
        self.retries = retries
        self.close_timeout = close_timeout
        self._redis: Client | None = None
        self._scripts: dict[str, Any] = {}
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    # -- plumbing -------------------------------------------------------------------------------------

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _client(self) -> Client:
        if self._redis is None:
            raise Unavailable("the store is not open")
        return self._redis

    async def _call(self, fn: Callable[[Client], Awaitable[T]], *, idempotent: bool) -> T:
        """Run ``fn`` with the client; connection failures become ``Unavailable`` (idempotent calls are
        retried first). Counts the call as in flight, so that ``close()`` waits for it."""
        client = self._client()
        self._inflight += 1
        self._idle.clear()
        try:
            attempt = 0
            while True:
                try:
                    return await fn(client)
                except DomainError:
                    raise
                except _RETRYABLE as exc:
                    attempt += 1
                    if not idempotent or attempt > self.retries:
                        raise Unavailable(f"Redis is unreachable: {exc}") from exc
                    await asyncio.sleep(0.05 * attempt)
                except RedisError as exc:
                    raise Unavailable(f"Redis refused the call: {exc}") from exc
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def _script(self, name: str, keys: list[str], args: list[Any], *, idempotent: bool = False) -> Any:
        script = self._scripts[name]
        return await self._call(lambda c: script(keys=keys, args=args, client=c), idempotent=idempotent)

    async def _read(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        return await self._call(fn, idempotent=True)

    # -- life cycle -----------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, check the data's schema version, and clear presence left by this node's last run."""
        if self._redis is not None:
            return
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=self.max_connections,
            timeout=self.pool_timeout,
            socket_connect_timeout=self.connect_timeout,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        client: Client = aioredis.Redis(connection_pool=pool)
        try:
            await client.ping()
            stored = await client.get(self._k("schema"))
            if stored is not None and int(stored) > SCHEMA_VERSION:
                raise Unavailable(f"Redis data schema v{stored} is newer than this code (v{SCHEMA_VERSION})")
            if stored is None:
                await client.set(self._k("schema"), str(SCHEMA_VERSION), nx=True)
        except RedisError as exc:
            await client.aclose()
            await pool.aclose()
            raise Unavailable(f"cannot reach Redis at {self.url}: {exc}") from exc
        except BaseException:
            await client.aclose()
            await pool.aclose()
            raise
        self._redis = client
        self._closing = False
        self._scripts = {
            name: client.register_script(getattr(lua, name))
            for name in (
                "PUT_RECORD",
                "DELETE_RECORD",
                "PRESENCE_ADD",
                "PRESENCE_REMOVE",
                "PRESENCE_CLEAR_NODE",
                "CONV_CREATE",
                "CONV_UPDATE",
                "APPEND_MESSAGE",
                "MARK_RECEIPT",
                "REQUEST_CREATE",
                "REQUEST_UPDATE",
                "UNLOCK",
            )
        }
        await self._script(
            "PRESENCE_CLEAR_NODE",
            [self._k("pres", "node", self.node_id), self._k("online")],
            [self.prefix, self.node_id],
            idempotent=True,
        )

    async def close(self) -> None:
        """Let the calls already started finish, then release every connection."""
        client = self._redis
        if client is None or self._closing:
            return
        self._closing = True
        try:
            await asyncio.wait_for(self._idle.wait(), self.close_timeout)
        except TimeoutError:
            log.warning("redis store: closing with %d calls still running", self._inflight)
        self._redis = None
        await client.aclose()
        await client.connection_pool.aclose()

    async def ping(self) -> bool:
        """True when Redis answers PING within 1 second."""
        if self._redis is None or self._closing:
            return False
        try:
            return bool(await asyncio.wait_for(self._call(lambda c: c.ping(), idempotent=False), 1.0))
        except (TimeoutError, DomainError):
            return False

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, ttl_s: float = 5.0, wait_s: float = 10.0) -> AsyncIterator[None]:
        """Hold the lock ``name`` shared by every node while the block runs (``Unavailable`` after
        ``wait_s`` without it). ``SET NX PX`` with a random token; only the holder releases it, and it
        expires after ``ttl_s`` if the holder dies. For short critical sections such as "choose an agent
        and claim the conversation" (not yet in the Store port: see docs/deploy.md)."""
        key = self._k("lock", name)
        token = secrets.token_hex(12)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        delay = 0.002
        while not await self._call(
            lambda c: c.set(key, token, nx=True, px=int(ttl_s * 1000)), idempotent=False
        ):
            if loop.time() >= deadline:
                raise Unavailable(f"the lock {name!r} stayed busy", lock=name)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            with contextlib.suppress(DomainError):
                await self._script("UNLOCK", [key], [token], idempotent=True)

    # -- meta -----------------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        return await self._read(lambda c: c.hget(self._k("meta"), key))

    async def set_meta(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (replacing any previous one)."""
        await self._call(lambda c: c.hset(self._k("meta"), key, value), idempotent=True)

    # -- plain records ----------------------------------------------------------------------------------

    async def _put(self, kind: _Kind, record: Any, mode: str) -> Any:
        unique = kind.unique(record) if kind.unique else ""
        parent = kind.parent(record) if kind.parent else "none"
        keys = [
            self._k(kind.name, record.id),
            self._k(kind.name + "s"),
            self._k(kind.name + "s", "unique"),
            self._k(parent),
            self._k("rows"),
        ]
        args = [mode, record.id, unique, "1" if kind.parent else "0", "1" if kind.ordered else "0"]
        args += flat(encode(record))
        result = await self._script("PUT_RECORD", keys, args)
        status = int(result[0])
        if status == -3:
            field = "email" if kind is _AGENT else "name"
            raise Conflict(f"a {kind.name} with that {field} exists", field=field)
        if status == -2:
            raise Conflict(f"a {kind.name} with that id exists", id=record.id)
        if status == -1:
            raise NotFound(f"no such {kind.name}", id=record.id)
        if status == -4:
            raise NotFound("a record it refers to does not exist")
        return decode(kind.cls, pairs(result[1]))

    async def _get(self, kind: _Kind, record_id: str) -> Any:
        mapping = await self._read(lambda c: c.hgetall(self._k(kind.name, record_id)))
        return decode(kind.cls, mapping) if mapping else None

    async def _get_many(self, kind: _Kind, ids: list[str]) -> list[Any]:
        if not ids:
            return []

        async def fetch(c: Client) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            for record_id in ids:
                pipe.hgetall(self._k(kind.name, record_id))
            return list(await pipe.execute())

        rows = await self._read(fetch)
        return [decode(kind.cls, row) for row in rows if row]

    async def _list(self, kind: _Kind) -> list[Any]:
        """Every record of an ordered kind, oldest first (``created_at``, then insertion order)."""
        ids = await self._read(lambda c: c.zrange(self._k(kind.name + "s"), 0, -1))
        records = await self._get_many(kind, list(ids))
        return sorted(records, key=lambda r: r.created_at)  # stable: ties keep insertion order

    async def _delete(self, kind: _Kind, record_id: str) -> bool:
        keys = [self._k(kind.name, record_id), self._k(kind.name + "s")]
        return bool(await self._script("DELETE_RECORD", keys, [record_id]))

    # -- teams ----------------------------------------------------------------------------------------

    async def create_team(self, team: Team) -> Team:
        """``Conflict`` when a team of that name exists (case-insensitive)."""
        return await self._put(_TEAM, team, "create")

    async def get_team(self, team_id: str) -> Team | None:
        """The team, or None."""
        return await self._get(_TEAM, team_id)

    async def get_team_by_name(self, name: str) -> Team | None:
        """The team of that name (case-insensitive), or None."""
        team_id = await self._read(lambda c: c.hget(self._k("teams", "unique"), fold(name)))
        return await self.get_team(team_id) if team_id else None

    async def list_teams(self) -> list[Team]:
        """Oldest first: the first one is the default team."""
        return await self._list(_TEAM)

    async def update_team(self, team: Team) -> Team:
        """Replace the team's fields; ``Conflict`` on a name taken by another team, ``NotFound``."""
        return await self._put(_TEAM, team, "replace")

    # -- agents ---------------------------------------------------------------------------------------

    async def create_agent(self, agent: Agent) -> Agent:
        """``Conflict`` when an agent with that email exists (case-insensitive)."""
        return await self._put(_AGENT, agent, "create")

    async def get_agent(self, agent_id: str) -> Agent | None:
        """The agent, or None."""
        return await self._get(_AGENT, agent_id)

    async def get_agents(self, agent_ids: list[str]) -> dict[str, Agent]:
        """The agents of those ids that exist, by id (one pipeline)."""
        agents: list[Agent] = await self._get_many(_AGENT, list(dict.fromkeys(agent_ids)))
        return {a.id: a for a in agents}

    async def get_agent_by_email(self, email: str) -> Agent | None:
        """The agent with that email (case-insensitive), or None."""
        agent_id = await self._read(lambda c: c.hget(self._k("agents", "unique"), fold(email)))
        return await self.get_agent(agent_id) if agent_id else None

    async def list_agents(self, team_id: str | None = None) -> list[Agent]:
        """Oldest first; with ``team_id``, only that team's members."""
        agents: list[Agent] = await self._list(_AGENT)
        if team_id is None:
            return agents
        return [a for a in agents if team_id in a.team_ids]

    async def update_agent(self, agent: Agent) -> Agent:
        """Replace every field; ``Conflict`` on an email taken by another agent, ``NotFound``."""
        return await self._put(_AGENT, agent, "replace")

    # -- presence -------------------------------------------------------------------------------------

    def _presence_keys(self, agent_id: str, node_id: str, sid: str) -> tuple[list[str], list[str]]:
        keys = [self._k("pres", agent_id), self._k("pres", "node", node_id), self._k("online")]
        return keys, [node_id + US + sid, agent_id + US + sid, agent_id]

    async def presence_add(self, agent_id: str, node_id: str, sid: str) -> int:
        """Record a socket; the agent's number of sockets on all nodes."""
        keys, args = self._presence_keys(agent_id, node_id, sid)
        return int(await self._script("PRESENCE_ADD", keys, args, idempotent=True))

    async def presence_remove(self, agent_id: str, node_id: str, sid: str) -> int:
        """Forget a socket; the agent's remaining number of sockets on all nodes."""
        keys, args = self._presence_keys(agent_id, node_id, sid)
        return int(await self._script("PRESENCE_REMOVE", keys, args, idempotent=True))

    async def presence_online(self) -> set[str]:
        """Ids of agents with at least one socket on any node."""
        members = await self._read(lambda c: c.smembers(self._k("online")))
        return set(members)

    # -- visitors -------------------------------------------------------------------------------------

    async def create_visitor(self, visitor: Visitor) -> Visitor:
        """Store a new visitor (``Conflict`` on a taken id)."""
        return await self._put(_VISITOR, visitor, "create")

    async def get_visitor(self, visitor_id: str) -> Visitor | None:
        """The visitor, or None."""
        return await self._get(_VISITOR, visitor_id)

    async def get_visitors(self, visitor_ids: list[str]) -> dict[str, Visitor]:
        """The visitors of those ids that exist, by id (one pipeline)."""
        visitors: list[Visitor] = await self._get_many(_VISITOR, list(dict.fromkeys(visitor_ids)))
        return {v.id: v for v in visitors}

    async def update_visitor(self, visitor: Visitor) -> Visitor:
        """Replace the visitor's fields (``NotFound``)."""
        return await self._put(_VISITOR, visitor, "replace")

    # -- conversations --------------------------------------------------------------------------------

    def _conv_key(self, conversation_id: str) -> str:
        return self._k("conv", conversation_id)

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

    async def append_message(self, message: Message) -> AppendResult:
        """Store with the next ``seq`` and update the counters; idempotent on ``client_id``."""
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
            *flat(fields),
        ]
        result = await self._script("APPEND_MESSAGE", keys, args, idempotent=True)
        status = int(result[0])
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

    # -- requests -------------------------------------------------------------------------------------

    @staticmethod
    def _due_score(r: Request) -> str:
        return str(micros(r.expires_at)) if r.state == "pending" and r.expires_at is not None else ""

    async def create_request(self, request: Request) -> Request:
        """``Conflict`` when a live request of that kind exists; ``NotFound`` without the conversation."""
        r = request
        keys = [
            self._k("req", r.id),
            self._conv_key(r.conversation_id),
            self._k("rl", r.conversation_id),
            self._k("reqs", r.conversation_id),
            self._k("due"),
        ]
        live = r.state in LIVE_REQUEST_STATES
        args = [r.id, r.kind, "1" if live else "0", self._due_score(r), *flat(encode(r))]
        result = await self._script("REQUEST_CREATE", keys, args)
        status = int(result[0])
        if status == -1:
            raise NotFound("no such conversation", id=r.conversation_id)
        if status == -2:
            raise Conflict("a request with that id exists", id=r.id)
        if status == 0:
            raise Conflict(f"a {r.kind} request is already live in this conversation", request_id=result[1])
        return decode(Request, pairs(result[1]))

    async def get_request(self, request_id: str) -> Request | None:
        """The request, or None."""
        mapping = await self._read(lambda c: c.hgetall(self._k("req", request_id)))
        return decode(Request, mapping) if mapping else None

    async def update_request(self, request: Request, *, expected_state: str) -> Request:
        """Write every field if the stored state is ``expected_state``, else ``Conflict``."""
        r = request
        live = r.state in LIVE_REQUEST_STATES
        args = [self.prefix, r.id, expected_state, r.kind, "1" if live else "0", self._due_score(r)]
        args += flat(encode(r))
        result = await self._script("REQUEST_UPDATE", [self._k("req", r.id), self._k("due")], args)
        status = int(result[0])
        if status == -1:
            raise NotFound("no such request", id=r.id)
        if status == 0:
            raise Conflict(
                f"the request is {result[1]}, not {expected_state}",
                state=result[1],
                expected_state=expected_state,
            )
        if status == -2:
            raise Conflict(f"a {r.kind} request is already live in this conversation", request_id=result[1])
        return decode(Request, pairs(result[1]))

    async def _requests(self, ids: list[str]) -> list[Request]:
        if not ids:
            return []

        async def fetch(c: Client) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            for request_id in ids:
                pipe.hgetall(self._k("req", request_id))
            return list(await pipe.execute())

        return [decode(Request, row) for row in await self._read(fetch) if row]

    async def list_requests(self, conversation_id: str, *, live_only: bool = False) -> list[Request]:
        """The conversation's requests, oldest first."""
        ids = await self._read(lambda c: c.lrange(self._k("reqs", conversation_id), 0, -1))
        requests = sorted(await self._requests(list(ids)), key=lambda r: r.created_at)
        if live_only:
            requests = [r for r in requests if r.state in LIVE_REQUEST_STATES]
        return requests

    async def list_due_requests(self, now: datetime) -> list[Request]:
        """Pending requests with ``expires_at <= now``, soonest first."""
        ids = await self._read(lambda c: c.zrangebyscore(self._k("due"), "-inf", micros(now)))
        due = [
            r
            for r in await self._requests(list(ids))
            if r.state == "pending" and r.expires_at is not None and r.expires_at <= now
        ]
        return sorted(due, key=lambda r: r.expires_at or now)

    # -- text blocks, articles, flows -----------------------------------------------------------------

    async def create_textblock(self, block: TextBlock) -> TextBlock:
        """Store a new text block."""
        return await self._put(_TEXTBLOCK, block, "create")

    async def get_textblock(self, block_id: str) -> TextBlock | None:
        """The text block, or None."""
        return await self._get(_TEXTBLOCK, block_id)

    async def list_textblocks(self) -> list[TextBlock]:
        """Every text block, oldest first."""
        return await self._list(_TEXTBLOCK)

    async def update_textblock(self, block: TextBlock) -> TextBlock:
        """Replace the text block's fields (``NotFound``)."""
        return await self._put(_TEXTBLOCK, block, "replace")

    async def delete_textblock(self, block_id: str) -> bool:
        """True when it existed."""
        return await self._delete(_TEXTBLOCK, block_id)

    async def create_article(self, article: Article) -> Article:
        """Store a new article."""
        return await self._put(_ARTICLE, article, "create")

    async def get_article(self, article_id: str) -> Article | None:
        """The article, or None."""
        return await self._get(_ARTICLE, article_id)

    async def list_articles(self) -> list[Article]:
        """Every article, oldest first."""
        return await self._list(_ARTICLE)

    async def update_article(self, article: Article) -> Article:
        """Replace the article's fields (``NotFound``)."""
        return await self._put(_ARTICLE, article, "replace")

    async def delete_article(self, article_id: str) -> bool:
        """True when it existed."""
        return await self._delete(_ARTICLE, article_id)

    async def create_flow(self, flow: Flow) -> Flow:
        """Store a new flow."""
        return await self._put(_FLOW, flow, "create")

    async def get_flow(self, flow_id: str) -> Flow | None:
        """The flow, or None."""
        return await self._get(_FLOW, flow_id)

    async def list_flows(self) -> list[Flow]:
        """Every flow, oldest first."""
        return await self._list(_FLOW)

    async def update_flow(self, flow: Flow) -> Flow:
        """Replace the flow's fields (``NotFound``)."""
        return await self._put(_FLOW, flow, "replace")

    async def delete_flow(self, flow_id: str) -> bool:
        """True when it existed."""
        return await self._delete(_FLOW, flow_id)

    # -- attachments ----------------------------------------------------------------------------------

    async def create_attachment(self, attachment: Attachment) -> Attachment:
        """Store a new attachment's metadata (``NotFound`` without the conversation)."""
        return await self._put(_ATTACHMENT, attachment, "create")

    async def get_attachment(self, attachment_id: str) -> Attachment | None:
        """The attachment, or None."""
        return await self._get(_ATTACHMENT, attachment_id)


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

    async def peek(self, store: RedisStore) -> tuple[int, str] | None:
        while not self.buffer and not self.exhausted:
            await self._fill(store)
        return self.buffer[0] if self.buffer else None

    def pop(self) -> tuple[int, str]:
        return self.buffer.pop(0)

    async def _fill(self, store: RedisStore) -> None:
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
