"""SQLite specifics: pragmas, migrations, and the writer thread's group commit (white-box).

These tests hold the writer thread on a gate so that a known set of operations lands in one batch,
then check what the batch did; they look at ``SqliteStore.stats`` and the file itself.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from signaling.domain.errors import Conflict, NotFound, Unavailable
from signaling.domain.models import Team
from signaling.storage.base import AppendResult
from signaling.storage.sqlite import SqliteStore
from signaling.storage.sqlite_batch import LATENCY_BOUNDS
from signaling.storage.sqlite_schema import LATEST_VERSION

from .conftest import Seed


class Gate:
    """Holds the writer thread inside an operation until ``release()``."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._entered = threading.Event()
        self._gate = threading.Event()
        self._held: asyncio.Future[Any] | None = None

    async def hold(self) -> None:
        def wait(conn: sqlite3.Connection) -> None:
            self._entered.set()
            self._gate.wait(30)

        self._held = self._store._submit(wait, write=False)
        await asyncio.to_thread(self._entered.wait, 30)

    async def release(self) -> None:
        self._gate.set()
        assert self._held is not None
        await self._held


async def submitted(*coros: Any) -> list[asyncio.Future[Any]]:
    """Start coroutines as tasks and yield once, so each has put its operation on the queue."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    await asyncio.sleep(0)
    return tasks


def pragma(path: Path, name: str) -> Any:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


async def test_file_is_wal_with_full_sync_and_foreign_keys(sqlite_store: SqliteStore) -> None:
    """The file is in WAL mode; the store's connection syncs FULL and enforces foreign keys."""
    assert pragma(Path(sqlite_store.path), "journal_mode") == "wal"
    assert await sqlite_store._read(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 2
    assert await sqlite_store._read(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0]) == 1


async def test_migrations_are_recorded_once(tmp_path: Path) -> None:
    """schema_version holds each applied version once, also after reopening."""
    path = tmp_path / "m.sqlite3"
    for _ in range(2):
        store = SqliteStore(path)
        await store.open()
        await store.close()
    with sqlite3.connect(path) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, LATEST_VERSION + 1))


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """Opening a file migrated by newer code fails instead of guessing; the store stays closed."""
    path = tmp_path / "new.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 'later')", (LATEST_VERSION + 1,))
    with pytest.raises(RuntimeError):
        await store.open()
    assert await store.ping() is False


async def test_unopenable_path_fails_open(tmp_path: Path) -> None:
    """open() raises when the file cannot be created, and the store answers nothing."""
    store = SqliteStore(tmp_path / "no" / "such" / "dir" / "x.sqlite3")
    with pytest.raises(sqlite3.OperationalError):
        await store.open()
    with pytest.raises(Unavailable):
        await store.get_meta("k")


async def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    """After close(), calls raise Unavailable and ping() is False."""
    store = SqliteStore(tmp_path / "c.sqlite3")
    await store.open()
    assert await store.ping() is True
    await store.close()
    assert await store.ping() is False
    with pytest.raises(Unavailable):
        await store.set_meta("k", "v")


async def test_failing_operation_rolls_back_alone_within_one_batch(sqlite_store: SqliteStore) -> None:
    """In one committed batch, each failing operation gets its own error and leaves no trace; the rest commit."""
    seed = Seed(sqlite_store)
    conv = await seed.conversation()
    await sqlite_store.create_team(Team(id="tm_taken", name="Taken"))
    gate = Gate(sqlite_store)
    await gate.hold()
    batches_before = sqlite_store.stats.batches
    tasks = await submitted(
        seed.message(conv.id, "ok0"),
        sqlite_store.create_team(Team(id="tm_new", name="New")),
        seed.message("cv_missing", "lost"),
        seed.message(conv.id, "ok1"),
        sqlite_store.create_team(
            Team(id="tm_dup", name="taken")
        ),  # the name check fails after nothing written
        sqlite_store.create_request(seed.new_request("cv_missing")),
        seed.message(conv.id, "ok2"),
    )
    await gate.release()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sqlite_store.stats.batches == batches_before + 1
    assert isinstance(results[2], NotFound)
    assert isinstance(results[4], Conflict)
    assert isinstance(results[5], NotFound)
    assert [r.message.seq for r in (results[0], results[3], results[6]) if isinstance(r, AppendResult)] == [
        1,
        2,
        3,
    ]
    assert await sqlite_store.get_team("tm_new") is not None
    assert await sqlite_store.get_team("tm_dup") is None
    await sqlite_store.close()
    reopened = SqliteStore(sqlite_store.path)
    await reopened.open()
    try:
        assert [m.body for m in await reopened.list_messages(conv.id)] == ["ok0", "ok1", "ok2"]
    finally:
        await reopened.close()


