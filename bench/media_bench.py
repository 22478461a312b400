"""Media benchmark: one 640x480 30 fps VP8 publisher to N subscribers through the server's media plane.

``python -m bench.media_bench`` (under two minutes) runs, for N = 1, 4, 16, 32:

- ``forward``: our ``AiortcMediaGateway`` (a ``show_screen`` session: the agent publishes, N customers
  subscribe on the recvonly transceivers they offered), forwarding encoded frames;
- ``relay``: the baseline, stock aiortc with ``MediaRelay`` (decode once, re-encode per subscriber),

with the server in its own process (uvloop when installed, like ``rtc-server``), and prints a table of
server CPU (percent of one core, all threads), CPU per forwarded stream, microseconds of server CPU per
outgoing RTP packet, and the frame rate each subscriber received; JSON goes to
``bench/results/media.json``. The publisher sends a pre-encoded clip (keyframe every 2 s, and on PLI)
and subscribers count encoded frames without decoding, so the client process stays light.
``--quick`` runs N = 1, 4 with short windows. ``--before DIR`` adds mode ``before``: the forwarding
server of another checkout (``git archive <commit> | tar -x -C DIR``) against the same clients, so a
change is measured before/after in one run; the modes of one N run back to back (``--budget`` seconds of
cases, 95 by default, bound the run). The JSON also has the share of server CPU spent in the garbage
collector and the NACK retransmissions per second.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import gc
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from av import CodecContext, VideoFrame  # noqa: E402
from av.video.frame import PictureType  # noqa: E402

from rtc_server.media.aiortc_adapter import ReceiverTap, feed_sender, restrict_host_addresses  # noqa: E402
from rtc_server.media.forwarding import EncodedFrame, ForwardedTrack, TrackSource  # noqa: E402

LOOPBACK = ["127.0.0.1"]
WIDTH, HEIGHT, FPS = 640, 480, 30
GOP = 60
BITRATE = 1_000_000
BUDGET_S = 95.0


# -- the clip ------------------------------------------------------------------------------------------


def encode_clip(frames: int = 2 * GOP) -> list[bytes]:
    """A moving test pattern encoded once with libvpx (keyframes at 0 and every ``GOP`` frames)."""
    codec = CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.bit_rate = BITRATE
    codec.time_base = fractions.Fraction(1, FPS)
    codec.gop_size = GOP
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "minrate": str(BITRATE),
        "maxrate": str(BITRATE),
        "bufsize": str(BITRATE),
    }
    base = bytes(range(256)) * (WIDTH * 2 // 256 + 2)
    noise = os.urandom(WIDTH * HEIGHT)
    out: list[bytes] = []
    for i in range(frames):
        frame = VideoFrame(WIDTH, HEIGHT, "yuv420p")
        shift = (i * 7) % 256
        rows = []
        for y in range(HEIGHT):
            row = bytearray(base[shift + y % 64 : shift + y % 64 + WIDTH])
            if (i * 4) % HEIGHT <= y < (i * 4) % HEIGHT + 96:  # a moving noisy band
                row[200:440] = noise[y * WIDTH : y * WIDTH + 240]
            rows.append(bytes(row))
        frame.planes[0].update(b"".join(rows))
        for plane in frame.planes[1:]:
            plane.update(bytes([(128 + i) % 256]) * plane.buffer_size)
        frame.pts = i
        frame.time_base = codec.time_base
        if i % GOP == 0:
            frame.pict_type = PictureType.I
        packets = codec.encode(frame)
        out.append(b"".join(bytes(p) for p in packets))
    out = [d for d in out if d]
    return out


class ClipPublisher:
    """Sends the pre-encoded clip at 30 fps through a fed sender; a PLI jumps to the next keyframe."""

    def __init__(self, clip: list[bytes]) -> None:
        self.clip = clip
        self.source = TrackSource("video", "publisher", self._keyframe_requested, pli_interval=0.0)
        self.track = ForwardedTrack("video", max_frames=60)
        self.track.attach(self.source)
        self._jump = False
        self._task: asyncio.Task[None] | None = None

    def _keyframe_requested(self) -> None:
        self._jump = True

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        index, count, start = 0, 0, time.monotonic()
        while True:
            if self._jump:
                self._jump = False
                index = ((index // GOP) + 1) * GOP % len(self.clip)
            data = self.clip[index]
            self.source.deliver(EncodedFrame("video", data, count * (90000 // FPS), index % GOP == 0))
            index = (index + 1) % len(self.clip)
            count += 1
            await asyncio.sleep(max(0.0, start + count / FPS - time.monotonic()))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


# -- the server process ----------------------------------------------------------------------------------


class StockRelayServer:
    """The baseline: plain aiortc peers, ``MediaRelay`` from the publisher's decoded track."""

    def __init__(self) -> None:
        from aiortc.contrib.media import MediaRelay

        self.relay = MediaRelay()
        self.source: Any = None
        self.pcs: list[RTCPeerConnection] = []

    async def offer(self, role: str, sdp: str) -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs.append(pc)
        if role == "publisher":
            got = asyncio.get_running_loop().create_future()

            @pc.on("track")
            def on_track(track: Any) -> None:
                self.source = track
                if not got.done():
                    got.set_result(None)

        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        if role != "publisher":
            transceiver = pc.getTransceivers()[0]
            transceiver.sender.replaceTrack(self.relay.subscribe(self.source))
            transceiver.direction = "sendonly"
        answer = await pc.createAnswer()
        restrict_host_addresses(pc, LOOPBACK)
        await pc.setLocalDescription(answer)
        return pc.localDescription.sdp

    def frames_out(self) -> int:
        return 0

    def retransmissions(self) -> int:
        return 0

    def send_drops(self) -> int:
        return 0

    async def packets_out(self) -> int:
        return await _packets_sent(self.pcs[1:])

    async def close(self) -> None:
        for pc in self.pcs:
            await pc.close()


