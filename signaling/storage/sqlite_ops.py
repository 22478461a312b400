"""SQL operations of the SQLite store: plain functions of a ``sqlite3`` connection.

They run in the store's writer (:mod:`signaling.storage.sqlite_batch`), inside a batch transaction, so
they neither begin nor commit; they are module-level functions, which the writer process imports by
name. This module holds the generic record helpers and the meta table;
:mod:`~signaling.storage.sqlite_ops_directory` and :mod:`~signaling.storage.sqlite_ops_conversations`
build on them.

Table names come from the store's own modules only, never from callers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from signaling.domain.errors import Conflict, NotFound

T = TypeVar("T")

Conn = sqlite3.Connection
RowMapper = Callable[[sqlite3.Row], T]


def ping(conn: Conn) -> bool:
    """True: the connection answers ``SELECT 1``."""
    return bool(conn.execute("SELECT 1").fetchone()[0] == 1)


def get_meta(conn: Conn, key: str) -> str | None:
    """The value stored under ``key``, or None."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: Conn, key: str, value: str) -> None:
    """Store ``value`` under ``key`` (replacing any previous one)."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def get_one(conn: Conn, table: str, record_id: str, mapper: RowMapper[T]) -> T | None:
    """The record of ``table`` with that id, mapped, or None."""
    row = conn.execute(f"SELECT * FROM {table} WHERE id = ?", (record_id,)).fetchone()
    return None if row is None else mapper(row)


def must_get(conn: Conn, table: str, record_id: str, mapper: RowMapper[T]) -> T:
    """The record of ``table`` with that id, mapped; ``NotFound`` when missing."""
    found = get_one(conn, table, record_id, mapper)
    if found is None:
        raise NotFound(f"no such {table[:-1]}", id=record_id)
    return found


def get_many(conn: Conn, table: str, record_ids: list[str], mapper: RowMapper[T]) -> dict[str, T]:
    """The records of ``table`` with those ids that exist, mapped, by id."""
    out: dict[str, T] = {}
    unique = list(dict.fromkeys(record_ids))
    for start in range(0, len(unique), 500):  # under SQLite's limit of bound parameters
        chunk = unique[start : start + 500]
        for row in conn.execute(f"SELECT * FROM {table} WHERE id IN ({placeholders(chunk)})", chunk):
            out[row["id"]] = mapper(row)
    return out


def list_all(conn: Conn, table: str, mapper: RowMapper[T]) -> list[T]:
    """Every record of ``table``, oldest first."""
    return [mapper(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY created_at, rowid")]


def insert(conn: Conn, table: str, record_id: str, row: tuple[Any, ...], mapper: RowMapper[T]) -> T:
    """Insert a new row (``Conflict`` on a taken id); the stored record."""
    if conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (record_id,)).fetchone():
        raise Conflict(f"a {table[:-1]} with that id exists", id=record_id)
    conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", row)
    return must_get(conn, table, record_id, mapper)


def replace(conn: Conn, table: str, row: tuple[Any, ...], mapper: RowMapper[T]) -> T:
    """Overwrite every column but ``id`` (the first column) of an existing row."""
    columns = [c[1] for c in conn.execute(f"PRAGMA table_info({table})")]
    assignments = ", ".join(f"{c} = ?" for c in columns[1:])
    cur = conn.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", (*row[1:], row[0]))
    if cur.rowcount == 0:
        raise NotFound(f"no such {table[:-1]}", id=row[0])
    return must_get(conn, table, row[0], mapper)


def delete(conn: Conn, table: str, record_id: str) -> bool:
    """Delete the row with that id; True when it existed."""
    return conn.execute(f"DELETE FROM {table} WHERE id = ?", (record_id,)).rowcount > 0


def placeholders(values: list[Any]) -> str:
    """``?, ?, ...``: one placeholder per value."""
    return ", ".join("?" * len(values))
