"""The 1:1 closed loop alone, for A/B runs and profiles of the event loop's CPU per message.

``python -m bench.loopcpu [--tree DIR ...] [--rounds N] [--pyspy OUT]`` starts our bench server
(``bench/signalling/ours_server.py``) from each source tree given (default: this repository; a second
``git worktree`` is the "before" of an A/B), sets up ``--pairs`` 1:1 conversations with the Node load
generator, and runs the closed loop ``--rounds`` times per tree, trees alternated, printing msg/s, the
server's CPU per message (all threads, and the SQLite writer process) and the event loop thread's.
``--writer process --writer thread`` alternates the two SQLite writers (``RTC_SQLITE_WRITER``) too. With ``--pyspy OUT``, ``py-spy``
samples the first tree's server and its SQLite writer process during one extra closed loop (raw folded
stacks with process and thread ids, to OUT).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.signalling.procs import REPO, LoadGen, Server, python, settle


class PrivateLoadGen(LoadGen):
    """The load generator run from a private copy (``LOOPCPU_LOADGEN``: a directory holding
    ``loadgen.mjs`` and its ``node_modules``), so that another bench's ``npm ci`` cannot pull ``ws`` from
    under it; the repository's when unset."""

    def __init__(self, log_dir: Path) -> None:
        private = os.environ.get("LOOPCPU_LOADGEN")
        if not private:
            super().__init__(log_dir)
            return
        self.log = open(log_dir / "loadgen.log", "w")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            ["node", str(Path(private) / "loadgen.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )


def start(
    tree: Path, tmp: Path, pairs: int, log_dir: Path, cprofile: str = "", writer: str = ""
) -> tuple[Server, LoadGen]:
    seed_path = tmp / "seed.json"
    prof = ["-m", "cProfile", "-o", cprofile] if cprofile else []
    server = Server(
        f"ours-{tree.name}",
        [
            python(),
            *prof,
            "-m",
            "bench.signalling.ours_server",
            "--data-dir",
            str(tmp / "data"),
            "--pairs",
            str(pairs),
            "--fan-agents",
            "0",
            "--seed-out",
            str(seed_path),
        ],
        cwd=tree,
        env={"PYTHONPATH": str(tree), **({"RTC_SQLITE_WRITER": writer} if writer else {})},
    )
    server.start(log_dir)
    gen = PrivateLoadGen(log_dir)
    seed = json.loads(seed_path.read_text())
    time.sleep(0.3)
    try:
        gen.run({"cmd": "setup_pairs", "target": "ours", "url": server.url, "seed": seed, "pairs": pairs})
        gen.run({"cmd": "closed", "seconds": 1.0})  # warm-up
    except Exception:
        gen.stop()
        server.stop()
        assert server.log is not None
        print(server.log.read_text()[-3000:])
        print((log_dir / "loadgen.log").read_text()[-3000:])
        raise
    return server, gen


def closed(server: Server, gen: LoadGen, seconds: float) -> dict[str, Any]:
    settle([server.pid])
    r = gen.run({"cmd": "closed", "seconds": seconds}, [server.pid])
    n = max(1, r["done"])
    return {
        "msg_per_s": r["msg_per_s"],
        "cpu_us": r["server_cpu_s"] * 1e6 / n,
        "loop_us": r["server_main_thread_cpu_s"] * 1e6 / n,
        "others_cores": r["others_cores"],
        "failed": r.get("failed", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tree", action="append", default=[], help="a source tree (repeatable)")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--writer", action="append", default=[], help="an SQLite writer (process, thread; repeatable: alternated)"
    )
    parser.add_argument("--pyspy", default="", help="write a py-spy raw profile of the first tree here")
    parser.add_argument("--cprofile", default="", help="write a cProfile of the first tree's server here")
    args = parser.parse_args()
    trees = [Path(t).resolve() for t in args.tree] or [REPO]
    variants = [(tree, writer) for tree in trees for writer in (args.writer or [""])]
    results: dict[str, list[dict[str, Any]]] = {_label(t, w): [] for t, w in variants}
    with tempfile.TemporaryDirectory(prefix="loopcpu-") as tmp_s:
        tmp = Path(tmp_s)
        log_dir = tmp / "logs"
        log_dir.mkdir()
        if args.pyspy:
            server, gen = start(trees[0], tmp / "spy", args.pairs, log_dir)
            try:
                settle([server.pid])
                spy = subprocess.Popen(
                    [
                        str(Path(python()).parent / "py-spy"),
                        "record",
                        "-r",
                        "1000",
                        "--threads",
                        "--subprocesses",  # the SQLite writer process too
                        # BLOCKING=1: py-spy pauses the process per sample (slower, stacks never torn)
                        *([] if os.environ.get("BLOCKING") else ["--nonblocking"]),
                        "-f",
                        "raw",
                        "-o",
                        args.pyspy,
                        "-d",
                        str(int(args.seconds) + 1),
                        "-p",
                        str(server.pid),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(0.5)
                r = closed(server, gen, args.seconds)
                spy.wait()
                print(f"profiled: {r}")
            finally:
                gen.stop()
                server.stop()
        if args.cprofile:
            server, gen = start(trees[0], tmp / "cprof", args.pairs, log_dir, cprofile=args.cprofile)
            try:
                r = gen.run({"cmd": "closed", "seconds": args.seconds}, [server.pid])
                print(f"cProfiled: {r['done']} messages (+ setup and a warm-up)")
            finally:
                gen.stop()
                server.stop()
        for round_no in range(args.rounds):
            for i, (tree, writer) in enumerate(variants):
                label = _label(tree, writer)
                for attempt in range(3):  # a set-up can fail on a machine other runs overload: retry it
                    try:
                        workdir = tmp / f"r{round_no}-{i}-{attempt}"
                        server, gen = start(tree, workdir, args.pairs, log_dir, writer=writer)
                        break
                    except RuntimeError:
                        if attempt == 2:
                            raise
                try:
                    r = closed(server, gen, args.seconds)
                finally:
                    gen.stop()
                    server.stop()
                results[label].append(r)
                print(
                    f"round {round_no} {label}: {r['msg_per_s']:.0f} msg/s, {r['cpu_us']:.0f} us/msg total, "
                    f"{r['loop_us']:.0f} us/msg on the loop (others {r['others_cores']:.2f} cores,"
                    f" failed {r['failed']})",
                    flush=True,
                )
    for tree, rs in results.items():
        if rs:
            print(
                f"{tree}: loop {statistics.mean(r['loop_us'] for r in rs):.0f} us/msg "
                f"({', '.join(format(r['loop_us'], '.0f') for r in rs)}), total "
                f"{statistics.mean(r['cpu_us'] for r in rs):.0f} us/msg"
            )


def _label(tree: Path, writer: str) -> str:
    return f"{tree} ({writer} writer)" if writer else str(tree)


if __name__ == "__main__":
    main()
