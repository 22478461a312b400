"""The SQLite store's checkpointer: copies the write-ahead log back into the database file from a thread
of its own, so that no commit waits for it.

With SQLite's automatic checkpoint, the commit that brings the WAL past 1,000 pages copies them into
the database file and fsyncs it before it returns: a stall of several milliseconds every few hundred
messages, which every message waiting on that commit (and those queued behind it) sees as latency. Here
the writer's connection only checkpoints past :data:`FALLBACK_PAGES` (a bound on the WAL should this
thread fall behind), and this thread, on a connection of its own, runs a ``PASSIVE`` checkpoint (it
never blocks the writer, nor waits for it) when the WAL has changed, every :data:`INTERVAL_S`, or
every :data:`BUSY_INTERVAL_S` while the last checkpoint found more than :data:`BUSY_FRAMES` frames. Once
everything is copied, the writer's next transaction starts the WAL over.

A checkpoint copies each page once, however many commits changed it since the last one, and then
fsyncs the database file: the same few hot pages (a conversation's row, the last leaves of the
indexes) are written by nearly every message, so checkpoints far apart cost less per message. Every
0.05 s, they cost 60 us of CPU per message at 200 messages/s and 9 us at 3,000; every 0.5 s, 10 and
1 us, and no latency was lost (``bench/signalling``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading

log = logging.getLogger("signaling.storage.sqlite")

INTERVAL_S = 0.5
"""How often the thread looks at the WAL and, if it changed, checkpoints it."""
BUSY_INTERVAL_S = 0.1
"""The same while writes come fast (see :data:`BUSY_FRAMES`): it keeps the WAL to a few megabytes."""
BUSY_FRAMES = 1_000
"""Frames (pages) in the WAL at the last checkpoint above which the next one comes sooner."""
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
        wait = INTERVAL_S
        try:
            while not self._stopping.wait(wait):
                state = self._wal_state()
                if state is None or state == seen:
                    wait = INTERVAL_S
                    continue
                try:
                    _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # busy or I/O: the next round tries again
                    log.debug("sqlite: checkpoint skipped: %s", exc)
                    continue
                wait = BUSY_INTERVAL_S if frames > BUSY_FRAMES else INTERVAL_S
                seen = self._wal_state()
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
