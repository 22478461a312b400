"""The embedded store: one SQLite file (WAL, ``synchronous=FULL``) behind the async :class:`Store` port.

One dedicated thread owns the ``sqlite3`` connection; the event loop never touches it. Every call
becomes an operation (a function of the connection) put on a queue and awaited through an asyncio
future. The thread practises group commit: it drains what is queued (up to ``max_batch``), runs the
whole batch in one transaction with a ``SAVEPOINT`` around each operation, so a failing operation
rolls back only itself and hands its exception to its own caller, then commits once (one fsync for
the batch) and only then resolves the futures: a caller's ``await`` returns after its write is durable.

Reads go through the same queue, in order with the writes, inside the batch's transaction; they see
every write submitted before them and are answered, like the writes, after the commit.

Operations run one at a time in submission order, so compare-and-set, the ``seq`` counter and "one
live request per kind" are atomic without locks; unique indexes back them up on disk. A caller that
stops waiting (cancelled, timed out) does not withdraw its operation: once submitted, it runs and commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from signaling.domain.errors import Conflict, DomainError, Invalid, NotFound, Unavailable
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
from signaling.storage import sqlite_schema as s
from signaling.storage.base import ANY, LIVE_REQUEST_STATES, AppendResult, ConversationQuery, _Any

log = logging.getLogger(__name__)

T = TypeVar("T")

PREVIEW_CHARS = 140
_LIVE_SQL = "(" + ", ".join(f"'{state}'" for state in LIVE_REQUEST_STATES) + ")"


# -- the worker thread -----------------------------------------------------------------------------------


@dataclass(slots=True)
class WorkerStats:
    """Counters of the writer thread (read them for benchmarks and tests; written by the thread only)."""

    batches: int = 0
    """Transactions run (each one commit)."""
    operations: int = 0
    """Operations run, failed ones included."""


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    write: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Stop:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


def _settle(outcomes: list[_Outcome]) -> None:
    """Resolve futures on their own loop (called through ``call_soon_threadsafe``)."""
    for future, result, exc in outcomes:
        if future.done():  # the caller gave up (cancelled / timed out); the work was done anyway
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)


def _deliver(outcomes: Iterable[tuple[asyncio.AbstractEventLoop, _Outcome]]) -> None:
    """Hand outcomes back, one ``call_soon_threadsafe`` per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for loop, outcome in outcomes:
        by_loop.setdefault(loop, []).append(outcome)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


def _fold(value: str | None) -> str | None:
    """SQL ``fold(x)``: Unicode case folding (SQLite's own ``lower``/``LIKE`` fold ASCII only)."""
    return value.casefold() if isinstance(value, str) else value


def _map_error(exc: Exception) -> Exception:
    """Constraint violations become domain errors; anything else goes to the caller unchanged."""
    if isinstance(exc, sqlite3.IntegrityError):
        text = str(exc)
        if "FOREIGN KEY" in text:
            return NotFound("a record it refers to does not exist")
        if "UNIQUE" in text or "PRIMARY KEY" in text:
            return Conflict("a record with that key exists")
    return exc