async def test_savepoint_undoes_a_half_done_operation(sqlite_store: SqliteStore) -> None:
    """An operation that wrote a row and then failed leaves nothing behind; the batch commits the others."""
    gate = Gate(sqlite_store)
    await gate.hold()

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('half', 'written')")
        raise ValueError("boom")

    tasks = await submitted(
        sqlite_store.set_meta("before", "1"),
        sqlite_store._write(half_then_fail),
        sqlite_store.set_meta("after", "1"),
    )
    await gate.release()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[1], ValueError)
    assert await sqlite_store.get_meta("half") is None
    assert await sqlite_store.get_meta("before") == "1"
    assert await sqlite_store.get_meta("after") == "1"


async def test_queued_writes_share_one_commit(sqlite_store: SqliteStore) -> None:
    """100 appends queued while the thread is busy are committed as one batch (group commit)."""
    seed = Seed(sqlite_store)
    conv = await seed.conversation()
    gate = Gate(sqlite_store)
    await gate.hold()
    before = sqlite_store.stats.batches
    tasks = await submitted(*(seed.message(conv.id, f"m{i}") for i in range(100)))
    await gate.release()
    results = await asyncio.gather(*tasks)
    assert sqlite_store.stats.batches == before + 1
    assert sorted(r.message.seq for r in results) == list(range(1, 101))


async def test_the_writer_threads_latencies_count_from_the_queue(sqlite_store: SqliteStore) -> None:
    """With the writer thread too, each operation counts its time from being queued to its batch's
    outcome (here 0.05 s or more behind the gate), and each commit is counted once."""
    seed = Seed(sqlite_store)
    conv = await seed.conversation()
    gate = Gate(sqlite_store)
    await gate.hold()
    waits = list(sqlite_store.stats.waits.counts)
    commits = sum(sqlite_store.stats.commits.counts)
    tasks = await submitted(*(seed.message(conv.id, f"m{i}") for i in range(10)))
    await asyncio.sleep(0.05)
    await gate.release()
    await asyncio.gather(*tasks)
    waited = [after - before for after, before in zip(sqlite_store.stats.waits.counts, waits, strict=True)]
    assert sum(waited) == 11  # the gate's operation and the ten appends
    assert sum(waited[LATENCY_BOUNDS.index(0.05) :]) == 11, waited
    assert sum(sqlite_store.stats.commits.counts) == commits + 2


async def test_batches_are_capped_at_max_batch(tmp_path: Path) -> None:
    """With max_batch=4, ten queued operations run as three transactions, in order."""
    store = SqliteStore(tmp_path / "b.sqlite3", max_batch=4, writer="thread")
    await store.open()
    try:
        gate = Gate(store)
        await gate.hold()
        before = store.stats.batches
        tasks = await submitted(*(store.set_meta("k", str(i)) for i in range(10)))
        await gate.release()
        await asyncio.gather(*tasks)
        assert store.stats.batches == before + 3
        assert await store.get_meta("k") == "9"
    finally:
        await store.close()


async def test_reads_see_writes_queued_before_them(sqlite_store: SqliteStore) -> None:
    """A read queued after a write in the same batch sees that write (operations run in order).
    (Conversations are answered from the write-through cache instead: see the next test.)"""
    seed = Seed(sqlite_store)
    conv = await seed.conversation()
    gate = Gate(sqlite_store)
    await gate.hold()
    tasks = await submitted(seed.message(conv.id), sqlite_store.list_messages(conv.id))
    await gate.release()
    _, seen = await asyncio.gather(*tasks)
    assert [m.seq for m in seen] == [1]


async def test_conversation_cache_follows_every_write(sqlite_store: SqliteStore) -> None:
    """get_conversation is served from memory, and every write that returns a conversation refreshes it;
    callers get copies (mutating one changes neither the cache nor the file)."""
    seed = Seed(sqlite_store)
    conv = await seed.conversation()
    await seed.message(conv.id)
    assert (await sqlite_store.get_conversation(conv.id)).last_seq == 1
    got = await sqlite_store.get_conversation(conv.id)
    got.status = "done"
    assert (await sqlite_store.get_conversation(conv.id)).status == "open"
    await sqlite_store.update_conversation(got)
    assert (await sqlite_store.get_conversation(conv.id)).status == "done"
    await sqlite_store.mark_receipt(conv.id, "customer", read_seq=1)
    assert (await sqlite_store.get_conversation(conv.id)).customer_read_seq == 1
    await sqlite_store.close()
    reopened = SqliteStore(sqlite_store.path)
    await reopened.open()
    try:
        fresh = await reopened.get_conversation(conv.id)
        assert (fresh.status, fresh.last_seq, fresh.customer_read_seq) == ("done", 1, 1)
    finally:
        await reopened.close()


async def test_event_loop_runs_while_the_thread_is_busy(sqlite_store: SqliteStore) -> None:
    """The loop keeps serving other coroutines while SQLite work is stuck; a caller may time out and go."""
    gate = Gate(sqlite_store)
    await gate.hold()
    await asyncio.sleep(0.01)  # the loop is free
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sqlite_store.set_meta("late", "1"), timeout=0.05)
    await gate.release()
    assert await sqlite_store.get_meta("late") == "1"  # submitted work is done even if nobody waits
    assert await sqlite_store.ping() is True
