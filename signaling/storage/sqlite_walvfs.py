"""The writer's connection, with its WAL writes combined when the C shim is there.

SQLite appends each WAL frame with two ``write`` calls; on a virtual machine a system call costs
several microseconds, so a commit of 60 pages spent more in ``pwrite`` than in SQL. The VFS of
``_walvfs.c`` ("rtc-wal", over SQLite's default VFS) hands a commit's frames to the file as one write
of up to 124 KB per call, before SQLite publishes the commit and before its fsync (the durability of
``synchronous=FULL`` is unchanged). Only the writer's connection uses it; readers of the same file (the
checkpointer, another process) need nothing.

The shim is an optional C extension: without a compiler, or with a Python whose ``sqlite3`` module
carries its own copy of SQLite (the VFS would land in another library), :data:`VFS` is None and
connections open on the default VFS, as before. SQLite's registry of VFSes is the process's own, so
this is decided once, when the module is imported.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from types import ModuleType
from typing import Any

_walvfs: ModuleType | None
try:
    from signaling.storage import _walvfs
except ImportError:  # not built: the default VFS
    _walvfs = None


def usable(name: str) -> bool:
    """Whether Python's ``sqlite3`` finds the VFS ``name`` (not when it carries its own SQLite)."""
    try:
        sqlite3.connect(f"file::memory:?vfs={name}", uri=True).close()
    except sqlite3.OperationalError:
        return False
    return True


def _register() -> str | None:
    if _walvfs is None:
        return None
    name = _walvfs.register()
    return name if usable(name) else None


VFS: str | None = _register()
"""The VFS the writer's connection opens through ("rtc-wal"), or None (see the module's text)."""


def connect(path: str, **kwargs: Any) -> sqlite3.Connection:
    """``sqlite3.connect(path, **kwargs)``, through :data:`VFS` when there is one."""
    if VFS is None or path == ":memory:" or path.startswith("file:"):
        return sqlite3.connect(path, **kwargs)
    return sqlite3.connect(f"file:{urllib.parse.quote(path)}?vfs={VFS}", uri=True, **kwargs)


def stats() -> tuple[int, int]:
    """(WAL writes SQLite made, writes the shim made) in this process; (0, 0) without the shim."""
    return _walvfs.stats() if _walvfs is not None else (0, 0)
