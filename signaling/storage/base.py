"""The store port: everything the services persist, behind one async interface.

Two implementations pass one contract suite (``tests/contract``): ``sqlite.SqliteStore`` (embedded,
default) and ``redis_store.RedisStore`` (several nodes). Rules every implementation keeps:

- A write returns only after it is durable (committed); an ack on the wire follows the return.
- ``append_message`` assigns ``seq`` atomically (last_seq + 1) and is idempotent on
  ``(conversation_id, client_id)``: the second call returns the first stored message, ``created=False``.
- ``update_conversation(..., expected_assignee=...)`` and ``update_request(..., expected_state=...)``
  are compare-and-set: when the stored value differs, nothing changes and ``Conflict`` is raised.
- ``create_request`` refuses (``Conflict``) a second live request (pending, accepted, active) of the same
  kind in one conversation, atomically.
- Records come back as fresh objects: mutating one never changes the store.
- Errors: ``create_*`` with a taken id -> ``Conflict``; ``update_*`` of a missing record ->
  ``NotFound``; ``create_request`` / ``create_attachment`` without the conversation -> ``NotFound``;
  ``update_team`` renaming to a taken name -> ``Conflict``; ``close()`` may be called twice; calls after
  close -> ``Unavailable``.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

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


class _Any:
    """Marker: "do not check this field" for compare-and-set arguments."""

    def __repr__(self) -> str:
        return "ANY"


ANY: _Any = _Any()
AnyMarker = _Any
"""The type of :data:`ANY`, for implementations' type hints."""

LIVE_REQUEST_STATES = ("pending", "accepted", "active")


