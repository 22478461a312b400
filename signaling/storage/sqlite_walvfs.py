"""The writer's connection, with its WAL writes combined when the C shim is there.

SQLite appends each WAL frame with two ``write`` calls; on a virtual machine a system call costs
several microseconds, so a commit of 60 pages spent more in ``pwrite`` than in SQL. The VFS of
``_walvfs.c`` ("rtc-wal", over SQLite's default VFS) hands a commit's frames to the file as one write
of up to 124 KB per call, before SQLite publishes the commit and before its fsync (the durability of
``synchronous=FULL`` is unchanged). Only the writer's connection uses it; readers of the same file (the
checkpointer, another process) need nothing.

The shim is an optional C extension: without a compiler, or with a Python whose ``sqlite3`` module
carries its own copy of SQLite (the VFS would land in another library), the connection opens on the
default VFS, as before, and :data:`active` says so.
"""

from __future__ import annotations

import logging
import sqlite3
import urllib.parse
from types import ModuleType
from typing import Any

log = logging.getLogger("signaling.storage.sqlite")

_walvfs: ModuleType | None
try:
    from signaling.storage import _walvfs
except ImportError:  # not built: the default VFS
    _walvfs = None

VFS: str | None = _walvfs.register() if _walvfs is not None else None
active = VFS is not None
"""The last connection opened here combines its WAL writes (False once SQLite did not find the VFS)."""


def connect(path: str, **kwargs: Any) -> sqlite3.Connection:
    """``sqlite3.connect(path, **kwargs)``, through the "rtc-wal" VFS when it is registered in the
    SQLite library that Python's ``sqlite3`` uses."""
    global active
    if VFS is None or path == ":memory:" or path.startswith("file:"):
        return sqlite3.connect(path, **kwargs)
    uri = f"file:{urllib.parse.quote(path)}?vfs={VFS}"
    try:
        conn = sqlite3.connect(uri, uri=True, **kwargs)
    except sqlite3.OperationalError as exc:
        if "no such vfs" not in str(exc):
            raise
        if active:
            log.warning("sqlite: the WAL write shim is not in the sqlite3 module's SQLite: %s", exc)
        active = False
        return sqlite3.connect(path, **kwargs)
    active = True
    return conn


def stats() -> tuple[int, int]:
    """(WAL writes SQLite made, writes the shim made) in this process; (0, 0) without the shim."""
    return _walvfs.stats() if _walvfs is not None else (0, 0)
