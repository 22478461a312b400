"""The media plane on several nodes: a media session lives on one node, and SDP reaches it from any.

:class:`ClusterMediaGateway` wraps a node's own media gateway (aiortc). The node that opens a
session (the one where the customer accepted the request) records itself in Redis as the session's
owner (``media:owner:<request_id>``). A call for a session (``offer``, ``answer``, ``leave``,
``close_session``) made on another node is forwarded to the owner and answered by it:

- the caller pushes a JSON envelope ``{id, op, request_id, participant, sdp, type, reason, reply_to,
  deadline}`` on the owner's inbox list (``media:inbox:<node>``) and waits (``BLPOP``) on a reply list
  of its own (``media:reply:<call id>``);
- the owner pops its inbox (``BLPOP``), runs the call on its local gateway and pushes ``{ok, result}``
  or ``{ok: false, error: {code, message}}`` on the reply list, which expires soon after;
- while its inbox loop runs, a node refreshes ``media:alive:<node>`` (a few seconds' TTL), so a call
  for a session whose owner is gone fails at once with ``unavailable`` instead of waiting.

Lists rather than pub/sub: an envelope pushed while the owner's loop reconnects waits in the list
instead of being lost. Media events (connected, active, closed, server offers) need nothing of this:
the owner's hub turns them into store writes and Socket.IO events, which reach every node anyway.

Browsers still send their media (ICE, DTLS, RTP) to the owner node's address: its host candidates
(``media_host_addresses``) must be reachable from clients (see ``docs/deploy.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from signaling.domain.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unavailable
from signaling.services.ports import MediaEvent, MediaEventSink, MediaGateway, Participant, SessionSpec

log = logging.getLogger(__name__)

_ERRORS: dict[str, type[DomainError]] = {
    e.code: e for e in (Invalid, NotFound, Conflict, Forbidden, Unavailable)
}


_CLAIM_OWNER = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
"""Delete an owner key only if it still names the given (dead) node: 1 for the one caller that did."""


class ClusterMediaGateway:
    """A :class:`~signaling.services.ports.MediaGateway` that sends each session's calls to the node
    that owns the session (see the module docstring).

    :param node_alive: the store's node liveness (``Store.node_alive``): a node whose media key lapsed but
        whose store heartbeat lives is only slow, and its sessions are left alone.
    """

    def __init__(
        self,
        local: MediaGateway,
        url: str,
        *,
        node_id: str,
        key_prefix: str = "rtc:",
        call_timeout: float = 15.0,
        owner_ttl_s: int = 12 * 3600,
        alive_ttl_s: int = 5,
        max_connections: int = 200,
        node_alive: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.local = local
        self.node_alive = node_alive
        self.url = url
        self.node_id = node_id
        self.prefix = key_prefix
        self.call_timeout = call_timeout
        self.owner_ttl_s = owner_ttl_s
        self.alive_ttl_s = alive_ttl_s
        self.max_connections = max_connections
        self.forwarded = 0
        """Calls this node sent to another node (for tests and metrics)."""
        self.served = 0
        """Calls this node ran for another node."""
        self._redis: Any = None
        self._loop_task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._closed = False
        self._sink: MediaEventSink | None = None

    # -- keys and client --------------------------------------------------------------------------------

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(("media", *parts))

    def _client(self) -> Any:
        if self._redis is None:
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=self.max_connections,
                timeout=10,
                socket_connect_timeout=2,
                retry=Retry(NoBackoff(), 1),
                decode_responses=True,
            )
            self._redis = aioredis.Redis(connection_pool=pool)
        return self._redis

    async def _redis_call(self, coro: Any) -> Any:
        try:
            return await coro
        except DomainError:
            raise
        except Exception as exc:
            raise Unavailable(f"Redis is unreachable: {exc}") from exc

    # -- the port ---------------------------------------------------------------------------------------

    def set_event_sink(self, sink: MediaEventSink) -> None:
        """Events of sessions owned here go to ``sink``; a ``closed`` one also forgets the owner key."""
        self._sink = sink

        async def forward(event: MediaEvent) -> None:
            if event.type == "closed":
                with contextlib.suppress(Exception):
                    await self._forget_owner(event.request_id)
            await sink(event)

        self.local.set_event_sink(forward)

    def ice_servers(self) -> list[dict[str, Any]]:
        """The STUN/TURN servers browsers should use (the same on every node)."""
        return self.local.ice_servers()

    async def open_session(self, spec: SessionSpec) -> None:
        """Own the session here, unless another node owns it already (then open it there)."""
        self._ensure_loop()
        client = self._client()
        mine = await self._redis_call(
            client.set(self._k("owner", spec.request_id), self.node_id, nx=True, ex=self.owner_ttl_s)
        )
        owner = self.node_id if mine else await self._owner(spec.request_id)
        if owner in (None, self.node_id):
            await self.local.open_session(spec)
            return
        await self._forward(
            owner, "open_session", spec.request_id, kind=spec.kind, policy=spec.policy, record=spec.record
        )

    async def offer(self, request_id: str, participant: Participant, sdp: str, type: str) -> dict[str, str]:
        """Apply a client's offer on the owner node; returns its ``{sdp, type: "answer"}``."""
        owner = await self._owner(request_id)
        if owner in (None, self.node_id):
            return await self.local.offer(request_id, participant, sdp, type)
        result = await self._forward(owner, "offer", request_id, participant=participant, sdp=sdp, type=type)
        return {"sdp": str(result["sdp"]), "type": str(result["type"])}

    async def answer(self, request_id: str, participant: Participant, sdp: str, type: str) -> None:
        """Apply a client's answer (to a server offer) on the owner node."""
        owner = await self._owner(request_id)
        if owner in (None, self.node_id):
            await self.local.answer(request_id, participant, sdp, type)
            return
        await self._forward(owner, "answer", request_id, participant=participant, sdp=sdp, type=type)

    async def leave(self, request_id: str, participant: Participant) -> None:
        """Close one participant's peer on the owner node."""
        owner = await self._owner(request_id)
        if owner in (None, self.node_id):
            await self.local.leave(request_id, participant)
            return
        await self._forward(owner, "leave", request_id, participant=participant)

    async def close_session(self, request_id: str, reason: str) -> None:
        """Close the session on the owner node (idempotent)."""
        owner = await self._owner(request_id)
        if owner in (None, self.node_id):
            await self.local.close_session(request_id, reason)
            with contextlib.suppress(Exception):
                await self._forget_owner(request_id)
            return
        await self._forward(owner, "close_session", request_id, reason=reason)

    async def shutdown(self) -> None:
        """Stop serving other nodes, close the local plane, release Redis connections."""
        self._closed = True
        await self._stop_inbox()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        local_shutdown = getattr(self.local, "shutdown", None)
        if local_shutdown is not None:
            await local_shutdown()
        client, self._redis = self._redis, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.delete(self._k("alive", self.node_id))
            with contextlib.suppress(Exception):
                await client.aclose()
            with contextlib.suppress(Exception):
                await client.connection_pool.aclose()

    async def end_orphaned_sessions(self) -> list[str]:
        """End the sessions whose owner node is dead: neither its ``media:alive:<node>`` key nor the
        store's liveness mark (:attr:`node_alive`) lives (killed, machine lost). Each such owner key is
        claimed by one node only (compare-and-delete), which then reports the session ``closed`` with
        reason ``node_lost`` to the event sink, so the request ends through the normal path (timeline,
        ``request.updated`` to both sides). Returns the request ids ended here."""
        sink = self._sink
        if sink is None or self._closed:
            return []
        client = self._client()
        head = self._k("owner", "")
        keys = [k async for k in client.scan_iter(match=head + "*", count=500)]
        if not keys:
            return []
        owners = await self._redis_call(client.mget(keys))
        dead: set[str] = set()
        for node in {o for o in owners if o and o != self.node_id}:
            if await self._redis_call(client.exists(self._k("alive", node))):
                continue
            if self.node_alive is None or not await self.node_alive(node):
                dead.add(node)
        ended: list[str] = []
        for key, owner in zip(keys, owners, strict=True):
            if owner in dead and await self._redis_call(client.eval(_CLAIM_OWNER, 1, key, owner)) == 1:
                request_id = key[len(head) :]
                ended.append(request_id)
                await sink(MediaEvent(type="closed", request_id=request_id, reason="node_lost"))
        return ended

    # -- the caller's side ------------------------------------------------------------------------------

    async def _owner(self, request_id: str) -> str | None:
        owner = await self._redis_call(self._client().get(self._k("owner", request_id)))
        return None if owner is None else str(owner)

    async def _forget_owner(self, request_id: str) -> None:
        client = self._client()
        key = self._k("owner", request_id)
        if await client.get(key) == self.node_id:
            await client.delete(key)

    async def _forward(self, owner: str, op: str, request_id: str, **args: Any) -> dict[str, Any]:
        """Run ``op`` on ``owner`` and return its result (its error is raised here, same code). When the
        owner is gone, its sessions went with it: closing or leaving one is then done already, anything
        else is ``unavailable``."""
        client = self._client()
        if not await self._redis_call(client.exists(self._k("alive", owner))):
            if op in ("close_session", "leave"):
                return {}
            raise Unavailable("the node holding this media session is gone", node=owner)
        call_id = secrets.token_hex(8)
        reply_to = self._k("reply", call_id)
        participant = args.pop("participant", None)
        envelope = {
            "id": call_id,
            "op": op,
            "request_id": request_id,
            "participant": None
            if participant is None
            else {"kind": participant.kind, "id": participant.id, "name": participant.name},
            "reply_to": reply_to,
            "deadline": time.time() + self.call_timeout,
            "from": self.node_id,
            **args,
        }
        inbox = self._k("inbox", owner)
        pipe = client.pipeline(transaction=True)
        pipe.rpush(inbox, json.dumps(envelope))
        pipe.expire(inbox, int(self.call_timeout * 4))
        await self._redis_call(pipe.execute())
        self.forwarded += 1
        popped = await self._redis_call(client.blpop([reply_to], timeout=self.call_timeout))
        if popped is None:
            raise Unavailable("the node holding this media session did not answer", node=owner)
        reply = json.loads(popped[1])
        if reply.get("ok"):
            result: dict[str, Any] = reply.get("result") or {}
            return result
        error = reply.get("error") or {}
        cls = _ERRORS.get(str(error.get("code")), DomainError)
        details = error.get("details")
        raise cls(
            str(error.get("message", "media call failed")), **(details if isinstance(details, dict) else {})
        )

    # -- the owner's side -------------------------------------------------------------------------------

    def _ensure_loop(self) -> None:
        if self._closed or (self._loop_task is not None and not self._loop_task.done()):
            return
        self._loop_task = asyncio.get_running_loop().create_task(self._serve(), name="media-inbox")

    async def _stop_inbox(self) -> None:
        """Cancel the inbox loop and wait (5 s at most) for it to end. The cancellation is repeated until
        it takes: one that lands as one of the Redis client's own timeouts expires can come out as that
        timeout (Python 3.11's ``asyncio.timeout``), which the loop takes for a Redis failure and retries;
        a test once waited 120 s on a single cancellation here."""
        task, self._loop_task = self._loop_task, None
        for _ in range(50):
            if task is None or task.done():
                break
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if task is not None and task.done() and not task.cancelled():
            with contextlib.suppress(Exception):
                task.result()

    async def _serve(self) -> None:
        """Pop this node's inbox and run each call (in its own task); keep the alive key fresh."""
        inbox = self._k("inbox", self.node_id)
        alive = self._k("alive", self.node_id)
        delay = 0.1
        while True:
            try:
                client = self._client()
                await client.set(alive, "1", ex=self.alive_ttl_s)
                popped = await client.blpop([inbox], timeout=1)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("media inbox: Redis unreachable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if popped is None:
                continue
            task = asyncio.get_running_loop().create_task(self._handle(popped[1]))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _handle(self, raw: str) -> None:
        try:
            call = json.loads(raw)
            reply_to = str(call["reply_to"])
        except (ValueError, KeyError, TypeError):
            log.warning("media inbox: dropped a malformed call")
            return
        if float(call.get("deadline", 0)) + 5.0 < time.time():  # 5 s of slack for clock skew between nodes
            return  # the caller gave up long ago
        try:
            result = await self._run(call)
            reply: dict[str, Any] = {"ok": True, "result": result}
        except DomainError as exc:
            reply = {"ok": False, "error": exc.to_wire()}
        except Exception:
            log.exception("media call %s from %s failed", call.get("op"), call.get("from"))
            reply = {"ok": False, "error": {"code": "internal", "message": "media call failed"}}
        self.served += 1
        try:
            client = self._client()
            pipe = client.pipeline(transaction=True)
            pipe.rpush(reply_to, json.dumps(reply))
            pipe.expire(reply_to, int(self.call_timeout) + 5)
            await pipe.execute()
        except Exception as exc:
            log.warning("media inbox: cannot reply to %s: %s", call.get("from"), exc)

    async def _run(self, call: dict[str, Any]) -> dict[str, Any] | None:
        op = call.get("op")
        request_id = str(call["request_id"])
        p = call.get("participant")
        participant = Participant(str(p["kind"]), str(p["id"]), str(p.get("name", ""))) if p else None
        if op == "open_session":
            await self.local.open_session(
                SessionSpec(
                    request_id,
                    str(call["kind"]),
                    dict(call.get("policy") or {}),
                    record=bool(call.get("record")),
                )
            )
            return None
        if op == "close_session":
            await self.close_session(request_id, str(call.get("reason") or "ended"))
            return None
        if participant is None:
            raise Invalid("a participant is required")
        if op == "offer":
            return await self.local.offer(request_id, participant, str(call["sdp"]), str(call["type"]))
        if op == "answer":
            await self.local.answer(request_id, participant, str(call["sdp"]), str(call["type"]))
            return None
        if op == "leave":
            await self.local.leave(request_id, participant)
            return None
        raise Invalid(f"unknown media call {op!r}")
