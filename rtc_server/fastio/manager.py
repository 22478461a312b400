"""Room emits without a task per recipient: encode the packet once, frame it once, write it to every
websocket recipient; only sessions still on long-polling take python-engineio's queue.

:class:`FastManager` is the in-process manager. :class:`FastRedisManager` is the Redis one: python-socketio's
pub/sub manager already delivers locally first and publishes for the other nodes; here the local
delivery (on the emitting node and on the receiving ones) takes the same fast path, and publishing is
pipelined (see the class).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from rtc_server.fastio import frames, msgpack_parser
from rtc_server.fastio.packet import FastPacket
from rtc_server.pubsub import SupervisedRedisManager
from signaling import jsonfast
from signaling.hub.fanout import ROOM_PREFIXES

log = logging.getLogger(__name__)


def _as_args(data: Any) -> list[Any]:
    if isinstance(data, tuple):
        return list(data)
    if data is None:
        return []
    return [data]


def _json_packet(server: Any, namespace: str, args: list[Any]) -> Any:
    """The JSON parser's EVENT packet: its text (what ``FastPacket.encode`` would build), or, with bytes
    inside, the packet class's header and attachments (a list)."""
    if server.packet_class is FastPacket:
        try:
            return "2" + ("" if namespace == "/" else namespace + ",") + jsonfast.dumps(args, separators=(",", ":"))
        except TypeError:  # bytes inside: the packet class's binary path below
            pass
    return server.packet_class(sio_packet.EVENT, namespace=namespace, data=args).encode()


async def deliver(
    manager: socketio.AsyncManager, event: str, data: Any, namespace: str, room: Any, skip_sid: Any
) -> None:
    """Send ``event`` to the local participants of ``room`` (a room name, a list of them, or None for the
    whole namespace), except ``skip_sid``; each socket at most once, in its session's parser. The packet
    is encoded and framed once per parser, for the first recipient that needs it."""
    rooms = manager.rooms.get(namespace)
    if rooms is None:
        return
    server = manager.server
    args = [event, *_as_args(data)]
    skip = skip_sid if isinstance(skip_sid, list) else (skip_sid,)
    if isinstance(room, str):  # one room: its members as they are (no copy; nothing below awaits)
        members = rooms.get(room)
        participants: Any = members._fwdm.items() if members is not None else ()
    else:
        participants = manager.get_participants(namespace, room)
    msgpack_sessions = getattr(server, "msgpack_sessions", None) or ()
    text: Any = None  # the JSON parser's packet
    wire = b""
    packed: bytes | None = None  # the msgpack parser's
    packed_wire = b""
    sockets = server.eio.sockets
    slow: list[tuple[str, Any]] = []  # python-engineio's way: polling, or the JSON parser's attachments
    message: Any
    for sid, eio_sid in participants:
        if sid in skip:
            continue
        socket = sockets.get(eio_sid)
        if socket is None:
            continue
        if eio_sid in msgpack_sessions:
            if packed is None:
                packed = msgpack_parser.encode(msgpack_parser.EVENT, namespace, args)
                packed_wire = frames.frame(packed)
            frame, message = packed_wire, packed
        else:
            if text is None:
                text = _json_packet(server, namespace, args)
                if text.__class__ is str:
                    wire = frames.frame("4" + text)
            if text.__class__ is not str:
                slow.append((eio_sid, text))
                continue
            frame, message = wire, text
        write_frame = getattr(socket, "write_frame", None)
        if write_frame is None or not write_frame(frame):
            if not socket.closed:
                slow.append((eio_sid, message))
    for eio_sid, late in slow:
        for part in late if isinstance(late, list) else (late,):
            await server._send_eio_packet(eio_sid, eio_packet.Packet(eio_packet.MESSAGE, part))


class FastManager(socketio.AsyncManager):
    """The in-process manager with :func:`deliver` for emits without a callback."""

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        if callback is not None:
            return await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to, **kwargs
            )
        await deliver(self, event, data, namespace, to or room, skip_sid)


ROUTE_SCRIPT = """
local sent = 0
local seen = {}
for _, key in ipairs(KEYS) do
  for _, node in ipairs(redis.call('SMEMBERS', key)) do
    if node ~= ARGV[1] and not seen[node] then
      seen[node] = true
      sent = sent + 1
      redis.call('PUBLISH', ARGV[2] .. node, ARGV[3])
    end
  end
end
return sent
"""
"""Publish ``ARGV[3]`` to the node channel (``ARGV[2]`` + node id) of every node but ``ARGV[1]`` found in
the room sets ``KEYS``; returns how many nodes it was published to. Atomic in Redis: it sees every
``SADD`` that completed before it ran."""