class _Worker:
    """The thread owning the connection, and the queue feeding it."""

    def __init__(self, path: str, node_id: str, max_batch: int) -> None:
        self._path = path
        self._node_id = node_id
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.stats = WorkerStats()

    async def start(self) -> None:
        """Start the thread; returns once the file is open and migrated (raises what opening raised)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(loop, ready), name=f"sqlite-store:{Path(self._path).name}", daemon=True
        )
        self._thread.start()
        await ready

    def submit(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, write, loop, future))
        return future

    async def stop(self) -> None:
        """Run everything queued so far, then close the connection and end the thread."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Stop(loop, done))
        await done
        if self._thread is not None:
            self._thread.join()  # the thread resolved ``done`` as its last act: this does not wait

    # -- in the thread ----------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 5000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal" and self._path != ":memory:":
                raise Unavailable(f"SQLite refused WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.create_function("fold", 1, _fold, deterministic=True)
            s.migrate(conn)
            conn.execute(
                "DELETE FROM presence WHERE node_id = ?", (self._node_id,)
            )  # stale: our previous run
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
        except Exception as exc:
            _deliver([(loop, (ready, None, exc))])
            return
        _deliver([(loop, (ready, None, None))])
        stop: _Stop | None = None
        try:
            while stop is None:
                batch: list[_Job] = []
                item = self._queue.get()
                while True:
                    if isinstance(item, _Stop):
                        stop = item
                        break
                    batch.append(item)
                    if len(batch) >= self._max_batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    try:
                        self._run_batch(conn, batch)
                    except Exception as exc:  # a bug or a dead connection: never leave a caller hanging
                        log.exception("sqlite: batch failed")
                        if conn.in_transaction:
                            with contextlib.suppress(sqlite3.Error):
                                conn.execute("ROLLBACK")
                        failed = Unavailable(f"the store failed: {exc}")
                        _deliver((job.loop, (job.future, None, failed)) for job in batch)
        finally:
            conn.close()
            leftovers: list[tuple[asyncio.AbstractEventLoop, _Outcome]] = []
            while True:  # submitted after the stop: refuse rather than leave callers hanging
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Job):
                    leftovers.append((item.loop, (item.future, None, Unavailable("the store is closed"))))
            if stop is not None:
                leftovers.append((stop.loop, (stop.future, None, None)))
            _deliver(leftovers)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        self.stats.batches += 1
        self.stats.operations += len(batch)
        outcomes: list[tuple[asyncio.AbstractEventLoop, _Outcome]] = []
        try:
            conn.execute("BEGIN IMMEDIATE" if any(job.write for job in batch) else "BEGIN")
        except sqlite3.Error as exc:
            log.error("sqlite: cannot begin a transaction: %s", exc)
            _deliver((job.loop, (job.future, None, Unavailable(str(exc)))) for job in batch)
            return
        broken: Exception | None = None
        for job in batch:
            conn.execute("SAVEPOINT op")
            try:
                result = job.fn(conn)
            except Exception as exc:
                outcomes.append((job.loop, (job.future, None, _map_error(exc))))
                try:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                except sqlite3.Error as rollback_exc:  # SQLite gave up the whole transaction (I/O, full disk)
                    broken = rollback_exc
                    break
            else:
                conn.execute("RELEASE op")
                outcomes.append((job.loop, (job.future, result, None)))
        if broken is None:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                broken = exc
        if broken is not None:
            log.error("sqlite: batch of %d lost: %s", len(batch), broken)
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            failed = Unavailable(f"the store could not commit: {broken}")
            _deliver((job.loop, (job.future, None, failed)) for job in batch)
            return
        _deliver(outcomes)


# -- the store --------------------------------------------------------------------------------------------


