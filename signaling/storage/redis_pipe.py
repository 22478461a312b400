"""An auto-pipelined Redis connection for the store's hot calls (its Lua scripts).

redis-py's asyncio client spends most of a call in Python around the network: a connection taken from
and returned to the pool (locks and conditions), the retry wrapper, a timeout context, argument packing,
the response read through a stream reader. Under the hub's load that was about a third of a node's CPU
per message on Redis (py-spy, two nodes, see BENCHMARKS.md). :class:`RedisPipe` keeps one connection
(an :class:`asyncio.Protocol`) and writes every command issued during one event-loop iteration in one
``write``; replies, parsed by hiredis, resolve the callers' futures in order (Redis answers a connection's
commands in the order it received them). Concurrent callers are thus pipelined, and a call costs an
encoded command and a future.

Only commands that neither block nor change the connection's state go through it (``EVALSHA`` / ``EVAL``
of the store's scripts; plain commands if wanted): transactions, ``WATCH``, blocking pops and pub/sub
stay on redis-py. Errors keep redis-py's classes, so callers handle them as before: an error reply is
:class:`redis.exceptions.ResponseError`; a lost or refused connection is
:class:`redis.exceptions.ConnectionError` for every call in flight on it (none is silently retried
here: whether a call may be repeated is the caller's decision), and the next call reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import socket
from typing import Any

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def encode_command(args: tuple[Any, ...] | list[Any]) -> bytes:
    """One command in RESP (an array of bulk strings), with redis-py's rules for argument types."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, bool) or not isinstance(arg, int | float):
            raise DataError(
                f"invalid input of type {type(arg).__name__!r}: convert to bytes, str or a number"
            )
        else:
            data = repr(arg).encode()
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    """One connection: queued commands leave once per loop iteration; replies resolve futures in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reader = hiredis.Reader(encoding="utf-8")
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.pending: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        self._scheduled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.lost is not None:
            raise RedisConnectionError(f"Redis connection lost: {self.lost}")
        future = self.loop.create_future()
        self.waiters.append(future)
        self.pending.append(command)
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self.pending = self.pending, []
        if self.transport is not None and pending and self.lost is None:
            self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiters = self.waiters
        try:
            while (reply := reader.gets()) is not False:
                future = waiters.popleft()
                if future.done():  # its caller was cancelled: the reply is dropped, the order kept
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(ResponseError(str(reply)))
                else:
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # a corrupt stream or an unasked reply
            self._fail(RedisConnectionError(f"Redis protocol error: {exc}"))
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"Redis connection lost: {exc or 'closed'}"))

    def _fail(self, error: Exception) -> None:
        if self.lost is None:
            self.lost = error
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(error)


class RedisPipe:
    """Commands pipelined on one Redis connection, opened on first use and again after a loss."""

    def __init__(self, url: str, *, connect_timeout: float = 2.0) -> None:
        options = parse_url(url)
        self._path: str | None = options.get("path")
        self._host: str = options.get("host", "localhost")
        self._port: int = int(options.get("port", 6379))
        self._db = int(options.get("db") or 0)
        self._username: str | None = options.get("username")
        self._password: str | None = options.get("password")
        self.connect_timeout = connect_timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._scripts: dict[str, tuple[str, bytes]] = {}
        self._closed = False

    @staticmethod
    def supports(url: str) -> bool:
        """Whether ``url`` is a plain ``redis://`` or ``unix://`` one (TLS stays with redis-py)."""
        return url.startswith(("redis://", "unix://"))

    def register(self, name: str, source: str) -> None:
        """Know the Lua script ``name`` (run with :meth:`script`)."""
        raw = source.encode()
        self._scripts[name] = (hashlib.sha1(raw).hexdigest(), raw)  # noqa: S324 - Redis names scripts so

    async def call(self, *args: Any) -> Any:
        """Run one command; its reply (strings decoded as UTF-8)."""
        command = encode_command(args)
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        return await protocol.send(command)

    async def script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """``EVALSHA`` of a registered script, loading it with ``EVAL`` when Redis does not have it."""
        sha, source = self._scripts[name]
        try:
            return await self.call("EVALSHA", sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.call("EVAL", source, len(keys), *keys, *args)

    async def close(self) -> None:
        """Close the connection; calls in flight fail with ``ConnectionError``."""
        self._closed = True
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()

    async def _connect(self) -> _Protocol:
        if self._closed:
            raise RedisConnectionError("the Redis pipe is closed")
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    def _connected(self, future: asyncio.Future[_Protocol]) -> None:
        self._connecting = None
        if future.cancelled() or future.exception() is not None:
            return
        protocol = future.result()
        if self._closed:  # closed while connecting
            if protocol.transport is not None:
                protocol.transport.close()
            return
        self._protocol = protocol

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self._path is not None:
                    _, protocol = await loop.create_unix_connection(lambda: _Protocol(loop), self._path)
                else:
                    _, protocol = await loop.create_connection(
                        lambda: _Protocol(loop), self._host, self._port
                    )
                try:
                    if self._password is not None:
                        auth = [self._username, self._password] if self._username else [self._password]
                        await protocol.send(encode_command(["AUTH", *auth]))
                    if self._db:
                        await protocol.send(encode_command(["SELECT", self._db]))
                except BaseException:
                    if protocol.transport is not None:
                        protocol.transport.close()
                    raise
        except TimeoutError as exc:
            raise RedisTimeoutError(f"timed out connecting to Redis at {self._host}:{self._port}") from exc
        except OSError as exc:
            raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
        return protocol
