"""The Socket.IO manager of a node on Redis: python-socketio's ``AsyncRedisManager`` with a listener
that is supervised and can say whether it works.

What the stock manager does not give, and why this subclass exists:

- Its listener (``_thread``, started by ``initialize()`` on the first client connection) reconnects
  after a Redis failure with a back-off doubling up to 60 s, and nothing outside can tell whether it
  is subscribed at a given moment. Here the listener reconnects with a back-off capped at
  ``retry_max_s``, and proves it is alive: every ``heartbeat_s`` it sends ``PING`` on its
  subscribed connection and records the ``pong`` (or any message). :meth:`listener_healthy` is true
  only while the task runs, the subscription is up and the last sign of life is recent. ``/readyz``
  reports it.
- Its publisher uses redis-py's default pool, which raises ``MaxConnectionsError`` when every
  connection is busy (see FACTS.md); here publishing goes through one auto-pipelined connection
  (:class:`~signaling.storage.redis_pipe.RedisPipe`: what is published during one event-loop iteration
  leaves in one write, and nothing waits for a free connection) that reopens after a loss. With TLS
  (``rediss://``), a redis-py ``BlockingConnectionPool`` (waits for a connection instead of failing).
- Its listener reads with redis-py's ``PubSub``; here with a
  :class:`~signaling.storage.redis_pipe.RedisSubscriber` (hiredis parsing, no wait per queued message),
  redis-py's ``PubSub`` again with TLS.
- It never stops its listener; :meth:`aclose` does (the app calls it at shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import socketio
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from signaling.storage.redis_pipe import RedisPipe, RedisSubscriber

log = logging.getLogger(__name__)


class SupervisedRedisManager(socketio.AsyncRedisManager):
    """``AsyncRedisManager`` with a blocking publish pool and a heartbeat-checked listener."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 1000,
        channel: str = "socketio",
        heartbeat_s: float = 1.0,
        retry_max_s: float = 2.0,
        connect_timeout: float = 2.0,
    ) -> None:
        super().__init__(url, channel=channel)
        self.max_connections = max_connections
        self.heartbeat_s = heartbeat_s
        self.retry_max_s = retry_max_s
        self.connect_timeout = connect_timeout
        self.subscribed = False
        """True while the listener holds a live subscription."""
        self.last_alive = -math.inf
        """Loop time of the listener's last message or pong."""
        self.reconnects = 0
        """How many times the listener lost Redis and subscribed again."""
        self._publisher: Any = None
        self.thread: asyncio.Task[Any] | None = None

    # -- publishing -----------------------------------------------------------------------------------

    def _publisher_client(self) -> Any:
        """What publishes: a :class:`PipePublisher`, or a redis-py client with TLS."""
        if self._publisher is None:
            if RedisPipe.supports(self.redis_url):
                self._publisher = PipePublisher(
                    RedisPipe(self.redis_url, connect_timeout=self.connect_timeout)
                )
            else:
                pool = aioredis.BlockingConnectionPool.from_url(
                    self.redis_url,
                    max_connections=self.max_connections,
                    timeout=10,
                    socket_connect_timeout=self.connect_timeout,
                    retry=Retry(NoBackoff(), 1),
                )
                self._publisher = aioredis.Redis(connection_pool=pool)
        return self._publisher

    async def _publish(self, data: Any) -> Any:
        """Publish one message; on failure log it and go on (clients recover with ``conversation.sync``)."""
        payload = self.json.dumps(data)
        try:
            return await self._publisher_client().publish(self.channel, payload)
        except Exception as exc:
            log.error("cannot publish to Redis (event lost for other nodes): %s", exc)
            return None

    # -- listening ------------------------------------------------------------------------------------

    def listen_channels(self) -> list[str]:
        """The channels the listener subscribes to (subclasses add their own)."""
        return [self.channel]

    async def before_subscribe(self) -> None:
        """Called on every (re)connection of the listener, before it subscribes (a subclass hook)."""

    async def _listen(self) -> AsyncIterator[bytes]:
        """Yield every message published on the channels, resubscribing after any failure."""
        loop = asyncio.get_running_loop()
        delay = 0.1
        while True:
            subscriber: Any = None
            try:
                channels = self.listen_channels()
                wanted = {c.encode() for c in channels}
                await self.before_subscribe()
                opener = (
                    RedisSubscriber.open if RedisPipe.supports(self.redis_url) else _RedisPySubscriber.open
                )
                subscriber = await opener(self.redis_url, channels, connect_timeout=self.connect_timeout)
                self.subscribed = True
                self.last_alive = last_ping = loop.time()
                delay = 0.1
                while True:
                    message = await subscriber.get(timeout=self.heartbeat_s)
                    now = loop.time()
                    self.last_alive = max(self.last_alive, subscriber.heard)
                    if message is not None and message[0] in wanted:
                        yield message[1]
                        now = loop.time()
                    if now - last_ping >= self.heartbeat_s:
                        await subscriber.ping()
                        last_ping = now
                    if now - self.last_alive > 3 * self.heartbeat_s:
                        raise ConnectionError("no pong from Redis on the pub/sub connection")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pub/sub listener lost Redis (%s); resubscribing in %.1f s", exc, delay)
            finally:
                self.subscribed = False
                if subscriber is not None:
                    with contextlib.suppress(Exception):
                        await subscriber.close()
            await asyncio.sleep(delay)
            self.reconnects += 1
            delay = min(delay * 2, self.retry_max_s)

    # -- health and life cycle ------------------------------------------------------------------------

    def listener_healthy(self) -> bool:
        """True when the listener task runs, is subscribed, and heard Redis within 3 heartbeats."""
        task = self.thread
        if task is None or task.done() or not self.subscribed:
            return False
        return asyncio.get_running_loop().time() - self.last_alive <= 3 * self.heartbeat_s

    async def aclose(self) -> None:
        """Stop the listener and close the publisher's connections."""
        task, self.thread = self.thread, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher.aclose()
            if not isinstance(publisher, PipePublisher):
                with contextlib.suppress(Exception):
                    await publisher.connection_pool.aclose()


