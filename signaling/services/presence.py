"""Agent presence: online when at least one socket is connected (on any node) and not set away."""

from __future__ import annotations

from typing import Any

from signaling.domain.errors import Invalid
from signaling.domain.models import Agent
from signaling.services.conversations import ConversationService
from signaling.services.fanout import Audience, Fanout
from signaling.storage.base import Store


class PresenceService:
    def __init__(
        self, store: Store, fanout: Fanout, conversations: ConversationService, node_id: str
    ) -> None:
        self.store = store
        self.fanout = fanout
        self.conversations = conversations
        self.node_id = node_id
        self._local: dict[str, tuple[Agent, set[str]]] = {}
        """The agents' sockets connected to this node (agent id -> the agent, its sids here)."""
        self._lapsed = False
        """This node's mark was found lapsed and its sockets are not yet registered again."""

    async def connected(self, agent: Agent, sid: str) -> None:
        self._local.setdefault(agent.id, (agent, set()))[1].add(sid)
        count = await self.store.presence_add(agent.id, self.node_id, sid)
        if count == 1:
            await self._announce(agent, online=True)
            await self.conversations.drain_queue(list(agent.team_ids))

    async def disconnected(self, agent: Agent, sid: str) -> None:
        local = self._local.get(agent.id)
        if local is not None:
            local[1].discard(sid)
            if not local[1]:
                del self._local[agent.id]
        count = await self.store.presence_remove(agent.id, self.node_id, sid)
        if count == 0:
            await self._announce(agent, online=False)

    async def heartbeat(self, ttl_s: float) -> None:
        """Mark this node alive for ``ttl_s`` seconds (called every third of it, and once before the node
        accepts connections, so that no sweeper takes a starting node for a dead one).

        When this node's mark had lapsed (the node was cut off from the store, or frozen, for longer than
        ``ttl_s``), another node may have swept its sockets and announced its agents offline although
        they are still connected here: their sockets are registered again, and each agent who thereby
        comes back online is announced (and gets the queue's waiting conversations), as a first connect
        would. The store checks and renews the mark in one step (a sweep cannot fall between them), and
        a registration that fails is tried again at the next heartbeat."""
        if not await self.store.node_heartbeat(self.node_id, ttl_s):
            self._lapsed = True
        if self._lapsed:
            if self._local:
                await self._register_again()
            self._lapsed = False

    async def _register_again(self) -> None:
        online = await self.store.presence_online()
        for agent, sids in list(self._local.values()):
            for sid in list(sids):
                if sid in sids:  # still connected (a disconnect meanwhile removed it from the live set)
                    await self.store.presence_add(agent.id, self.node_id, sid)
            if agent.id not in online:
                await self._announce(agent, online=True)
                await self.conversations.drain_queue(list(agent.team_ids))

    async def sweep_dead_nodes(self) -> list[str]:
        """Forget the sockets of every node whose heartbeat lapsed (killed, machine lost: its disconnect
        handlers never ran) and announce each agent that thereby went offline, as a last disconnect does.
        The store clears a node atomically and only while it is dead, so two sweeping nodes never announce
        the same agent twice and a live node is never touched. Returns the agents announced offline."""
        offline: list[str] = []
        for node_id in await self.store.dead_presence_nodes():
            if node_id == self.node_id:
                continue  # this node is running; its own heartbeat is merely late
            for agent_id in await self.store.clear_node_presence(node_id):
                agent = await self.store.get_agent(agent_id)
                if agent is not None:
                    await self._announce(agent, online=False)
                offline.append(agent_id)
        return offline

    async def _announce(self, agent: Agent, online: bool) -> None:
        current = await self.store.get_agent(agent.id) or agent
        status = self.effective(current, online)
        payload = {"agent_id": agent.id, "status": status}
        await self.fanout.emit("agent.presence", payload, [Audience.team(t) for t in agent.team_ids])

    @staticmethod
    def effective(agent: Agent, online: bool) -> str:
        if not online:
            return "offline"
        return "away" if agent.status == "away" else "online"

    async def set_status(self, agent: Agent, status: str) -> Agent:
        """The agent's own choice: ``online`` (available) or ``away`` (no auto-assignment)."""
        if status not in ("online", "away"):
            raise Invalid("status must be online or away", field="status")
        current = await self.store.get_agent(agent.id) or agent
        current.status = status
        current = await self.store.update_agent(current)
        await self._announce(current, online=True)
        if status == "online":
            await self.conversations.drain_queue(list(current.team_ids))
        return current

    async def list_agents(self) -> list[dict[str, Any]]:
        online = await self.store.presence_online()
        out = []
        for agent in await self.store.list_agents():
            wire = agent.to_wire()
            wire["status"] = self.effective(agent, agent.id in online)
            out.append(wire)
        return out
