"""The SQLite store's batches: the connection, and one transaction run and committed for many operations.

Group commit: the writer (a thread of the store's process, :mod:`~signaling.storage.sqlite_worker`, or
a process of its own, :mod:`~signaling.storage.sqlite_writer`) drains what is queued (up to
``max_batch``), runs the whole batch in one transaction, commits once (one fsync for the batch) and
only then hands the outcomes back. A job once queued runs and commits even if its caller stops waiting.

A failing job rolls back only itself and hands its exception to its own caller. Savepoints give that,
but cost two statements per job, so a batch first runs without them; if a write job fails (the rare
case), everything the batch did is rolled back and the batch runs again from its start with a
``SAVEPOINT`` around each write. Jobs are functions of the connection and of their arguments only, so
the second run does what the first did, and a job's effects are committed once.

This module imports no event loop: the writer process loads it, the operations and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import sqlite3
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from signaling.domain.errors import Conflict, NotFound, Unavailable
from signaling.storage import sqlite_schema as s
from signaling.storage import sqlite_walvfs
from signaling.storage.sqlite_checkpoint import FALLBACK_PAGES

log = logging.getLogger("signaling.storage.sqlite")  # one logger name for the whole SQLite store


LATENCY_BOUNDS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
"""Upper bounds (seconds) of the store's latency histograms: fine between 1 and 15 ms, where a commit's
fsync and a write's wait for its batch fall."""