class ForwardServer:
    """Ours: an ``AiortcMediaGateway`` show_screen session."""

    def __init__(self) -> None:
        from rtc_server.media.gateway import AiortcMediaGateway

        self.gateway = AiortcMediaGateway(host_addresses=LOOPBACK)
        self.count = 0

    async def offer(self, role: str, sdp: str) -> str:
        from signaling.services.ports import Participant, SessionSpec

        await self.gateway.open_session(SessionSpec("bench", "show_screen"))
        self.count += 1
        who = (
            Participant("agent", "pub") if role == "publisher" else Participant("customer", f"s{self.count}")
        )
        return (await self.gateway.offer("bench", who, sdp, "offer"))["sdp"]

    def frames_out(self) -> int:
        session = self.gateway.sessions.get("bench")
        if session is None:
            return 0
        return sum(s.track.stats.forwarded for p in session.peers.values() for s in p.slots)

    def retransmissions(self) -> int:
        """NACKs answered (``ForwardingSender.retransmissions``, found through the bound ``_retransmit``)."""
        session = self.gateway.sessions.get("bench")
        if session is None:
            return 0
        senders = [s.transceiver.sender for p in session.peers.values() for s in p.slots]
        return sum(getattr(getattr(s._retransmit, "__self__", None), "retransmissions", 0) for s in senders)

    def send_drops(self) -> int:
        """Packets the fast path's sockets refused (``SrtpWriter.dropped`` of the current routes)."""
        session = self.gateway.sessions.get("bench")
        if session is None:
            return 0
        senders = [
            getattr(s.transceiver.sender._retransmit, "__self__", None)
            for p in session.peers.values()
            for s in p.slots
        ]
        routes = [getattr(f, "_route", None) for f in senders]
        return sum(r.writer.dropped for r in routes if r is not None)

    async def packets_out(self) -> int:
        session = self.gateway.sessions.get("bench")
        pcs = [p.pc for p in session.peers.values() if p.participant.kind == "customer"] if session else []
        return await _packets_sent(pcs)

    async def close(self) -> None:
        await self.gateway.shutdown()


