"""The Redis store's directory and catalog: teams, agents, presence, visitors, text blocks, articles,
flows and attachments (plain records through :class:`~signaling.storage.redis_core.RedisCore`'s
kind helpers, presence through its scripts)."""

from __future__ import annotations

from typing import Any

from signaling.domain.models import Agent, Article, Attachment, Flow, Team, TextBlock, Visitor
from signaling.storage.redis_codec import fold
from signaling.storage.redis_core import (
    _AGENT,
    _ARTICLE,
    _ATTACHMENT,
    _FLOW,
    _TEAM,
    _TEXTBLOCK,
    _VISITOR,
    RedisCore,
)

US = "\x1f"
"""Separates node and sid (and agent and sid) in presence members."""


class RedisDirectory(RedisCore):
    """Teams, agents, presence, visitors, text blocks, articles, flows and attachments."""

    # -- teams ----------------------------------------------------------------------------------------

    async def create_team(self, team: Team) -> Team:
        """``Conflict`` when a team of that name exists (case-insensitive)."""
        return await self._put(_TEAM, team, "create")

    async def get_team(self, team_id: str) -> Team | None:
        """The team, or None."""
        return await self._get(_TEAM, team_id)

    async def get_team_by_name(self, name: str) -> Team | None:
        """The team of that name (case-insensitive), or None."""
        team_id = await self._read(lambda c: c.hget(self._k("teams", "unique"), fold(name)))
        return await self.get_team(team_id) if team_id else None

    async def list_teams(self) -> list[Team]:
        """Oldest first: the first one is the default team."""
        return await self._list(_TEAM)

    async def update_team(self, team: Team) -> Team:
        """Replace the team's fields; ``Conflict`` on a name taken by another team, ``NotFound``."""
        return await self._put(_TEAM, team, "replace")

    # -- agents ---------------------------------------------------------------------------------------

    async def create_agent(self, agent: Agent) -> Agent:
        """``Conflict`` when an agent with that email exists (case-insensitive)."""
        return await self._put(_AGENT, agent, "create")

    async def get_agent(self, agent_id: str) -> Agent | None:
        """The agent, or None."""
        return await self._get(_AGENT, agent_id)

    async def get_agents(self, agent_ids: list[str]) -> dict[str, Agent]:
        """The agents of those ids that exist, by id (one pipeline)."""
        agents: list[Agent] = await self._get_many(_AGENT, list(dict.fromkeys(agent_ids)))
        return {a.id: a for a in agents}

    async def get_agent_by_email(self, email: str) -> Agent | None:
        """The agent with that email (case-insensitive), or None."""
        agent_id = await self._read(lambda c: c.hget(self._k("agents", "unique"), fold(email)))
        return await self.get_agent(agent_id) if agent_id else None

    async def list_agents(self, team_id: str | None = None) -> list[Agent]:
        """Oldest first; with ``team_id``, only that team's members."""
        agents: list[Agent] = await self._list(_AGENT)
        if team_id is None:
            return agents
        return [a for a in agents if team_id in a.team_ids]

    async def update_agent(self, agent: Agent) -> Agent:
        """Replace every field; ``Conflict`` on an email taken by another agent, ``NotFound``."""
        return await self._put(_AGENT, agent, "replace")

    # -- presence -------------------------------------------------------------------------------------

    def _presence_keys(self, agent_id: str, node_id: str, sid: str) -> tuple[list[str], list[str]]:
        keys = [self._k("pres", agent_id), self._k("pres", "node", node_id), self._k("online")]
        return keys, [node_id + US + sid, agent_id + US + sid, agent_id]

    async def presence_add(self, agent_id: str, node_id: str, sid: str) -> int:
        """Record a socket; the agent's number of sockets on all nodes."""
        keys, args = self._presence_keys(agent_id, node_id, sid)
        return int(await self._script("PRESENCE_ADD", keys, args, idempotent=True))

    async def presence_remove(self, agent_id: str, node_id: str, sid: str) -> int:
        """Forget a socket; the agent's remaining number of sockets on all nodes."""
        keys, args = self._presence_keys(agent_id, node_id, sid)
        return int(await self._script("PRESENCE_REMOVE", keys, args, idempotent=True))

    async def presence_online(self) -> set[str]:
        """Ids of agents with at least one socket on any node."""
        members = await self._read(lambda c: c.smembers(self._k("online")))
        return set(members)

    # -- node liveness --------------------------------------------------------------------------------

    async def node_heartbeat(self, node_id: str, ttl_s: float) -> bool:
        """Set ``node:alive:<node>`` with a ``ttl_s`` expiry; whether the key still existed (one ``SET ..
        GET``, so no sweep can fall between the check and the renewal)."""
        key, ms = self._k("node", "alive", node_id), max(1, int(ttl_s * 1000))
        return await self._call(lambda c: c.set(key, "1", px=ms, get=True), idempotent=True) is not None

    async def node_alive(self, node_id: str) -> bool:
        """Whether ``node:alive:<node>`` exists."""
        key = self._k("node", "alive", node_id)
        return bool(await self._read(lambda c: c.exists(key)))

    async def dead_presence_nodes(self) -> list[str]:
        """Nodes with a ``pres:node:<node>`` set and no ``node:alive:<node>`` key (a SCAN of the sets)."""
        head = self._k("pres", "node", "")

        async def walk(c: Any) -> list[str]:
            nodes = sorted({k[len(head) :] async for k in c.scan_iter(match=head + "*", count=500)})
            if not nodes:
                return []
            alive = await c.mget([self._k("node", "alive", n) for n in nodes])
            return [n for n, mark in zip(nodes, alive, strict=True) if mark is None]

        return await self._read(walk)

    async def clear_node_presence(self, node_id: str) -> list[str]:
        """Run ``PRESENCE_DROP_NODE`` for a dead node: nothing when the node is alive, else its sockets are
        forgotten and the agents it took offline returned (each once across racing sweepers)."""
        keys = [self._k("node", "alive", node_id), self._k("pres", "node", node_id), self._k("online")]
        result = await self._script("PRESENCE_DROP_NODE", keys, [self.prefix, node_id, "1"], idempotent=True)
        return sorted(str(a) for a in result)

    # -- visitors -------------------------------------------------------------------------------------

    async def create_visitor(self, visitor: Visitor) -> Visitor:
        """Store a new visitor (``Conflict`` on a taken id)."""
        return await self._put(_VISITOR, visitor, "create")

    async def get_visitor(self, visitor_id: str) -> Visitor | None:
        """The visitor, or None."""
        return await self._get(_VISITOR, visitor_id)

    async def get_visitors(self, visitor_ids: list[str]) -> dict[str, Visitor]:
        """The visitors of those ids that exist, by id (one pipeline)."""
        visitors: list[Visitor] = await self._get_many(_VISITOR, list(dict.fromkeys(visitor_ids)))
        return {v.id: v for v in visitors}

    async def update_visitor(self, visitor: Visitor) -> Visitor:
        """Replace the visitor's fields (``NotFound``)."""
        return await self._put(_VISITOR, visitor, "replace")

    # -- text blocks, articles, flows -----------------------------------------------------------------

    async def create_textblock(self, block: TextBlock) -> TextBlock:
        """Store a new text block."""
        return await self._put(_TEXTBLOCK, block, "create")

    async def get_textblock(self, block_id: str) -> TextBlock | None:
        """The text block, or None."""
        return await self._get(_TEXTBLOCK, block_id)

    async def list_textblocks(self) -> list[TextBlock]:
        """Every text block, oldest first."""
        return await self._list(_TEXTBLOCK)

    async def update_textblock(self, block: TextBlock) -> TextBlock:
        """Replace the text block's fields (``NotFound``)."""
        return await self._put(_TEXTBLOCK, block, "replace")

    async def delete_textblock(self, block_id: str) -> bool:
        """True when it existed."""
        return await self._delete(_TEXTBLOCK, block_id)

    async def create_article(self, article: Article) -> Article:
        """Store a new article."""
        return await self._put(_ARTICLE, article, "create")

    async def get_article(self, article_id: str) -> Article | None:
        """The article, or None."""
        return await self._get(_ARTICLE, article_id)

    async def list_articles(self) -> list[Article]:
        """Every article, oldest first."""
        return await self._list(_ARTICLE)

    async def update_article(self, article: Article) -> Article:
        """Replace the article's fields (``NotFound``)."""
        return await self._put(_ARTICLE, article, "replace")

    async def delete_article(self, article_id: str) -> bool:
        """True when it existed."""
        return await self._delete(_ARTICLE, article_id)

    async def create_flow(self, flow: Flow) -> Flow:
        """Store a new flow."""
        return await self._put(_FLOW, flow, "create")

    async def get_flow(self, flow_id: str) -> Flow | None:
        """The flow, or None."""
        return await self._get(_FLOW, flow_id)

    async def list_flows(self) -> list[Flow]:
        """Every flow, oldest first."""
        return await self._list(_FLOW)

    async def update_flow(self, flow: Flow) -> Flow:
        """Replace the flow's fields (``NotFound``)."""
        return await self._put(_FLOW, flow, "replace")

    async def delete_flow(self, flow_id: str) -> bool:
        """True when it existed."""
        return await self._delete(_FLOW, flow_id)

    # -- attachments ----------------------------------------------------------------------------------

    async def create_attachment(self, attachment: Attachment) -> Attachment:
        """Store a new attachment's metadata (``NotFound`` without the conversation)."""
        return await self._put(_ATTACHMENT, attachment, "create")

    async def get_attachment(self, attachment_id: str) -> Attachment | None:
        """The attachment, or None."""
        return await self._get(_ATTACHMENT, attachment_id)
