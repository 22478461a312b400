"""The SQLite store's writer thread: it owns the ``sqlite3`` connection and runs the batches
(:mod:`~signaling.storage.sqlite_batch`: group commit, a failing operation rolled back alone).

Callers put jobs (a function of the connection and its arguments) on a queue and await an asyncio
future. The thread drains what is queued (up to ``max_batch``), runs it as one batch and only then
resolves the futures, each on its own event loop, one ``call_soon_threadsafe`` per loop and batch.
The store uses it with ``writer="thread"``; its default is the writer process
(:mod:`~signaling.storage.sqlite_proc`).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from signaling.domain.errors import Unavailable
from signaling.storage.sqlite_batch import Job, Outcome, WorkerStats, open_connection, run_batch
from signaling.storage.sqlite_checkpoint import Checkpointer

__all__ = ["Job", "Outcome", "SqliteWorker", "WorkerStats"]

T = TypeVar("T")


@dataclass(slots=True)
class _Stop:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


_Settled = tuple[asyncio.Future[Any], Any, BaseException | None]


def _settle(outcomes: list[_Settled]) -> None:
    """Resolve futures on their own loop (called through ``call_soon_threadsafe``)."""
    for future, result, exc in outcomes:
        if future.done():  # the caller gave up (cancelled / timed out); the work was done anyway
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)


def _deliver(outcomes: Iterable[Outcome]) -> None:
    """Hand the thread's outcomes back (refs are ``(loop, future)``), one ``call_soon_threadsafe`` per
    event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
    for (loop, future), result, exc in outcomes:
        by_loop.setdefault(loop, []).append((future, result, exc))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


class SqliteWorker:
    """The writer thread owning the connection, and the queue feeding it (one per open store)."""

    def __init__(self, path: str, node_id: str, max_batch: int) -> None:
        self._path = path
        self._node_id = node_id
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Job | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.stats = WorkerStats()

    async def start(self) -> None:
        """Start the thread; returns once the file is open and migrated (raises what opening raised)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(loop, ready), name=f"sqlite-store:{Path(self._path).name}", daemon=True
        )
        self._thread.start()
        await ready

    def submit(self, fn: Callable[..., T], args: tuple[Any, ...], *, write: bool) -> asyncio.Future[T]:
        """Queue ``fn(conn, *args)`` (``write``: it may write); its future."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(Job(fn, args, write, (loop, future), time.monotonic()))
        return future

    async def stop(self) -> None:
        """Run everything queued so far, then close the connection and end the thread."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Stop(loop, done))
        await done
        if self._thread is not None:
            self._thread.join()  # the thread resolved ``done`` as its last act: this does not wait

    # -- in the thread ----------------------------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            conn = open_connection(self._path, self._node_id)
        except Exception as exc:
            _deliver([((loop, ready), None, exc)])
            return
        _deliver([((loop, ready), None, None)])
        checkpointer = Checkpointer(self._path)
        checkpointer.start()
        stop: _Stop | None = None
        try:
            while stop is None:
                batch: list[Job] = []
                item = self._queue.get()
                while True:
                    if isinstance(item, _Stop):
                        stop = item
                        break
                    batch.append(item)
                    if len(batch) >= self._max_batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    _deliver(run_batch(conn, batch, self.stats))
        finally:
            checkpointer.stop()
            conn.close()
            leftovers: list[Outcome] = []
            while True:  # submitted after the stop: refuse rather than leave callers hanging
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, Job):
                    leftovers.append((item.ref, None, Unavailable("the store is closed")))
            if stop is not None:
                leftovers.append(((stop.loop, stop.future), None, None))
            _deliver(leftovers)
