"""The SQLite store's checkpointer: copies the write-ahead log back into the database file from a thread
of its own, so that no commit waits for it.

With SQLite's automatic checkpoint, the commit that brings the WAL past 1,000 pages copies them into
the database file and fsyncs it before it returns: a stall of several milliseconds every few hundred
messages, which every message waiting on that commit (and those queued behind it) sees as latency. Here
the writer's connection only checkpoints past :data:`FALLBACK_PAGES` (a bound on the WAL should this
thread fall behind), and this thread, on a connection of its own, runs a ``PASSIVE`` checkpoint (it
never blocks the writer, nor waits for it) whenever the WAL has changed, at most every
:data:`INTERVAL_S`. Once everything is copied, the writer's next transaction starts the WAL over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading

log = logging.getLogger("signaling.storage.sqlite")

INTERVAL_S = 0.05
"""How often the thread looks at the WAL."""
FALLBACK_PAGES = 10_000
"""The writer's own automatic checkpoint (``wal_autocheckpoint``), should this thread fall behind."""


class Checkpointer:
    """A thread checkpointing one database file's WAL while it changes."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        if self._path != ":memory:":  # nothing to copy back
            self._thread.start()

    def stop(self) -> None:
        """End the thread (after the checkpoint it may be running)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _wal_state(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._path + "-wal")
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
        except sqlite3.Error as exc:
            log.warning("sqlite: no background checkpoints (%s); the writer's own take over", exc)
            return
        seen = self._wal_state()
        try:
            while not self._stopping.wait(INTERVAL_S):
                state = self._wal_state()
                if state is None or state == seen:
                    continue
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # busy or I/O: the next round tries again
                    log.debug("sqlite: checkpoint skipped: %s", exc)
                    continue
                seen = self._wal_state()
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