_Op = tuple[str, Any, Any, "asyncio.Future[None] | None"]


class FastRedisManager(SupervisedRedisManager):
    """The Redis manager (blocking pool, supervised listener) with :func:`deliver` for local delivery, an
    ordered, pipelined publisher, and room-routed publishing.

    python-socketio awaits one ``PUBLISH`` round trip per emit, each taking a connection from the pool.
    Here an emit delivers locally, appends its message to an outbox and returns; one flusher task sends
    the outbox with one pipeline per batch (many commands, one write, one read), in emit order. A failed
    batch is logged and counted, as python-socketio's and ``SupervisedRedisManager``'s failed publishes
    were (the event is lost for the other nodes; clients recover with ``conversation.sync``). Past
    ``max_outbox`` queued messages, emitters wait for the flusher.

    **Room routing.** python-socketio publishes every emit on one channel that every node (the emitter
    included) receives, decodes and delivers to whatever local members it has. Here each node keeps, per
    *tracked* room (names starting with one of ``tracked_prefixes``: the hub's ``team:``, ``agent:`` and
    ``visitor:`` rooms), its id in a Redis set ``<channel>:room:<namespace>:<room>`` while it has a local
    member, and listens on its own channel ``<channel>:node:<host id>`` besides the shared one. An emit
    whose rooms are all tracked goes through :data:`ROUTE_SCRIPT`: published only to the *other* nodes
    that have a member in one of the rooms, and to nobody when every member is local. Other emits (the
    whole namespace, a sid's room, with a callback) use the shared channel as before.

    Why no message is lost for a member on another node: a node adds itself to a room's set when the
    room gets its first local member and the join (``enter_room``) returns only once that ``SADD`` is
    done; an emit made after that reaches Redis after it (the route script runs atomically and sees
    it). Set changes and emits go through the same ordered outbox, so a leave's ``SREM`` can never
    overtake a later re-join's ``SADD``. Before every (re)subscription, the listener re-adds every local
    room (after a Redis restart that lost the sets, no node is subscribed again before its rooms are
    back), and so does the next flush after a failed one. A node that dies leaves its id in sets: the
    script publishes to a channel nobody listens to (harmless); a clean shutdown removes them.
    """

    def __init__(
        self,
        url: str,
        *,
        max_outbox: int = 10_000,
        tracked_prefixes: tuple[str, ...] = ROOM_PREFIXES,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, **kwargs)
        self.json = jsonfast
        self.max_outbox = max_outbox
        self.tracked_prefixes = tuple(tracked_prefixes)
        self.publish_failures = 0
        """Messages whose publish failed (lost for the other nodes)."""
        self.routed = 0
        """Room-routed emits sent to Redis."""
        self.routed_deliveries = 0
        """Node channels the route script published them to (0 for an emit whose members are all local)."""
        self.node_channel = f"{self.channel}:node:{self.host_id}"
        self._outbox: list[_Op] = []
        self._flusher: asyncio.Task[None] | None = None
        self._joined: dict[str, asyncio.Future[None]] = {}
        """Room set keys this node is in (or being added to): the future resolves when the SADD is done."""
        self._membership_lost = False
        self._background: set[asyncio.Task[Any]] = set()

    # -- room sets ------------------------------------------------------------------------------------

    def _room_key(self, namespace: str, room: Any) -> str | None:
        """The Redis set of a tracked room; None for a room that is not tracked."""
        if isinstance(room, str) and room.startswith(self.tracked_prefixes):
            return f"{self.channel}:room:{namespace}:{room}"
        return None

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> Any:
        result = super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        key = self._room_key(namespace, room)
        if key is not None and key not in self._joined:
            future = asyncio.get_running_loop().create_future()
            self._joined[key] = future
            self._queue(("sadd", key, None, future))
        return result

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> Any:
        result = super().basic_leave_room(sid, namespace, room)
        key = self._room_key(namespace, room)
        if key is not None and room not in self.rooms.get(namespace, {}) and key in self._joined:
            del self._joined[key]
            self._queue(("srem", key, None, None))
        return result

    async def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> Any:
        """Join locally; a tracked room's join returns once this node is in the room's Redis set."""
        result = await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        key = self._room_key(namespace, room)
        future = self._joined.get(key) if key is not None else None
        if future is not None and not future.done():
            await asyncio.shield(future)
        return result

    async def before_subscribe(self) -> None:
        """Re-add every local tracked room to its set (they may be gone with a restarted Redis)."""
        await self._readd_rooms()

    async def _readd_rooms(self) -> None:
        futures = []
        for key in list(self._joined):
            future = asyncio.get_running_loop().create_future()
            self._joined[key] = future
            self._queue(("sadd", key, None, future))
            futures.append(future)
        if futures:
            await asyncio.gather(*(asyncio.shield(f) for f in futures))

    def listen_channels(self) -> list[str]:
        return [self.channel, self.node_channel]

    # -- emitting -------------------------------------------------------------------------------------

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if callback is not None:
            return await super().emit(
                event, data, namespace=namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
        namespace = namespace or "/"
        if kwargs.get("ignore_queue"):  # this node's members only
            await deliver(self, event, data, namespace, room, skip_sid)
            return
        message = {
            "method": "emit",
            "event": event,
            "data": list(data) if isinstance(data, tuple) else [data],
            "binary": False,
            "namespace": namespace,
            "room": room,
            "skip_sid": skip_sid,
            "callback": None,
            "host_id": self.host_id,
        }
        try:
            payload = self.json.dumps(message)
        except TypeError:  # bytes inside: python-socketio's binary encoding
            return await super().emit(
                event, data, namespace=namespace, room=room, skip_sid=skip_sid, **kwargs
            )
        await deliver(self, event, data, namespace, room, skip_sid)
        keys: list[str] = []
        if room is not None:
            for name in room if isinstance(room, list) else [room]:
                key = self._room_key(namespace, name)
                if key is None:
                    keys = []
                    break
                keys.append(key)
        if keys:
            await self._enqueue(("route", keys, payload, None))
        else:
            await self._enqueue(("pub", self.channel, payload, None))

    async def _publish(self, data: Any) -> Any:
        await self._enqueue(("pub", self.channel, self.json.dumps(data), None))

    def _queue(self, op: _Op) -> None:
        self._outbox.append(op)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), name="socketio-redis-publisher"
            )

    async def _enqueue(self, op: _Op) -> None:
        self._queue(op)
        while len(self._outbox) > self.max_outbox and self._flusher is not None and not self._flusher.done():
            await asyncio.sleep(0.001)

    async def _flush(self) -> None:
        while self._outbox:
            if self._membership_lost:  # a failed batch may have lost SADDs: add every local room again
                self._membership_lost = False
                task = asyncio.get_running_loop().create_task(self._readd_rooms())
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            batch, self._outbox = self._outbox, []
            publishes = 0
            try:
                pipe = self._publisher_client().pipeline(transaction=False)
                for kind, target, payload, _ in batch:
                    if kind == "pub":
                        pipe.publish(target, payload)
                        publishes += 1
                    elif kind == "route":
                        pipe.eval(
                            ROUTE_SCRIPT, len(target), *target, self.host_id, f"{self.channel}:node:", payload
                        )
                        publishes += 1
                    elif kind == "sadd":
                        pipe.sadd(target, self.host_id)
                    else:
                        pipe.srem(target, self.host_id)
                results = await pipe.execute()
            except Exception as exc:
                self.publish_failures += publishes
                if len(batch) > publishes:
                    self._membership_lost = True
                log.error("cannot publish %d events to Redis (lost for other nodes): %s", publishes, exc)
            else:
                for (kind, _, _, _), result in zip(batch, results, strict=False):
                    if kind == "route":
                        self.routed += 1
                        self.routed_deliveries += int(result or 0)
            for *_, future in batch:
                if future is not None and not future.done():
                    future.set_result(None)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        callback = message.get("callback")
        if callback is not None and len(callback) == 3:
            return await super()._handle_emit(message)
        data = message["data"]
        if message.get("binary"):  # python-socketio's encoding of bytes: the JSON parser's attachments
            attachments = [base64.b64decode(a) for a in data[1:]]
            data = sio_packet.Packet.reconstruct_binary(data[0], attachments)
        if isinstance(data, list):
            data = data[0] if len(data) == 1 else tuple(data)
        await deliver(
            self,
            message["event"],
            data,
            message.get("namespace") or "/",
            message.get("room"),
            message.get("skip_sid"),
        )

    async def aclose(self) -> None:
        """Leave every room set, send what is still in the outbox (for up to 2 s), then stop as
        ``SupervisedRedisManager`` does."""
        for key in list(self._joined):
            del self._joined[key]
            self._queue(("srem", key, None, None))
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(flusher), timeout=2.0)
        await super().aclose()


__all__ = ["ROUTE_SCRIPT", "FastManager", "FastRedisManager", "deliver"]
