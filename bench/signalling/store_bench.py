"""The SQLite store's CPU per durable message, by thread: in the real server, and alone.

``insitu`` (the default) starts the bench's server (``bench/signalling/ours_server.py``, from ``--repo``,
by default this checkout, so another checkout can be measured against the same load generator), sets up
``--pairs`` 1:1 conversations with the Node load generator and runs the closed loop ``--rounds`` times;
each round prints the server's CPU per message for every thread (``/proc/<pid>/task/*/stat``: the event
loop's thread, then the others, the SQLite writer normally first: the writer process's threads are
marked ``process``; ``RTC_SQLITE_WRITER=thread`` measures the writer thread instead), and the writer's
batches per round (``/__bench/stats``), i.e. the mean group-commit size.

``direct`` drives a real :class:`~signaling.storage.sqlite.SqliteStore` from an asyncio loop the way
the hub does (``--pairs`` conversations, each appending its next message once the previous one is
acknowledged) and prints the same per-thread figures, without sockets.

    .venv/bin/python -m bench.signalling.store_bench --pairs 20 --rounds 3
    .venv/bin/python -m bench.signalling.store_bench direct --pairs 20 --seconds 2
    .venv/bin/python -m bench.signalling.store_bench --repo /tmp/before    # A/B: another checkout's server

Figures move with the load of the shared machine: compare interleaved runs, not single ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.signalling.procs import (
    REPO,
    LoadGen,
    Server,
    descendants,
    machine_busy_seconds,
    python,
    settle,
    stat_cpu_seconds,
    task_ids,
)

Sample = dict[int, tuple[str, float, int]]


def thread_times(pid: int) -> Sample:
    """CPU seconds (user + system) and context switches (voluntary + not) of every thread of ``pid`` and
    of its child processes (the SQLite writer process), with its name, by thread id."""
    out: Sample = {}
    for proc in (pid, *descendants(pid)):
        for tid in task_ids(proc):
            try:
                with open(f"/proc/{proc}/task/{tid}/stat") as fh:
                    raw = fh.read()
                with open(f"/proc/{proc}/task/{tid}/status") as fh:
                    switches = sum(int(line.split()[1]) for line in fh if "ctxt_switches:" in line)
            except FileNotFoundError:  # the thread ended meanwhile
                continue
            name = raw[raw.index("(") + 1 : raw.rindex(")")]
            if proc != pid:
                name = f"process {name}"
            out[int(tid)] = (name, stat_cpu_seconds(raw), switches)
    return out


def _per_thread(before: Sample, after: Sample, main: int) -> list[tuple[str, float, int]]:
    """(label, CPU seconds, context switches) of each thread over the window: the main thread first,
    then by CPU."""
    rows: list[tuple[str, float, int]] = []
    for tid, (name, cpu, switches) in after.items():
        _, cpu0, switches0 = before.get(tid, (name, 0.0, 0))
        rows.append(("loop" if tid == main else f"{name}:{tid}", cpu - cpu0, switches - switches0))
    rows.sort(key=lambda r: (r[0] != "loop", -r[1]))
    return rows


def _stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/__bench/stats", timeout=5) as response:
        return dict(json.loads(response.read()))


def _report(
    label: str, done: int, wall: float, rows: list[tuple[str, float, int]], extra: str
) -> dict[str, Any]:
    total = sum(cpu for _, cpu, _ in rows)
    loop = next((cpu for name, cpu, _ in rows if name == "loop"), 0.0)
    others = [(name, cpu, sw) for name, cpu, sw in rows if name != "loop" and cpu > 0]
    per = 1e6 / max(1, done)
    parts = ", ".join(
        f"{name} {cpu * per:.0f} us, {sw / max(1, done):.1f} switches" for name, cpu, sw in others[:3]
    )
    print(
        f"{label}: {done / wall:.0f} msg/s; us CPU/msg: total {total * per:.0f}, loop {loop * per:.0f}, "
        f"other threads {(total - loop) * per:.0f} ({parts}){extra}",
        flush=True,
    )
    return {
        "msg_per_s": done / wall,
        "total_us": total * per,
        "loop_us": loop * per,
        "other_us": (total - loop) * per,
    }


def insitu(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The closed loop against the real server, per-thread CPU per message per round."""
    repo = Path(args.repo).resolve()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        log_dir = Path(tmp)
        seed_path = log_dir / "seed.json"
        argv = [
            python(),
            "-m",
            "bench.signalling.ours_server",
            "--data-dir",
            str(log_dir / "data"),
            "--pairs",
            str(args.pairs),
            "--fan-agents",
            "1",
            "--seed-out",
            str(seed_path),
        ]
        server = Server("store-bench", argv, cwd=repo, env={"PYTHONPATH": str(repo)})
        server.start(log_dir)
        gen = LoadGen(log_dir)
        try:
            base = {"target": "ours", "url": server.url, "seed": json.loads(seed_path.read_text())}
            gen.run({"cmd": "setup_pairs", **base, "pairs": args.pairs})
            gen.run({"cmd": "closed", "seconds": 1.0})  # warm-up
            for i in range(args.rounds):
                settle([server.pid])
                stats0 = _stats(server.url)
                t0 = thread_times(server.pid)
                m0 = machine_busy_seconds()
                answer = gen.run({"cmd": "closed", "seconds": args.seconds})
                t1 = thread_times(server.pid)
                stats1 = _stats(server.url)
                rows = _per_thread(t0, t1, server.pid)
                batches = stats1["store_batches"] - stats0["store_batches"]
                ops = stats1["store_operations"] - stats0["store_operations"]
                server_cpu = sum(cpu for _, cpu, _ in rows)
                client = answer.get("client_cpu", 0.0) * answer["wall_s"]
                others = max(0.0, machine_busy_seconds() - m0 - server_cpu - client)
                extra = (
                    f"; {batches} batches, {ops / max(1, batches):.1f} ops/batch"
                    f"; others {others / answer['wall_s']:.2f} cores"
                )
                results.append(_report(f"round {i + 1}", answer["done"], answer["wall_s"], rows, extra))
        except RuntimeError:
            print((log_dir / "loadgen.log").read_text()[-2000:], file=sys.stderr)
            raise
        finally:
            gen.stop()
            server.stop()
    return results


