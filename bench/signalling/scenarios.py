"""The signalling scenarios, run against one target (ours, the Node socket.io server, the bare aiohttp
hub) by the Node load generator, with the target's CPU and memory read from ``/proc`` around each step.

Same hub logic everywhere: a 1:1 conversation is a customer socket and an agent socket in one room; a
message is acknowledged to its sender and broadcast as ``message.new`` to the room (sender included).
Ours does it for real: REST logins, conversations started and assigned, every message authorised,
committed to SQLite before its ack, and fanned out to the team's agents and the visitor's sockets.
"""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.signalling.procs import REPO, LoadGen, Redis, Server, python, rss_kb, settle
from signaling.storage.sqlite_batch import LATENCY_BOUNDS


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one run (the defaults keep a whole run under two minutes on 2 cores)."""

    pairs: int = 100
    closed_s: float = 1.5
    closed_rounds: int = 3
    rates: tuple[int, ...] = (500, 1000, 2000, 3000, 4000)
    rate_s: float = 1.2
    drain_s: float = 2.0
    fan_agents: int = 100
    fan_senders: int = 4
    fan_s: float = 2.0
    idle: int = 5000
    idle_warmup: int = 100
    idle_visitors: int = 200
    two_node_pairs: int = 100
    two_node_s: float = 2.0

    @staticmethod
    def quick() -> Plan:
        return Plan(
            pairs=20,
            closed_s=1.0,
            closed_rounds=1,
            rates=(500, 1000, 3000),
            rate_s=1.0,
            fan_agents=20,
            fan_s=1.0,
            idle=500,
            idle_warmup=50,
            idle_visitors=50,
            two_node_pairs=20,
            two_node_s=1.0,
        )


@dataclass
class TargetResult:
    name: str
    label: str
    steps: dict[str, Any] = field(default_factory=dict)


OURS = ("ours", "msgpack", "stock")
"""The targets that are our server ("msgpack": the same server, its clients on the msgpack parser)."""

CPU_ONLY = frozenset({"msgpack"})
"""Targets measured in the closed loop and the fan-out only (the rows where a parser's cost shows), to keep
the run under two minutes."""


def make_server(
    name: str,
    data_dir: Path,
    plan: Plan,
    seed_out: Path | None = None,
    store: str = "",
    node_id: str = "bench",
) -> Server:
    if name in OURS:
        argv = [
            python(),
            "-m",
            "bench.signalling.ours_server",
            "--data-dir",
            str(data_dir),
            "--node-id",
            node_id,
            "--pairs",
            str(max(plan.pairs, plan.two_node_pairs)),
            "--fan-agents",
            str(plan.fan_agents),
        ]
        if seed_out is not None:
            argv += ["--seed-out", str(seed_out)]
        if store:
            argv += ["--store", store]
        if name == "stock":
            argv.append("--stock")
        return Server(f"{name}-{node_id}", argv)
    if name == "aiohttp":
        return Server("aiohttp", [python(), "-m", "bench.baselines.aiohttp_hub"])
    if name == "node":
        return Server("node", ["node", str(REPO / "bench" / "baselines" / "node_sio" / "server.mjs")])
    raise ValueError(name)


LABELS = {
    "ours": "ours (fast path, durable)",
    "msgpack": "ours, clients on the msgpack parser",
    "stock": "ours on stock python-socketio (durable)",
    "node": "Node socket.io 4.8",
    "aiohttp": "bare aiohttp hub",
}


@dataclass
class Running:
    """A target's server and its own load generator, its 1:1 pairs set up (see :func:`start_target`)."""

    name: str
    server: Server
    gen: LoadGen
    base: dict[str, Any]
    tmp: Path

    @property
    def pids(self) -> list[int]:
        return [self.server.pid]

    def stop(self) -> None:
        self.gen.stop()
        self.server.stop()


def start_target(name: str, plan: Plan, log_dir: Path, stack: ExitStack, say: Any) -> Running:
    """Start ``name``'s server and a load generator of its own, set up the 1:1 pairs and warm them up;
    ``stack`` stops both and removes the data at the latest."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{name}-")))
    seed_path = tmp / "seed.json"
    server = make_server(name, tmp / "data", plan, seed_out=seed_path)
    server.start(log_dir)
    stack.callback(server.stop)
    seed = json.loads(seed_path.read_text()) if seed_path.exists() else None
    base = load_base(name, server, seed)
    gen = LoadGen(log_dir, f"loadgen-{name}")
    stack.callback(gen.stop)
    time.sleep(0.3)
    gen.run({"cmd": "setup_pairs", **base, "pairs": plan.pairs})
    gen.run({"cmd": "closed", "seconds": 0.5})  # warm-up
    say(f"  {name}: {plan.pairs} pairs set up")
    return Running(name, server, gen, base, tmp)


def closed_alternated(targets: list[Running], plan: Plan, say: Any) -> dict[str, dict[str, Any]]:
    """The 1:1 closed loop, ``plan.closed_rounds`` rounds, the targets alternated within each round (the
    machine's speed drifts within a run too: alternating puts every target in each phase of it). Each
    target's figures are those of its median round by CPU per message; every round is kept."""
    rounds: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    for i in range(plan.closed_rounds):
        for t in targets:
            settle(t.pids)
            closed = t.gen.run({"cmd": "closed", "seconds": plan.closed_s}, t.pids)
            closed["cpu_us_per_msg"] = closed["server_cpu_s"] * 1e6 / max(1, closed["done"])
            closed["loop_cpu_us_per_msg"] = closed["server_main_thread_cpu_s"] * 1e6 / max(1, closed["done"])
            rounds[t.name].append(closed)
            say(
                f"  round {i + 1} {t.name}: {closed['msg_per_s']:.0f} msg/s, {closed['cpu_us_per_msg']:.0f} us "
                f"CPU/msg ({closed['loop_cpu_us_per_msg']:.0f} on the loop thread)"
                f"{' (client-bound)' if closed['client_bound'] else ''}"
            )
    out: dict[str, dict[str, Any]] = {}
    for name, rs in rounds.items():
        median = dict(sorted(rs, key=lambda c: c["cpu_us_per_msg"])[len(rs) // 2])
        median["rounds"] = [
            {k: c[k] for k in ("msg_per_s", "cpu_us_per_msg", "loop_cpu_us_per_msg", "client_bound")} for c in rs
        ]
        out[name] = median
    return out


def finish_target(t: Running, closed: dict[str, Any], plan: Plan, log_dir: Path, say: Any) -> TargetResult:
    """The rest of a target's scenarios on its running server (fixed rates, fan-out), then it stops, and
    idle connections in a fresh process of it."""
    result = TargetResult(t.name, LABELS[t.name])
    result.steps["closed"] = closed
    try:
        stats = t.server if t.name in OURS else None
        if t.name not in CPU_ONLY:
            result.steps["rates"] = _rates(t.gen, t.pids, plan, t.name, say, stats)
        t.gen.run({"cmd": "close_all"})
        result.steps["fanout"] = _fanout(t.gen, t.base, t.pids, plan, t.name, say)
        t.gen.run({"cmd": "close_all"})
    finally:
        t.stop()
    if t.name not in CPU_ONLY:
        result.steps["idle"] = run_idle(t.name, t.tmp / "data-idle", plan, log_dir, say)
    return result


def load_base(name: str, server: Server, seed: Any) -> dict[str, Any]:
    """What every load generator command about target ``name`` carries: the protocol it speaks (``ours``
    for each of our targets), the server's URL, the seed (our logins and teams) and the Socket.IO parser
    of its sockets."""
    return {
        "target": "ours" if name in OURS else name,
        "url": server.url,
        "seed": seed,
        "parser": "msgpack" if name == "msgpack" else "json",
    }


def run_idle(name: str, data_dir: Path, plan: Plan, log_dir: Path, say: Any) -> dict[str, Any]:
    """Idle connections in a freshly started server process of the target (the same method for every
    target): what the other scenarios allocated and freed must not be reused, nor their leftovers grow."""
    server = make_server(name, data_dir, plan)
    server.start(log_dir)
    gen = LoadGen(log_dir)
    try:
        time.sleep(0.3)
        return _idle(gen, load_base(name, server, None), server.pid, plan, name, say)
    finally:
        gen.run({"cmd": "close_all"})
        gen.stop()
        server.stop()


def _rates(
    gen: LoadGen, pids: list[int], plan: Plan, name: str, say: Any, server: Server | None = None
) -> list[dict[str, Any]]:
    """1:1 conversations at fixed rates (the latency-against-load curve). With ``server`` (ours), each step
    also reports where its writes' time went, from the store's latency histograms."""
    rates: list[dict[str, Any]] = []
    for rate in plan.rates:
        if rate > 3000 and rates and (rates[-1]["lost"] or (rates[-1]["e2e"]["p50_ms"] or 0) > 1000):
            say(f"  {name}: saturated below {rate} msg/s; higher rates skipped")
            break
        settle(pids)
        before = _stats(server) if server is not None else None
        r = gen.run({"cmd": "rate", "rate": rate, "seconds": plan.rate_s, "drain_s": plan.drain_s}, pids)
        if before is not None and server is not None:
            r["store"] = _store_latencies(before, _stats(server))
        r["server_cpu_share"] = r["server_cpu_s"] / max(1e-9, r["wall_s"])
        # per message only when the server kept up (otherwise the step's CPU is not the messages' CPU)
        r["cpu_us_per_msg"] = r["server_cpu_s"] * 1e6 / r["done"] if r["done"] >= 0.95 * r["sent"] else None
        rates.append(r)
        say(
            f"  {name}: {rate} msg/s -> e2e p50 {_ms(r['e2e']['p50_ms'])} p99 {_ms(r['e2e']['p99_ms'])}"
            f", ack p99 {_ms(r['ack']['p99_ms'])}, lost {r['lost']}"
            + (
                f"; store write p50 {_ms(r['store'].get('write_p50_ms'))} p99 {_ms(r['store'].get('write_p99_ms'))}"
                f", with the writer p50 {_ms(r['store'].get('writer_p50_ms'))}"
                f" p99 {_ms(r['store'].get('writer_p99_ms'))}"
                f", commit p50 {_ms(r['store'].get('commit_p50_ms'))} p99 {_ms(r['store'].get('commit_p99_ms'))}"
                if r.get("store")
                else ""
            )
        )
    return rates


def _fanout(
    gen: LoadGen, base: dict[str, Any], pids: list[int], plan: Plan, name: str, say: Any
) -> dict[str, Any]:
    """A few customers writing to conversations of one team of ``fan_agents`` agents."""
    gen.run({"cmd": "setup_fanout", **base, "senders": plan.fan_senders, "agents": plan.fan_agents})
    gen.run({"cmd": "fanout", "seconds": 0.5})
    settle(pids)
    fan = gen.run({"cmd": "fanout", "seconds": plan.fan_s}, pids)
    fan["cpu_us_per_delivery"] = fan["server_cpu_s"] * 1e6 / max(1, fan["deliveries"])
    say(
        f"  {name}: fan-out {fan['deliveries_per_s']:.0f} deliveries/s, "
        f"{fan['cpu_us_per_delivery']:.2f} us CPU/delivery"
    )
    return fan


def _idle(gen: LoadGen, base: dict[str, Any], pid: int, plan: Plan, name: str, say: Any) -> dict[str, Any]:
    """``idle`` customer sockets opened and left alone: memory and CPU per connection. First a warm-up of
    ``idle_warmup`` sockets that stay open (the first connections pay for imports, caches and pools that
    are not per connection); RSS is read once the process is quiet and RSS steady, before and after."""
    gen.run({"cmd": "prepare_idle", **base, "visitors": plan.idle_visitors})
    gen.run({"cmd": "idle", **base, "n": plan.idle_warmup, "concurrency": 50})
    rss0 = _steady_rss(pid)
    idle = gen.run({"cmd": "idle", **base, "n": plan.idle, "concurrency": 400}, [pid])
    opened = max(1, plan.idle - idle["failed"])
    idle["warmup"] = plan.idle_warmup
    idle["rss_before_kb"] = rss0
    idle["rss_after_kb"] = _steady_rss(pid)
    idle["kb_per_conn"] = (idle["rss_after_kb"] - rss0) / opened
    idle["cpu_us_per_connect"] = idle["server_cpu_s"] * 1e6 / opened
    say(f"  {name}: idle {idle['kb_per_conn']:.1f} KB/conn, {idle['cpu_us_per_connect']:.0f} us/connect")
    return idle


def _steady_rss(pid: int, max_s: float = 5.0, step_s: float = 0.25, tolerance_kb: int = 64) -> int:
    """VmRSS once the process is quiet (:func:`settle`) and two readings ``step_s`` apart differ by at most
    ``tolerance_kb`` (or after ``max_s``)."""
    settle([pid])
    t0 = time.monotonic()
    last = rss_kb(pid)
    while time.monotonic() - t0 < max_s:
        time.sleep(step_s)
        now = rss_kb(pid)
        if abs(now - last) <= tolerance_kb:
            return now
        last = now
    return last


def run_two_nodes(plan: Plan, log_dir: Path, say: Any, variant: str = "ours") -> dict[str, Any]:
    """Ours on two nodes with the Redis store and Socket.IO rooms over Redis pub/sub; every conversation
    has its customer on node A and its agent on node B, so every message crosses nodes."""
    redis = Redis().start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-two-") as tmp:
            seed_path = Path(tmp) / "seed.json"
            a = make_server(
                variant, Path(tmp) / "data-a", plan, seed_out=seed_path, store=redis.url, node_id="a"
            )
            a.start(log_dir)
            b = make_server(variant, Path(tmp) / "data-b", plan, store=redis.url, node_id="b").start(log_dir)
            seed = json.loads(seed_path.read_text())
            gen = LoadGen(log_dir)
            assert redis.proc is not None
            pids = [a.pid, b.pid, redis.proc.pid]
            try:
                gen.run(
                    {
                        "cmd": "setup_pairs",
                        "target": "ours",
                        "url": a.url,
                        "agent_url": b.url,
                        "seed": seed,
                        "pairs": plan.two_node_pairs,
                    }
                )
                gen.run({"cmd": "closed", "seconds": 0.5})
                settle(pids)
                closed = gen.run({"cmd": "closed", "seconds": plan.two_node_s}, pids)
                nodes_cpu = sum(closed["server_cpu_by_pid"][:2])
                closed["redis_cpu_us_per_msg"] = closed["server_cpu_by_pid"][2] * 1e6 / max(1, closed["done"])
                closed["cpu_us_per_msg"] = nodes_cpu * 1e6 / max(1, closed["done"])
                closed["publish_failures"] = sum(_stats(s)["publish_failures"] for s in (a, b))
                say(
                    f"  {variant} x2 on Redis: {closed['msg_per_s']:.0f} msg/s, {closed['cpu_us_per_msg']:.0f} us "
                    f"CPU/msg (both nodes), publish failures {closed['publish_failures']}"
                )
                gen.run({"cmd": "close_all"})
            finally:
                gen.stop()
                a.stop()
                b.stop()
    finally:
        redis.stop()
    return closed


def _stats(server: Server) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(server.url + "/__bench/stats", timeout=5) as resp:
        return dict(json.loads(resp.read()))


def _store_latencies(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """p50 and p99 (ms) of the store's writes and commits between two ``/__bench/stats`` readings, from
    their histograms (linear within a bucket, as Prometheus' ``histogram_quantile``)."""
    out: dict[str, Any] = {}
    for key, label in (("store_writes", "write"), ("store_operations_waits", "writer"), ("store_commits", "commit")):
        if before.get(key) is None or after.get(key) is None:
            continue
        counts = [b - a for a, b in zip(before[key], after[key], strict=True)]
        out[f"{label}s"] = sum(counts)
        for p in (50, 99):
            q = histogram_quantile(p / 100, counts)
            out[f"{label}_p{p}_ms"] = None if q is None else q * 1000
    return out


def histogram_quantile(q: float, counts: list[int]) -> float | None:
    """The ``q`` quantile (seconds) of observations counted per bucket of ``LATENCY_BOUNDS`` (the last
    bucket: past the last bound, reported as that bound); None without observations."""
    total = sum(counts)
    if not total:
        return None
    rank, seen = q * total, 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            if i == len(LATENCY_BOUNDS):
                return LATENCY_BOUNDS[-1]
            low = LATENCY_BOUNDS[i - 1] if i else 0.0
            return low + (LATENCY_BOUNDS[i] - low) * (rank - seen) / count
        seen += count
    return LATENCY_BOUNDS[-1]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms" if value < 1 else f"{value:.1f} ms"
