"""SQLite's write-ahead log is copied back into the database file by the checkpointer's thread, not by
a commit: past the writer's own threshold (10,000 pages) nothing would be copied without it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from signaling.storage.sqlite import SqliteStore
from signaling.storage.sqlite_checkpoint import FALLBACK_PAGES, INTERVAL_S

from .conftest import Seed


@pytest.mark.parametrize("writer", ["process", "thread"])
async def test_the_log_is_copied_back_in_the_background(tmp_path: Path, writer: str) -> None:
    """About 600 pages of messages (far below the writer's own checkpoint threshold): the database file
    takes them within seconds, while no call is made."""
    path = tmp_path / "c.sqlite3"
    store = SqliteStore(path, writer=writer)
    await store.open()
    try:
        seed = Seed(store)
        conv = await seed.conversation()
        await asyncio.sleep(INTERVAL_S + 0.3)  # the set-up's own pages are copied back first
        before = os.path.getsize(path)
        await asyncio.gather(*(seed.message(conv.id, "x" * 2000) for i in range(1000)))
        # the writer's own checkpoint never ran: the log stayed below its threshold
        assert os.path.getsize(path.with_name(path.name + "-wal")) < FALLBACK_PAGES * 4096
        async with asyncio.timeout(10):
            while os.path.getsize(path) < before + 500 * 4096:
                await asyncio.sleep(0.05)
        assert [m.seq for m in await store.list_messages(conv.id, after_seq=998)] == [999, 1000]
    finally:
        await store.close()