async def _packets_sent(pcs: list[RTCPeerConnection]) -> int:
    total = 0
    for pc in pcs:
        for transceiver in pc.getTransceivers():
            stats = await transceiver.sender.getStats()
            total += sum(s.packetsSent for s in stats.values() if getattr(s, "type", "") == "outbound-rtp")
    return total


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def system_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


class GcClock:
    """Wall time spent in the cyclic garbage collector (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


async def serve(mode: str) -> None:
    """JSON lines on stdin -> JSON lines on stdout."""
    server: Any = ForwardServer() if mode == "forward" else StockRelayServer()
    gc_clock = GcClock()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        request = json.loads(line)
        op = request["op"]
        if op == "offer":
            reply: dict[str, Any] = {"sdp": await server.offer(request["role"], request["sdp"])}
        elif op == "sample":
            reply = {
                "cpu": cpu_seconds(),
                "sys": system_seconds(),
                "packets": await server.packets_out(),
                "at": time.monotonic(),
                "frames": server.frames_out(),
                "gc": gc_clock.seconds,
                "rtx": server.retransmissions(),
                "drops": server.send_drops(),
            }
        else:
            await server.close()
            print(json.dumps({"bye": True}), flush=True)
            return
        print(json.dumps(reply), flush=True)


# -- the client side ---------------------------------------------------------------------------------------


class ServerProcess:
    """The server in its own process: this file's ``--serve`` (for ``before``: the copy in ``root``)."""

    def __init__(self, mode: str, uvloop: bool, root: Path | None = None) -> None:
        self.mode = mode
        self.uvloop = uvloop
        self.root = root
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        script = Path(__file__).resolve()
        serve = self.mode
        if self.mode == "before":
            assert self.root is not None, "mode before needs --before DIR"
            script, serve = self.root / "bench" / "media_bench.py", "forward"
        args = [sys.executable, str(script), "--serve", serve]
        if not self.uvloop:
            args.append("--no-uvloop")
        self.proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(script.parent.parent),
        )

    async def call(self, **request: Any) -> dict[str, Any]:
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError("the server process died")
        return json.loads(line)

    async def stop(self) -> None:
        if self.proc is None:
            return
        try:
            await self.call(op="close")
        except Exception:
            pass
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def connect(server: ServerProcess, pc: RTCPeerConnection, role: str) -> None:
    restrict_host_addresses(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    reply = await server.call(op="offer", role=role, sdp=pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))