@dataclass(slots=True)
class Latencies:
    """A latency histogram: ``counts[i]`` observations in ``(LATENCY_BOUNDS[i-1], LATENCY_BOUNDS[i]]`` (not
    cumulative; the last one past the last bound), and the sum of all of them, in seconds."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations at or under it)``, the last bound ``inf`` (Prometheus' buckets)."""
        out, running = [], 0
        for bound, count in zip((*LATENCY_BOUNDS, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass(slots=True)
class WorkerStats:
    """Counters of the writer thread (read them for benchmarks and tests; written by the thread only)."""

    batches: int = 0
    """Transactions run (each one commit)."""
    operations: int = 0
    """Operations run, failed ones included."""
    reruns: int = 0
    """Batches run a second time, with a savepoint per write, because a write failed in the first run."""
    wal_combined: bool = False
    """The writer's connection combines its WAL writes (:mod:`~signaling.storage.sqlite_walvfs`)."""
    wal_writes: int = 0
    """WAL writes SQLite made through the combining VFS (0 without it)."""
    wal_write_calls: int = 0
    """The writes the combining VFS made of them (one or a few a commit)."""
    commits: Latencies = field(default_factory=Latencies)
    """How long each ``COMMIT`` took: the transaction written to the WAL and fsynced (the disk's part of
    every write's wait)."""
    waits: Latencies = field(default_factory=Latencies)
    """How long each operation spent with the writer, from the moment it was handed over to its batch's
    outcome: the batches before it, then its own and the commit (the writer's part of every write's
    wait; the rest is the event loop's, before it sends and after the answer)."""

    def counters(self) -> tuple[Any, ...]:
        """Every field, in order, as plain values (what the writer process sends with each batch's
        outcomes; :meth:`load` takes them back)."""
        return (
            *_read_plain(self),
            tuple(self.commits.counts),
            self.commits.total,
            tuple(self.waits.counts),
            self.waits.total,
        )

    def load(self, counters: tuple[Any, ...]) -> None:
        """Take the values of :meth:`counters` (the store's copy of the writer process's stats)."""
        *plain, commit_counts, self.commits.total, wait_counts, self.waits.total = counters
        for name, value in zip(_PLAIN_FIELDS, plain, strict=True):
            setattr(self, name, value)
        self.commits.counts[:] = commit_counts
        self.waits.counts[:] = wait_counts


_PLAIN_FIELDS = ("batches", "operations", "reruns", "wal_combined", "wal_writes", "wal_write_calls")
"""The fields of :class:`WorkerStats` that are plain values, in the order :meth:`~WorkerStats.counters`
sends them."""
_read_plain = operator.attrgetter(*_PLAIN_FIELDS)


@dataclass(slots=True)
class Job:
    """One operation: ``fn(conn, *args)``; ``write``: it may write (its batch takes the write lock);
    ``ref``: whom its outcome goes to (the thread: its loop and future; the writer process: a number)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    write: bool
    ref: Any
    arrived: float = 0.0
    """When it was handed to the writer (``time.monotonic()``, the machine's clock): put on the thread's
    queue, or sent to the process; 0 when unknown (then it is left out of :attr:`WorkerStats.waits`)."""


Outcome = tuple[Any, Any, BaseException | None]
"""A job's ``ref``, its result, and the exception it raised (None when it succeeded)."""


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


def open_connection(path: str, node_id: str | None) -> sqlite3.Connection:
    """The store's connection: WAL (its writes combined, :mod:`~signaling.storage.sqlite_walvfs`),
    ``synchronous=FULL``, foreign keys, ``fold()``; the file migrated and (with ``node_id``) that node's
    presence from its previous run cleared."""
    conn = sqlite_walvfs.connect(path, isolation_level=None, check_same_thread=True)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 5000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal" and path != ":memory:":
            raise Unavailable(f"SQLite refused WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {FALLBACK_PAGES}")  # the checkpointer's thread copies it back
        conn.execute("PRAGMA foreign_keys = ON")
        conn.create_function("fold", 1, _fold, deterministic=True)
        s.migrate(conn)
        if node_id is not None:
            conn.execute("DELETE FROM presence WHERE node_id = ?", (node_id,))  # stale: our previous run
        if sqlite_walvfs.VFS is None and path != ":memory:":
            log.info("sqlite: WAL writes go one by one (the _walvfs extension is not built or not usable)")
    except BaseException:
        conn.close()
        raise
    return conn


def run_batch(conn: sqlite3.Connection, batch: list[Job], stats: WorkerStats) -> list[Outcome]:
    """Run ``batch`` in one transaction and commit it once; every job's outcome, in order. A job that
    fails hands its exception to its own caller and leaves no trace; when the batch cannot commit (or a
    bug breaks it), every job gets ``Unavailable`` and nothing of the batch is kept."""
    try:
        outcomes = _run_batch(conn, batch, stats)
    except Exception as exc:  # a bug or a dead connection: never leave a caller hanging
        log.exception("sqlite: batch failed")
        outcomes = _abandon(conn, batch, Unavailable(f"the store failed: {exc}"))
    done = time.monotonic()
    observe = stats.waits.observe
    for job in batch:
        if job.arrived:
            observe(done - job.arrived)
    return outcomes


def _abandon(conn: sqlite3.Connection, batch: list[Job], error: Exception) -> list[Outcome]:
    """Roll back what the batch did, if anything; every job's outcome is ``error``."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
    return [(job.ref, None, error) for job in batch]


def _run_batch(conn: sqlite3.Connection, batch: list[Job], stats: WorkerStats) -> list[Outcome]:
    stats.batches += 1
    stats.operations += len(batch)
    begin = "BEGIN IMMEDIATE" if any(job.write for job in batch) else "BEGIN"
    try:
        conn.execute(begin)
    except sqlite3.Error as exc:
        log.error("sqlite: cannot begin a transaction: %s", exc)
        return _abandon(conn, batch, Unavailable(str(exc)))
    outcomes, broken = _run_plain(conn, batch)
    if outcomes is None and broken is None:
        # A write failed: only a savepoint per operation undoes it alone. Everything ran so far is
        # rolled back and the batch runs again from its start, each write in its own savepoint
        # (operations are functions of the connection: a second run does what the first did).
        stats.reruns += 1
        try:
            conn.execute("ROLLBACK")
            conn.execute(begin)
        except sqlite3.Error as exc:
            broken = exc
        else:
            outcomes, broken = _run_with_savepoints(conn, batch)
    if broken is None:
        started = time.perf_counter()
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            broken = exc
        stats.commits.observe(time.perf_counter() - started)
    stats.wal_combined = sqlite_walvfs.VFS is not None
    stats.wal_writes, stats.wal_write_calls = sqlite_walvfs.stats()
    if broken is not None or outcomes is None:
        log.error("sqlite: batch of %d lost: %s", len(batch), broken)
        return _abandon(conn, batch, Unavailable(f"the store could not commit: {broken}"))
    return outcomes


def _run_plain(conn: sqlite3.Connection, batch: list[Job]) -> tuple[list[Outcome] | None, Exception | None]:
    """Run the batch's operations without savepoints (two statements fewer per write). Their outcomes;
    ``(None, None)`` as soon as a write fails (what it wrote cannot be undone alone: the caller runs the
    batch again with savepoints); ``(None, error)`` when SQLite gave up the transaction."""
    outcomes: list[Outcome] = []
    for job in batch:
        try:
            result = job.fn(conn, *job.args)
        except Exception as exc:
            if not conn.in_transaction:  # SQLite rolled the whole transaction back (I/O error, full disk)
                return None, exc
            if job.write:
                return None, None
            outcomes.append((job.ref, None, _map_error(exc)))
        else:
            outcomes.append((job.ref, result, None))
    return outcomes, None


def _run_with_savepoints(
    conn: sqlite3.Connection, batch: list[Job]
) -> tuple[list[Outcome] | None, Exception | None]:
    """Run the batch's operations, each write inside a ``SAVEPOINT`` so that a failing one rolls back
    only itself and hands its exception to its own caller. Their outcomes, or ``(None, error)`` when
    SQLite gave up the whole transaction."""
    outcomes: list[Outcome] = []
    for job in batch:
        if not job.write:  # a read changes nothing: no savepoint to take, nothing to roll back
            try:
                outcomes.append((job.ref, job.fn(conn, *job.args), None))
            except Exception as exc:
                if not conn.in_transaction:
                    return None, exc
                outcomes.append((job.ref, None, _map_error(exc)))
            continue
        conn.execute("SAVEPOINT op")
        try:
            result = job.fn(conn, *job.args)
        except Exception as exc:
            outcomes.append((job.ref, None, _map_error(exc)))
            try:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            except sqlite3.Error as rollback_exc:  # SQLite gave up the whole transaction (I/O, full disk)
                return None, rollback_exc
        else:
            conn.execute("RELEASE op")
            outcomes.append((job.ref, result, None))
    return outcomes, None
