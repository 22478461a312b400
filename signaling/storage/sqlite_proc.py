"""The SQLite store's writer process: the connection and the group commit in a process of their own.

With the writer thread (:mod:`~signaling.storage.sqlite_worker`), the writer's Python (binding,
stepping, mapping rows: 100-150 us per message) takes turns with the event loop's under one interpreter
lock, so the server process tops out near one core: ~3,300 durable messages a second on this 2-core
machine, with latency climbing long before (p99 76-236 ms at 3,000 msg/s). Here the same batches
(:func:`~signaling.storage.sqlite_batch.run_batch`: one transaction, one fsync, a failing operation
rolled back alone) run in a child process beside the loop: ~4,000 msg/s, p99 25 ms at 3,000 msg/s, for
the same CPU per message (BENCHMARKS.md).

The wire: a ``socketpair``, frames of a 4-byte little-endian length and a pickle
(:mod:`~signaling.storage.sqlite_writer`). The store sends, at most once per event-loop iteration, the
jobs submitted meanwhile with the time it sent them (``(time.monotonic(), [(number, module, name, args,
write), ...])``: the operation is a module-level function, named; the clock is the machine's, so the
child counts each job's time in the writer from that moment), or
:data:`~signaling.storage.sqlite_writer.STOP`; the child reads everything that has
arrived, runs it as one batch (up to ``max_batch``), commits, and sends back one frame per batch: the
outcomes ``(number, result, exception)`` and its counters. Futures are resolved as that frame arrives,
on the loop, after the commit: an ``await`` still returns once the write is durable. Pickling dataclasses
costs 20-30 us a record, so the hot operation (the append) crosses as plain tuples
(:func:`~signaling.storage.sqlite_ops_conversations.append_row`); the others are rarer and cross as
records.

The child is a fresh interpreter running :mod:`~signaling.storage.sqlite_writer` (it imports the store's
operations and nothing else of the server, and inherits only its end of the socket), ready in about
0.15 s. It lives as long as its socket (see that module for its signals). If it dies, the calls it was
running fail with ``Unavailable`` (their batch was not committed, or was and its answer was lost, as
when the connection to any database drops) and the next call starts a new writer.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import pickle
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from signaling.domain.errors import Unavailable
from signaling.storage.sqlite_batch import WorkerStats
from signaling.storage.sqlite_writer import STOP, Frames, frame

log = logging.getLogger("signaling.storage.sqlite")

T = TypeVar("T")

STOP_TIMEOUT_S = 30.0
"""How long closing the store waits for the writer to commit what it was sent and stop."""

_Wire = tuple[int, str, str, tuple[Any, ...], bool]
"""A job on the wire: its number, its operation's module and name, its arguments, whether it writes."""


class _Link(asyncio.Protocol):
    def __init__(self, worker: SqliteProcessWorker) -> None:
        self._worker = worker
        self._frames = Frames()

    def data_received(self, data: bytes) -> None:
        for payload in self._frames.feed(data):
            self._worker._received(pickle.loads(payload))

    def connection_lost(self, exc: Exception | None) -> None:
        self._worker._lost(self)