async def run_case(
    mode: str,
    subscribers: int,
    clip: list[bytes],
    warmup: float,
    window: float,
    uvloop: bool,
    before: Path | None = None,
) -> dict[str, Any]:
    server = ServerProcess(mode, uvloop, before)
    await server.start()
    config = RTCConfiguration(iceServers=[])
    publisher_pc = RTCPeerConnection(config)
    publisher = ClipPublisher(clip)
    feed_sender(publisher_pc.addTransceiver("video", direction="sendonly").sender, publisher.track)
    subs: list[RTCPeerConnection] = []
    counts = [0] * subscribers
    try:
        await connect(server, publisher_pc, "publisher")
        publisher.start()
        await asyncio.sleep(0.5)
        for i in range(subscribers):
            pc = RTCPeerConnection(config)
            transceiver = pc.addTransceiver("video", direction="recvonly")

            def count(frame: EncodedFrame, i: int = i) -> None:
                counts[i] += 1

            ReceiverTap(transceiver.receiver, "video", count)
            await connect(server, pc, f"subscriber{i}")
            subs.append(pc)
        await asyncio.sleep(warmup)
        first, before, client_cpu = await server.call(op="sample"), list(counts), cpu_seconds()
        await asyncio.sleep(window)
        last, after, client_cpu = await server.call(op="sample"), list(counts), cpu_seconds() - client_cpu
    finally:
        await publisher.stop()
        for pc in [publisher_pc, *subs]:
            await pc.close()
        await server.stop()
    elapsed = last["at"] - first["at"]
    cpu = last["cpu"] - first["cpu"]
    packets = last["packets"] - first["packets"]
    fps = [(a - b) / elapsed for a, b in zip(after, before, strict=True)]
    cpu_share = cpu / elapsed
    per_stream = cpu_share / subscribers
    return {
        "mode": mode,
        "subscribers": subscribers,
        "window_s": round(elapsed, 2),
        "server_cpu_pct": round(100 * cpu_share, 1),
        "cpu_pct_per_stream": round(100 * per_stream, 2),
        "us_per_packet": round(1e6 * cpu / packets, 1) if packets else None,
        "packets_out_per_s": round(packets / elapsed),
        "delivered_fps_mean": round(sum(fps) / len(fps), 1),
        "delivered_fps_min": round(min(fps), 1),
        "streams_per_core_at_60pct": round(0.6 / per_stream) if per_stream > 0 else None,
        "server_fps_out_per_stream": round((last["frames"] - first["frames"]) / elapsed / subscribers, 1),
        "client_cpu_pct": round(100 * client_cpu / elapsed, 1),
        "server_kernel_share": round((last["sys"] - first["sys"]) / cpu, 2) if cpu else None,
        "server_gc_share": round((last.get("gc", 0) - first.get("gc", 0)) / cpu, 3) if cpu else None,
        "retransmissions_per_s": round((last.get("rtx", 0) - first.get("rtx", 0)) / elapsed, 1),
        "send_drops_per_s": round((last.get("drops", 0) - first.get("drops", 0)) / elapsed, 1),
    }


HEAD = (
    ("mode", "mode"),
    ("N", "subscribers"),
    ("server CPU %", "server_cpu_pct"),
    ("CPU %/stream", "cpu_pct_per_stream"),
    ("us/packet", "us_per_packet"),
    ("pkts/s out", "packets_out_per_s"),
    ("fps mean", "delivered_fps_mean"),
    ("fps min", "delivered_fps_min"),
    ("streams/core@60%", "streams_per_core_at_60pct"),
    ("kernel share", "server_kernel_share"),
)
WIDTHS = [max(len(h), 8) for h, _ in HEAD]


def print_header() -> None:
    print("  ".join(h.rjust(w) for (h, _), w in zip(HEAD, WIDTHS, strict=True)), flush=True)


def print_row(row: dict[str, Any]) -> None:
    cells = ["-" if row.get(k) is None else str(row[k]) for _, k in HEAD]
    print("  ".join(c.rjust(w) for c, w in zip(cells, WIDTHS, strict=True)), flush=True)


