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
from collections.abc import Mapping
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

    def __init__(self, loop: asyncio.AbstractEventLoop, encoding: str | None = "utf-8") -> None:
        self.loop = loop
        self.reader = hiredis.Reader(encoding=encoding) if encoding else hiredis.Reader()
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.pending: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        self.loaded: set[str] = set()
        """SHA-1s of the scripts whose body this connection has sent (``EVALSHA`` works for them)."""
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

    def _flush_now(self, command: bytes) -> None:
        """Write a command whose reply is not awaited (subscribe mode's pushes answer it)."""
        if self.transport is not None and self.lost is None:
            self.transport.write(command)

    def _flush(self) -> None:
        self._scheduled = False
        pending, self.pending = self.pending, []
        if self.transport is not None and pending and self.lost is None:
            self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                self._reply(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # a corrupt stream or an unasked reply
            self._fail(RedisConnectionError(f"Redis protocol error: {exc}"))
            if self.transport is not None:
                self.transport.abort()

    def _reply(self, reply: Any) -> None:
        """Answer the oldest waiting command with ``reply``."""
        future = self.waiters.popleft()
        if future.done():  # its caller was cancelled: the reply is dropped, the order kept
            return
        if isinstance(reply, hiredis.ReplyError):
            future.set_exception(ResponseError(str(reply)))
        else:
            future.set_result(reply)

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
        self._options = parse_url(url)
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
        protocol = await self._ready()
        return await protocol.send(command)

    async def script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a registered script."""
        sha, source = self._scripts[name]
        return await self._evalsha(sha, source, len(keys), *keys, *args)

    async def eval(self, source: str, numkeys: int, *keys_and_args: Any) -> Any:
        """``EVAL`` of ``source``, sent as ``EVALSHA`` once this connection has sent its body."""
        sha, body = self._known(source)
        return await self._evalsha(sha, body, numkeys, *keys_and_args)

    async def batch(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` together and in order; their replies, with an exception in place of each
        refused one (``("EVAL", source, numkeys, ...)`` goes as ``EVALSHA`` when it can). Raises
        ``ConnectionError`` when the connection is lost (how many ran is then unknown)."""
        protocol = await self._ready()
        futures = []
        for command in commands:
            if command[0] == "EVAL":
                sha, body = self._known(command[1])
                command = self._eval_command(protocol, sha, body, command[2:])
            futures.append(protocol.send(encode_command(command)))
        results: list[Any] = []
        for future in futures:
            try:
                results.append(await future)
            except ResponseError as exc:
                if str(exc).startswith("NOSCRIPT"):
                    protocol.loaded.clear()  # flushed: the next batch sends the bodies again
                results.append(exc)
        return results

    def _known(self, source: str) -> tuple[str, bytes]:
        known = self._scripts.get(source)
        if known is None:
            self.register(source, source)
            known = self._scripts[source]
        return known

    @staticmethod
    def _eval_command(protocol: _Protocol, sha: str, body: bytes, rest: tuple[Any, ...]) -> tuple[Any, ...]:
        """``EVALSHA`` when this connection has already sent the script's body, else ``EVAL`` (Redis then
        keeps it): the replies keep the commands' order, with no ``NOSCRIPT`` round trip on a new
        connection (a restarted Redis)."""
        if sha in protocol.loaded:
            return ("EVALSHA", sha, *rest)
        protocol.loaded.add(sha)
        return ("EVAL", body, *rest)

    async def _evalsha(self, sha: str, body: bytes, *rest: Any) -> Any:
        protocol = await self._ready()
        try:
            return await protocol.send(encode_command(self._eval_command(protocol, sha, body, rest)))
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        protocol.loaded.discard(sha)  # SCRIPT FLUSH: send the body again
        return await protocol.send(encode_command(self._eval_command(protocol, sha, body, rest)))

    async def close(self) -> None:
        """Close the connection; calls in flight fail with ``ConnectionError``."""
        self._closed = True
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()

    async def _ready(self) -> _Protocol:
        """The open connection, opened (again) if there is none or it was lost."""
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            return protocol
        return await self._connect()

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
        return await _open(self._options, lambda: _Protocol(loop), self.connect_timeout)


async def _open(options: Mapping[str, Any], factory: Any, connect_timeout: float) -> Any:
    """Connect a protocol made by ``factory`` to the Redis of ``options`` (``parse_url``'s), then
    ``AUTH`` and ``SELECT`` as the URL says."""
    loop = asyncio.get_running_loop()
    path = options.get("path")
    host, port = options.get("host", "localhost"), int(options.get("port", 6379))
    try:
        async with asyncio.timeout(connect_timeout):
            if path is not None:
                _, protocol = await loop.create_unix_connection(factory, path)
            else:
                _, protocol = await loop.create_connection(factory, host, port)
            try:
                password, username = options.get("password"), options.get("username")
                if password is not None:
                    await protocol.send(
                        encode_command(["AUTH", username, password] if username else ["AUTH", password])
                    )
                if options.get("db"):
                    await protocol.send(encode_command(["SELECT", int(options["db"])]))
            except BaseException:
                if protocol.transport is not None:
                    protocol.transport.close()
                raise
    except TimeoutError as exc:
        raise RedisTimeoutError(f"timed out connecting to Redis at {path or f'{host}:{port}'}") from exc
    except OSError as exc:
        raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
    return protocol


class _SubscriberProtocol(_Protocol):
    """A connection in subscribe mode: published messages are queued; other replies answer commands."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop, encoding=None)
        self.messages: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self.heard = loop.time()
        self.wakeup: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._wake()

    def _reply(self, reply: Any) -> None:
        if isinstance(reply, list) and reply and reply[0] in _PUSHES:
            self.heard = self.loop.time()
            if reply[0] == b"message":
                self.messages.append((reply[1], reply[2]))
            return
        super()._reply(reply)  # AUTH / SELECT

    def _fail(self, error: Exception) -> None:
        super()._fail(error)
        self._wake()

    def _wake(self) -> None:
        wakeup, self.wakeup = self.wakeup, None
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)


_PUSHES = frozenset((b"message", b"subscribe", b"unsubscribe", b"pong"))


class RedisSubscriber:
    """One ``SUBSCRIBE`` connection: the messages published on its channels, in the order Redis sent them.

    The replacement for redis-py's ``PubSub`` in the Socket.IO manager's listener: a message costs a
    hiredis parse and a deque append, and a batch of them is read without a wait each."""

    def __init__(self, protocol: _SubscriberProtocol) -> None:
        self._protocol = protocol

    @classmethod
    async def open(cls, url: str, channels: list[str], *, connect_timeout: float = 2.0) -> RedisSubscriber:
        """Connect and subscribe to ``channels``."""
        loop = asyncio.get_running_loop()
        protocol = await _open(parse_url(url), lambda: _SubscriberProtocol(loop), connect_timeout)
        subscriber = cls(protocol)
        protocol._flush_now(encode_command(["SUBSCRIBE", *channels]))
        return subscriber

    @property
    def heard(self) -> float:
        """Loop time of the last message, pong or subscription reply."""
        return self._protocol.heard

    async def ping(self) -> None:
        """Ask for a pong (it updates :attr:`heard`)."""
        self._protocol._flush_now(encode_command(["PING"]))

    async def get(self, timeout: float) -> tuple[bytes, bytes] | None:
        """The next ``(channel, data)``; None when nothing came within ``timeout`` seconds. Raises
        ``ConnectionError`` once the connection is lost (after the messages that arrived before)."""
        protocol = self._protocol
        loop = protocol.loop
        deadline = loop.time() + timeout
        while True:
            if protocol.messages:
                return protocol.messages.popleft()
            if protocol.lost is not None:
                raise protocol.lost
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            wakeup = protocol.wakeup = loop.create_future()
            timer = loop.call_later(remaining, protocol._wake)
            try:
                await wakeup  # a message, a pong, the loss, or the time
            finally:
                timer.cancel()

    async def close(self) -> None:
        """Close the connection."""
        if self._protocol.transport is not None:
            self._protocol.transport.close()
