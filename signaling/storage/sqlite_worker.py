"""The SQLite store's writer thread: it owns the ``sqlite3`` connection and practises group commit.

Callers put jobs (a function of the connection) on a queue and await an asyncio future. The thread
drains what is queued (up to ``max_batch``), runs the whole batch in one transaction, commits once (one
fsync for the batch) and only then resolves the futures, each on its own event loop, one
``call_soon_threadsafe`` per loop and batch. A job once queued runs and commits even if its caller
stops waiting.

A failing job rolls back only itself and hands its exception to its own caller. Savepoints give that,
but cost two statements per job, so a batch first runs without them; if a write job fails (the rare
case), everything the batch did is rolled back and the batch runs again from its start with a
``SAVEPOINT`` around each write. Jobs are functions of the connection and of their arguments only, so
the second run does what the first did, and a job's effects are committed once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from signaling.domain.errors import Conflict, NotFound, Unavailable
from signaling.storage import sqlite_schema as s

log = logging.getLogger("signaling.storage.sqlite")  # one logger name for the whole SQLite store

T = TypeVar("T")


@dataclass(slots=True)
class WorkerStats:
    """Counters of the writer thread (read them for benchmarks and tests; written by the thread only)."""

    batches: int = 0
    """Transactions run (each one commit)."""
    operations: int = 0
    """Operations run, failed ones included."""
    reruns: int = 0
    """Batches run a second time, with a savepoint per write, because a write failed in the first run."""


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    write: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Stop:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


def _settle(outcomes: list[_Outcome]) -> None:
    """Resolve futures on their own loop (called through ``call_soon_threadsafe``)."""
    for future, result, exc in outcomes:
        if future.done():  # the caller gave up (cancelled / timed out); the work was done anyway
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)


def _deliver(outcomes: Iterable[tuple[asyncio.AbstractEventLoop, _Outcome]]) -> None:
    """Hand outcomes back, one ``call_soon_threadsafe`` per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for loop, outcome in outcomes:
        by_loop.setdefault(loop, []).append(outcome)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


def _fold(value: str | None) -> str | None:
    """SQL ``fold(x)``: Unicode case folding (SQLite's own ``lower``/``LIKE`` fold ASCII only)."""
    return value.casefold() if isinstance(value, str) else value


def _map_error(exc: Exception) -> Exception:
    """Constraint violations become domain errors; anything else goes to the caller unchanged."""
    if isinstance(exc, sqlite3.IntegrityError):
        text = str(exc)
        if "FOREIGN KEY" in text:
            return NotFound("a record it refers to does not exist")
        if "UNIQUE" in text or "PRIMARY KEY" in text:
            return Conflict("a record with that key exists")
    return exc


