"""Where the memory of an idle ``/customer`` connection goes: opens idle sockets against our server the way
the benchmark does (the Node load generator, websocket transport directly, a visitor token each) and
prints what each connection retains.

Run (from the repo root)::

    .venv/bin/python -m bench.signalling.idle_profile            # 1000 sockets, tracemalloc on
    .venv/bin/python -m bench.signalling.idle_profile -n 2000 --frames 12 --top 40
    .venv/bin/python -m bench.signalling.idle_profile --no-trace # RSS only (tracemalloc costs memory)

The server runs in its own process (``--serve``, started by this script) with the event loop of
``rtc-server serve`` (uvloop) and two extra routes: ``/__profile/mark`` (collect, then remember a
tracemalloc snapshot and the ``gc`` object counts) and ``/__profile/report?n=N`` (collect, then diff
against the mark, divided by ``N``). After a warm-up of ``--warmup`` sockets (kept open: the first
connections pay for imports and caches), the script marks, opens ``-n`` more sockets, waits for the
server to be quiet, and prints:

- RSS growth per connection (as the benchmark computes it);
- Python allocations per connection, grouped by the innermost frames of their traceback (``--frames``
  deep; the frame that allocated first), largest first;
- the same grouped by file;
- ``gc``-tracked objects per connection by type (count and ``sys.getsizeof`` bytes; strings, bytes and
  ints are not ``gc``-tracked, so they only appear in the tracemalloc tables).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections import Counter
from pathlib import Path

from bench.signalling.ours_server import serve_until_stopped
from bench.signalling.procs import LoadGen, Server, python, rss_kb, settle


def _type_counts() -> tuple[Counter[str], Counter[str]]:
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        counts[name] += 1
        try:
            sizes[name] += sys.getsizeof(obj)
        except TypeError:
            pass
    return counts, sizes


class Profiler:
    """The server side: a tracemalloc snapshot and object counts at the mark, a per-connection diff later."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.snapshot: tracemalloc.Snapshot | None = None
        self.counts: Counter[str] = Counter()
        self.sizes: Counter[str] = Counter()

    def _take(self) -> tracemalloc.Snapshot | None:
        gc.collect()
        if not tracemalloc.is_tracing():
            return None
        return tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
        )

    def mark(self) -> None:
        self.snapshot = self._take()
        self.counts, self.sizes = _type_counts()

    def report(self, n: int, top: int) -> str:
        now = self._take()
        counts, sizes = _type_counts()
        out: list[str] = []
        if now is not None and self.snapshot is not None:
            stats = now.compare_to(self.snapshot, "traceback")
            total = sum(s.size_diff for s in stats)
            out.append(f"tracemalloc: {total / n:.0f} B per connection (Python allocations)")
            out.append("\nby traceback (innermost frames first):")
            for stat in stats[:top]:
                if abs(stat.size_diff) < n * 8:
                    break
                frames = [
                    f"{Path(f.filename).name}:{f.lineno}" for f in reversed(stat.traceback[-self.frames :])
                ]
                out.append(
                    f"  {stat.size_diff / n:7.0f} B  {stat.count_diff / n:5.1f} blk  {' <- '.join(frames)}"
                )
            by_file: Counter[str] = Counter()
            for stat in now.compare_to(self.snapshot, "filename"):
                by_file[_short(stat.traceback[0].filename)] += stat.size_diff
            out.append("\nby file:")
            for name, size in by_file.most_common(top):
                if size < n * 8:
                    break
                out.append(f"  {size / n:7.0f} B  {name}")
        out.append("\ngc objects per connection (count, getsizeof bytes):")
        rows = sorted(
            ((sizes[k] - self.sizes[k], counts[k] - self.counts[k], k) for k in counts),
            reverse=True,
        )
        for size, count, name in rows[:top]:
            if count < n * 0.5:
                continue
            out.append(f"  {count / n:5.2f} x  {size / n:7.0f} B  {name}")
        return "\n".join(out)


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


async def serve(args: argparse.Namespace) -> None:
    """The server process: our app on 127.0.0.1:0 with the profile routes."""
    from aiohttp import web

    from rtc_server.app import create_app
    from rtc_server.config import Config

    data_dir = Path(args.data_dir)
    config = Config(
        host="127.0.0.1",
        port=0,
        data_dir=str(data_dir),
        secret="bench-secret",
        store=f"sqlite:///{data_dir / 'rtc.sqlite3'}",
        node_id="profile",
        media=False,
        log_level="warning",
    )
    app = create_app(config)
    profiler = Profiler(args.frames)

    async def mark(request: web.Request) -> web.Response:
        profiler.mark()
        return web.json_response({"ok": True})

    async def report(request: web.Request) -> web.Response:
        n = int(request.query.get("n", "1"))
        return web.Response(text=profiler.report(n, int(request.query.get("top", "30"))))

    app.router.add_get("/__profile/mark", mark)
    app.router.add_get("/__profile/report", report)
    await serve_until_stopped(app)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=600) as resp:
        return resp.read().decode()


def _steady_rss(pid: int) -> int:
    settle([pid])
    last = rss_kb(pid)
    for _ in range(20):
        time.sleep(0.25)
        now = rss_kb(pid)
        if abs(now - last) <= 64:
            return now
        last = now
    return last


def measure(args: argparse.Namespace) -> None:
    """Start the server, open the sockets, print the report."""
    with tempfile.TemporaryDirectory(prefix="idle-profile-") as tmp:
        argv = [python(), "-m", "bench.signalling.idle_profile", "--serve", "--data-dir", tmp]
        argv += ["--frames", str(args.frames)]
        if args.no_trace:
            argv.append("--no-trace")
        server = Server("idle-profile", argv).start(Path(tmp))
        gen = LoadGen(Path(tmp))
        base = {"target": "ours", "url": server.url, "seed": None}
        try:
            gen.run({"cmd": "prepare_idle", **base, "visitors": args.visitors})
            gen.run({"cmd": "idle", **base, "n": args.warmup, "concurrency": 50})
            _get(server.url + "/__profile/mark")
            rss0 = _steady_rss(server.pid)
            answer = gen.run({"cmd": "idle", **base, "n": args.n, "concurrency": 400})
            opened = max(1, args.n - answer["failed"])
            rss1 = _steady_rss(server.pid)
            print(f"{opened} idle sockets (after {args.warmup} warm-up ones)")
            print(
                f"RSS: {(rss1 - rss0) / opened:.1f} KB per connection (tracemalloc {'off' if args.no_trace else 'on'})"
            )
            print(_get(f"{server.url}/__profile/report?n={opened}&top={args.top}"))
        except RuntimeError:
            for log_file in sorted(Path(tmp).glob("*.log")):
                print(f"--- {log_file.name} (last lines)\n{log_file.read_text()[-2000:]}", file=sys.stderr)
            raise
        finally:
            if gen.proc.poll() is None:
                gen.run({"cmd": "close_all"})
            gen.stop()
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=1000, help="idle sockets measured")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--visitors", type=int, default=200)
    parser.add_argument("--frames", type=int, default=8, help="traceback depth kept and shown")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-trace", action="store_true", help="RSS only")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.serve:
        measure(args)
        return
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if not args.no_trace:
        tracemalloc.start(args.frames)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
