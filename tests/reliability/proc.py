"""The real server as a child process, and what can be read of it from outside: its RSS and open file
descriptors from ``/proc/<pid>``, and (for :mod:`tests.reliability.probe_server`) its asyncio tasks and
media peers.

Two ways to start it:

- :meth:`ServerProcess.serve`: ``python -m rtc_server serve --port <free> --data-dir <dir> --demo``,
  exactly what an operator runs (used by the crash test, which ``kill -9``-s it);
- :meth:`ServerProcess.probe`: :mod:`tests.reliability.probe_server`, the same app with one extra
  read-only route ``GET /__probe`` reporting tasks, media sessions and peers, sockets, fds and RSS.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
SECRET = "reliability-secret"


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def fd_count(pid: int) -> int:
    """Open file descriptors of ``pid`` (entries of ``/proc/<pid>/fd``)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def config_env(overrides: dict[str, Any]) -> dict[str, str]:
    """``RTC_<NAME>`` environment variables for :class:`rtc_server.config.Config` fields."""
    env: dict[str, str] = {}
    for key, value in overrides.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            text = json.dumps(list(value))
        else:
            text = str(value)
        env[f"RTC_{key.upper()}"] = text
    return env


class ServerProcess:
    """One server child process on a free loopback port."""

    def __init__(self, argv: list[str], port: int, env: dict[str, str], log_path: Path) -> None:
        self.argv = argv
        self.port = port
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @classmethod
    def serve(cls, data_dir: Path, *, media: bool = False, **config: Any) -> ServerProcess:
        """``python -m rtc_server serve --port <free> --data-dir <data_dir> --demo`` (+ ``config`` as env)."""
        port = free_port()
        argv = [sys.executable, "-m", "rtc_server", "serve", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--data-dir", str(data_dir), "--demo", "--secret", SECRET, "--log-level", "warning"]
        argv += ["--media-host-address", "127.0.0.1"] if media else ["--no-media"]
        return cls(argv, port, config_env(config), data_dir.parent / f"{data_dir.name}.log")

    @classmethod
    def probe(cls, data_dir: Path, **config: Any) -> ServerProcess:
        """:mod:`tests.reliability.probe_server` (the app plus ``GET /__probe``)."""
        port = free_port()
        argv = [sys.executable, "-m", "tests.reliability.probe_server", "--port", str(port)]
        argv += ["--data-dir", str(data_dir), "--config", json.dumps(config)]
        return cls(argv, port, {}, data_dir.parent / f"{data_dir.name}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until ``/readyz`` answers 200."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_tail()}")
                try:
                    async with http.get(f"{self.url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return
                except (TimeoutError, aiohttp.ClientError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not ready after {timeout} s: {self.log_tail()}")
                await asyncio.sleep(0.05)

    def kill9(self) -> None:
        """``kill -9``: no shutdown handler runs, no buffer is flushed."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def fd_count(self) -> int:
        return fd_count(self.pid)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    async def probe_state(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """``GET /__probe`` of a probe server."""
        async with http.get(f"{self.url}/__probe") as resp:
            assert resp.status == 200, await resp.text()
            data: dict[str, Any] = await resp.json()
            return data
