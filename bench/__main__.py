"""``python -m bench`` (``make bench``): the signalling benchmark, in one bounded run.

Installs the Node pieces it needs with ``npm ci`` (the load generator and the Node socket.io baseline),
then runs every scenario against our server, the Node socket.io 4.8 server and a bare aiohttp hub, and
our server on two nodes over Redis; prints a table, writes ``bench/results/signalling.json`` and a chart
``bench/results/signalling_latency.png``. ``--quick`` shrinks every size for a smoke run. It first
measures what this machine charges for a system call, a loopback send, a wake-up between two processes
and an fsync (:mod:`bench.signalling.machine`; about a second), the costs the absolute goals rest on.

Every target is started and its 1:1 pairs set up first; the 1:1 closed loop then runs in rounds with the
targets alternated (each target's figures: its median round), so that the CPU ratios, the headline
figures, are not skewed by the machine's speed drifting between one target's turn and the next. The
other scenarios follow, one target after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.signalling import machine, report
from bench.signalling.procs import REPO
from bench.signalling.scenarios import Plan, closed_alternated, finish_target, run_two_nodes, start_target

NODE_DIRS = (REPO / "bench" / "loadgen", REPO / "bench" / "baselines" / "node_sio")


def npm_ci(say: Any) -> None:
    """``npm ci`` where ``node_modules`` is missing or older than the lock file."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("node and npm are required (Node 20+)")
    for d in NODE_DIRS:
        marker = d / "node_modules" / ".package-lock.json"
        if marker.exists() and marker.stat().st_mtime >= (d / "package-lock.json").stat().st_mtime:
            continue
        say(f"npm ci in {d.relative_to(REPO)}")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=d, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few seconds")
    parser.add_argument(
        "--targets",
        default="ours,msgpack,node,aiohttp",
        help="comma-separated, from ours, msgpack (ours with the load generator's sockets on the msgpack "
        "parser: closed loop and fan-out only), stock (ours on python-socketio's stock classes: the "
        "'before'), node, aiohttp",
    )
    parser.add_argument("--no-two-nodes", action="store_true")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"), help="where JSON and PNG go")
    parser.add_argument("--tag", default="", help="a label stored in the JSON (e.g. before/after)")
    args = parser.parse_args(argv)

    started = time.monotonic()

    def say(text: str) -> None:
        """A progress line, with the seconds since the start (where a run's time goes)."""
        print(f"[{time.monotonic() - started:5.1f}s] {text}" if text else text, flush=True)

    out_dir = Path(args.out)
    log_dir = out_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    npm_ci(say)
    plan = Plan.quick() if args.quick else Plan()
    results: dict[str, Any] = {
        "tag": args.tag,
        "plan": asdict(plan),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    with tempfile.TemporaryDirectory(prefix="bench-machine-") as probe_dir:  # where the servers' data go
        results["machine"].update(machine.measure(Path(probe_dir)))
    say(machine.summary(results["machine"]))
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    with ExitStack() as stack:
        say("set-up:")
        running = [start_target(name, plan, log_dir, stack, say) for name in names]
        say(f"1:1 closed loop, {plan.closed_rounds} rounds, the targets alternated:")
        closed = closed_alternated(running, plan, say)
        for target in running:
            say(f"{target.name}:")
            results[target.name] = asdict(finish_target(target, closed[target.name], plan, log_dir, say))
    if not args.no_two_nodes:
        results["two_nodes"] = {}
        for variant in ("ours", "stock"):
            if variant in results:
                say(f"two nodes on Redis ({variant}):")
                results["two_nodes"][variant] = run_two_nodes(plan, log_dir, say, variant)
    results["elapsed_s"] = time.monotonic() - started
    (out_dir / "signalling.json").write_text(json.dumps(results, indent=2))
    png = report.chart(results, out_dir / "signalling_latency.png")
    say("")
    print(report.table(results), flush=True)
    say("")
    say(
        f"wrote {out_dir / 'signalling.json'}"
        + (f" and {png}" if png else "")
        + f" in {results['elapsed_s']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
