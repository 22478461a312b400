"""SQLite schema v3 (white-box): a data dir written by v2 is upgraded on open. The visitor index no
longer holds ``updated_at`` (one index fewer rewritten per message); a visitor's conversations still
list newest activity first, and nothing stored before the upgrade is lost."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from signaling.domain.models import Conversation
from signaling.storage import sqlite_rows as s
from signaling.storage.base import ConversationQuery
from signaling.storage.sqlite import SqliteStore
from signaling.storage.sqlite_schema import MIGRATIONS

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _write_v2_file(path: Path) -> None:
    """A file as v2 code left it: migrations 1 and 2, a team's conversations of two visitors."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        for version, statements in MIGRATIONS:
            if version > 2:
                break
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, 'v2 code')", (version,))
        for i, visitor in enumerate(["vi_a", "vi_b", "vi_a", "vi_a"]):
            at = T0 + timedelta(minutes=(7 * i) % 5)
            row = s.conversation_row(
                Conversation(id=f"cv_{i}", visitor_id=visitor, team_id="tm_1", created_at=at, updated_at=at)
            )
            conn.execute(f"INSERT INTO conversations VALUES ({', '.join('?' * len(row))})", row)
    finally:
        conn.close()


async def test_v2_file_is_upgraded_and_lists_the_same(tmp_path: Path) -> None:
    """Opening a v2 file records v3, rebuilds the visitor index on visitor_id alone, and lists a visitor's
    conversations newest first as before (the sort now happens after the index lookup)."""
    path = tmp_path / "s.sqlite3"
    _write_v2_file(path)
    store = SqliteStore(path)
    await store.open()
    try:
        listed = await store.list_conversations(ConversationQuery(visitor_id="vi_a"))
        assert [c.id for c in listed] == ["cv_2", "cv_3", "cv_0"]  # minutes 4, 1, 0
        assert [c.id for c in await store.list_conversations(ConversationQuery(visitor_id="vi_b"))] == [
            "cv_1"
        ]
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
        columns = [r[2] for r in conn.execute("PRAGMA index_info(conversations_visitor)")]
    assert versions == [1, 2, 3]
    assert columns == ["visitor_id"]
