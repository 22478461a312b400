"""The Redis store's requests: one live request per kind and conversation, compare-and-set on the
state, and the ``due`` index of pending requests by expiry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from signaling.domain.errors import Conflict, NotFound
from signaling.domain.models import Request
from signaling.storage.base import LIVE_REQUEST_STATES
from signaling.storage.redis_codec import decode, encode, flat, micros, pairs
from signaling.storage.redis_core import Client, RedisCore


class RedisRequests(RedisCore):
    """Requests (transfer, video, ...) of a conversation."""

    # -- requests -------------------------------------------------------------------------------------

    @staticmethod
    def _due_score(r: Request) -> str:
        return str(micros(r.expires_at)) if r.state == "pending" and r.expires_at is not None else ""

    async def create_request(self, request: Request) -> Request:
        """``Conflict`` when a live request of that kind exists; ``NotFound`` without the conversation."""
        r = request
        keys = [
            self._k("req", r.id),
            self._conv_key(r.conversation_id),
            self._k("rl", r.conversation_id),
            self._k("reqs", r.conversation_id),
            self._k("due"),
        ]
        live = r.state in LIVE_REQUEST_STATES
        args = [r.id, r.kind, "1" if live else "0", self._due_score(r), *flat(encode(r))]
        result = await self._script("REQUEST_CREATE", keys, args)
        status = int(result[0])
        if status == -1:
            raise NotFound("no such conversation", id=r.conversation_id)
        if status == -2:
            raise Conflict("a request with that id exists", id=r.id)
        if status == 0:
            raise Conflict(f"a {r.kind} request is already live in this conversation", request_id=result[1])
        return decode(Request, pairs(result[1]))

    async def get_request(self, request_id: str) -> Request | None:
        """The request, or None."""
        mapping = await self._read(lambda c: c.hgetall(self._k("req", request_id)))
        return decode(Request, mapping) if mapping else None

    async def update_request(self, request: Request, *, expected_state: str) -> Request:
        """Write every field if the stored state is ``expected_state``, else ``Conflict``."""
        r = request
        live = r.state in LIVE_REQUEST_STATES
        args = [self.prefix, r.id, expected_state, r.kind, "1" if live else "0", self._due_score(r)]
        args += flat(encode(r))
        result = await self._script("REQUEST_UPDATE", [self._k("req", r.id), self._k("due")], args)
        status = int(result[0])
        if status == -1:
            raise NotFound("no such request", id=r.id)
        if status == 0:
            raise Conflict(
                f"the request is {result[1]}, not {expected_state}",
                state=result[1],
                expected_state=expected_state,
            )
        if status == -2:
            raise Conflict(f"a {r.kind} request is already live in this conversation", request_id=result[1])
        return decode(Request, pairs(result[1]))

    async def _requests(self, ids: list[str]) -> list[Request]:
        if not ids:
            return []

        async def fetch(c: Client) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            for request_id in ids:
                pipe.hgetall(self._k("req", request_id))
            return list(await pipe.execute())

        return [decode(Request, row) for row in await self._read(fetch) if row]

    async def list_requests(self, conversation_id: str, *, live_only: bool = False) -> list[Request]:
        """The conversation's requests, oldest first."""
        ids = await self._read(lambda c: c.lrange(self._k("reqs", conversation_id), 0, -1))
        requests = sorted(await self._requests(list(ids)), key=lambda r: r.created_at)
        if live_only:
            requests = [r for r in requests if r.state in LIVE_REQUEST_STATES]
        return requests

    async def list_due_requests(self, now: datetime) -> list[Request]:
        """Pending requests with ``expires_at <= now``, soonest first."""
        ids = await self._read(lambda c: c.zrangebyscore(self._k("due"), "-inf", micros(now)))
        due = [
            r
            for r in await self._requests(list(ids))
            if r.state == "pending" and r.expires_at is not None and r.expires_at <= now
        ]
        return sorted(due, key=lambda r: r.expires_at or now)
