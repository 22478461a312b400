"""The SQLite store's writer process (white-box): group commit across the socket, a failing write rolled
back alone, the writer's death (calls fail with ``Unavailable``, the next call starts a new writer, the
node's presence stays), the server's death (the writer commits what it had and exits), and its signals.

A gate (:func:`tests.contract.writer_ops.hold`) keeps the writer inside an operation, so that a known
set of operations lands in its next batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from signaling.domain.errors import Conflict, NotFound, Unavailable
from signaling.domain.models import Team
from signaling.storage import sqlite_proc
from signaling.storage.base import AppendResult
from signaling.storage.sqlite import SqliteStore
from signaling.storage.sqlite_batch import LATENCY_BOUNDS
from tests.contract import writer_ops

from .conftest import Seed
from .test_store_sqlite import submitted

REPO = Path(__file__).resolve().parents[2]


class ProcessGate:
    """Holds the writer process inside an operation until ``release()``."""

    def __init__(self, store: SqliteStore, tmp_path: Path) -> None:
        self._store = store
        self._entered = tmp_path / f"entered-{time.monotonic_ns()}"
        self._release = tmp_path / f"release-{time.monotonic_ns()}"
        self._held: asyncio.Future[Any] | None = None

    async def hold(self) -> None:
        self._held = self._store._submit(writer_ops.hold, str(self._entered), str(self._release), write=False)
        async with asyncio.timeout(30):
            while not self._entered.exists():
                await asyncio.sleep(0.005)

    async def release(self) -> None:
        await asyncio.sleep(0.05)  # every frame submitted before is in the writer's socket by now
        self._release.touch()
        assert self._held is not None
        await self._held


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    store = SqliteStore(tmp_path / "p.sqlite3", node_id="n1")
    assert store.writer == "process"
    await store.open()
    yield store
    await store.close()


def writer_pid(store: SqliteStore) -> int:
    process = store._worker._process  # type: ignore[union-attr]
    assert process is not None
    return int(process.pid)


async def gone(pid: int, timeout: float = 10) -> bool:
    """Whether process ``pid`` ended (and was reaped by its parent, or is a zombie) within ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                        return True
            except FileNotFoundError:
                return True
            await asyncio.sleep(0.02)


async def test_queued_appends_share_one_commit_in_the_writer_process(store: SqliteStore, tmp_path: Path) -> None:
    """100 appends sent while the writer process is busy run as one batch: one commit, seqs 1..100."""
    seed = Seed(store)
    conv = await seed.conversation()
    assert await store._read(writer_ops.pid) == writer_pid(store) != os.getpid()
    gate = ProcessGate(store, tmp_path)
    await gate.hold()
    before = store.stats.batches
    tasks = await submitted(*(seed.message(conv.id, f"m{i}") for i in range(100)))
    await gate.release()
    results = await asyncio.gather(*tasks)
    assert store.stats.batches == before + 2  # the gate's own batch (counted once it answered), then one
    assert sorted(r.message.seq for r in results) == list(range(1, 101))
    assert [m.body for m in await store.list_messages(conv.id)] == [f"m{i}" for i in range(100)]


async def test_latencies_count_each_commit_and_each_writes_wait(store: SqliteStore, tmp_path: Path) -> None:
    """Writes queued behind a busy writer count their whole wait (here the 0.05 s or more the gate holds
    the writer), one observation each; the writer process reports one commit observation per batch, and
    its stats reach the store's process with the batch's outcomes."""
    seed = Seed(store)
    conv = await seed.conversation()
    gate = ProcessGate(store, tmp_path)
    await gate.hold()
    writes = list(store.writes.counts)
    commits = list(store.stats.commits.counts)
    waits = list(store.stats.waits.counts)
    tasks = await submitted(*(seed.message(conv.id, f"m{i}") for i in range(20)))
    await gate.release()
    await asyncio.gather(*tasks)
    waited = [after - before for after, before in zip(store.writes.counts, writes, strict=True)]
    assert sum(waited) == 20
    slow = LATENCY_BOUNDS.index(0.05)  # the buckets past 0.025 s: each waited for the gate (0.05 s or more)
    assert sum(waited[slow:]) == 20, waited
    committed = [after - before for after, before in zip(store.stats.commits.counts, commits, strict=True)]
    assert sum(committed) == 2  # the gate's own batch, then the 20 appends in one
    # with the writer: the gate's operation (held 0.05 s or more) and the 20 appends, sent to the writer
    # while it was held, each counted from its sending
    with_writer = [after - before for after, before in zip(store.stats.waits.counts, waits, strict=True)]
    assert sum(with_writer) == 21
    assert sum(with_writer[slow:]) == 21, with_writer
    assert store.stats.commits.total > 0
    cumulative = store.stats.commits.cumulative()
    assert cumulative[-1] == (float("inf"), sum(store.stats.commits.counts))