class SqliteProcessWorker:
    """The writer process of one open store, and the link to it (same interface as the thread's
    :class:`~signaling.storage.sqlite_worker.SqliteWorker`)."""

    def __init__(self, path: str, node_id: str, max_batch: int) -> None:
        self._path = path
        self._node_id = node_id
        self._max_batch = max_batch
        self.stats = WorkerStats()
        self._futures: dict[int, asyncio.Future[Any]] = {}
        self._outbox: list[_Wire] = []
        self._flushing = False
        self._number = 0
        self._link: _Link | None = None
        self._transport: asyncio.Transport | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The writer process's id (None before it started)."""
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        """Start the child; returns once the file is open and migrated (raises what opening raised)."""
        await self._spawn(fresh=True)

    async def _spawn(self, *, fresh: bool) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        argv = [sys.executable, "-m", "signaling.storage.sqlite_writer", str(theirs.fileno()), self._path]
        argv += [self._node_id if fresh else "", str(self._max_batch)]
        try:
            self._process = await asyncio.to_thread(
                subprocess.Popen, argv, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=_child_env()
            )
        finally:
            theirs.close()
        self._starting = loop.create_future()
        ours.setblocking(False)
        transport, link = await loop.create_unix_connection(lambda: _Link(self), sock=ours)
        self._transport, self._link = transport, link
        _close_at_exit(ours)
        try:
            await self._starting
        except BaseException:
            transport.close()
            self._transport = self._link = None
            raise
        finally:
            self._starting = None

    def submit(self, fn: Callable[..., T], args: tuple[Any, ...], *, write: bool) -> asyncio.Future[T]:
        """Send ``fn(conn, *args)`` to the child (``write``: it may write); its future."""
        if self._closed:
            raise Unavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        name = fn.__qualname__
        if "<" in name:  # a lambda or a local function: the writer process cannot import it
            future.set_exception(TypeError(f"a store operation the writer process cannot take: {name}"))
            return future
        self._number += 1
        self._futures[self._number] = future
        self._outbox.append((self._number, fn.__module__, name, args, write))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        """Send what was submitted since the last flush, as one frame (a new child first if it died)."""
        if self._transport is None:
            if self._closed:
                self._fail_outbox(Unavailable("the store is closed"))
            elif self._starting is None:
                asyncio.ensure_future(self._respawn())
            return  # sent once the child is up
        self._flushing = False
        jobs, self._outbox = self._outbox, []
        if not jobs:
            return
        try:
            data: bytes | None = frame((time.monotonic(), jobs))
        except Exception:  # an operation or argument that cannot be pickled: find it, refuse it alone
            data = self._frame_sendable(jobs)
        if data is not None:
            self._transport.write(data)

    def _frame_sendable(self, jobs: list[_Wire]) -> bytes | None:
        sendable = []
        for job in jobs:
            try:
                pickle.dumps(job, pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                self._settle(job[0], None, TypeError(f"a store operation the writer process cannot take: {exc}"))
            else:
                sendable.append(job)
        return frame((time.monotonic(), sendable)) if sendable else None

    async def _respawn(self) -> None:
        try:
            await self._spawn(fresh=False)
        except Exception as exc:
            log.error("sqlite: the writer process could not start again: %s", exc)
            self._fail_outbox(Unavailable(f"the store's writer process could not start: {exc}"))
            return
        log.warning("sqlite: a new writer process took over")
        self._flush()

    def _fail_outbox(self, error: Exception) -> None:
        jobs, self._outbox = self._outbox, []
        self._flushing = False
        for number, *_ in jobs:
            self._settle(number, None, error)

    def _received(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "done":
            for number, result, exc in message[1]:
                self._settle(number, result, exc)
            self.stats.load(message[2])
        elif kind == "ready":
            if self._starting is not None and not self._starting.done():
                if message[1] is None:
                    self._starting.set_result(None)
                else:
                    self._starting.set_exception(message[1])
        elif kind == "log":  # the writer's log record, logged here the server's way
            _, level, name, text = message
            logging.getLogger(name).log(level, "[writer %s] %s", self.pid, text)
        elif kind == "stopped" and self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    def _settle(self, number: int, result: Any, exc: BaseException | None) -> None:
        future = self._futures.pop(number, None)
        if future is None or future.done():  # the caller gave up; the work was done anyway
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _lost(self, link: _Link) -> None:
        if link is not self._link:
            return
        self._transport = self._link = None
        if self._starting is not None and not self._starting.done():
            self._starting.set_exception(Unavailable("the store's writer process ended while opening the file"))
        if self._stopped is not None:
            if not self._stopped.done():
                self._stopped.set_result(None)
        elif not self._closed:
            code = self._exit_code()
            log.error(
                "sqlite: the writer process %s ended%s; its calls in flight fail, the next one starts a new writer",
                self.pid,
                "" if code is None else f" (exit code {code})",
            )
        unsent = {job[0] for job in self._outbox}
        failed = Unavailable("the store's writer process ended; the operation may not have been committed")
        for number in [n for n in self._futures if n not in unsent]:
            self._settle(number, None, failed)
        if self._outbox and not self._closed:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    async def stop(self) -> None:
        """Run everything submitted so far, then close the connection and end the child."""
        if self._closed:
            return
        self._closed = True
        transport = self._transport
        if transport is not None:
            self._flushing = False
            self._flush()  # what was submitted this iteration goes before the stop
            self._stopped = asyncio.get_running_loop().create_future()
            transport.write(frame(STOP))
            try:
                await asyncio.wait_for(asyncio.shield(self._stopped), STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("sqlite: the writer process did not stop within %.0f s; killed", STOP_TIMEOUT_S)
                if self._process is not None:
                    self._process.kill()
            transport.close()
        failed = Unavailable("the store is closed")
        for number in list(self._futures):
            self._settle(number, None, failed)
        process = self._process
        if process is not None:
            try:
                await asyncio.to_thread(process.wait, 5)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait, 5)


def _child_env() -> dict[str, str]:
    """The server's environment, with this package importable from the child whatever its working
    directory (the server may run from a checkout that is not installed)."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


_at_exit: weakref.WeakSet[socket.socket] = weakref.WeakSet()


def _close_at_exit(sock: socket.socket) -> None:
    """Close the link at interpreter exit, so that the child of a store that was never closed reads
    end-of-file and exits at once."""
    _at_exit.add(sock)


def _close_links() -> None:
    for sock in list(_at_exit):
        with contextlib.suppress(OSError):
            sock.close()


atexit.register(_close_links)
