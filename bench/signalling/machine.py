"""What this machine charges for the operations every message pays, measured at the start of a run.

The goals of BENCHMARKS.md are ratios to baselines run beside ours, and three absolute figures (p99
at 3,000 msg/s, CPU per fan-out delivery, idle memory). The absolute ones rest on what the kernel and
the disk cost here: a server cannot deliver to a socket for less than the machine charges for one
send, nor acknowledge a durable write before the disk says it is. So every run measures, in this
process and one child, with the bench's load not yet started:

- a trivial system call (``getppid``), from Python;
- a 100-byte message over a loopback TCP connection, sent and received in one thread (no wake-up),
  each side's CPU apart: on loopback the ``send`` also runs the receiving side's TCP work, so it is the
  kernel's part of one delivery, charged to the server;
- a round trip between two processes over a socket pair, each asleep in ``recv`` until the other
  writes: two wake-ups, as between our event loop and the SQLite writer process;
- a 4 KB overwrite and ``fdatasync`` of a file in the bench's temporary directory: a commit's fsync.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SYSCALLS = 100_000
SENDS = 20_000
ROUND_TRIPS = 3_000
SYNCS = 300

_ECHO = """
import os, socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
s.sendall(s.recv(64))  # the first message: the child is up; its CPU counts from here
t0 = os.times()
while True:
    data = s.recv(64)
    if not data:
        break
    s.sendall(data)
t = os.times()
sys.stdout.write(f"{t.user + t.system - t0.user - t0.system}\\n")
"""
"""The other process of the round trips: echoes until end-of-file, then prints the CPU it used since its
first message."""


def measure(tmp: Path) -> dict[str, Any]:
    """Every figure of the module docstring (microseconds unless named otherwise)."""
    return {
        "syscall_ns": _syscall_ns(),
        **_loopback(),
        **_wakeups(),
        **_fdatasync(tmp),
    }


def summary(machine: dict[str, Any]) -> str:
    """One line for the table's footer."""
    if "syscall_ns" not in machine:
        return ""
    return (
        f"This machine, measured at the start of the run: a trivial system call {machine['syscall_ns']:.0f} ns; "
        f"a 100-byte message over loopback TCP {machine['loopback_send_cpu_us']:.1f} us of CPU to send (the"
        f" receiving side's TCP work included) and {machine['loopback_recv_cpu_us']:.1f} us to receive; "
        f"a round trip between two processes that sleep in between {machine['wakeup_round_trip_us']:.0f} us "
        f"({machine['wakeup_round_trip_cpu_us']:.0f} us of CPU for both); a 4 KB write and fdatasync "
        f"p50 {machine['fdatasync_p50_us']:.0f} us, p99 {machine['fdatasync_p99_us']:.0f} us, "
        f"{machine['fdatasync_cpu_us']:.0f} us of CPU."
    )


def _syscall_ns() -> float:
    getppid = os.getppid
    start = time.process_time()
    for _ in range(SYSCALLS):
        getppid()
    return (time.process_time() - start) * 1e9 / SYSCALLS


def _loopback() -> dict[str, float]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.create_connection(server.getsockname())
        receiver, _ = server.accept()
    with sender, receiver:
        sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = b"x" * 100
        clock = time.process_time
        sending = receiving = 0.0
        for _ in range(SENDS):
            t0 = clock()
            sender.send(payload)
            t1 = clock()
            receiver.recv(4096)
            receiving += clock() - t1
            sending += t1 - t0
        return {"loopback_send_cpu_us": sending * 1e6 / SENDS, "loopback_recv_cpu_us": receiving * 1e6 / SENDS}


def _wakeups() -> dict[str, float]:
    ours, theirs = socket.socketpair()
    child = subprocess.Popen(
        [sys.executable, "-c", _ECHO, str(theirs.fileno())], pass_fds=[theirs.fileno()], stdout=subprocess.PIPE
    )
    theirs.close()
    with ours:
        ours.sendall(b"w")  # the child is up
        ours.recv(64)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(ROUND_TRIPS):
            ours.sendall(b"ping")
            ours.recv(64)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        ours.shutdown(socket.SHUT_WR)
        out, _ = child.communicate(timeout=30)
    child_cpu = float(out.decode().strip() or 0.0)
    return {
        "wakeup_round_trip_us": wall * 1e6 / ROUND_TRIPS,
        "wakeup_round_trip_cpu_us": (cpu + child_cpu) * 1e6 / ROUND_TRIPS,
    }


def _fdatasync(tmp: Path) -> dict[str, float]:
    path = tmp / "fdatasync-probe"
    block = os.urandom(4096)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, block * 256, 0)  # 1 MB written and synced first: the probe overwrites, as a WAL
        os.fdatasync(fd)  # started over does
        walls = []
        cpu0 = time.process_time()
        for i in range(SYNCS):
            t = time.perf_counter()
            os.pwrite(fd, block, (i % 256) * 4096)
            os.fdatasync(fd)
            walls.append(time.perf_counter() - t)
        cpu = time.process_time() - cpu0
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    walls.sort()
    return {
        "fdatasync_p50_us": statistics.median(walls) * 1e6,
        "fdatasync_p99_us": walls[int(len(walls) * 0.99)] * 1e6,
        "fdatasync_cpu_us": cpu * 1e6 / SYNCS,
    }


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-machine-") as tmp_s:
        print(json.dumps(measure(Path(tmp_s)), indent=2))
