"""Baseline: a bare aiohttp websocket hub speaking just enough Engine.IO v4 / Socket.IO v4 for the load
generator, with the same hub logic as the other targets.

``join {room}`` enters a room; ``message.send {conversation_id, client_id, kind, body}`` builds a message,
broadcasts ``message.new {message}`` to the room named by ``conversation_id`` in both namespaces (the
sender included), encoded once, and acks ``{ok: true, message}``. No polling transport, no binary
packets, no reconnection: this is the floor of what a Python hub on aiohttp can cost. Listens on
127.0.0.1:0 and prints ``READY <port>``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import sys
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

OPEN = json.dumps(
    {"sid": "", "upgrades": [], "pingInterval": 25000, "pingTimeout": 20000, "maxPayload": 1000000}
)
PING_INTERVAL_S = 25.0


class Hub:
    """Rooms per namespace: ``rooms[namespace][room] -> set of websockets``."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, set[web.WebSocketResponse]]] = {"/agent": {}, "/customer": {}}
        self.seqs: dict[str, int] = {}
        self.ids = itertools.count(1)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=1_000_000, autoping=True)
        await ws.prepare(request)
        sid = secrets.token_urlsafe(15)
        await ws.send_str("0" + OPEN.replace('"sid": ""', f'"sid": "{sid}"'))
        loop = asyncio.get_running_loop()
        pinger = loop.call_later(PING_INTERVAL_S, self._ping, ws, loop)
        joined: list[tuple[str, str]] = []
        identity: dict[str, str] = {}
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                await self.on_frame(ws, msg.data, joined, identity)
        finally:
            pinger.cancel()
            for namespace, room in joined:
                members = self.rooms[namespace].get(room)
                if members is not None:
                    members.discard(ws)
                    if not members:
                        del self.rooms[namespace][room]
        return ws

    def _ping(self, ws: web.WebSocketResponse, loop: asyncio.AbstractEventLoop) -> None:
        if not ws.closed:
            asyncio.ensure_future(ws.send_str("2"))
            loop.call_later(PING_INTERVAL_S, self._ping, ws, loop)

    async def on_frame(
        self, ws: web.WebSocketResponse, data: str, joined: list[tuple[str, str]], identity: dict[str, str]
    ) -> None:
        if data == "3":  # pong
            return
        if not data.startswith("4"):
            return
        kind = data[1:2]
        rest = data[2:]
        namespace = "/"
        if rest.startswith("/"):
            comma = rest.find(",")
            namespace, rest = (rest, "") if comma < 0 else (rest[:comma], rest[comma + 1 :])
        if namespace not in self.rooms:
            return
        if kind == "0":  # connect with auth
            auth = json.loads(rest) if rest else None
            token = auth.get("token") if isinstance(auth, dict) else None
            if not isinstance(token, str) or not token:
                await ws.send_str(
                    f'44{namespace},{{"message":"unauthorized","data":{{"code":"unauthorized"}}}}'
                )
                return
            identity[namespace] = token
            await ws.send_str(f'40{namespace},{{"sid":"{secrets.token_urlsafe(15)}"}}')
            return
        if kind != "2":
            return
        bracket = rest.find("[")
        ack_id = rest[:bracket] if bracket > 0 else ""
        event, *args = json.loads(rest[bracket:])
        p = args[0] if args and isinstance(args[0], dict) else {}
        result = await self.on_event(ws, namespace, identity.get(namespace, ""), event, p, joined)
        if ack_id:
            await ws.send_str(f"43{namespace},{ack_id}{json.dumps([result], separators=(',', ':'))}")

    async def on_event(
        self,
        ws: web.WebSocketResponse,
        namespace: str,
        who: str,
        event: str,
        p: dict[str, Any],
        joined: list[tuple[str, str]],
    ) -> dict[str, Any]:
        if event == "join":
            room = p.get("room")
            if not isinstance(room, str):
                return {"ok": False, "error": {"code": "invalid", "message": "room"}}
            self.rooms[namespace].setdefault(room, set()).add(ws)
            joined.append((namespace, room))
            return {"ok": True}
        if event == "message.send":
            conv = p.get("conversation_id")
            body = p.get("body")
            if not isinstance(conv, str) or not isinstance(body, str):
                return {"ok": False, "error": {"code": "invalid", "message": "bad payload"}}
            seq = self.seqs.get(conv, 0) + 1
            self.seqs[conv] = seq
            message = {
                "id": f"msg_{next(self.ids)}",
                "conversation_id": conv,
                "seq": seq,
                "client_id": p.get("client_id"),
                "author": {"kind": namespace[1:], "id": who, "name": "Bench"},
                "kind": p.get("kind", "text"),
                "body": body,
                "created_at": datetime.now(UTC).isoformat(),
            }
            payload = json.dumps(["message.new", {"message": message}], separators=(",", ":"))
            for ns in ("/agent", "/customer"):
                members = self.rooms[ns].get(conv)
                if members:
                    frame = f"42{ns},{payload}"
                    for member in list(members):
                        if not member.closed:
                            await member.send_str(frame)
            return {"ok": True, "message": message}
        return {"ok": False, "error": {"code": "invalid", "message": "unknown event"}}


async def main() -> None:
    hub = Hub()
    app = web.Application()
    app.router.add_get("/socket.io/", hub.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if "--no-uvloop" not in sys.argv:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