async def test_a_failing_write_rolls_back_alone_in_the_writer_process(store: SqliteStore, tmp_path: Path) -> None:
    """In one batch: appends, a write that wrote then failed, a missing conversation, a taken team name.
    Each failure reaches its own caller (domain errors keep their type and details across the socket),
    the failed write leaves nothing, the others commit once."""
    seed = Seed(store)
    conv = await seed.conversation()
    await store.create_team(Team(id="tm_taken", name="Taken"))
    gate = ProcessGate(store, tmp_path)
    await gate.hold()
    reruns = store.stats.reruns
    tasks = await submitted(
        seed.message(conv.id, "one"),
        store._write(writer_ops.half_then_fail),
        seed.message("cv_missing", "lost"),
        store.create_team(Team(id="tm_dup", name="taken")),
        seed.message(conv.id, "two"),
    )
    await gate.release()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], AppendResult) and results[0].message.seq == 1
    assert isinstance(results[1], ValueError) and str(results[1]) == "boom"
    assert isinstance(results[2], NotFound) and results[2].details == {"id": "cv_missing"}
    assert isinstance(results[3], Conflict)
    assert isinstance(results[4], AppendResult) and results[4].message.seq == 2
    assert store.stats.reruns == reruns + 1
    assert await store.get_meta("half") is None
    assert [m.body for m in await store.list_messages(conv.id)] == ["one", "two"]


async def test_an_operation_that_cannot_cross_is_refused_alone(store: SqliteStore) -> None:
    """A function the writer process cannot import (a lambda) gets a clear ``TypeError``; operations sent
    with it in the same frame run."""
    results = await asyncio.gather(
        store.set_meta("a", "1"), store._read(lambda conn: 1), store.set_meta("b", "2"), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], TypeError) and "writer process" in str(results[1])
    assert (await store.get_meta("a"), await store.get_meta("b")) == ("1", "2")


async def test_an_operation_the_writer_cannot_import_is_refused_alone(store: SqliteStore) -> None:
    """A job naming a function the writer process cannot import gets a ``TypeError``; the writer lives on
    and the operations sent with it run."""

    def ghost(conn: sqlite3.Connection) -> None:
        raise AssertionError("never runs")

    ghost.__module__, ghost.__qualname__ = "no_such_module_here", "ghost"
    pid = writer_pid(store)
    results = await asyncio.gather(
        store.set_meta("a", "1"), store._write(ghost), store.set_meta("b", "2"), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], TypeError) and "no_such_module_here.ghost" in str(results[1])
    assert writer_pid(store) == pid
    assert (await store.get_meta("a"), await store.get_meta("b")) == ("1", "2")


