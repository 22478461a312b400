"""Processes the benchmark starts and watches: servers that print ``READY <port>``, the Node load
generator driven by JSON lines, a throwaway redis-server, and CPU/RSS read from ``/proc``."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parents[2]


def task_ids(pid: int) -> list[str]:
    """The thread ids of process ``pid`` (``/proc/<pid>/task``); none once it has ended."""
    try:
        return os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []


def stat_cpu_seconds(stat: str) -> float:
    """User + system CPU seconds in the text of a ``/proc/.../stat`` file (fields 14 and 15)."""
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """The live child processes of ``pid``, and theirs (``/proc/<pid>/task/*/children``)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for tid in task_ids(parent):
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as fh:
                    children = [int(c) for c in fh.read().split()]
            except FileNotFoundError:
                continue
            out += children
            todo += children
    return out


def _own_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            raw = fh.read()
    except FileNotFoundError:  # ended meanwhile
        return 0.0
    return stat_cpu_seconds(raw)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads included (``/proc/<pid>/stat``), plus that of
    its live descendants (our server's SQLite writer process)."""
    return _own_cpu_seconds(pid) + sum(_own_cpu_seconds(child) for child in descendants(pid))


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User + system CPU time of one thread of a process (``/proc/<pid>/task/<tid>/stat``)."""
    with open(f"/proc/{pid}/task/{tid}/stat") as fh:
        return stat_cpu_seconds(fh.read())


def machine_busy_seconds() -> float:
    """CPU time spent by the whole machine (every core, every process) so far (``/proc/stat``)."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def settle(pids: Sequence[int], max_s: float = 4.0, window_s: float = 0.2, quiet_cores: float = 0.1) -> float:
    """Wait until the processes are nearly idle (a saturated step's backlog must not leak into the next
    one); returns how long it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_s:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(window_s)
        if (sum(cpu_seconds(p) for p in pids) - before) / window_s <= quiet_cores:
            break
    return time.monotonic() - t0


def rss_kb(pid: int) -> int:
    """Resident set size in KB (``VmRSS`` of ``/proc/<pid>/status``)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server process that prints ``READY <port>`` on stdout once it listens."""

    name: str
    argv: Sequence[str]
    cwd: Path = REPO
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    port: int = 0
    log: Path | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_dir: Path, timeout: float = 60.0) -> Server:
        self.log = log_dir / f"{self.name}.log"
        err: IO[str] = open(self.log, "w")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            list(self.argv),
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, **self.env},
            preexec_fn=_raise_fd_limit,
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("READY "):
                self.port = int(line.split()[1])
                return self
        self.stop()
        raise RuntimeError(f"{self.name} did not start; see {self.log}:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Redis:
    """A redis-server on a free port, without persistence, for the two-node scenario."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxclients",
                "10000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)


class LoadGen:
    """The Node load generator: one JSON command in, one JSON answer out; server CPU read around it."""

    def __init__(self, log_dir: Path, name: str = "loadgen") -> None:
        self.log = open(log_dir / f"{name}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["node", str(REPO / "bench" / "loadgen" / "loadgen.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            preexec_fn=_raise_fd_limit,
        )

    def run(self, command: dict[str, Any], pids: Sequence[int] = ()) -> dict[str, Any]:
        """Run ``command``; the answer gains ``server_cpu_s`` (summed over ``pids``) and ``wall_s``."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        before = [cpu_seconds(pid) for pid in pids]
        main_before = thread_cpu_seconds(pids[0], pids[0]) if pids else 0.0
        client_before = cpu_seconds(self.proc.pid)
        machine_before = machine_busy_seconds()
        t0 = time.perf_counter()
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        wall = time.perf_counter() - t0
        after = [cpu_seconds(pid) for pid in pids]
        main_after = thread_cpu_seconds(pids[0], pids[0]) if pids else 0.0
        machine = machine_busy_seconds() - machine_before
        client = cpu_seconds(self.proc.pid) - client_before
        if not line:
            raise RuntimeError(f"the load generator died during {command['cmd']}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"load generator: {command['cmd']} failed: {answer['error']}")
        answer["server_cpu_s"] = sum(a - b for a, b in zip(after, before, strict=True))
        answer["server_cpu_by_pid"] = [a - b for a, b in zip(after, before, strict=True)]
        answer["server_main_thread_cpu_s"] = main_after - main_before  # the event loop of the first pid
        answer["wall_s"] = wall
        # CPU used meanwhile by everything else on the machine (other people's test runs...), in cores
        answer["others_cores"] = max(0.0, machine - client - answer["server_cpu_s"]) / max(wall, 1e-9)
        answer["client_bound"] = answer.get("client_cpu", 0.0) > 0.9
        return answer

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def python() -> str:
    return sys.executable
