"""Chat participants that behave like the product's clients under faults: every message stays in an
outbox until its ack arrives and is resent with the same ``client_id`` after a reconnect; after every
(re)connect the participant calls ``conversation.sync`` from the highest ``seq`` it had seen; and the
engine.io transport under it can be cut abruptly (``transport.abort()``: no close frame, no goodbye).

What each participant saw (``message.new`` events, sync results, acks) is recorded so that the test can
compare it with the server's authoritative timeline afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import socketio

CALL_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0


@dataclass
class Outgoing:
    """A message in the outbox: sent until acknowledged."""

    conversation_id: str
    client_id: str
    event: str
    payload: dict[str, Any]
    attempts: int = 0


@dataclass
class Seen:
    """What one participant knows of one conversation."""

    messages: dict[int, tuple[str, str]] = field(default_factory=dict)
    """seq -> (client_id, kind)"""
    highest: int = 0

    def add(self, message: dict[str, Any]) -> None:
        seq = int(message["seq"])
        self.messages[seq] = (message["client_id"], message["kind"])
        self.highest = max(self.highest, seq)


class Participant:
    """One socket of an agent or a customer tab, sending steadily into its conversations."""

    _ids = itertools.count(1)

    def __init__(
        self,
        url: str,
        namespace: str,
        token: str,
        conversation_ids: list[str],
        http: aiohttp.ClientSession,
        rng: random.Random,
        name: str = "",
        note_ratio: float = 0.0,
        interval: tuple[float, float] = (0.8, 2.0),
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.token = token
        self.conversation_ids = list(conversation_ids)
        self.http = http
        self.rng = rng
        self.name = name or f"p{next(self._ids)}"
        self.note_ratio = note_ratio
        self.interval = interval
        self.sio: socketio.AsyncClient | None = None
        self.up = asyncio.Event()
        self.down = asyncio.Event()
        self.down.set()
        self.seen: dict[str, Seen] = {cid: Seen() for cid in conversation_ids}
        self.resume: dict[str, int] = {cid: 0 for cid in conversation_ids}
        """Per conversation, the seq up to which this participant's view is known to be complete."""
        self.live: set[str] = set()
        self.last_event: dict[str, int] = {}
        """Per conversation, the highest seq received as a live event on the current connection."""
        """Conversations whose sync on the current connection completed (live events fill the rest)."""
        self.outbox: list[Outgoing] = []
        self.acked: dict[str, tuple[str, int, str]] = {}
        """client_id -> (conversation_id, seq, kind) of every acknowledged message"""
        self.stats: Counter[str] = Counter()
        self.in_flight = False
        self._counter = itertools.count(1)

    # -- connection -----------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect (retrying), then sync every conversation from the highest seq seen before.

        The point a conversation is synced from only moves to its highest seq once a sync of it has
        completed on a connection: events that arrived on a connection whose sync was cut short do not
        prove that nothing before them was missed."""
        for cid in self.live:
            self.resume[cid] = self.seen[cid].highest
        self.live.clear()
        self.last_event.clear()
        delay = 0.05
        while True:
            sio = socketio.AsyncClient(reconnection=False, http_session=self.http, handle_sigint=False)
            sio.on("message.new", self._on_message, namespace=self.namespace)
            sio.on("disconnect", self._on_disconnect, namespace=self.namespace)
            try:
                await sio.connect(
                    self.url,
                    namespaces=[self.namespace],
                    auth={"token": self.token},
                    transports=["websocket"],
                    wait_timeout=CONNECT_TIMEOUT_S,
                )
            except (TimeoutError, socketio.exceptions.ConnectionError, OSError):
                self.stats["connect_failures"] += 1
                with contextlib.suppress(Exception):
                    await sio.disconnect()
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
                continue
            break
        self.sio = sio
        self.stats["connects"] += 1
        self.down.clear()
        self.up.set()
        await self.sync_all()

    async def sync_all(self) -> bool:
        """Sync every conversation not yet synced on this connection from its resume point (retrying a
        sync whose answer timed out); False when the connection went down first (the next connect syncs
        again from the same point)."""
        for cid in self.conversation_ids:
            if cid in self.live:
                continue
            while not await self._sync(cid, self.resume[cid]):
                if not self.up.is_set():
                    return False
                self.stats["sync_retries"] += 1
            self.live.add(cid)
        return True

    async def _sync(self, conversation_id: str, after: int) -> bool:
        while True:
            res = await self._call(
                "conversation.sync", {"conversation_id": conversation_id, "after_seq": after}
            )
            if res is None:
                return False
            assert res.get("ok") is True, res
            self.stats["syncs"] += 1
            for message in res["messages"]:
                self.seen[conversation_id].add(message)
            if not res.get("has_more") or not res["messages"]:
                return True
            after = res["messages"][-1]["seq"]

    async def _on_message(self, data: dict[str, Any]) -> None:
        message = data["message"]
        cid = message["conversation_id"]
        seen = self.seen.get(cid)
        if seen is not None:
            if message["seq"] < self.last_event.get(cid, 0):
                self.stats["out_of_order"] += 1  # a lower seq after a higher one on this connection
            if message["seq"] < seen.highest and message["seq"] not in seen.messages:
                self.stats["late_events"] += 1  # after a higher seq learnt from an ack, a sync or an event
            self.last_event[cid] = max(self.last_event.get(cid, 0), message["seq"])
            seen.add(message)
            self.stats["events"] += 1

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.up.clear()
        self.down.set()

    def cut(self) -> bool:
        """Abort the engine.io websocket's TCP connection (no close frame); False if not connected."""
        sio = self.sio
        ws = getattr(getattr(sio, "eio", None), "ws", None)
        conn = getattr(ws, "_conn", None)
        transport = getattr(conn, "transport", None)
        if not self.up.is_set() or transport is None:
            return False
        transport.abort()
        self.stats["cuts"] += 1
        return True

    async def close(self) -> None:
        if self.sio is not None:
            with contextlib.suppress(Exception):
                await self.sio.disconnect()

    # -- calls ----------------------------------------------------------------------------------------
    async def _call(self, event: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The ack of ``event``, or None if the transport went down (or the ack timed out) first."""
        sio = self.sio
        if sio is None or not self.up.is_set():
            return None
        call = asyncio.ensure_future(
            sio.call(event, payload, namespace=self.namespace, timeout=CALL_TIMEOUT_S)
        )
        down = asyncio.ensure_future(self.down.wait())
        try:
            await asyncio.wait({call, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            down.cancel()
        if not call.done():
            call.cancel()
            with contextlib.suppress(BaseException):
                await call
            return None
        try:
            result = call.result()
        except (TimeoutError, socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError):
            return None
        except socketio.exceptions.SocketIOError:
            return None
        return result if isinstance(result, dict) else None

    def _next_message(self) -> Outgoing:
        cid = self.rng.choice(self.conversation_ids)
        n = next(self._counter)
        client_id = f"{self.name}-{n}"
        if self.note_ratio and self.rng.random() < self.note_ratio:
            payload = {"conversation_id": cid, "client_id": client_id, "body": f"note {client_id}"}
            return Outgoing(cid, client_id, "note.add", payload)
        payload = {
            "conversation_id": cid,
            "client_id": client_id,
            "kind": "text",
            "body": f"text {client_id}",
        }
        return Outgoing(cid, client_id, "message.send", payload)

    async def flush(self) -> bool:
        """Send the oldest message of the outbox once; True when it was acknowledged."""
        item = self.outbox[0]
        item.attempts += 1
        attempt_at = datetime.now(UTC)
        self.stats["attempts"] += 1
        if item.attempts > 1:
            self.stats["resends"] += 1
        self.in_flight = True
        try:
            res = await self._call(item.event, item.payload)
        finally:
            self.in_flight = False
        if res is None:
            return False
        if res.get("ok") is not True:
            self.stats[f"error_{res.get('error', {}).get('code')}"] += 1
            self.outbox.pop(0)  # a refusal is final: it is not a lost message
            return False
        message = res["message"]
        assert message["client_id"] == item.client_id, (message, item)
        self.acked[item.client_id] = (item.conversation_id, int(message["seq"]), message["kind"])
        if (
            item.attempts > 1
            and datetime.fromisoformat(message["created_at"].replace("Z", "+00:00")) < attempt_at
        ):
            self.stats["stored_before_resend"] += 1  # the earlier attempt was stored; its ack was lost
        self.seen[item.conversation_id].add(message)
        self.outbox.pop(0)
        return True

    async def run(self, until: float) -> None:
        """Send steadily until ``until`` (monotonic), reconnecting whenever the transport is cut."""
        await self.connect()
        while time.monotonic() < until:
            if not self.up.is_set():
                await self.connect()
                continue
            if len(self.live) < len(self.conversation_ids) and not await self.sync_all():
                continue
            if not self.outbox:
                self.outbox.append(self._next_message())
            if await self.flush():
                await asyncio.sleep(self.rng.uniform(*self.interval))

    async def drain(self) -> None:
        """No more faults: deliver whatever is still in the outbox, then sync once more."""
        while self.outbox:
            if not self.up.is_set():
                await self.connect()
                continue
            await self.flush()
        while not (self.up.is_set() and await self.sync_all()):
            if not self.up.is_set():
                await self.connect()


async def chaos(participants: list[Participant], until: float, every_s: float, rng: random.Random) -> int:
    """Cut a participant's transport every ``every_s`` seconds until ``until``; returns the cuts. Half the
    cuts hit a customer with a call in flight (its ack may be lost after the server stored it); agents,
    always busy, are only picked at random (each reconnect costs them a sync of every conversation)."""
    cuts = 0
    while time.monotonic() < until:
        await asyncio.sleep(every_s)
        busy = [p for p in participants if p.in_flight and p.namespace == "/customer"]
        victim = rng.choice(busy) if busy and rng.random() < 0.5 else rng.choice(participants)
        if victim.cut():
            cuts += 1
    return cuts