async def test_a_killed_writer_fails_its_calls_and_a_new_one_takes_over(store: SqliteStore, tmp_path: Path) -> None:
    """The writer is killed (-9) while it holds a batch: the calls it held fail with ``Unavailable``; the
    next call starts a new writer, which sees everything committed before and keeps this node's presence
    (only a fresh start clears the node's previous run)."""
    await store.set_meta("committed", "yes")
    await store.presence_add("ag_1", "n1", "sid_1")
    first = writer_pid(store)
    gate = ProcessGate(store, tmp_path)
    await gate.hold()
    pending = await submitted(store.set_meta("in-flight", "maybe"))
    await asyncio.sleep(0.05)
    os.kill(first, signal.SIGKILL)
    with pytest.raises(Unavailable):
        await asyncio.wait_for(pending[0], 10)
    with pytest.raises(Unavailable):
        await asyncio.wait_for(gate._held, 10)  # type: ignore[arg-type]
    assert await store.get_meta("committed") == "yes"
    assert writer_pid(store) != first
    assert await store.presence_online() == {"ag_1"}
    assert await store.get_meta("in-flight") is None  # its batch never committed
    await store.set_meta("after", "ok")
    assert await store.get_meta("after") == "ok"
    assert await store.ping() is True


async def test_the_writer_ignores_sigint_and_serves_on_after_sigterm(store: SqliteStore) -> None:
    """Ctrl-C in a terminal reaches the whole process group: the writer ignores SIGINT and SIGTERM (for a
    grace period), so the server's own shutdown still writes; closing the store then ends it (exit 0)."""
    pid = writer_pid(store)
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    await asyncio.sleep(0.1)
    await store.set_meta("k", "v")
    assert await store.get_meta("k") == "v"
    assert writer_pid(store) == pid
    process = store._worker._process  # type: ignore[union-attr]
    await store.close()
    assert process is not None and process.returncode == 0


SERVER = """
import asyncio, os, signal, sys
from signaling.storage import sqlite_proc
from signaling.storage.sqlite import SqliteStore

async def main():
    store = SqliteStore(sys.argv[1])
    await store.open()
    await store.set_meta("first", "1")
    print(store._worker._process.pid, flush=True)
    store.set_meta  # the second write is sent, not awaited: the server dies right after sending it
    asyncio.ensure_future(store.set_meta("second", "2"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_the_writer_commits_what_it_received_and_exits_when_the_server_dies(tmp_path: Path) -> None:
    """A server killed with -9 right after sending a write: its writer process reads end-of-file, commits
    that write, and exits (no orphan left holding the file)."""
    path = tmp_path / "orphan.sqlite3"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, str(path), stdout=subprocess.PIPE, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert proc.stdout is not None
    pid = int((await asyncio.wait_for(proc.stdout.readline(), 30)).decode())
    assert await proc.wait() == -signal.SIGKILL
    assert await gone(pid)
    with sqlite3.connect(path) as conn:
        rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('first', 'second')").fetchall())
    assert rows == {"first": "1", "second": "2"}


async def test_closing_kills_a_writer_that_does_not_stop(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer stuck in an operation does not hold the server's shutdown: past the stop timeout it is
    killed, and the call it held fails with ``Unavailable``."""
    monkeypatch.setattr(sqlite_proc, "STOP_TIMEOUT_S", 0.5)
    gate = ProcessGate(store, tmp_path)
    await gate.hold()  # never released
    process = store._worker._process  # type: ignore[union-attr]
    started = time.monotonic()
    await store.close()
    assert time.monotonic() - started < 10
    assert process is not None and process.returncode == -signal.SIGKILL
    with pytest.raises(Unavailable):
        await asyncio.wait_for(gate._held, 5)  # type: ignore[arg-type]


async def test_the_writers_log_records_reach_the_servers_log(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch the writer process could not commit is logged by the store's process (so it follows the
    server's own log format and level), and its callers get ``Unavailable``."""
    caplog.set_level(logging.INFO, logger="signaling.storage.sqlite")
    with pytest.raises(Unavailable):
        await store._write(writer_ops.end_the_transaction)
    async with asyncio.timeout(5):
        while not any("batch of 1 lost" in r.getMessage() for r in caplog.records):
            await asyncio.sleep(0.02)
    record = next(r for r in caplog.records if "batch of 1 lost" in r.getMessage())
    assert record.name == "signaling.storage.sqlite" and record.levelno == logging.ERROR
    assert f"[writer {writer_pid(store)}]" in record.getMessage()
    await store.set_meta("after", "ok")  # the writer goes on
    assert await store.get_meta("after") == "ok"
