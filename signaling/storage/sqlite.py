"""The embedded store: one SQLite file (WAL, ``synchronous=FULL``) behind the async :class:`Store` port.

One writer owns the ``sqlite3`` connection: by default a child process of its own
(:mod:`~signaling.storage.sqlite_proc`, whose Python then runs beside the event loop's instead of taking
turns with it under one interpreter lock), or a thread of this process (``writer="thread"``,
:mod:`~signaling.storage.sqlite_worker`); the event loop never touches the connection. Every call
becomes an operation (a module-level function of the connection, and its arguments) sent to the writer
and awaited through an asyncio future. The writer practises group commit
(:mod:`~signaling.storage.sqlite_batch`): it takes what is queued (up to ``max_batch``), runs the whole
batch in one transaction, a failing operation rolling back only itself and handing its exception to its
own caller (savepoints, taken only when a write fails), then commits once (one fsync for the batch) and
only then answers: a caller's ``await`` returns after its write is durable.

Reads go to the same writer, in order with the writes, inside the batch's transaction; they see every
write submitted before them and are answered, like the writes, after the commit.

Operations run one at a time in submission order, so compare-and-set, the ``seq`` counter and "one
live request per kind" are atomic without locks; unique indexes back them up on disk. A caller that
stops waiting (cancelled, timed out) does not withdraw its operation: once submitted, it runs and commits.

This module is the async front end. The operations are :mod:`~signaling.storage.sqlite_ops` (records,
meta), :mod:`~signaling.storage.sqlite_ops_directory` (teams, agents, presence) and
:mod:`~signaling.storage.sqlite_ops_conversations` (conversations, messages, requests); the schema is
:mod:`~signaling.storage.sqlite_schema` and the row mapping :mod:`~signaling.storage.sqlite_rows`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import operator
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from signaling.domain.errors import DomainError, Unavailable
from signaling.domain.models import (
    Agent,
    Article,
    Attachment,
    Conversation,
    Flow,
    Message,
    Request,
    Team,
    TextBlock,
    Visitor,
)
from signaling.storage import sqlite_ops as ops
from signaling.storage import sqlite_ops_conversations as conversations
from signaling.storage import sqlite_ops_directory as directory
from signaling.storage import sqlite_rows as s
from signaling.storage.base import ANY, AccessRule, AppendResult, ConversationCounts, ConversationQuery, _Any
from signaling.storage.sqlite_batch import Latencies
from signaling.storage.sqlite_ops_conversations import PREVIEW_CHARS
from signaling.storage.sqlite_proc import SqliteProcessWorker
from signaling.storage.sqlite_worker import SqliteWorker, WorkerStats

__all__ = ["PREVIEW_CHARS", "SqliteStore", "WorkerStats"]

T = TypeVar("T")

CONVERSATION_CACHE_SIZE = 50_000
"""Conversations kept in memory by the write-through cache (oldest entries go first)."""

WRITERS: dict[str, type[SqliteWorker] | type[SqliteProcessWorker]] = {
    "process": SqliteProcessWorker,
    "thread": SqliteWorker,
}
"""Where the connection and its group commit run: a child process of their own (the default: the
writer's Python then runs beside the event loop instead of taking turns with it under one interpreter
lock), or a thread of this process (no extra process; operations need not be importable by name)."""

_CONVERSATION_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(Conversation)))


def _clone(conversation: Conversation) -> Conversation:
    """A shallow copy (every field is immutable but the record itself), ten times cheaper than ``copy.copy``
    on a slotted dataclass: this runs twice per message."""
    return Conversation(*_CONVERSATION_FIELDS(conversation))


class SqliteStore:
    """The embedded :class:`~signaling.storage.base.Store` (see the module docstring for the design)."""

    def __init__(
        self, path: str | Path, *, node_id: str = "local", max_batch: int = 256, writer: str = "process"
    ) -> None:
        if writer not in WRITERS:
            raise ValueError(f"writer must be one of {sorted(WRITERS)}, not {writer!r}")
        self.path = str(path)
        self.node_id = node_id
        self.max_batch = max_batch
        self.writer = writer
        self._worker: SqliteWorker | SqliteProcessWorker | None = None
        self.writes = Latencies()
        """How long each write took as this process saw it, from its submit to its outcome (failed ones
        included): the wait for the writer, its batch and commit, and the answer back (what a message's
        ack waits for)."""
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._conversations: dict[str, Conversation] = {}

    @contextlib.asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[None]:
        """A named lock; the embedded store serves one process, so an asyncio lock per name is enough."""
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        async with lock:
            yield

    # -- plumbing -------------------------------------------------------------------------------------

    @property
    def stats(self) -> WorkerStats:
        """Batch counters of the running writer (zeros when closed; the writer process's as of its last
        answer)."""
        return self._worker.stats if self._worker else WorkerStats()

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id (None with the writer thread, or when closed)."""
        return getattr(self._worker, "pid", None)

    def _submit(self, fn: Callable[..., T], *args: Any, write: bool) -> asyncio.Future[T]:
        if self._worker is None:
            raise Unavailable("the store is not open")
        return self._worker.submit(fn, args, write=write)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._submit(fn, *args, write=False)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        started = time.monotonic()
        try:
            return await self._submit(fn, *args, write=True)
        finally:
            self.writes.observe(time.monotonic() - started)

    # -- life cycle -----------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file, migrate it, and clear presence left by this node's previous run."""
        if self._worker is not None:
            return
        worker = WRITERS[self.writer](self.path, self.node_id, self.max_batch)
        await worker.start()
        self._worker = worker

    async def close(self) -> None:
        """Commit everything submitted so far, then stop the writer and close the file."""
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop()

    async def ping(self) -> bool:
        """True when the writer answers ``SELECT 1`` within 5 seconds."""
        if self._worker is None:
            return False
        try:
            return await asyncio.wait_for(self._read(ops.ping), timeout=5.0)
        except (TimeoutError, DomainError, sqlite3.Error):
            return False

    # -- meta -----------------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        return await self._read(ops.get_meta, key)

    async def set_meta(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (replacing any previous one)."""
        await self._write(ops.set_meta, key, value)

    # -- teams ----------------------------------------------------------------------------------------

    async def create_team(self, team: Team) -> Team:
        """``Conflict`` when a team of that name exists (case-insensitive)."""
        return await self._write(directory.create_team, team)

    async def get_team(self, team_id: str) -> Team | None:
        """The team, or None."""
        return await self._read(ops.get_one, "teams", team_id, s.team_from)

    async def get_team_by_name(self, name: str) -> Team | None:
        """The team of that name (case-insensitive), or None."""
        return await self._read(directory.team_by_name, name)

    async def list_teams(self) -> list[Team]:
        """Oldest first: the first one is the default team."""
        return await self._read(ops.list_all, "teams", s.team_from)

    async def update_team(self, team: Team) -> Team:
        """Replace the team's fields; ``Conflict`` on a name taken by another team, ``NotFound``."""
        return await self._write(directory.update_team, team)

    # -- agents ---------------------------------------------------------------------------------------

    async def create_agent(self, agent: Agent) -> Agent:
        """``Conflict`` when an agent with that email exists (case-insensitive)."""
        return await self._write(directory.create_agent, agent)

    async def get_agent(self, agent_id: str) -> Agent | None:
        """The agent, or None."""
        return await self._read(ops.get_one, "agents", agent_id, s.agent_from)

    async def get_agents(self, agent_ids: list[str]) -> dict[str, Agent]:
        """The agents of those ids that exist, by id."""
        if not agent_ids:
            return {}
        return await self._read(ops.get_many, "agents", list(agent_ids), s.agent_from)

    async def get_agent_by_email(self, email: str) -> Agent | None:
        """The agent with that email (case-insensitive), or None."""
        return await self._read(directory.agent_by_email, email)

    async def list_agents(self, team_id: str | None = None) -> list[Agent]:
        """Oldest first; with ``team_id``, only that team's members."""
        return await self._read(directory.list_agents, team_id)

    async def update_agent(self, agent: Agent) -> Agent:
        """Replace every field; ``Conflict`` on an email taken by another agent, ``NotFound``."""
        return await self._write(directory.update_agent, agent)

    # -- presence -------------------------------------------------------------------------------------

    async def presence_add(self, agent_id: str, node_id: str, sid: str) -> int:
        """Record a socket; the agent's number of sockets on all nodes."""
        return await self._write(directory.presence_add, agent_id, node_id, sid)

    async def presence_remove(self, agent_id: str, node_id: str, sid: str) -> int:
        """Forget a socket; the agent's remaining number of sockets on all nodes."""
        return await self._write(directory.presence_remove, agent_id, node_id, sid)

    async def presence_online(self) -> set[str]:
        """Ids of agents with at least one socket."""
        return await self._read(directory.presence_online)

    # -- node liveness (heartbeats are meta rows; one node per file, but the contract holds anyway) ---

    async def node_heartbeat(self, node_id: str, ttl_s: float) -> bool:
        """Mark ``node_id`` alive for the next ``ttl_s`` seconds; whether its previous mark was live."""
        now = time.time()
        return await self._write(directory.node_heartbeat, node_id, now, now + ttl_s)

    async def node_alive(self, node_id: str) -> bool:
        """Whether ``node_id``'s heartbeat mark is still valid."""
        return await self._read(directory.node_alive, node_id, time.time())

    async def dead_presence_nodes(self) -> list[str]:
        """Nodes with presence entries and no live heartbeat (e.g. a previous run killed with -9)."""
        return await self._read(directory.dead_presence_nodes, time.time())

    async def clear_node_presence(self, node_id: str) -> list[str]:
        """Forget a dead node's sockets in one transaction; the agents that thereby went offline."""
        return await self._write(directory.clear_node_presence, node_id, time.time())

    # -- visitors -------------------------------------------------------------------------------------

    async def create_visitor(self, visitor: Visitor) -> Visitor:
        """Store a new visitor (``Conflict`` on a taken id)."""
        return await self._write(ops.insert, "visitors", visitor.id, s.visitor_row(visitor), s.visitor_from)

    async def get_visitor(self, visitor_id: str) -> Visitor | None:
        """The visitor, or None."""
        return await self._read(ops.get_one, "visitors", visitor_id, s.visitor_from)

    async def get_visitors(self, visitor_ids: list[str]) -> dict[str, Visitor]:
        """The visitors of those ids that exist, by id."""
        if not visitor_ids:
            return {}
        return await self._read(ops.get_many, "visitors", list(visitor_ids), s.visitor_from)

    async def update_visitor(self, visitor: Visitor) -> Visitor:
        """Replace the visitor's fields (``NotFound``)."""
        return await self._write(ops.replace, "visitors", s.visitor_row(visitor), s.visitor_from)

    # -- conversations --------------------------------------------------------------------------------

    # Conversations are read on every event (access checks) and this store is the file's only writer,
    # so a write-through cache answers ``get_conversation`` without a trip to the writer. Every
    # call that returns a conversation refreshes it, in the order the operations ran (futures resolve,
    # and their tasks resume, in queue order); callers get copies, since services mutate what they get.

    def _remember(self, conversation: Conversation) -> Conversation:
        cache = self._conversations
        if conversation.id not in cache and len(cache) >= CONVERSATION_CACHE_SIZE:
            del cache[next(iter(cache))]
        cache[conversation.id] = _clone(conversation)
        return conversation

    async def create_conversation(self, conversation: Conversation) -> Conversation:
        """Store a new conversation as given (``Conflict`` on a taken id)."""
        row = s.conversation_row(conversation)
        created = await self._write(ops.insert, "conversations", conversation.id, row, s.conversation_from)
        return self._remember(created)

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation, or None."""
        cached = self._conversations.get(conversation_id)
        if cached is not None:
            return _clone(cached)
        found = await self._read(ops.get_one, "conversations", conversation_id, s.conversation_from)
        return self._remember(found) if found is not None else None

    async def update_conversation(
        self, conversation: Conversation, *, expected_assignee: str | None | _Any = ANY
    ) -> Conversation:
        """Write status, assignee, team, updated_at, language, page_url; compare-and-set on the assignee."""
        updated = await self._write(conversations.update_conversation, conversation, expected_assignee)
        return self._remember(updated)

    async def list_conversations(self, query: ConversationQuery) -> list[Conversation]:
        """Filtered, newest activity first, after the ``before`` cursor."""
        return await self._read(conversations.list_conversations, query)

    async def count_conversations(self, query: ConversationQuery) -> ConversationCounts:
        """How many conversations ``list_conversations(query)`` would return, and their summed ``unread``."""
        return await self._read(conversations.count_conversations, query)

    async def count_open_assigned(self, agent_ids: list[str]) -> dict[str, int]:
        """For each agent id, its number of open assigned conversations (0 included)."""
        return await self._read(conversations.count_open_assigned, list(agent_ids))

    async def search_conversations(
        self, team_ids: list[str], q: str, *, include_notes: bool, limit: int = 20
    ) -> list[Conversation]:
        """Conversations whose messages, visitor name or email contain ``q`` (case-insensitive)."""
        return await self._read(conversations.search_conversations, list(team_ids), q, include_notes, limit)

    # -- messages -------------------------------------------------------------------------------------

    async def append_message(self, message: Message, access: AccessRule | None = None) -> AppendResult:
        """Store with the next ``seq`` and update the counters; idempotent on ``client_id``; with
        ``access``, refused (``NotFound``) unless the conversation passes it, in the writer's transaction."""
        created_at = s.utc(message.created_at)
        at = s.ts(created_at)
        data = s.to_json(message.data) if message.data else "{}"
        rule = None if access is None else (access.team_ids, access.assignee_id, access.everyone)
        out = await self._write(conversations.append_row, s.message_row(message, 0, data, at), rule)
        if isinstance(out, AppendResult):  # a replay
            result = out
        else:
            seq, values = out
            # The stored record as a read would return it: UTC time, data as JSON gives it back.
            stored = s.clone_message(message)
            stored.seq = seq
            stored.author = s.clone_author(message.author)
            stored.data = json.loads(data) if message.data else {}
            stored.created_at = created_at
            result = AppendResult(stored, True, s.conversation_from_values(values, (at, created_at)))
        self._remember(result.conversation)
        return result

    async def list_messages(
        self, conversation_id: str, *, after_seq: int = 0, include_notes: bool = True, limit: int = 1000
    ) -> list[Message]:
        """Messages with ``seq > after_seq``, ascending, at most ``limit``."""
        return await self._read(conversations.list_messages, conversation_id, after_seq, include_notes, limit)

    async def mark_receipt(
        self, conversation_id: str, side: str, *, delivered_seq: int = 0, read_seq: int = 0
    ) -> Conversation:
        """Raise a side's delivered/read marks (capped at ``last_seq``); agent reads recompute ``unread``."""
        updated = await self._write(
            conversations.mark_receipt, conversation_id, side, delivered_seq, read_seq
        )
        return self._remember(updated)

    # -- requests -------------------------------------------------------------------------------------

    async def create_request(self, request: Request) -> Request:
        """``Conflict`` when a live request of that kind exists; ``NotFound`` without the conversation."""
        return await self._write(conversations.create_request, request)

    async def get_request(self, request_id: str) -> Request | None:
        """The request, or None."""
        return await self._read(ops.get_one, "requests", request_id, s.request_from)

    async def update_request(self, request: Request, *, expected_state: str) -> Request:
        """Write every field if the stored state is ``expected_state``, else ``Conflict``."""
        return await self._write(conversations.update_request, request, expected_state)

    async def list_requests(self, conversation_id: str, *, live_only: bool = False) -> list[Request]:
        """The conversation's requests, oldest first."""
        return await self._read(conversations.list_requests, conversation_id, live_only)

    async def list_due_requests(self, now: datetime) -> list[Request]:
        """Pending requests with ``expires_at <= now``, soonest first."""
        return await self._read(conversations.list_due_requests, now)

    # -- text blocks, articles, flows -----------------------------------------------------------------

    async def create_textblock(self, block: TextBlock) -> TextBlock:
        """Store a new text block."""
        return await self._write(ops.insert, "textblocks", block.id, s.textblock_row(block), s.textblock_from)

    async def get_textblock(self, block_id: str) -> TextBlock | None:
        """The text block, or None."""
        return await self._read(ops.get_one, "textblocks", block_id, s.textblock_from)

    async def list_textblocks(self) -> list[TextBlock]:
        """Every text block, oldest first."""
        return await self._read(ops.list_all, "textblocks", s.textblock_from)

    async def update_textblock(self, block: TextBlock) -> TextBlock:
        """Replace the text block's fields (``NotFound``)."""
        return await self._write(ops.replace, "textblocks", s.textblock_row(block), s.textblock_from)

    async def delete_textblock(self, block_id: str) -> bool:
        """True when it existed."""
        return await self._write(ops.delete, "textblocks", block_id)

    async def create_article(self, article: Article) -> Article:
        """Store a new article."""
        return await self._write(ops.insert, "articles", article.id, s.article_row(article), s.article_from)

    async def get_article(self, article_id: str) -> Article | None:
        """The article, or None."""
        return await self._read(ops.get_one, "articles", article_id, s.article_from)

    async def list_articles(self) -> list[Article]:
        """Every article, oldest first."""
        return await self._read(ops.list_all, "articles", s.article_from)

    async def update_article(self, article: Article) -> Article:
        """Replace the article's fields (``NotFound``)."""
        return await self._write(ops.replace, "articles", s.article_row(article), s.article_from)

    async def delete_article(self, article_id: str) -> bool:
        """True when it existed."""
        return await self._write(ops.delete, "articles", article_id)

    async def create_flow(self, flow: Flow) -> Flow:
        """Store a new flow."""
        return await self._write(ops.insert, "flows", flow.id, s.flow_row(flow), s.flow_from)

    async def get_flow(self, flow_id: str) -> Flow | None:
        """The flow, or None."""
        return await self._read(ops.get_one, "flows", flow_id, s.flow_from)

    async def list_flows(self) -> list[Flow]:
        """Every flow, oldest first."""
        return await self._read(ops.list_all, "flows", s.flow_from)

    async def update_flow(self, flow: Flow) -> Flow:
        """Replace the flow's fields (``NotFound``)."""
        return await self._write(ops.replace, "flows", s.flow_row(flow), s.flow_from)

    async def delete_flow(self, flow_id: str) -> bool:
        """True when it existed."""
        return await self._write(ops.delete, "flows", flow_id)

    # -- attachments ----------------------------------------------------------------------------------

    async def create_attachment(self, attachment: Attachment) -> Attachment:
        """Store a new attachment's metadata (``NotFound`` without the conversation)."""
        row = s.attachment_row(attachment)
        return await self._write(ops.insert, "attachments", attachment.id, row, s.attachment_from)

    async def get_attachment(self, attachment_id: str) -> Attachment | None:
        """The attachment, or None."""
        return await self._read(ops.get_one, "attachments", attachment_id, s.attachment_from)
