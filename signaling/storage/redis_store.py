"""The several-nodes store: every record in one Redis, shared by every node.

Same contract as :mod:`signaling.storage.sqlite` (``tests/contract`` runs against both). How each rule
holds across nodes:

- Durability: Redis runs with its append-only file and ``appendfsync always`` (see ``docs/deploy.md``);
  Redis answers a write only after it is in the file, so a returned call is durable.
- Atomicity: every write that checks something (``seq`` and ``client_id``, compare-and-set, one live
  request per kind, unique names and emails, presence counts) is one Lua script
  (:mod:`signaling.storage.redis_scripts`); Redis runs scripts one at a time.
- The message log of a conversation is a Redis Stream whose entry ids are ``<seq>-0``: replayable by
  ``seq`` with ``XRANGE``.
- Listing and search read secondary indexes: sorted sets by ``updated_at`` per team, status,
  assignee and visitor, kept by the same scripts that write the conversation. Search scans at most
  ``search_scan_limit`` of the teams' most recently active conversations (their folded text).

Connections come from a ``BlockingConnectionPool`` (a busy pool waits instead of raising
``MaxConnectionsError``). redis-py's own command retries are off: a write that failed after Redis
applied it must not be applied twice. Reads and idempotent writes (``append_message`` deduplicates
by message id and ``client_id``) are retried here instead, once the connection is back; any other
failure reaches the caller as ``Unavailable``.

The class is composed of parts, one concept each: :mod:`~signaling.storage.redis_core` (connection,
scripts, lock, meta, plain records), :mod:`~signaling.storage.redis_directory` (teams, agents, presence,
visitors, text blocks, articles, flows, attachments), :mod:`~signaling.storage.redis_conversations`
(conversations, listing, search, messages) and :mod:`~signaling.storage.redis_requests` (requests).
"""

from __future__ import annotations

from signaling.storage.redis_conversations import RedisConversations
from signaling.storage.redis_directory import RedisDirectory
from signaling.storage.redis_requests import RedisRequests

__all__ = ["RedisStore"]


class RedisStore(RedisConversations, RedisRequests, RedisDirectory):
    """The shared :class:`~signaling.storage.base.Store` (see the module docstring for the design)."""