class SqliteWorker:
    """The thread owning the connection, and the queue feeding it (one per open store)."""

    def __init__(self, path: str, node_id: str, max_batch: int) -> None:
        self._path = path
        self._node_id = node_id
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | _Stop] = queue.SimpleQueue()
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

    def submit(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> asyncio.Future[T]:
        """Queue ``fn`` (``write``: it may write, so its batch takes the write lock); its future."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, write, loop, future))
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

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 5000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal" and self._path != ":memory:":
                raise Unavailable(f"SQLite refused WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.create_function("fold", 1, _fold, deterministic=True)
            s.migrate(conn)
            conn.execute(
                "DELETE FROM presence WHERE node_id = ?", (self._node_id,)
            )  # stale: our previous run
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
        except Exception as exc:
            _deliver([(loop, (ready, None, exc))])
            return
        _deliver([(loop, (ready, None, None))])
        stop: _Stop | None = None
        try:
            while stop is None:
                batch: list[_Job] = []
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
                    try:
                        self._run_batch(conn, batch)
                    except Exception as exc:  # a bug or a dead connection: never leave a caller hanging
                        log.exception("sqlite: batch failed")
                        if conn.in_transaction:
                            with contextlib.suppress(sqlite3.Error):
                                conn.execute("ROLLBACK")
                        failed = Unavailable(f"the store failed: {exc}")
                        _deliver((job.loop, (job.future, None, failed)) for job in batch)
        finally:
            conn.close()
            leftovers: list[tuple[asyncio.AbstractEventLoop, _Outcome]] = []
            while True:  # submitted after the stop: refuse rather than leave callers hanging
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Job):
                    leftovers.append((item.loop, (item.future, None, Unavailable("the store is closed"))))
            if stop is not None:
                leftovers.append((stop.loop, (stop.future, None, None)))
            _deliver(leftovers)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        self.stats.batches += 1
        self.stats.operations += len(batch)
        begin = "BEGIN IMMEDIATE" if any(job.write for job in batch) else "BEGIN"
        try:
            conn.execute(begin)
        except sqlite3.Error as exc:
            log.error("sqlite: cannot begin a transaction: %s", exc)
            _deliver((job.loop, (job.future, None, Unavailable(str(exc)))) for job in batch)
            return
        outcomes, broken = _run_plain(conn, batch)
        if outcomes is None and broken is None:
            # A write failed: only a savepoint per operation undoes it alone. Everything ran so far is
            # rolled back and the batch runs again from its start, each write in its own savepoint
            # (operations are functions of the connection: a second run does what the first did).
            self.stats.reruns += 1
            try:
                conn.execute("ROLLBACK")
                conn.execute(begin)
            except sqlite3.Error as exc:
                broken = exc
            else:
                outcomes, broken = _run_with_savepoints(conn, batch)
        if broken is None:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                broken = exc
        if broken is not None or outcomes is None:
            log.error("sqlite: batch of %d lost: %s", len(batch), broken)
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            failed = Unavailable(f"the store could not commit: {broken}")
            _deliver((job.loop, (job.future, None, failed)) for job in batch)
            return
        _deliver(outcomes)


_Delivery = list[tuple[asyncio.AbstractEventLoop, _Outcome]]


def _run_plain(conn: sqlite3.Connection, batch: list[_Job]) -> tuple[_Delivery | None, Exception | None]:
    """Run the batch's operations without savepoints (two statements fewer per write). Their outcomes;
    ``(None, None)`` as soon as a write fails (what it wrote cannot be undone alone: the caller runs the
    batch again with savepoints); ``(None, error)`` when SQLite gave up the transaction."""
    outcomes: _Delivery = []
    for job in batch:
        try:
            result = job.fn(conn)
        except Exception as exc:
            if not conn.in_transaction:  # SQLite rolled the whole transaction back (I/O error, full disk)
                return None, exc
            if job.write:
                return None, None
            outcomes.append((job.loop, (job.future, None, _map_error(exc))))
        else:
            outcomes.append((job.loop, (job.future, result, None)))
    return outcomes, None


def _run_with_savepoints(
    conn: sqlite3.Connection, batch: list[_Job]
) -> tuple[_Delivery | None, Exception | None]:
    """Run the batch's operations, each write inside a ``SAVEPOINT`` so that a failing one rolls back
    only itself and hands its exception to its own caller. Their outcomes, or ``(None, error)`` when
    SQLite gave up the whole transaction."""
    outcomes: _Delivery = []
    for job in batch:
        if not job.write:  # a read changes nothing: no savepoint to take, nothing to roll back
            try:
                outcomes.append((job.loop, (job.future, job.fn(conn), None)))
            except Exception as exc:
                if not conn.in_transaction:
                    return None, exc
                outcomes.append((job.loop, (job.future, None, _map_error(exc))))
            continue
        conn.execute("SAVEPOINT op")
        try:
            result = job.fn(conn)
        except Exception as exc:
            outcomes.append((job.loop, (job.future, None, _map_error(exc))))
            try:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            except sqlite3.Error as rollback_exc:  # SQLite gave up the whole transaction (I/O, full disk)
                return None, rollback_exc
        else:
            conn.execute("RELEASE op")
            outcomes.append((job.loop, (job.future, result, None)))
    return outcomes, None
