"""The run's table (ours against both baselines, as ratios), its JSON and the latency-against-load chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.signalling import machine

TARGETS = ("ours", "msgpack", "stock", "node", "aiohttp")
NAMES = {
    "ours": "ours",
    "msgpack": "ours, msgpack clients",
    "stock": "ours, stock python-socketio",
    "node": "Node socket.io",
    "aiohttp": "bare aiohttp",
}


def _rate(results: dict[str, Any], name: str, rate: int) -> dict[str, Any] | None:
    for r in results.get(name, {}).get("steps", {}).get("rates", []):
        if r["rate"] == rate:
            return dict(r)
    return None


Row = tuple[str, dict[str, float | None]]

STORE_PARTS = (
    ("store writes, submit to outcome (in the server)", "write"),
    ("... of which with the SQLite writer (sent to committed)", "writer"),
    ("the writer's commits (WAL write and fsync)", "commit"),
)
"""The rows of a durable write's wait (ours only): their label and their key in a step's ``store``."""


def rows(results: dict[str, Any], headline_rate: int = 3000, low_rate: int = 500) -> list[Row]:
    """``(metric, {target: value})`` for the table; ``low_rate``: the step whose CPU per message shows
    what a message costs when it comes alone (the server idle in between, as on most days)."""

    def step(name: str, key: str, field: str) -> float | None:
        s = results.get(name, {}).get("steps", {}).get(key)
        return None if s is None else s.get(field)

    def lat(name: str, kind: str, p: str) -> float | None:
        r = _rate(results, name, headline_rate)
        return None if r is None else r[kind][p]

    def store(name: str, field: str) -> float | None:
        """From the store's histograms (ours only): where a durable write's time went."""
        r = _rate(results, name, headline_rate)
        return None if r is None else (r.get("store") or {}).get(field)

    def each(fn: Any) -> dict[str, float | None]:
        return {t: fn(t) for t in TARGETS}

    out: list[Row] = [
        ("1:1 closed loop, msg/s", each(lambda t: step(t, "closed", "msg_per_s"))),
        ("1:1 server CPU per message (closed loop), us", each(lambda t: step(t, "closed", "cpu_us_per_msg"))),
        (
            "... of it on the event loop's thread (the rest: other threads, e.g. SQLite's writer), us",
            each(lambda t: step(t, "closed", "loop_cpu_us_per_msg")),
        ),
        (
            f"1:1 server CPU per message at {low_rate} msg/s (each message mostly alone), us",
            each(lambda t: (_rate(results, t, low_rate) or {}).get("cpu_us_per_msg")),
        ),
        (
            f"1:1 server CPU per message at {headline_rate} msg/s, us",
            each(lambda t: (_rate(results, t, headline_rate) or {}).get("cpu_us_per_msg")),
        ),
        (f"1:1 at {headline_rate} msg/s: end-to-end p50, ms", each(lambda t: lat(t, "e2e", "p50_ms"))),
        (f"1:1 at {headline_rate} msg/s: end-to-end p99, ms", each(lambda t: lat(t, "e2e", "p99_ms"))),
        (f"1:1 at {headline_rate} msg/s: ack p50, ms", each(lambda t: lat(t, "ack", "p50_ms"))),
        (f"1:1 at {headline_rate} msg/s: ack p99, ms", each(lambda t: lat(t, "ack", "p99_ms"))),
        *(
            (f"1:1 at {headline_rate} msg/s: {part}, {p}, ms", each(lambda t, key=f"{key}_{p}_ms": store(t, key)))
            for part, key in STORE_PARTS
            for p in ("p50", "p99")
        ),
        (
            f"1:1 at {headline_rate} msg/s: messages not answered within the drain",
            each(lambda t: (_rate(results, t, headline_rate) or {}).get("lost")),
        ),
        ("fan-out to 100 agents: deliveries/s", each(lambda t: step(t, "fanout", "deliveries_per_s"))),
        ("fan-out: server CPU per delivery, us", each(lambda t: step(t, "fanout", "cpu_us_per_delivery"))),
        ("idle connection: memory, KB", each(lambda t: step(t, "idle", "kb_per_conn"))),
        ("idle connection: CPU per connect, us", each(lambda t: step(t, "idle", "cpu_us_per_connect"))),
    ]
    two = results.get("two_nodes") or {}
    if two:

        def per(field: str) -> dict[str, float | None]:
            return {t: (two.get(t) or {}).get(field) for t in TARGETS}

        def vs_single(t: str) -> float | None:
            single = step(t, "closed", "cpu_us_per_msg")
            cross = (two.get(t) or {}).get("cpu_us_per_msg")
            return cross / single if cross and single else None

        out += [
            ("two nodes on Redis: cross-node msg/s (closed loop)", per("msg_per_s")),
            ("two nodes on Redis: CPU per cross-node message, both nodes, us", per("cpu_us_per_msg")),
            ("two nodes on Redis: x the single-node CPU per message", each(vs_single)),
            ("two nodes on Redis: redis-server CPU per message, us", per("redis_cpu_us_per_msg")),
            ("two nodes on Redis: failed publishes", per("publish_failures")),
        ]
    return out


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(results: dict[str, Any]) -> str:
    """A Markdown table: each figure with both baselines from the same run, and ours as ratios."""
    present = [t for t in TARGETS if t in results]
    head = "| metric | " + " | ".join(NAMES[t] for t in present)
    ratio_bases = [b for b in ("node", "aiohttp", "stock") if b in present and "ours" in present]
    head += "".join(f" | ours / {NAMES[b]}" for b in ratio_bases) + " |"
    lines = [head, "| --- |" + " ---: |" * (len(present) + len(ratio_bases))]
    for metric, values in rows(results):
        cells = [_fmt(values.get(t)) for t in present]
        ours = values.get("ours")
        for b in ratio_bases:
            base = values.get(b)
            cells.append(f"{ours / base:.2f}" if ours is not None and base else "-")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    flags = [
        f"{t}:{k}"
        for t in present
        for k, s in results[t].get("steps", {}).items()
        if isinstance(s, dict) and s.get("client_bound")
    ]
    flags += [
        f"{t}:rate {r['rate']}"
        for t in present
        for r in results[t].get("steps", {}).get("rates", [])
        if r.get("client_bound")
    ]
    busy = [s.get("others_cores", 0.0) for t in present for s in _all_steps(results[t])]
    if busy:
        lines.append("")
        lines.append(
            f"Other processes on the machine used up to {max(busy):.2f} cores during a step "
            f"(mean {sum(busy) / len(busy):.2f}): latency figures are only as quiet as the machine."
        )
    if flags:
        lines.append("")
        lines.append("Client-bound (the load generator's core was saturated): " + ", ".join(flags))
    costs = machine.summary(results.get("machine") or {})
    if costs:
        lines.append("")
        lines.append(costs)
    return "\n".join(lines)


def _all_steps(target: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for value in target.get("steps", {}).values():
        out.extend(value if isinstance(value, list) else [value])
    return out


def chart(results: dict[str, Any], path: Path) -> Path | None:
    """End-to-end p50 and p99 latency against offered load for each target (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.8))
    colours = {"ours": "tab:blue", "msgpack": "tab:cyan", "stock": "tab:purple", "node": "tab:green", "aiohttp": "tab:orange"}
    for name in TARGETS:
        rates = results.get(name, {}).get("steps", {}).get("rates", [])
        if not rates:
            continue
        xs = [r["rate"] for r in rates]
        label = results[name]["label"]
        ax.plot(xs, [r["e2e"]["p99_ms"] for r in rates], "-o", color=colours[name], label=f"{label} p99")
        ax.plot(
            xs,
            [r["e2e"]["p50_ms"] for r in rates],
            "--",
            color=colours[name],
            alpha=0.7,
            label=f"{label} p50",
        )
    ax.set_xlabel("offered load, 1:1 messages/s")
    ax.set_ylabel("end-to-end latency, ms (log)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("Socket.IO 1:1 messages on loopback: latency against load")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
