"""The SQLite schema: versioned migrations (the row mapping is :mod:`~signaling.storage.sqlite_rows`).

Migrations are numbered; ``schema_version`` holds one row per applied version. Each migration is a
tuple of single statements (not a script) so that it runs inside one transaction together with its
``schema_version`` row: a crash mid-migration leaves the previous version intact.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from signaling.storage.sqlite_rows import ts

#: (version, statements). Append new versions; never edit an applied one.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            """CREATE TABLE teams (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                name_key TEXT NOT NULL UNIQUE,
                routing TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE agents (
                id TEXT PRIMARY KEY,
                email TEXT NOT NULL,
                email_key TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                password_hash TEXT NOT NULL,
                team_ids TEXT NOT NULL,
                is_admin INTEGER NOT NULL,
                capacity INTEGER NOT NULL,
                locale TEXT NOT NULL,
                status TEXT NOT NULL,
                token_version INTEGER NOT NULL,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE presence (
                agent_id TEXT NOT NULL,
                node_id TEXT NOT NULL,
                sid TEXT NOT NULL,
                PRIMARY KEY (agent_id, node_id, sid)
            ) WITHOUT ROWID""",
            "CREATE INDEX presence_node ON presence (node_id)",
            """CREATE TABLE visitors (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                email TEXT NOT NULL,
                user_id TEXT NOT NULL,
                verified INTEGER NOT NULL,
                locale TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE conversations (
                id TEXT PRIMARY KEY,
                visitor_id TEXT NOT NULL,
                team_id TEXT NOT NULL,
                status TEXT NOT NULL,
                assignee_id TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                last_seq INTEGER NOT NULL,
                unread INTEGER NOT NULL,
                page_url TEXT NOT NULL,
                language TEXT NOT NULL,
                customer_delivered_seq INTEGER NOT NULL,
                customer_read_seq INTEGER NOT NULL,
                agent_delivered_seq INTEGER NOT NULL,
                agent_read_seq INTEGER NOT NULL,
                last_message_at TEXT,
                last_message_preview TEXT NOT NULL
            )""",
            "CREATE INDEX conversations_activity ON conversations (updated_at DESC, id DESC)",
            "CREATE INDEX conversations_team ON conversations (team_id, status, updated_at DESC, id DESC)",
            "CREATE INDEX conversations_assignee ON conversations (assignee_id, status)",
            "CREATE INDEX conversations_visitor ON conversations (visitor_id, updated_at DESC)",
            # client_id is NULL when the message has none (server-written), so UNIQUE ignores those rows.
            """CREATE TABLE messages (
                id TEXT PRIMARY KEY,
                conversation_id TEXT NOT NULL REFERENCES conversations (id),
                seq INTEGER NOT NULL,
                client_id TEXT,
                author_kind TEXT NOT NULL,
                author_id TEXT NOT NULL,
                author_name TEXT NOT NULL,
                kind TEXT NOT NULL,
                body TEXT NOT NULL,
                data TEXT NOT NULL,
                created_at TEXT NOT NULL,
                UNIQUE (conversation_id, seq),
                UNIQUE (conversation_id, client_id)
            )""",
            """CREATE TABLE requests (
                id TEXT PRIMARY KEY,
                conversation_id TEXT NOT NULL REFERENCES conversations (id),
                kind TEXT NOT NULL,
                state TEXT NOT NULL,
                requested_by TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                expires_at TEXT,
                reason TEXT,
                accepted_at TEXT,
                active_at TEXT,
                ended_at TEXT
            )""",
            "CREATE INDEX requests_conversation ON requests (conversation_id, created_at)",
            # The backstop of "one live request per kind and conversation".
            """CREATE UNIQUE INDEX requests_live ON requests (conversation_id, kind)
                WHERE state IN ('pending', 'accepted', 'active')""",
            "CREATE INDEX requests_due ON requests (expires_at) WHERE state = 'pending'",
            """CREATE TABLE textblocks (
                id TEXT PRIMARY KEY,
                shortcut TEXT NOT NULL,
                title TEXT NOT NULL,
                body TEXT NOT NULL,
                language TEXT NOT NULL,
                team_id TEXT,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE articles (
                id TEXT PRIMARY KEY,
                title TEXT NOT NULL,
                summary TEXT NOT NULL,
                url TEXT NOT NULL,
                body TEXT NOT NULL,
                language TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE flows (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                steps TEXT NOT NULL,
                language TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE attachments (
                id TEXT PRIMARY KEY,
                conversation_id TEXT NOT NULL REFERENCES conversations (id),
                uploader_kind TEXT NOT NULL,
                uploader_id TEXT NOT NULL,
                name TEXT NOT NULL,
                mime TEXT NOT NULL,
                size INTEGER NOT NULL,
                storage_name TEXT NOT NULL,
                kind TEXT NOT NULL,
                has_thumbnail INTEGER NOT NULL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX attachments_conversation ON attachments (conversation_id)",
        ),
    ),
    (
        2,
        ("ALTER TABLE requests ADD COLUMN record INTEGER NOT NULL DEFAULT 0",),
    ),
    (
        3,
        # Every message moves its conversation's updated_at, so every index holding updated_at is
        # rewritten per message. A visitor has a handful of conversations: sorting them costs nothing,
        # so the visitor index no longer carries updated_at (its query sorted part of the order anyway).
        (
            "DROP INDEX conversations_visitor",
            "CREATE INDEX conversations_visitor ON conversations (visitor_id)",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1][0]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the stored version, each in its own transaction.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Returns the version now stored.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
    if current > LATEST_VERSION:
        raise RuntimeError(f"database schema v{current} is newer than this code (v{LATEST_VERSION})")
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, ts(datetime.now(UTC))),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = version
    return int(current)