def marginal(rows: list[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    """Cost of the extra streams between the two largest runs of ``mode`` (fixed costs cancel out)."""
    runs = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["subscribers"])
    if len(runs) < 2 or runs[-1]["delivered_fps_min"] < 0.9 * FPS:
        return None
    small, big = runs[-2], runs[-1]
    extra_streams = big["subscribers"] - small["subscribers"]
    extra_cpu = (big["server_cpu_pct"] - small["server_cpu_pct"]) / 100
    extra_packets = big["packets_out_per_s"] - small["packets_out_per_s"]
    if extra_streams <= 0 or extra_packets <= 0 or extra_cpu <= 0:
        return None
    return {
        "mode": mode,
        "between": [small["subscribers"], big["subscribers"]],
        "cpu_pct_per_extra_stream": round(100 * extra_cpu / extra_streams, 2),
        "us_per_extra_packet": round(1e6 * extra_cpu / extra_packets, 1),
        "streams_per_core_at_60pct": round(0.6 / (extra_cpu / extra_streams)),
    }


async def bench(
    sizes: list[int],
    modes: list[str],
    warmup: float,
    window: float,
    uvloop: bool,
    out: Path,
    before: Path | None = None,
    budget: float = BUDGET_S,
) -> int:
    started = time.monotonic()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    clip = encode_clip()
    sizes_kb = [len(d) for d in clip]
    print(
        f"clip: {len(clip)} frames {WIDTH}x{HEIGHT}, mean {sum(sizes_kb) / len(sizes_kb) / 1024:.1f} KB/frame "
        f"({sum(sizes_kb) * 8 * FPS / len(clip) / 1e6:.2f} Mbit/s)",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for n in sizes:  # the modes of one N run back to back: the box's load drifts less between them
        for mode in modes:
            # a case costs setup (about 0.1 s per peer) + warmup + window; keep the whole run bounded
            estimate = 1.5 + 0.15 * n + warmup + window
            if time.monotonic() - started + estimate > budget:
                skipped.append({"mode": mode, "subscribers": n, "reason": "time budget"})
                continue
            if not rows:
                print_header()
            rows.append(await run_case(mode, n, clip, warmup, window, uvloop, before))
            print_row(rows[-1])
    margins = [m for m in (marginal(rows, mode) for mode in modes) if m is not None]
    for m in margins:
        print(
            f"{m['mode']}: N {m['between'][0]} -> {m['between'][1]}: {m['cpu_pct_per_extra_stream']} % CPU and "
            f"{m['us_per_extra_packet']} us per extra stream / packet ({m['streams_per_core_at_60pct']} streams per "
            "core at 60%)"
        )
    result = {
        "benchmark": "media",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "server_loop": "uvloop" if uvloop else "asyncio",
        "clip": {
            "width": WIDTH,
            "height": HEIGHT,
            "fps": FPS,
            "gop": GOP,
            "bitrate_target": BITRATE,
            "mean_frame_bytes": round(sum(sizes_kb) / len(sizes_kb)),
        },
        "load_average_at_start": load_at_start,
        "rows": rows,
        "marginal": margins,
        "skipped": skipped,
        "duration_s": round(time.monotonic() - started, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out} in {result['duration_s']} s")
    for skip in skipped:
        print(f"skipped {skip['mode']} N={skip['subscribers']}: {skip['reason']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.media_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--serve", choices=["forward", "relay"], help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="N = 1, 4 and short windows")
    parser.add_argument("--sizes", default="1,4,16,32")
    parser.add_argument("--modes", default="forward,relay")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--window", type=float, default=4.0)
    parser.add_argument("--no-uvloop", action="store_true", help="run the server on the asyncio loop")
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="also run mode 'before': the forwarding server of another checkout (e.g. an older commit "
        "exported with `git archive <commit> | tar -x -C DIR`), against the same clients in the same run",
    )
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds of cases before skipping")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "media.json"))
    args = parser.parse_args(argv)
    uvloop = not args.no_uvloop
    if uvloop:
        try:
            import uvloop as _uvloop  # noqa: F401
        except ImportError:
            uvloop = False
    if args.serve:
        if uvloop:
            import uvloop as loop_impl

            loop_impl.install()
        asyncio.run(serve(args.serve))
        return 0
    sizes = [1, 4] if args.quick else [int(x) for x in args.sizes.split(",")]
    warmup, window = (1.0, 2.0) if args.quick else (args.warmup, args.window)
    modes = [m for m in args.modes.split(",") if m]
    before = Path(args.before).resolve() if args.before else None
    if before is not None and "before" not in modes:
        modes.insert(0, "before")
    return asyncio.run(bench(sizes, modes, warmup, window, uvloop, Path(args.out), before, args.budget))


if __name__ == "__main__":
    raise SystemExit(main())