class SqliteStore:
    """The embedded :class:`~signaling.storage.base.Store` (see the module docstring for the design)."""

    def __init__(self, path: str | Path, *, node_id: str = "local", max_batch: int = 256) -> None:
        self.path = str(path)
        self.node_id = node_id
        self.max_batch = max_batch
        self._worker: _Worker | None = None

    # -- plumbing -------------------------------------------------------------------------------------

    @property
    def stats(self) -> WorkerStats:
        """Batch counters of the running thread (zeros when closed)."""
        return self._worker.stats if self._worker else WorkerStats()

    def _submit(self, fn: Callable[..., T], *args: Any, write: bool) -> asyncio.Future[T]:
        if self._worker is None:
            raise Unavailable("the store is not open")
        return self._worker.submit(lambda conn: fn(conn, *args), write=write)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._submit(fn, *args, write=False)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._submit(fn, *args, write=True)

    # -- life cycle -----------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file, migrate it, and clear presence left by this node's previous run."""
        if self._worker is not None:
            return
        worker = _Worker(self.path, self.node_id, self.max_batch)
        await worker.start()
        self._worker = worker

    async def close(self) -> None:
        """Commit everything submitted so far, then stop the thread and close the file."""
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop()

    async def ping(self) -> bool:
        """True when the thread answers ``SELECT 1`` within 5 seconds."""
        if self._worker is None:
            return False
        try:
            return await asyncio.wait_for(self._read(_ping), timeout=5.0)
        except (TimeoutError, DomainError, sqlite3.Error):
            return False

    # -- meta -----------------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        return await self._read(_get_meta, key)

    async def set_meta(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (replacing any previous one)."""
        await self._write(_set_meta, key, value)

    # -- teams ----------------------------------------------------------------------------------------

    async def create_team(self, team: Team) -> Team:
        """``Conflict`` when a team of that name exists (case-insensitive)."""
        return await self._write(_create_team, team)

    async def get_team(self, team_id: str) -> Team | None:
        """The team, or None."""
        return await self._read(_get_one, "teams", team_id, s.team_from)

    async def get_team_by_name(self, name: str) -> Team | None:
        """The team of that name (case-insensitive), or None."""
        return await self._read(_team_by_name, name)

    async def list_teams(self) -> list[Team]:
        """Oldest first: the first one is the default team."""
        return await self._read(_list_all, "teams", s.team_from)

    async def update_team(self, team: Team) -> Team:
        """Replace the team's fields; ``Conflict`` on a name taken by another team, ``NotFound``."""
        return await self._write(_update_team, team)

    # -- agents ---------------------------------------------------------------------------------------

    async def create_agent(self, agent: Agent) -> Agent:
        """``Conflict`` when an agent with that email exists (case-insensitive)."""
        return await self._write(_create_agent, agent)

    async def get_agent(self, agent_id: str) -> Agent | None:
        """The agent, or None."""
        return await self._read(_get_one, "agents", agent_id, s.agent_from)

    async def get_agent_by_email(self, email: str) -> Agent | None:
        """The agent with that email (case-insensitive), or None."""
        return await self._read(_agent_by_email, email)

    async def list_agents(self, team_id: str | None = None) -> list[Agent]:
        """Oldest first; with ``team_id``, only that team's members."""
        return await self._read(_list_agents, team_id)

    async def update_agent(self, agent: Agent) -> Agent:
        """Replace every field; ``Conflict`` on an email taken by another agent, ``NotFound``."""
        return await self._write(_update_agent, agent)

    # -- presence -------------------------------------------------------------------------------------

    async def presence_add(self, agent_id: str, node_id: str, sid: str) -> int:
        """Record a socket; the agent's number of sockets on all nodes."""
        return await self._write(_presence_add, agent_id, node_id, sid)

    async def presence_remove(self, agent_id: str, node_id: str, sid: str) -> int:
        """Forget a socket; the agent's remaining number of sockets on all nodes."""
        return await self._write(_presence_remove, agent_id, node_id, sid)

    async def presence_online(self) -> set[str]:
        """Ids of agents with at least one socket."""
        return await self._read(_presence_online)

    # -- visitors -------------------------------------------------------------------------------------

    async def create_visitor(self, visitor: Visitor) -> Visitor:
        """Store a new visitor (``Conflict`` on a taken id)."""
        return await self._write(_insert, "visitors", visitor.id, s.visitor_row(visitor), s.visitor_from)

    async def get_visitor(self, visitor_id: str) -> Visitor | None:
        """The visitor, or None."""
        return await self._read(_get_one, "visitors", visitor_id, s.visitor_from)

    async def update_visitor(self, visitor: Visitor) -> Visitor:
        """Replace the visitor's fields (``NotFound``)."""
        return await self._write(_replace, "visitors", s.visitor_row(visitor), s.visitor_from)

    # -- conversations --------------------------------------------------------------------------------

    async def create_conversation(self, conversation: Conversation) -> Conversation:
        """Store a new conversation as given (``Conflict`` on a taken id)."""
        row = s.conversation_row(conversation)
        return await self._write(_insert, "conversations", conversation.id, row, s.conversation_from)

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation, or None."""
        return await self._read(_get_one, "conversations", conversation_id, s.conversation_from)

    async def update_conversation(
        self, conversation: Conversation, *, expected_assignee: str | None | _Any = ANY
    ) -> Conversation:
        """Write status, assignee, team, updated_at, language, page_url; compare-and-set on the assignee."""
        return await self._write(_update_conversation, conversation, expected_assignee)

    async def list_conversations(self, query: ConversationQuery) -> list[Conversation]:
        """Filtered, newest activity first, after the ``before`` cursor."""
        return await self._read(_list_conversations, query)

    async def count_open_assigned(self, agent_ids: list[str]) -> dict[str, int]:
        """For each agent id, its number of open assigned conversations (0 included)."""
        return await self._read(_count_open_assigned, list(agent_ids))

    async def search_conversations(
        self, team_ids: list[str], q: str, *, include_notes: bool, limit: int = 20
    ) -> list[Conversation]:
        """Conversations whose messages, visitor name or email contain ``q`` (case-insensitive)."""
        return await self._read(_search_conversations, list(team_ids), q, include_notes, limit)

    # -- messages -------------------------------------------------------------------------------------

    async def append_message(self, message: Message) -> AppendResult:
        """Store with the next ``seq`` and update the counters; idempotent on ``client_id``."""
        return await self._write(_append_message, message)

    async def list_messages(
        self, conversation_id: str, *, after_seq: int = 0, include_notes: bool = True, limit: int = 1000
    ) -> list[Message]:
        """Messages with ``seq > after_seq``, ascending, at most ``limit``."""
        return await self._read(_list_messages, conversation_id, after_seq, include_notes, limit)

    async def mark_receipt(
        self, conversation_id: str, side: str, *, delivered_seq: int = 0, read_seq: int = 0
    ) -> Conversation:
        """Raise a side's delivered/read marks (capped at ``last_seq``); agent reads recompute ``unread``."""
        return await self._write(_mark_receipt, conversation_id, side, delivered_seq, read_seq)

    # -- requests -------------------------------------------------------------------------------------

    async def create_request(self, request: Request) -> Request:
        """``Conflict`` when a live request of that kind exists; ``NotFound`` without the conversation."""
        return await self._write(_create_request, request)

    async def get_request(self, request_id: str) -> Request | None:
        """The request, or None."""
        return await self._read(_get_one, "requests", request_id, s.request_from)

    async def update_request(self, request: Request, *, expected_state: str) -> Request:
        """Write every field if the stored state is ``expected_state``, else ``Conflict``."""
        return await self._write(_update_request, request, expected_state)

    async def list_requests(self, conversation_id: str, *, live_only: bool = False) -> list[Request]:
        """The conversation's requests, oldest first."""
        return await self._read(_list_requests, conversation_id, live_only)

    async def list_due_requests(self, now: datetime) -> list[Request]:
        """Pending requests with ``expires_at <= now``, soonest first."""
        return await self._read(_list_due_requests, now)

    # -- text blocks, articles, flows -----------------------------------------------------------------

    async def create_textblock(self, block: TextBlock) -> TextBlock:
        """Store a new text block."""
        return await self._write(_insert, "textblocks", block.id, s.textblock_row(block), s.textblock_from)

    async def get_textblock(self, block_id: str) -> TextBlock | None:
        """The text block, or None."""
        return await self._read(_get_one, "textblocks", block_id, s.textblock_from)

    async def list_textblocks(self) -> list[TextBlock]:
        """Every text block, oldest first."""
        return await self._read(_list_all, "textblocks", s.textblock_from)

    async def update_textblock(self, block: TextBlock) -> TextBlock:
        """Replace the text block's fields (``NotFound``)."""
        return await self._write(_replace, "textblocks", s.textblock_row(block), s.textblock_from)

    async def delete_textblock(self, block_id: str) -> bool:
        """True when it existed."""
        return await self._write(_delete, "textblocks", block_id)

    async def create_article(self, article: Article) -> Article:
        """Store a new article."""
        return await self._write(_insert, "articles", article.id, s.article_row(article), s.article_from)

    async def get_article(self, article_id: str) -> Article | None:
        """The article, or None."""
        return await self._read(_get_one, "articles", article_id, s.article_from)

    async def list_articles(self) -> list[Article]:
        """Every article, oldest first."""
        return await self._read(_list_all, "articles", s.article_from)

    async def update_article(self, article: Article) -> Article:
        """Replace the article's fields (``NotFound``)."""
        return await self._write(_replace, "articles", s.article_row(article), s.article_from)

    async def delete_article(self, article_id: str) -> bool:
        """True when it existed."""
        return await self._write(_delete, "articles", article_id)

    async def create_flow(self, flow: Flow) -> Flow:
        """Store a new flow."""
        return await self._write(_insert, "flows", flow.id, s.flow_row(flow), s.flow_from)

    async def get_flow(self, flow_id: str) -> Flow | None:
        """The flow, or None."""
        return await self._read(_get_one, "flows", flow_id, s.flow_from)

    async def list_flows(self) -> list[Flow]:
        """Every flow, oldest first."""
        return await self._read(_list_all, "flows", s.flow_from)

    async def update_flow(self, flow: Flow) -> Flow:
        """Replace the flow's fields (``NotFound``)."""
        return await self._write(_replace, "flows", s.flow_row(flow), s.flow_from)

    async def delete_flow(self, flow_id: str) -> bool:
        """True when it existed."""
        return await self._write(_delete, "flows", flow_id)

    # -- attachments ----------------------------------------------------------------------------------

    async def create_attachment(self, attachment: Attachment) -> Attachment:
        """Store a new attachment's metadata (``NotFound`` without the conversation)."""
        row = s.attachment_row(attachment)
        return await self._write(_insert, "attachments", attachment.id, row, s.attachment_from)

    async def get_attachment(self, attachment_id: str) -> Attachment | None:
        """The attachment, or None."""
        return await self._read(_get_one, "attachments", attachment_id, s.attachment_from)


# -- operations (run in the worker thread, inside the batch transaction) -----------------------------------
#
# Table names below come from this module only, never from callers.

Conn = sqlite3.Connection
RowMapper = Callable[[sqlite3.Row], T]


def _ping(conn: Conn) -> bool:
    return bool(conn.execute("SELECT 1").fetchone()[0] == 1)


def _get_meta(conn: Conn, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(conn: Conn, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _get_one(conn: Conn, table: str, record_id: str, mapper: RowMapper[T]) -> T | None:
    row = conn.execute(f"SELECT * FROM {table} WHERE id = ?", (record_id,)).fetchone()
    return None if row is None else mapper(row)


def _must_get(conn: Conn, table: str, record_id: str, mapper: RowMapper[T]) -> T:
    found = _get_one(conn, table, record_id, mapper)
    if found is None:
        raise NotFound(f"no such {table[:-1]}", id=record_id)
    return found


def _list_all(conn: Conn, table: str, mapper: RowMapper[T]) -> list[T]:
    return [mapper(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY created_at, rowid")]


def _insert(conn: Conn, table: str, record_id: str, row: tuple[Any, ...], mapper: RowMapper[T]) -> T:
    if conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (record_id,)).fetchone():
        raise Conflict(f"a {table[:-1]} with that id exists", id=record_id)
    conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", row)
    return _must_get(conn, table, record_id, mapper)


def _replace(conn: Conn, table: str, row: tuple[Any, ...], mapper: RowMapper[T]) -> T:
    """Overwrite every column but ``id`` (the first column) of an existing row."""
    columns = [c[1] for c in conn.execute(f"PRAGMA table_info({table})")]
    assignments = ", ".join(f"{c} = ?" for c in columns[1:])
    cur = conn.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", (*row[1:], row[0]))
    if cur.rowcount == 0:
        raise NotFound(f"no such {table[:-1]}", id=row[0])
    return _must_get(conn, table, row[0], mapper)


def _delete(conn: Conn, table: str, record_id: str) -> bool:
    return conn.execute(f"DELETE FROM {table} WHERE id = ?", (record_id,)).rowcount > 0


def _placeholders(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


# teams and agents


def _team_by_name(conn: Conn, name: str) -> Team | None:
    row = conn.execute("SELECT * FROM teams WHERE name_key = ?", (s.fold(name),)).fetchone()
    return None if row is None else s.team_from(row)


def _check_team_name(conn: Conn, team: Team) -> None:
    row = conn.execute(
        "SELECT id FROM teams WHERE name_key = ? AND id != ?", (s.fold(team.name), team.id)
    ).fetchone()
    if row is not None:
        raise Conflict(f"a team named {team.name!r} exists", field="name")


def _create_team(conn: Conn, team: Team) -> Team:
    _check_team_name(conn, team)
    return _insert(conn, "teams", team.id, s.team_row(team), s.team_from)


def _update_team(conn: Conn, team: Team) -> Team:
    _check_team_name(conn, team)
    return _replace(conn, "teams", s.team_row(team), s.team_from)


def _agent_by_email(conn: Conn, email: str) -> Agent | None:
    row = conn.execute("SELECT * FROM agents WHERE email_key = ?", (s.fold(email),)).fetchone()
    return None if row is None else s.agent_from(row)


def _check_agent_email(conn: Conn, agent: Agent) -> None:
    row = conn.execute(
        "SELECT id FROM agents WHERE email_key = ? AND id != ?", (s.fold(agent.email), agent.id)
    ).fetchone()
    if row is not None:
        raise Conflict("an agent with that email exists", field="email")


def _create_agent(conn: Conn, agent: Agent) -> Agent:
    _check_agent_email(conn, agent)
    return _insert(conn, "agents", agent.id, s.agent_row(agent), s.agent_from)


def _update_agent(conn: Conn, agent: Agent) -> Agent:
    _check_agent_email(conn, agent)
    return _replace(conn, "agents", s.agent_row(agent), s.agent_from)


def _list_agents(conn: Conn, team_id: str | None) -> list[Agent]:
    if team_id is None:
        return _list_all(conn, "agents", s.agent_from)
    rows = conn.execute(
        "SELECT * FROM agents WHERE EXISTS (SELECT 1 FROM json_each(agents.team_ids) WHERE value = ?) "
        "ORDER BY created_at, rowid",
        (team_id,),
    )
    return [s.agent_from(r) for r in rows]


# presence


def _presence_count(conn: Conn, agent_id: str) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM presence WHERE agent_id = ?", (agent_id,)).fetchone()[0])


def _presence_add(conn: Conn, agent_id: str, node_id: str, sid: str) -> int:
    conn.execute(
        "INSERT OR IGNORE INTO presence (agent_id, node_id, sid) VALUES (?, ?, ?)", (agent_id, node_id, sid)
    )
    return _presence_count(conn, agent_id)


def _presence_remove(conn: Conn, agent_id: str, node_id: str, sid: str) -> int:
    conn.execute(
        "DELETE FROM presence WHERE agent_id = ? AND node_id = ? AND sid = ?", (agent_id, node_id, sid)
    )
    return _presence_count(conn, agent_id)


def _presence_online(conn: Conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT DISTINCT agent_id FROM presence")}


# conversations


def _update_conversation(conn: Conn, c: Conversation, expected_assignee: str | None | _Any) -> Conversation:
    sql = (
        "UPDATE conversations SET status = ?, assignee_id = ?, team_id = ?, updated_at = ?, language = ?, "
        "page_url = ? WHERE id = ?"
    )
    params: list[Any] = [c.status, c.assignee_id, c.team_id, s.ts(c.updated_at), c.language, c.page_url, c.id]
    if not isinstance(expected_assignee, _Any):
        sql += " AND assignee_id IS ?"
        params.append(expected_assignee)
    if conn.execute(sql, params).rowcount == 0:
        current = _must_get(conn, "conversations", c.id, s.conversation_from)
        raise Conflict(
            "the conversation's assignee changed", expected=expected_assignee, assignee_id=current.assignee_id
        )
    return _must_get(conn, "conversations", c.id, s.conversation_from)


def _list_conversations(conn: Conn, q: ConversationQuery) -> list[Conversation]:
    where: list[str] = []
    params: list[Any] = []
    if q.team_ids is not None:
        if not q.team_ids:
            return []
        where.append(f"team_id IN ({_placeholders(q.team_ids)})")
        params.extend(q.team_ids)
    if q.status is not None:
        where.append("status = ?")
        params.append(q.status)
    if q.assignee_id is None:
        where.append("assignee_id IS NULL")
    elif not isinstance(q.assignee_id, _Any):
        where.append("assignee_id = ?")
        params.append(q.assignee_id)
    if q.visitor_id is not None:
        where.append("visitor_id = ?")
        params.append(q.visitor_id)
    if q.before is not None:
        cursor_at, cursor_id = s.ts(q.before[0]), q.before[1]
        where.append("(updated_at < ? OR (updated_at = ? AND id < ?))")
        params.extend((cursor_at, cursor_at, cursor_id))
    sql = "SELECT * FROM conversations"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY updated_at DESC, id DESC LIMIT ?"
    params.append(max(0, q.limit))
    return [s.conversation_from(r) for r in conn.execute(sql, params)]


def _count_open_assigned(conn: Conn, agent_ids: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(agent_ids, 0)
    if agent_ids:
        rows = conn.execute(
            "SELECT assignee_id, COUNT(*) FROM conversations WHERE status = 'open' "
            f"AND assignee_id IN ({_placeholders(agent_ids)}) GROUP BY assignee_id",
            agent_ids,
        )
        counts.update({r[0]: int(r[1]) for r in rows})
    return counts


def _search_conversations(
    conn: Conn, team_ids: list[str], q: str, include_notes: bool, limit: int
) -> list[Conversation]:
    if not team_ids or not q:
        return []
    needle = s.fold(q)
    # instr() over casefolded text rather than LIKE: case-insensitive beyond ASCII, no wildcard escaping.
    sql = (
        "SELECT c.* FROM conversations c LEFT JOIN visitors v ON v.id = c.visitor_id "
        f"WHERE c.team_id IN ({_placeholders(team_ids)}) AND ("
        " instr(fold(v.name), ?) > 0 OR instr(fold(v.email), ?) > 0"
        " OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id"
        "   AND (? OR m.kind != 'note') AND instr(fold(m.body), ?) > 0)"
        ") ORDER BY c.updated_at DESC, c.id DESC LIMIT ?"
    )
    params = [*team_ids, needle, needle, int(include_notes), needle, max(0, limit)]
    return [s.conversation_from(r) for r in conn.execute(sql, params)]


# messages


def _append_message(conn: Conn, m: Message) -> AppendResult:
    if m.client_id:
        row = conn.execute(
            "SELECT * FROM messages WHERE conversation_id = ? AND client_id = ?",
            (m.conversation_id, m.client_id),
        ).fetchone()
        if row is not None:
            conversation = _must_get(conn, "conversations", m.conversation_id, s.conversation_from)
            return AppendResult(message=s.message_from(row), created=False, conversation=conversation)
    row = conn.execute("SELECT last_seq FROM conversations WHERE id = ?", (m.conversation_id,)).fetchone()
    if row is None:
        raise NotFound("no such conversation", id=m.conversation_id)
    seq = int(row[0]) + 1
    conn.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", s.message_row(m, seq))
    at = s.ts(m.created_at)
    visible = m.kind != "note"
    conn.execute(
        "UPDATE conversations SET last_seq = ?, updated_at = MAX(updated_at, ?), unread = unread + ?, "
        "last_message_at = CASE WHEN ? THEN ? ELSE last_message_at END, "
        "last_message_preview = CASE WHEN ? THEN ? ELSE last_message_preview END WHERE id = ?",
        (
            seq,
            at,
            1 if m.author.kind == "customer" else 0,
            visible,
            at,
            visible,
            m.body[:PREVIEW_CHARS],
            m.conversation_id,
        ),
    )
    stored = _must_get(conn, "messages", m.id, s.message_from)
    conversation = _must_get(conn, "conversations", m.conversation_id, s.conversation_from)
    return AppendResult(message=stored, created=True, conversation=conversation)


def _list_messages(
    conn: Conn, conversation_id: str, after_seq: int, include_notes: bool, limit: int
) -> list[Message]:
    sql = "SELECT * FROM messages WHERE conversation_id = ? AND seq > ?"
    if not include_notes:
        sql += " AND kind != 'note'"
    sql += " ORDER BY seq LIMIT ?"
    return [s.message_from(r) for r in conn.execute(sql, (conversation_id, after_seq, max(0, limit)))]


def _mark_receipt(
    conn: Conn, conversation_id: str, side: str, delivered_seq: int, read_seq: int
) -> Conversation:
    if side not in ("customer", "agent"):
        raise Invalid(f"unknown receipt side {side!r}", field="side")
    row = conn.execute(
        f"SELECT last_seq, {side}_delivered_seq, {side}_read_seq FROM conversations WHERE id = ?",
        (conversation_id,),
    ).fetchone()
    if row is None:
        raise NotFound("no such conversation", id=conversation_id)
    last_seq, old_delivered, old_read = int(row[0]), int(row[1]), int(row[2])
    # Capped at last_seq: a mark above it would silently swallow the next messages.
    read = max(old_read, min(read_seq, last_seq))
    delivered = max(old_delivered, min(delivered_seq, last_seq), read)
    conn.execute(
        f"UPDATE conversations SET {side}_delivered_seq = ?, {side}_read_seq = ? WHERE id = ?",
        (delivered, read, conversation_id),
    )
    if side == "agent" and read_seq > 0:
        conn.execute(
            "UPDATE conversations SET unread = (SELECT COUNT(*) FROM messages WHERE conversation_id = ? "
            "AND author_kind = 'customer' AND seq > ?) WHERE id = ?",
            (conversation_id, read, conversation_id),
        )
    return _must_get(conn, "conversations", conversation_id, s.conversation_from)


# requests


def _live_request_id(conn: Conn, r: Request) -> str | None:
    row = conn.execute(
        f"SELECT id FROM requests WHERE conversation_id = ? AND kind = ? AND state IN {_LIVE_SQL} AND id != ?",
        (r.conversation_id, r.kind, r.id),
    ).fetchone()
    return None if row is None else str(row[0])


def _create_request(conn: Conn, r: Request) -> Request:
    if conn.execute("SELECT 1 FROM conversations WHERE id = ?", (r.conversation_id,)).fetchone() is None:
        raise NotFound("no such conversation", id=r.conversation_id)
    if r.state in LIVE_REQUEST_STATES:
        live = _live_request_id(conn, r)
        if live is not None:
            raise Conflict(f"a {r.kind} request is already live in this conversation", request_id=live)
    return _insert(conn, "requests", r.id, s.request_row(r), s.request_from)


def _update_request(conn: Conn, r: Request, expected_state: str) -> Request:
    row = conn.execute("SELECT state FROM requests WHERE id = ?", (r.id,)).fetchone()
    if row is None:
        raise NotFound("no such request", id=r.id)
    if row[0] != expected_state:
        raise Conflict(
            f"the request is {row[0]}, not {expected_state}", state=row[0], expected_state=expected_state
        )
    if r.state in LIVE_REQUEST_STATES and (live := _live_request_id(conn, r)) is not None:
        raise Conflict(f"a {r.kind} request is already live in this conversation", request_id=live)
    return _replace(conn, "requests", s.request_row(r), s.request_from)


def _list_requests(conn: Conn, conversation_id: str, live_only: bool) -> list[Request]:
    sql = "SELECT * FROM requests WHERE conversation_id = ?"
    if live_only:
        sql += f" AND state IN {_LIVE_SQL}"
    sql += " ORDER BY created_at, rowid"
    return [s.request_from(r) for r in conn.execute(sql, (conversation_id,))]


def _list_due_requests(conn: Conn, now: datetime) -> list[Request]:
    rows = conn.execute(
        "SELECT * FROM requests WHERE state = 'pending' AND expires_at IS NOT NULL AND expires_at <= ? "
        "ORDER BY expires_at, rowid",
        (s.ts(now),),
    )
    return [s.request_from(r) for r in rows]
