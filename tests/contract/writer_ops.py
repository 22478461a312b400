"""Operations the tests hand to the SQLite writer *process* (they must be importable there, by name)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path


def hold(conn: sqlite3.Connection, entered: str, release: str) -> None:
    """Touch ``entered``, then keep the writer inside this operation until ``release`` exists (30 s at most)."""
    Path(entered).touch()
    deadline = time.monotonic() + 30
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.002)


def half_then_fail(conn: sqlite3.Connection) -> None:
    """Write a row, then fail: the batch must undo the row and keep the others' writes."""
    conn.execute("INSERT INTO meta (key, value) VALUES ('half', 'written')")
    raise ValueError("boom")


def pid(conn: sqlite3.Connection) -> int:
    """The writer's process id."""
    return os.getpid()


def end_the_transaction(conn: sqlite3.Connection) -> None:
    """Roll the batch's transaction back from inside it: its commit then fails and the writer logs it."""
    conn.execute("ROLLBACK")
