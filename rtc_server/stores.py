"""Pick the store a URL names: ``sqlite:///path`` (embedded, default) or ``redis://host:port/db``."""

from __future__ import annotations

from rtc_server.config import Config
from signaling.storage.base import Store


def make_store(config: Config) -> Store:
    url = config.store_url
    if url.startswith("sqlite:///"):
        from signaling.storage.sqlite import WRITERS, SqliteStore

        if config.sqlite_writer not in WRITERS:
            raise SystemExit(f"unsupported SQLite writer {config.sqlite_writer!r}: use {' or '.join(WRITERS)}")
        return SqliteStore(url[len("sqlite:///"):], node_id=config.node_id or "local",
                           writer=config.sqlite_writer)
    if url.startswith("redis://"):
        from signaling.storage.redis_store import RedisStore

        return RedisStore(url, node_id=config.node_id or "local",
                          max_connections=config.redis_max_connections)
    raise SystemExit(f"unsupported store URL {url!r}: use sqlite:///path or redis://host:port/db")
