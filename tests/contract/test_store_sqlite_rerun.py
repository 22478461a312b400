"""SQLite's writer thread without per-operation savepoints (white-box): a batch runs plainly, and only
when a write fails is it rolled back and run again from its start with a savepoint per write. These
tests pin that a second run commits each operation's effects once, answers every caller as the first
run would have, and that batches without a failing write never run twice.
"""

from __future__ import annotations

import asyncio
import sqlite3

from signaling.domain.errors import NotFound
from signaling.storage.base import AppendResult
from signaling.storage.sqlite import SqliteStore

from .conftest import Seed
from .test_store_sqlite import Gate, submitted


async def test_a_batch_without_failing_writes_runs_once(sqlite_store: SqliteStore) -> None:
    """Appends, reads and a failing read in one batch: no second run (a read changes nothing)."""
    seed = Seed(sqlite_store)
    conv = await seed.conversation()
    gate = Gate(sqlite_store)
    await gate.hold()

    def failing_read(conn: sqlite3.Connection) -> None:
        raise ValueError("read failed")

    tasks = await submitted(
        *(seed.message(conv.id, f"m{i}") for i in range(10)),
        sqlite_store._read(failing_read),
        sqlite_store.get_meta("nothing"),
    )
    await gate.release()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [r.message.seq for r in results[:10] if isinstance(r, AppendResult)] == list(range(1, 11))
    assert isinstance(results[10], ValueError)
    assert results[11] is None
    assert sqlite_store.stats.reruns == 0


async def test_a_failing_write_reruns_the_batch_and_commits_each_operation_once(
    sqlite_store: SqliteStore,
) -> None:
    """A write that wrote and then failed, between appends, a meta write and reads: the batch runs a second
    time; every caller gets the first run's answer, the failed write leaves nothing, the others are stored
    once (no duplicate message, no seq hole), in one commit."""
    seed = Seed(sqlite_store)
    conv = await seed.conversation()
    gate = Gate(sqlite_store)
    await gate.hold()

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('half', 'written')")
        raise ValueError("boom")

    batches = sqlite_store.stats.batches
    tasks = await submitted(
        seed.message(conv.id, "one"),
        sqlite_store.set_meta("k", "v"),
        sqlite_store._write(half_then_fail),
        sqlite_store.get_meta("k"),
        seed.message(conv.id, "two"),
        seed.message("cv_missing", "lost"),
        sqlite_store.list_messages(conv.id),
    )
    await gate.release()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sqlite_store.stats.reruns == 1
    assert sqlite_store.stats.batches == batches + 1
    assert isinstance(results[0], AppendResult) and results[0].message.seq == 1
    assert isinstance(results[2], ValueError)
    assert results[3] == "v"
    assert isinstance(results[4], AppendResult) and results[4].message.seq == 2
    assert isinstance(results[5], NotFound)
    assert [m.body for m in results[6]] == ["one", "two"]  # type: ignore[union-attr]
    await sqlite_store.close()
    reopened = SqliteStore(sqlite_store.path)
    await reopened.open()
    try:
        assert [m.body for m in await reopened.list_messages(conv.id)] == ["one", "two"]
        stored = await reopened.get_conversation(conv.id)
        assert stored is not None and stored.last_seq == 2
        assert await reopened.get_meta("half") is None
        assert await reopened.get_meta("k") == "v"
    finally:
        await reopened.close()
