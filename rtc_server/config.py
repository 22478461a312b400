"""One frozen configuration: defaults, then the environment (``RTC_*``), then command-line flags.

Nothing else in the project reads ``os.environ``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "RTC_"


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "./data"
    secret: str = ""
    """Signs tokens and verifies ``user_hash``. Empty: a random one is created and kept in the data dir."""
    store: str = ""
    """``sqlite:///path`` (default: ``<data_dir>/rtc.sqlite3``) or ``redis://host:port/db``."""
    sqlite_writer: str = "process"
    """Where the SQLite store's connection and group commit run (``RTC_SQLITE_WRITER``): ``process``, a
    child process of their own, beside the event loop; ``thread``, a thread of the server's process
    (one process fewer; the store's Python then takes turns with the event loop's)."""
    log_level: str = "info"
    log_json: bool = False
    demo: bool = False
    node_id: str = ""
    """This node's name on a shared store; empty: random at start."""
    request_ttl_s: float = 60.0
    """How long a pending request waits for the customer's answer before it expires."""
    visitor_token_ttl_s: int = 7 * 24 * 3600
    agent_token_ttl_s: int = 12 * 3600
    upload_max_bytes: int = 20 * 1024 * 1024
    message_max_chars: int = 10_000
    ice_servers: tuple[dict[str, Any], ...] = ()
    """Handed to browsers as ``RTCConfiguration.iceServers`` (JSON list in ``RTC_ICE_SERVERS``)."""
    media_host_addresses: tuple[str, ...] = ()
    """Addresses the server's aiortc peers offer as host candidates (empty: aioice's own choice)."""
    media: bool = True
    """Run the aiortc media plane on this node."""
    media_rejoin_grace_s: float = 20.0
    """How long a call keeps a participant whose peer connection dropped (network blip, page reload)
    before it ends (``RTC_MEDIA_REJOIN_GRACE_S``; 0: at once)."""
    recordings: bool = False
    """Agents may ask for recorded calls (``RTC_RECORDINGS=1``); files go to ``<data_dir>/recordings``."""
    recordings_keep_days: float = 0.0
    """Finished recordings older than this many days are deleted (``RTC_RECORDINGS_KEEP_DAYS``; checked
    hourly); 0 keeps them forever."""
    node_heartbeat_s: float = 5.0
    """How often this node renews its liveness mark on the store and sweeps dead nodes' presence
    (``RTC_NODE_HEARTBEAT_S``)."""
    node_dead_after_s: float = 15.0
    """A node whose liveness mark is this old counts as dead: its agents' presence is cleared by the
    other nodes (``RTC_NODE_DEAD_AFTER_S``; keep it at least 3 times ``node_heartbeat_s``)."""
    allowed_origins: tuple[str, ...] = ()
    """Origins allowed to open Socket.IO connections; empty: any origin."""
    web_dir: str = ""
    """Where the built web pages are; empty: ``web/dist`` beside the package."""
    redis_max_connections: int = 1000
    rate_limit_events_per_s: float = 20.0
    """Abuse limits (``signaling.services.ratelimit``; 0 disables one): Socket.IO calls per connection."""
    rate_limit_events_burst: int = 200
    rate_limit_connects_per_s: float = 10.0
    """Socket.IO connects per client address (namespace connects and Engine.IO handshakes, each)."""
    rate_limit_connects_burst: int = 300
    rate_limit_uploads_per_s: float = 1.0
    rate_limit_uploads_burst: int = 30
    rate_limit_logins_per_s: float = 0.2
    rate_limit_logins_burst: int = 20
    rate_limit_visitors_per_s: float = 1.0
    rate_limit_visitors_burst: int = 60
    rate_limit_exempt: tuple[str, ...] = ("127.0.0.1", "::1")
    """Client addresses no abuse limit applies to (empty: none)."""
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    """Peers whose ``X-Forwarded-For`` header names the client (a reverse proxy)."""

    @property
    def store_url(self) -> str:
        if self.store:
            return self.store
        return f"sqlite:///{Path(self.data_dir).resolve() / 'rtc.sqlite3'}"

    @property
    def secret_bytes(self) -> bytes:
        return self.secret.encode()

    @property
    def recordings_dir(self) -> str:
        """Where recordings are written and served from."""
        return str(Path(self.data_dir).resolve() / "recordings")


def _coerce(name: str, raw: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        return str(raw).strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, tuple):
        if isinstance(raw, (list, tuple)):
            return tuple(raw)
        text = str(raw).strip()
        if not text:
            return ()
        if text.startswith("["):
            return tuple(json.loads(text))
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return str(raw)


def load_config(env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Build the config: defaults, then ``RTC_<NAME>`` environment variables, then ``overrides``
    (command-line flags; ``None`` values are ignored)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    defaults = Config()
    for f in fields(Config):
        default = getattr(defaults, f.name)
        key = ENV_PREFIX + f.name.upper()
        if key in env:
            values[f.name] = _coerce(f.name, env[key], default)
        if overrides and overrides.get(f.name) is not None:
            values[f.name] = _coerce(f.name, overrides[f.name], default)
    return replace(defaults, **values)


def ensure_secret(config: Config) -> Config:
    """Return ``config`` with a secret: the given one, or one kept in ``<data_dir>/secret``."""
    if config.secret:
        return config
    path = Path(config.data_dir) / "secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        secret = path.read_text().strip()
    else:
        secret = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret)
    return replace(config, secret=secret)


__all__ = ["Config", "load_config", "ensure_secret", "field"]