class _RedisPySubscriber:
    """redis-py's ``PubSub`` behind :class:`~signaling.storage.redis_pipe.RedisSubscriber`'s interface
    (for TLS URLs, which the pipe does not speak)."""

    def __init__(self, client: Any, pubsub: Any) -> None:
        self._client = client
        self._pubsub = pubsub
        self.heard = asyncio.get_running_loop().time()

    @classmethod
    async def open(cls, url: str, channels: list[str], *, connect_timeout: float) -> _RedisPySubscriber:
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=connect_timeout, retry=Retry(NoBackoff(), 0)
        )
        subscriber = cls(client, client.pubsub(ignore_subscribe_messages=True))
        try:
            await subscriber._pubsub.subscribe(*channels)
        except BaseException:
            await subscriber.close()
            raise
        return subscriber

    async def get(self, timeout: float) -> tuple[bytes, bytes] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            message = await self._pubsub.get_message(timeout=remaining)  # None also for what it ignores
            if message is not None:
                self.heard = loop.time()
                if message["type"] == "message":
                    return message["channel"], message["data"]
        return None

    async def ping(self) -> None:
        await self._pubsub.ping()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self._client.aclose()


class PipePublisher:
    """Publishing on a :class:`~signaling.storage.redis_pipe.RedisPipe`, with the part of redis-py's
    client interface the managers use: ``publish`` and ``pipeline(transaction=False)``."""

    def __init__(self, pipe: RedisPipe) -> None:
        self.pipe = pipe

    async def publish(self, channel: str, payload: str | bytes) -> int:
        """``PUBLISH``: how many subscribers received it."""
        return int(await self.pipe.call("PUBLISH", channel, payload))

    def pipeline(self, transaction: bool = False) -> PipeBatch:
        """A batch of commands sent together (never a transaction)."""
        if transaction:
            raise ValueError("a PipePublisher batch is not a transaction")
        return PipeBatch(self.pipe)

    async def aclose(self) -> None:
        """Close the connection."""
        await self.pipe.close()


class PipeBatch:
    """Commands queued, then sent in order in one write by :meth:`execute`."""

    def __init__(self, pipe: RedisPipe) -> None:
        self._pipe = pipe
        self._commands: list[tuple[Any, ...]] = []

    def publish(self, channel: str, payload: str | bytes) -> None:
        self._commands.append(("PUBLISH", channel, payload))

    def sadd(self, key: str, *members: str) -> None:
        self._commands.append(("SADD", key, *members))

    def srem(self, key: str, *members: str) -> None:
        self._commands.append(("SREM", key, *members))

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> None:
        self._commands.append(("EVAL", script, numkeys, *keys_and_args))

    async def execute(self) -> list[Any]:
        """Every reply in order; raises the first refusal after all ran (as redis-py's pipeline)."""
        results = await self._pipe.batch(self._commands)
        self._commands = []
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results
