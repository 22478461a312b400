"""The Redis store's core: connection handling, the Lua scripts, the lock, meta and plain records.

:class:`RedisCore` owns the client and runs every call (retries, ``Unavailable``, in-flight count for
``close()``); the other parts of :class:`~signaling.storage.redis_store.RedisStore`
(:mod:`~signaling.storage.redis_directory`, :mod:`~signaling.storage.redis_conversations`,
:mod:`~signaling.storage.redis_requests`) build on it. The design is in
:mod:`signaling.storage.redis_store`'s docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from signaling.domain.errors import Conflict, DomainError, NotFound, Unavailable
from signaling.domain.models import Agent, Article, Attachment, Flow, Team, TextBlock, Visitor
from signaling.storage import redis_scripts as lua
from signaling.storage.redis_codec import decode, encode, flat, fold, pairs
from signaling.storage.redis_pipe import RedisPipe

log = logging.getLogger("signaling.storage.redis_store")
"""Named after the store's public module (its log records kept that name before the split)."""

T = TypeVar("T")

SCHEMA_VERSION = 1

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


class RedisCore:
    """Connection, scripts, lock, meta and the plain-record helpers shared by every part of the store."""

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
        self._pipe: RedisPipe | None = None
        """The scripts' auto-pipelined connection (:mod:`~signaling.storage.redis_pipe`); None with TLS."""
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

    def _conv_key(self, conversation_id: str) -> str:
        return self._k("conv", conversation_id)

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
        pipe = self._pipe
        if pipe is not None:
            return await self._call(lambda _: pipe.script(name, keys, args), idempotent=idempotent)
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
        names = (
            "PUT_RECORD",
            "DELETE_RECORD",
            "PRESENCE_ADD",
            "PRESENCE_REMOVE",
            "PRESENCE_DROP_NODE",
            "CONV_CREATE",
            "CONV_UPDATE",
            "APPEND_MESSAGE",
            "MARK_RECEIPT",
            "REQUEST_CREATE",
            "REQUEST_UPDATE",
            "UNLOCK",
        )
        if RedisPipe.supports(self.url):
            self._pipe = RedisPipe(self.url, connect_timeout=self.connect_timeout)
            for name in names:
                self._pipe.register(name, getattr(lua, name))
        else:  # TLS: redis-py runs them
            self._scripts = {name: client.register_script(getattr(lua, name)) for name in names}
        await self._script(  # this node's previous run: gone, whatever its liveness key says
            "PRESENCE_DROP_NODE",
            [
                self._k("node", "alive", self.node_id),
                self._k("pres", "node", self.node_id),
                self._k("online"),
            ],
            [self.prefix, self.node_id, "0"],
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
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            await pipe.close()
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