async def _direct(args: argparse.Namespace, path: Path) -> list[dict[str, Any]]:
    from signaling.domain.models import Author, Conversation, Message, Team, Visitor, new_id
    from signaling.storage.sqlite import SqliteStore

    store = SqliteStore(path)
    await store.open()
    try:
        team = await store.create_team(Team(id=new_id("tm"), name="bench", routing="manual"))
        conversations = []
        for i in range(args.pairs):
            visitor = await store.create_visitor(Visitor(id=new_id("vi"), name=f"v{i}"))
            conversations.append(
                await store.create_conversation(
                    Conversation(id=new_id("cv"), visitor_id=visitor.id, team_id=team.id, assignee_id="ag1")
                )
            )
        author = Author(kind="customer", id="v", name="Visitor")
        results: list[dict[str, Any]] = []
        stop = 0.0
        done = 0

        async def writer(conversation_id: str) -> None:
            nonlocal done
            n = 0
            while time.monotonic() < stop:
                n += 1
                message = Message(
                    id=new_id("msg"),
                    conversation_id=conversation_id,
                    seq=0,
                    author=author,
                    kind="text",
                    body=f"hello {n}, a message of a typical length for a chat",
                    client_id=new_id("cl"),
                )
                await store.append_message(message)
                done += 1

        for i in range(args.rounds + 1):
            stop = time.monotonic() + (0.5 if i == 0 else args.seconds)
            done = 0
            batches0 = store.stats.batches
            t0 = thread_times(os.getpid())
            w0 = time.perf_counter()
            await asyncio.gather(*(writer(c.id) for c in conversations))
            wall = time.perf_counter() - w0
            t1 = thread_times(os.getpid())
            if i == 0:
                continue  # warm-up
            batches = store.stats.batches - batches0
            rows = _per_thread(t0, t1, os.getpid())
            results.append(
                _report(f"round {i}", done, wall, rows, f"; {done / max(1, batches):.1f} ops/batch")
            )
        return results
    finally:
        await store.close()


def direct(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Concurrent appends to a real store from this process's asyncio loop."""
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        return asyncio.run(_direct(args, Path(tmp) / "store.sqlite3"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", choices=("insitu", "direct"), default="insitu")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repo", default=str(REPO), help="the checkout whose server to run (insitu)")
    args = parser.parse_args()
    results = insitu(args) if args.mode == "insitu" else direct(args)
    if len(results) > 1:
        mean = {k: sum(r[k] for r in results) / len(results) for k in results[0]}
        print(
            f"mean: {mean['msg_per_s']:.0f} msg/s; us CPU/msg: total {mean['total_us']:.0f}, "
            f"loop {mean['loop_us']:.0f}, other threads {mean['other_us']:.0f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
