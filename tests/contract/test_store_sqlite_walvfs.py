"""The writer's WAL writes combined (``signaling/storage/_walvfs.c`` through
:mod:`~signaling.storage.sqlite_walvfs`): the same database as SQLite's default VFS gives, commits
visible to other connections and processes as soon as they return (``synchronous`` FULL or NORMAL),
frames rewritten and read back within a transaction (a small page cache spills), rollbacks (and
another connection's commit after one), a transaction larger than the buffer, a writer killed
mid-transaction, a disk that fills up, and the default VFS when the shim cannot be used.

Each case runs on the real file and its real WAL; where it applies, a twin on SQLite's default VFS is
the reference.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.storage import sqlite_walvfs

REPO = Path(__file__).resolve().parents[2]


def open_pair(
    tmp: Path, sync: str = "FULL", cache_pages: int = 2000
) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """The same schema twice: through the shim, and on the default VFS."""
    conns = []
    for name, connect in (("shim", sqlite_walvfs.connect), ("plain", sqlite3.connect)):
        conn = connect(str(tmp / f"{name}.sqlite3"), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {sync}")
        conn.execute(f"PRAGMA cache_size = {cache_pages}")
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB, w TEXT)")
        conn.execute("CREATE INDEX t_w ON t (w)")
        conns.append(conn)
    return conns[0], conns[1]


def dump(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return list(conn.execute("SELECT k, v, w FROM t ORDER BY k"))


def test_the_shim_is_built_and_used(tmp_path: Path) -> None:
    """`make test` installs a compiler and SQLite's headers, so the shim must be there and in use."""
    assert sqlite_walvfs.VFS == "rtc-wal"
    shim, _ = open_pair(tmp_path)
    before = sqlite_walvfs.stats()
    shim.execute("BEGIN IMMEDIATE")
    for k in range(400):
        shim.execute("INSERT INTO t VALUES (?, ?, ?)", (k, os.urandom(300), f"w{k}"))
    shim.execute("COMMIT")
    received, made = (a - b for a, b in zip(sqlite_walvfs.stats(), before, strict=True))
    frames = received // 2
    assert frames >= 30  # 120 KB of rows and their index: tens of 4 KB pages, each a header and a page
    assert made <= frames * 4120 // (31 * 4096) + 2  # at most 124 KB a write (and the WAL's header)


def test_without_the_vfs_connections_open_on_the_default_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Python whose ``sqlite3`` carries its own SQLite does not see a VFS registered in the system's
    library: the module finds that out once (``usable``), and then connects on the default VFS."""
    assert sqlite_walvfs.usable("rtc-wal")
    assert not sqlite_walvfs.usable("rtc-wal-elsewhere")
    monkeypatch.setattr(sqlite_walvfs, "VFS", None)
    before = sqlite_walvfs.stats()
    conn = sqlite_walvfs.connect(str(tmp_path / "plain.sqlite3"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (k)")
    conn.execute("INSERT INTO t VALUES (1)")
    assert conn.execute("SELECT k FROM t").fetchone() == (1,)
    assert sqlite_walvfs.stats() == before  # nothing went through the shim


@pytest.mark.parametrize("sync", ["FULL", "NORMAL"])
def test_a_commit_is_visible_to_others_when_it_returns(tmp_path: Path, sync: str) -> None:
    shim, _ = open_pair(tmp_path, sync)
    path = str(tmp_path / "shim.sqlite3")
    reader = sqlite3.connect(path, isolation_level=None)  # the default VFS, this process
    for k in range(30):
        shim.execute("BEGIN IMMEDIATE")
        shim.execute("INSERT INTO t VALUES (?, ?, ?)", (k, os.urandom(5000), "x"))
        shim.execute("COMMIT")
        assert reader.execute("SELECT count(*), max(k) FROM t").fetchone() == (k + 1, k)
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sqlite3; print(sqlite3.connect({path!r}).execute('SELECT count(*) FROM t').fetchone()[0])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.strip() == "30"
    assert reader.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def run_ops(conn: sqlite3.Connection, ops: list[tuple[str, int, int, bool]]) -> None:
    """Transactions of inserts, updates and deletes, each committed or rolled back."""
    rng = random.Random(7)
    for kind, k, size, commit in ops:
        conn.execute("BEGIN IMMEDIATE")
        for j in range(1 + size // 2000):
            key = (k + j * 37) % 400
            if kind == "put":
                conn.execute(
                    "INSERT OR REPLACE INTO t VALUES (?, ?, ?)", (key, rng.randbytes(size), f"w{key % 13}")
                )
            elif kind == "bump":
                conn.execute("UPDATE t SET w = w || 'x', v = substr(v, 1, ?) WHERE k >= ?", (size, key))
            else:
                conn.execute("DELETE FROM t WHERE k % 7 = ?", (key % 7,))
        conn.execute("COMMIT" if commit else "ROLLBACK")


ops_strategy = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "bump", "delete"]),
        st.integers(0, 399),
        st.integers(0, 30000),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops_strategy)
def test_the_same_database_as_the_default_vfs(tmp_path_factory: pytest.TempPathFactory, ops: list) -> None:
    """Random transactions with a page cache of 10 pages (SQLite spills to the WAL mid-transaction,
    rewrites those frames and reads them back), some rolled back: the same rows as the default VFS,
    and an intact file."""
    tmp = tmp_path_factory.mktemp("twins")
    shim, plain = open_pair(tmp, cache_pages=10)
    run_ops(shim, ops)
    run_ops(plain, ops)
    assert dump(shim) == dump(plain)
    assert shim.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    shim.close()
    reopened = sqlite3.connect(str(tmp / "shim.sqlite3"))
    assert dump(reopened) == dump(plain)


def test_a_rolled_back_transaction_never_lands_over_another_commit(tmp_path: Path) -> None:
    """A transaction that spilled frames into the buffer and rolled back, then another connection's
    commit at the same place of the WAL (it starts over after a TRUNCATE checkpoint): the first
    connection's next read must not write the rolled-back frames over that commit."""
    path = str(tmp_path / "two.sqlite3")
    shim = sqlite_walvfs.connect(path, isolation_level=None)
    shim.execute("PRAGMA journal_mode = WAL")
    shim.execute("PRAGMA cache_size = 10")
    shim.execute("PRAGMA wal_autocheckpoint = 0")
    shim.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
    shim.execute("INSERT INTO t VALUES (-1, x'00')")
    assert shim.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    other = sqlite3.connect(path, isolation_level=None)  # the default VFS: the sqlite3 CLI, say
    shim.execute("BEGIN IMMEDIATE")
    for k in range(200):
        shim.execute("INSERT INTO t VALUES (?, ?)", (k, os.urandom(3000)))
    shim.execute("ROLLBACK")
    other.execute("BEGIN IMMEDIATE")
    other.executemany("INSERT INTO t VALUES (?, ?)", [(1000 + k, b"b" * 3000) for k in range(50)])
    other.execute("COMMIT")
    assert shim.execute("SELECT count(*) FROM t").fetchone()[0] == 51
    for conn in (shim, other):
        conn.close()
    fresh = sqlite3.connect(path)
    assert fresh.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert fresh.execute("SELECT count(*), sum(length(v)) FROM t").fetchone() == (51, 150_001)


