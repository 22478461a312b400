"""The SQLite store's writer process (the child side of :mod:`~signaling.storage.sqlite_proc`).

``python -m signaling.storage.sqlite_writer FD PATH NODE_ID MAX_BATCH``: the store's process starts it
with one end of a ``socketpair`` as ``FD``. It opens the file (``NODE_ID``: clear that node's presence
left by its previous run; empty when a writer takes over from one that died), answers ``ready``, then
reads frames of jobs and runs them as batches (:func:`~signaling.storage.sqlite_batch.run_batch`: one
transaction and one fsync each), answering each batch's outcomes once it is committed.

Its log records go over the socket to the store's process, which logs them as its own. It lives as
long as its socket: when the store's process dies (even with ``kill -9``) it reads
end-of-file, runs and commits what it had received, and exits. It ignores SIGINT (a terminal's Ctrl-C
reaches the whole process group; the server's shutdown stops it after its last writes), and after
SIGTERM it keeps serving for :data:`TERM_GRACE_S` at most, then exits.

This module imports no event loop. Jobs name their operation (a module-level function: its module and
name); the store's operation modules are imported up front, and nothing else of the server. A job
naming no importable function gets a ``TypeError`` of its own; the others run.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import logging
import pickle
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any

from signaling.domain.errors import Unavailable
from signaling.storage import sqlite_ops, sqlite_ops_conversations, sqlite_ops_directory  # noqa: F401
from signaling.storage.sqlite_batch import Job, Outcome, WorkerStats, open_connection, run_batch
from signaling.storage.sqlite_checkpoint import Checkpointer

HEADER = struct.Struct("<I")
STOP = "stop"
RECV_BYTES = 65536
"""Read size: ``recv`` allocates this much each call, and past glibc's 128 KB threshold that is an
``mmap`` and ``munmap`` per read (28 us a read against 4 us at 64 KB, measured on a socketpair)."""
TERM_GRACE_S = 10
"""After SIGTERM the writer keeps serving this long (the server's own shutdown writes), then exits."""


def frame(payload: Any) -> bytes:
    """One frame: a 4-byte little-endian length, then ``payload`` pickled."""
    data = pickle.dumps(payload, pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


class Frames:
    """Splits a byte stream into frames' payloads."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The payloads completed by ``data``."""
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        at, size = 0, len(buffer)
        while size - at >= 4:
            (length,) = HEADER.unpack_from(buffer, at)
            if size - at - 4 < length:
                break
            out.append(bytes(buffer[at + 4 : at + 4 + length]))
            at += 4 + length
        del buffer[:at]
        return out


def serve(sock: socket.socket, path: str, node_id: str, max_batch: int) -> None:
    """The child's life: open the file, then run batches until :data:`STOP` or end-of-file."""
    sock.setblocking(True)
    try:
        conn = open_connection(path, node_id or None)
    except Exception as exc:
        _send(sock, ("ready", _portable(0, None, exc)[2]))
        return
    _send(sock, ("ready", None))
    checkpointer = Checkpointer(path)
    checkpointer.start()
    stats = WorkerStats()
    frames = Frames()
    jobs: collections.deque[Job] = collections.deque()
    ending = stop = False
    try:
        while True:
            data = _receive(sock, block=not jobs and not ending)
            if data is None:
                ending = True  # the store's process is gone: commit what it sent, then exit
            refused: list[Outcome] = []
            for payload in frames.feed(data or b""):
                message = pickle.loads(payload)
                if message == STOP:
                    stop = ending = True
                    continue
                sent, wires = message
                for number, module, name, args, write in wires:
                    fn = operation(module, name)
                    if fn is None:
                        refused.append((number, None, TypeError(f"no store operation {module}.{name}")))
                    else:
                        jobs.append(Job(fn, args, write, number, sent))
            if refused:
                _send(sock, ("done", refused, stats.counters()))
            if jobs:  # one batch, then read what arrived meanwhile: it joins the next one
                batch = [jobs.popleft() for _ in range(min(max_batch, len(jobs)))]
                outcomes = run_batch(conn, batch, stats)
                _send(sock, ("done", outcomes, stats.counters()))
            elif ending:
                break
    finally:
        checkpointer.stop()
        conn.close()
    if stop:
        _send(sock, ("stopped",))
    sock.close()


def _receive(sock: socket.socket, *, block: bool) -> bytes | None:
    """What has arrived (waiting for something when ``block``): b"" when nothing, None at end-of-file."""
    try:
        data = sock.recv(RECV_BYTES) if block else sock.recv(RECV_BYTES, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""
    except OSError:
        return None
    return data if data else None


_operations: dict[tuple[str, str], Callable[..., Any] | None] = {}


def operation(module: str, name: str) -> Callable[..., Any] | None:
    """The module-level function ``module.name`` (imported once), or None when there is none."""
    key = (module, name)
    if key not in _operations:
        try:
            fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            fn = None
        _operations[key] = fn if callable(fn) else None
    return _operations[key]


_sending = threading.Lock()
"""Frames go out whole: the checkpointer's thread may log (a frame) while the writer answers."""


def _send(sock: socket.socket, message: tuple[Any, ...]) -> None:
    """Send one frame; a result or an exception that cannot be pickled is replaced by ``Unavailable``
    (or ``exc`` by a copy that survives pickling) for its own caller."""
    try:
        data = frame(message)
    except Exception:
        data = frame((message[0], [_portable(*outcome) for outcome in message[1]], *message[2:]))
    with _sending, contextlib.suppress(OSError):  # the store's process is gone: nobody to tell
        sock.sendall(data)


class _ToStore(logging.Handler):
    """Hands the writer's log records to the store's process, which logs them its own way (plain or
    JSON lines, its level): one log for the whole server."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(logging.INFO)
        self._sock = sock

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            _send(self._sock, ("log", record.levelno, record.name, text))
        except Exception:  # never let logging break the writer
            self.handleError(record)


def _portable(number: int, result: Any, exc: BaseException | None) -> Outcome:
    try:
        pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        return number, None, Unavailable(f"a store result the writer process cannot send: {error}")
    if exc is not None:
        try:
            pickle.loads(pickle.dumps(exc, pickle.HIGHEST_PROTOCOL))
        except Exception:
            exc = Unavailable(f"{type(exc).__name__}: {exc}")
    return number, result, exc


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: signal.alarm(TERM_GRACE_S))  # SIGALRM's default: exit
    fd, path, node_id, max_batch = argv
    sock = socket.socket(fileno=int(fd))
    root = logging.getLogger()
    root.handlers[:] = [_ToStore(sock)]
    root.setLevel(logging.INFO)
    serve(sock, path, node_id, int(max_batch))


if __name__ == "__main__":
    main(sys.argv[1:])
