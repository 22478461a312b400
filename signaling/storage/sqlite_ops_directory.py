"""SQL operations of the SQLite store for the directory: teams, agents and presence.

Plain functions of a ``sqlite3`` connection, run in the store's writer inside a batch transaction
(see :mod:`signaling.storage.sqlite_ops`). Names and emails are unique case-insensitively, through
their folded ``*_key`` columns.
"""

from __future__ import annotations

from signaling.domain.errors import Conflict
from signaling.domain.models import Agent, Team
from signaling.storage import sqlite_rows as s
from signaling.storage.sqlite_ops import Conn, insert, list_all, replace

# -- teams and agents


def team_by_name(conn: Conn, name: str) -> Team | None:
    """The team of that name (case-insensitive), or None."""
    row = conn.execute("SELECT * FROM teams WHERE name_key = ?", (s.fold(name),)).fetchone()
    return None if row is None else s.team_from(row)


def _check_team_name(conn: Conn, team: Team) -> None:
    row = conn.execute(
        "SELECT id FROM teams WHERE name_key = ? AND id != ?", (s.fold(team.name), team.id)
    ).fetchone()
    if row is not None:
        raise Conflict(f"a team named {team.name!r} exists", field="name")


def create_team(conn: Conn, team: Team) -> Team:
    """Insert a team; ``Conflict`` on a taken name (case-insensitive) or id."""
    _check_team_name(conn, team)
    return insert(conn, "teams", team.id, s.team_row(team), s.team_from)


def update_team(conn: Conn, team: Team) -> Team:
    """Replace a team's fields; ``Conflict`` on a name taken by another team, ``NotFound``."""
    _check_team_name(conn, team)
    return replace(conn, "teams", s.team_row(team), s.team_from)


def agent_by_email(conn: Conn, email: str) -> Agent | None:
    """The agent with that email (case-insensitive), or None."""
    row = conn.execute("SELECT * FROM agents WHERE email_key = ?", (s.fold(email),)).fetchone()
    return None if row is None else s.agent_from(row)


def _check_agent_email(conn: Conn, agent: Agent) -> None:
    row = conn.execute(
        "SELECT id FROM agents WHERE email_key = ? AND id != ?", (s.fold(agent.email), agent.id)
    ).fetchone()
    if row is not None:
        raise Conflict("an agent with that email exists", field="email")


def create_agent(conn: Conn, agent: Agent) -> Agent:
    """Insert an agent; ``Conflict`` on a taken email (case-insensitive) or id."""
    _check_agent_email(conn, agent)
    return insert(conn, "agents", agent.id, s.agent_row(agent), s.agent_from)


def update_agent(conn: Conn, agent: Agent) -> Agent:
    """Replace an agent's fields; ``Conflict`` on an email taken by another agent, ``NotFound``."""
    _check_agent_email(conn, agent)
    return replace(conn, "agents", s.agent_row(agent), s.agent_from)


def list_agents(conn: Conn, team_id: str | None) -> list[Agent]:
    """Agents oldest first; with ``team_id``, only that team's members."""
    if team_id is None:
        return list_all(conn, "agents", s.agent_from)
    rows = conn.execute(
        "SELECT * FROM agents WHERE EXISTS (SELECT 1 FROM json_each(agents.team_ids) WHERE value = ?) "
        "ORDER BY created_at, rowid",
        (team_id,),
    )
    return [s.agent_from(r) for r in rows]


# -- presence


def _presence_count(conn: Conn, agent_id: str) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM presence WHERE agent_id = ?", (agent_id,)).fetchone()[0])


def presence_add(conn: Conn, agent_id: str, node_id: str, sid: str) -> int:
    """Record a socket; the agent's number of sockets on all nodes."""
    conn.execute(
        "INSERT OR IGNORE INTO presence (agent_id, node_id, sid) VALUES (?, ?, ?)", (agent_id, node_id, sid)
    )
    return _presence_count(conn, agent_id)


def presence_remove(conn: Conn, agent_id: str, node_id: str, sid: str) -> int:
    """Forget a socket; the agent's remaining number of sockets on all nodes."""
    conn.execute(
        "DELETE FROM presence WHERE agent_id = ? AND node_id = ? AND sid = ?", (agent_id, node_id, sid)
    )
    return _presence_count(conn, agent_id)


def presence_online(conn: Conn) -> set[str]:
    """Ids of agents with at least one socket."""
    return {r[0] for r in conn.execute("SELECT DISTINCT agent_id FROM presence")}


# -- node liveness: a heartbeat is a meta row ``node_alive:<node>`` holding its expiry (epoch seconds)

_ALIVE = "node_alive:"


def node_alive(conn: Conn, node_id: str, now: float) -> bool:
    """Whether ``node_id``'s heartbeat mark is valid at ``now``."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_ALIVE + node_id,)).fetchone()
    return row is not None and float(row[0]) > now


def node_heartbeat(conn: Conn, node_id: str, now: float, expires_at: float) -> bool:
    """Mark ``node_id`` alive until ``expires_at``; whether its previous mark was still valid at ``now``
    (read and renewed in the same transaction)."""
    was_alive = node_alive(conn, node_id, now)
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (_ALIVE + node_id, repr(expires_at)),
    )
    return was_alive


def dead_presence_nodes(conn: Conn, now: float) -> list[str]:
    """Nodes with presence entries and no heartbeat mark valid at ``now``."""
    nodes = [r[0] for r in conn.execute("SELECT DISTINCT node_id FROM presence ORDER BY node_id")]
    return [n for n in nodes if not node_alive(conn, n, now)]


def clear_node_presence(conn: Conn, node_id: str, now: float) -> list[str]:
    """Forget a dead node's sockets (nothing when it is alive at ``now``); the agents left with none."""
    if node_alive(conn, node_id, now):
        return []
    agents = [
        r[0] for r in conn.execute("SELECT DISTINCT agent_id FROM presence WHERE node_id = ?", (node_id,))
    ]
    conn.execute("DELETE FROM presence WHERE node_id = ?", (node_id,))
    conn.execute("DELETE FROM meta WHERE key = ?", (_ALIVE + node_id,))
    return sorted(a for a in agents if _presence_count(conn, a) == 0)