def test_a_transaction_larger_than_the_buffer(tmp_path: Path) -> None:
    """20 MB in one transaction: runs of at most 8 MB, the buffer freed after it, the same rows."""
    shim, plain = open_pair(tmp_path)
    rng = random.Random(11)
    rows = [(k, rng.randbytes(50_000), f"w{k}") for k in range(400)]
    for conn in (shim, plain):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?, ?)", (1000, b"small", "after"))
        conn.execute("COMMIT")
    assert dump(shim) == dump(plain)
    assert shim.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


WRITER = textwrap.dedent(
    """
    import os, sys
    from signaling.storage import sqlite_walvfs
    conn = sqlite_walvfs.connect(sys.argv[1], isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = 20")
    conn.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB, w TEXT)")
    k = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        for j in range(1 + k % 40):
            conn.execute("INSERT INTO t VALUES (?, ?, ?)", (k * 100 + j, os.urandom(3000), "w"))
        conn.execute("COMMIT")
        print(k, flush=True)
        k += 1
    """
)


def test_a_writer_killed_mid_transaction_keeps_every_commit(tmp_path: Path) -> None:
    """Kill -9 at random points: every transaction whose COMMIT returned is there, whole, and the file is
    intact; nothing of a transaction in part."""
    rng = random.Random(3)
    for round_no in range(5):
        path = tmp_path / f"crash{round_no}.sqlite3"
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        acked = -1
        for line in child.stdout:
            acked = int(line)
            if acked >= rng.randint(3, 40):
                break
        child.send_signal(signal.SIGKILL)
        child.wait()
        conn = sqlite3.connect(str(path))
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        batches = dict(conn.execute("SELECT k / 100, count(*) FROM t GROUP BY k / 100"))
        conn.close()
        assert acked >= 3
        assert sorted(batches) == list(range(len(batches)))  # from the first, no gap
        assert len(batches) > acked  # every acknowledged one (perhaps one more, committed unprinted)
        assert all(count == 1 + k % 40 for k, count in batches.items())  # each one whole


FULL_DISK = textwrap.dedent(
    """
    import os, resource, signal, sqlite3, sys
    from signaling.storage import sqlite_walvfs
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    conn = sqlite_walvfs.connect(sys.argv[1], isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB, w TEXT)")
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, hard))
    k = 0
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?, ?, ?)", (k, os.urandom(20_000), "w"))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            print("error", k, type(exc).__name__, exc, flush=True)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            break
        k += 1
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    conn.execute("INSERT INTO t VALUES (?, ?, ?)", (-1, b"after", "w"))  # the connection still works
    print("ok", flush=True)
    """
)


def test_a_full_disk_fails_the_commit_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "full.sqlite3"
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(path)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    lines = out.stdout.split("\n")
    assert lines[0].startswith("error "), out.stdout + out.stderr
    failed_at = int(lines[0].split()[1])
    assert failed_at > 5
    assert lines[1] == "ok", out.stdout + out.stderr
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    keys = [k for (k,) in conn.execute("SELECT k FROM t ORDER BY k")]
    assert keys == [-1, *range(failed_at)]  # every commit before the failure, none of the failed one
