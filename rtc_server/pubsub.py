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
  connection is busy (see FACTS.md); here publishing goes through a ``BlockingConnectionPool``
  (waits for a connection instead) that reconnects by itself, on one long-lived client.
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
        if self._publisher is None:
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
            client = aioredis.Redis.from_url(
                self.redis_url, socket_connect_timeout=self.connect_timeout, retry=Retry(NoBackoff(), 0)
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                channels = self.listen_channels()
                wanted = {c.encode() for c in channels}
                await self.before_subscribe()
                await pubsub.subscribe(*channels)
                self.subscribed = True
                self.last_alive = last_ping = loop.time()
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=self.heartbeat_s)
                    now = loop.time()
                    if message is not None:
                        self.last_alive = now
                        if message["type"] == "message" and message["channel"] in wanted:
                            yield message["data"]
                            now = loop.time()
                    if now - last_ping >= self.heartbeat_s:
                        await pubsub.ping()
                        last_ping = now
                    if now - self.last_alive > 3 * self.heartbeat_s:
                        raise ConnectionError("no pong from Redis on the pub/sub connection")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pub/sub listener lost Redis (%s); resubscribing in %.1f s", exc, delay)
            finally:
                self.subscribed = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
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
            with contextlib.suppress(Exception):
                await publisher.connection_pool.aclose()