@dataclass(slots=True)
class AppendResult:
    message: Message
    """The stored message (with its ``seq``), or the one stored earlier with the same client_id."""
    created: bool
    """False when ``client_id`` had been stored already (nothing was written)."""
    conversation: Conversation
    """The conversation after the append (``last_seq``, ``unread``, preview updated)."""


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Who may append to a conversation, checked by ``append_message`` atomically with the write: the
    conversation's team is one of ``team_ids`` or it is assigned to ``assignee_id``; ``everyone`` lets any
    conversation through (an admin). A refusal is ``NotFound("no such conversation")``, as for a
    conversation that does not exist (existence is not leaked)."""

    team_ids: frozenset[str] = frozenset()
    assignee_id: str | None = None
    everyone: bool = False

    def allows(self, team_id: str | None, assignee_id: str | None) -> bool:
        """Whether a conversation of ``team_id`` assigned to ``assignee_id`` passes."""
        return (
            self.everyone
            or (team_id is not None and team_id in self.team_ids)
            or (self.assignee_id is not None and assignee_id == self.assignee_id)
        )


@dataclass(frozen=True, slots=True)
class ConversationCounts:
    """What ``count_conversations`` returns: how many conversations match and their summed ``unread``."""

    count: int
    unread: int


@dataclass(slots=True)
class ConversationQuery:
    """Filters of ``list_conversations``; every field given must match.

    Ordered newest activity first: ``updated_at`` descending, then ``id`` descending. ``before`` is the
    cursor ``(updated_at, id)`` of the last row of the previous page: rows strictly after it in that order.
    ``before[0]`` is the row's exact ``updated_at`` (full precision: never round-trip it through ``iso()``).
    """

    team_ids: list[str] | None = None
    status: str | None = None
    assignee_id: str | None | _Any = ANY
    """A specific agent, ``None`` for unassigned only, ``ANY`` for no filter."""
    visitor_id: str | None = None
    before: tuple[datetime, str] | None = None
    limit: int = 50


class Store(Protocol):
    """The persistence port (see module docstring for the rules)."""

    # -- life cycle ---------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, run migrations, and clear presence left by this node's previous run."""

    async def close(self) -> None:
        """Flush pending writes and release every resource."""

    async def ping(self) -> bool:
        """True when the store answers a trivial query now (for ``/readyz``)."""

    def lock(self, name: str) -> AbstractAsyncContextManager[None]:
        """A mutual-exclusion lock named ``name``, held while the ``async with`` block runs, shared by
        every node using this store (SQLite: this process; Redis: every node). For short critical
        sections such as "choose an agent and claim the conversation". Not re-entrant."""

    # -- key/value meta (demo seeding flag, schema facts) --------------------------------------------
    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...

    # -- teams ----------------------------------------------------------------------------------------
    async def create_team(self, team: Team) -> Team:
        """``Conflict`` when a team of that name exists (names compare case-insensitively)."""

    async def get_team(self, team_id: str) -> Team | None: ...

    async def get_team_by_name(self, name: str) -> Team | None: ...

    async def list_teams(self) -> list[Team]:
        """Oldest first: the first one is the default team."""

    async def update_team(self, team: Team) -> Team: ...

    # -- agents ---------------------------------------------------------------------------------------
    async def create_agent(self, agent: Agent) -> Agent:
        """``Conflict`` when an agent with that email exists (emails compare case-insensitively)."""

    async def get_agent(self, agent_id: str) -> Agent | None: ...

    async def get_agent_by_email(self, email: str) -> Agent | None: ...

    async def get_agents(self, agent_ids: list[str]) -> dict[str, Agent]:
        """The agents of those ids that exist, by id (one round trip; unknown ids are left out)."""

    async def list_agents(self, team_id: str | None = None) -> list[Agent]:
        """Oldest first; with ``team_id``, only that team's members."""

    async def update_agent(self, agent: Agent) -> Agent:
        """Replace every field of the stored agent (email uniqueness still holds)."""

    # -- presence (which agents have a live socket, on any node) --------------------------------------
    async def presence_add(self, agent_id: str, node_id: str, sid: str) -> int:
        """Record a connected socket (the same triple twice counts once); returns the agent's number of
        sockets on all nodes."""

    async def presence_remove(self, agent_id: str, node_id: str, sid: str) -> int:
        """Forget a socket; returns the agent's remaining number of sockets on all nodes."""

    async def presence_online(self) -> set[str]:
        """Ids of agents with at least one live socket on any node."""

    # -- node liveness (a node that dies without closing its sockets leaves presence behind) ----------
    async def node_heartbeat(self, node_id: str, ttl_s: float) -> bool:
        """Mark ``node_id`` alive for the next ``ttl_s`` seconds. Every node calls this every few seconds
        (a third of the TTL); a node whose mark lapses counts as dead and its presence gets swept.
        Returns whether the previous mark was still live, checked and renewed atomically (False on a
        node's first heartbeat and after a lapse, when a sweeper may have cleared its sockets)."""

    async def node_alive(self, node_id: str) -> bool:
        """Whether ``node_id``'s heartbeat mark is live (other node-scoped state, such as media sessions,
        is judged by it too)."""

    async def dead_presence_nodes(self) -> list[str]:
        """Ids of nodes that still have presence entries but no live heartbeat mark (died without running
        their disconnect handlers). A node that never sent a heartbeat counts as dead."""

    async def clear_node_presence(self, node_id: str) -> list[str]:
        """Atomically forget every socket of ``node_id`` if, and only if, it has no live heartbeat mark;
        returns the ids of the agents that thereby have no socket left on any node (each once: a second
        caller racing the first gets an empty list). A live node's entries are never touched."""

    # -- visitors -------------------------------------------------------------------------------------
    async def create_visitor(self, visitor: Visitor) -> Visitor: ...

    async def get_visitor(self, visitor_id: str) -> Visitor | None: ...

    async def get_visitors(self, visitor_ids: list[str]) -> dict[str, Visitor]:
        """The visitors of those ids that exist, by id (one round trip; unknown ids are left out)."""

    async def update_visitor(self, visitor: Visitor) -> Visitor: ...

    # -- conversations --------------------------------------------------------------------------------
    async def create_conversation(self, conversation: Conversation) -> Conversation: ...

    async def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    async def update_conversation(
        self, conversation: Conversation, *, expected_assignee: str | None | _Any = ANY
    ) -> Conversation:
        """Write ``status``, ``assignee_id``, ``team_id``, ``updated_at``, ``language``, ``page_url``.

        With ``expected_assignee``, compare-and-set: ``Conflict`` unless the stored assignee equals it.
        Counters (``last_seq``, ``unread``, receipts, preview) are not written here.
        """

    async def list_conversations(self, query: ConversationQuery) -> list[Conversation]: ...

    async def count_conversations(self, query: ConversationQuery) -> ConversationCounts:
        """Over the rows ``list_conversations(query)`` would return (``limit`` and ``before`` included): how
        many, and the sum of their ``unread``, without building the rows."""

    async def count_open_assigned(self, agent_ids: list[str]) -> dict[str, int]:
        """For each agent id: how many ``open`` conversations are assigned to it (0 included)."""

    async def search_conversations(
        self, team_ids: list[str], q: str, *, include_notes: bool, limit: int = 20
    ) -> list[Conversation]:
        """Conversations of those teams whose messages (notes only with ``include_notes``), visitor name
        or visitor email contain ``q`` (case-insensitive), newest activity first; an empty ``q`` or
        ``team_ids`` gives ``[]``."""

    # -- messages -------------------------------------------------------------------------------------
    async def append_message(self, message: Message, access: AccessRule | None = None) -> AppendResult:
        """Store ``message`` with the next ``seq`` (the given ``seq`` is ignored), atomically with the
        conversation's counters: ``last_seq``, ``updated_at``; ``unread`` + 1 for a customer message;
        ``last_message_at`` / ``last_message_preview`` for any kind but ``note``. Idempotent on
        ``(conversation_id, client_id)`` (an empty ``client_id`` is never deduplicated); the conversation's
        ``updated_at`` becomes max(stored, ``message.created_at``). ``NotFound`` if the conversation does
        not exist. With ``access``, the conversation must also pass it (checked first, replays included,
        in the same transaction as the write): otherwise ``NotFound("no such conversation")`` without
        details, whether it is missing or refused, and nothing is written."""

    async def list_messages(
        self, conversation_id: str, *, after_seq: int = 0, include_notes: bool = True, limit: int = 1000
    ) -> list[Message]:
        """Messages with ``seq > after_seq``, ascending by ``seq``, at most ``limit``."""

    async def mark_receipt(
        self, conversation_id: str, side: str, *, delivered_seq: int = 0, read_seq: int = 0
    ) -> Conversation:
        """Raise the ``side`` (``customer`` or ``agent``) delivered/read marks to at least the given
        values, capped at ``last_seq`` (never lowers them; read implies delivered; ``Invalid`` for another
        side; ``NotFound`` without the conversation). For ``agent`` reads, ``unread`` becomes the
        number of customer messages with ``seq`` above the new read mark."""

    # -- requests -------------------------------------------------------------------------------------
    async def create_request(self, request: Request) -> Request:
        """``Conflict`` when a live request of the same kind exists in the conversation."""

    async def get_request(self, request_id: str) -> Request | None: ...

    async def update_request(self, request: Request, *, expected_state: str) -> Request:
        """Compare-and-set on ``state``: writes every field, or raises ``Conflict`` (nothing written); also
        ``Conflict`` if the new state is live while another live request of that kind exists."""

    async def list_requests(self, conversation_id: str, *, live_only: bool = False) -> list[Request]:
        """Oldest first."""

    async def list_due_requests(self, now: datetime) -> list[Request]:
        """``pending`` requests whose ``expires_at`` is at or before ``now``."""

    # -- text blocks, articles, flows -----------------------------------------------------------------
    async def create_textblock(self, block: TextBlock) -> TextBlock: ...

    async def get_textblock(self, block_id: str) -> TextBlock | None: ...

    async def list_textblocks(self) -> list[TextBlock]: ...

    async def update_textblock(self, block: TextBlock) -> TextBlock: ...

    async def delete_textblock(self, block_id: str) -> bool: ...

    async def create_article(self, article: Article) -> Article: ...

    async def get_article(self, article_id: str) -> Article | None: ...

    async def list_articles(self) -> list[Article]: ...

    async def update_article(self, article: Article) -> Article: ...

    async def delete_article(self, article_id: str) -> bool: ...

    async def create_flow(self, flow: Flow) -> Flow: ...

    async def get_flow(self, flow_id: str) -> Flow | None: ...

    async def list_flows(self) -> list[Flow]: ...

    async def update_flow(self, flow: Flow) -> Flow: ...

    async def delete_flow(self, flow_id: str) -> bool: ...

    # -- attachments ----------------------------------------------------------------------------------
    async def create_attachment(self, attachment: Attachment) -> Attachment: ...

    async def get_attachment(self, attachment_id: str) -> Attachment | None: ...
