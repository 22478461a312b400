"""Abuse limits: token buckets keyed per connection or per client address (stdlib only, no I/O).

A :class:`Limiter` keeps one :class:`TokenBucket` per key (a Socket.IO session id, an IP address). A
bucket holds at most ``burst`` tokens and gains ``per_s`` tokens a second; a call takes one token or is
refused. Buckets that have refilled completely carry no information and are dropped, and a limiter
never holds more than ``max_keys`` buckets, so an attacker with many addresses cannot grow memory.

:class:`AbuseLimits` bundles the limiters the server applies (events per connection; connects,
Engine.IO handshakes, uploads, logins and visitor creation per address), the addresses that are exempt
(loopback by default, so tests, benchmarks and a local reverse proxy's health checks never hit them)
and the proxies whose ``X-Forwarded-For`` is believed.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Longest address string used as a key (anything longer is not an address).
MAX_ADDRESS_LEN = 64
#: Keys per limiter before the oldest are evicted.
DEFAULT_MAX_KEYS = 50_000
#: Seconds between two sweeps of refilled buckets.
PRUNE_INTERVAL_S = 30.0


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_s`` tokens a second, at most ``burst`` at once; either at 0 disables the limit."""

    per_s: float
    burst: int

    @property
    def enabled(self) -> bool:
        return self.per_s > 0 and self.burst > 0


class TokenBucket:
    """The tokens left for one key and when they were last counted."""

    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp

    def refill(self, rate: Rate, now: float) -> None:
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(float(rate.burst), self.tokens + elapsed * rate.per_s)
        self.stamp = now

    def take(self, rate: Rate, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are enough (after refilling to ``now``)."""
        self.refill(rate, now)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def retry_after(self, rate: Rate, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there (as of the last refill)."""
        missing = cost - self.tokens
        return 0.0 if missing <= 0 else missing / rate.per_s


class Limiter:
    """Token buckets of one :class:`Rate`, keyed by a string."""

    def __init__(self, rate: Rate, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}
        self._pruned_at = 0.0

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str, now: float) -> bool:
        """Take a token for ``key``; False when its bucket is empty (always True when disabled)."""
        if not self.rate.enabled:
            return True
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[key] = TokenBucket(float(self.rate.burst), now)
        return bucket.take(self.rate, now)

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may call again (0 if it may now)."""
        bucket = self._buckets.get(key)
        if bucket is None or not self.rate.enabled:
            return 0.0
        return bucket.retry_after(self.rate)

    def forget(self, key: str) -> None:
        """Drop ``key``'s bucket (a connection that closed)."""
        self._buckets.pop(key, None)

    def prune(self, now: float) -> int:
        """Drop every bucket that has refilled completely; returns how many."""
        self._pruned_at = now
        if not self.rate.enabled:
            return 0
        full = float(self.rate.burst)
        stale = [
            key
            for key, bucket in self._buckets.items()
            if bucket.tokens + max(0.0, now - bucket.stamp) * self.rate.per_s >= full
        ]
        for key in stale:
            del self._buckets[key]
        return len(stale)

    def _make_room(self, now: float) -> None:
        if now - self._pruned_at >= PRUNE_INTERVAL_S or len(self._buckets) >= self.max_keys:
            self.prune(now)
        while len(self._buckets) >= self.max_keys:  # still full of busy keys: evict the oldest
            del self._buckets[next(iter(self._buckets))]


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Every limit the server applies (generous defaults: a person never meets them)."""

    events: Rate = Rate(20.0, 200)
    """Socket.IO calls per connection."""
    connects: Rate = Rate(10.0, 300)
    """Namespace connects per address, and (separately) Engine.IO handshakes per address."""
    uploads: Rate = Rate(1.0, 30)
    """``POST /api/uploads`` per address."""
    logins: Rate = Rate(0.2, 20)
    """``POST /api/auth/login`` per address."""
    visitors: Rate = Rate(1.0, 60)
    """``POST /api/visitors`` per address."""
    exempt: tuple[str, ...] = ("127.0.0.1", "::1")
    """Client addresses no limit applies to."""
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    """Peers whose ``X-Forwarded-For`` names the client (a reverse proxy)."""


#: The per-address limits by name (what :meth:`AbuseLimits.allow` takes).
ADDRESS_LIMITS = ("connects", "handshakes", "uploads", "logins", "visitors")


@dataclass
class AbuseLimits:
    """The server's limiters, shared by the hub's namespaces and the HTTP middleware."""

    settings: LimitSettings = field(default_factory=LimitSettings)
    clock: Callable[[], float] = time.monotonic
    refused: Counter[str] = field(default_factory=Counter)
    """How many calls each limit refused (``events``, ``connects``, ...)."""

    def __post_init__(self) -> None:
        s = self.settings
        self.events = Limiter(s.events)
        self.by_address: dict[str, Limiter] = {
            "connects": Limiter(s.connects),
            "handshakes": Limiter(s.connects),
            "uploads": Limiter(s.uploads),
            "logins": Limiter(s.logins),
            "visitors": Limiter(s.visitors),
        }
        self._tracked: set[str] = set()

    # -- addresses ------------------------------------------------------------------------------------
    def client_address(self, peer: str | None, forwarded_for: str | None = None) -> str:
        """The client's address: ``peer``, or, when ``peer`` is a trusted proxy, the right-most address of
        ``X-Forwarded-For`` that is not itself a trusted proxy."""
        address = _address(peer) or "unknown"
        if forwarded_for and address in self.settings.trusted_proxies:
            hops = [h.strip() for h in forwarded_for.split(",")[-20:]]
            for hop in reversed(hops):
                parsed = _address(hop)
                if parsed is None:
                    break  # garbage: believe nothing further left
                address = parsed
                if parsed not in self.settings.trusted_proxies:
                    break
        return address

    def address_of(self, environ: Mapping[str, Any]) -> str:
        """The client address of a Socket.IO connect's WSGI-style ``environ`` (the aiohttp request's peer;
        python-engineio's own ``REMOTE_ADDR`` is a constant)."""
        request = environ.get("aiohttp.request")
        peer = getattr(request, "remote", None) or environ.get("REMOTE_ADDR")
        return self.client_address(
            peer if isinstance(peer, str) else None, environ.get("HTTP_X_FORWARDED_FOR")
        )

    def is_exempt(self, address: str) -> bool:
        return address in self.settings.exempt

    # -- per address ----------------------------------------------------------------------------------
    def allow(self, limit: str, address: str) -> bool:
        """One call of ``limit`` (see :data:`ADDRESS_LIMITS`) from ``address``."""
        if self.is_exempt(address):
            return True
        if self.by_address[limit].allow(address, self.clock()):
            return True
        self.refused[limit] += 1
        return False

    def retry_after(self, limit: str, address: str) -> float:
        return self.by_address[limit].retry_after(address)

    # -- per connection -------------------------------------------------------------------------------
    def track(self, sid: str, address: str) -> None:
        """Count ``sid``'s events from now on (unless its address is exempt)."""
        if not self.is_exempt(address):
            self._tracked.add(sid)

    def untrack(self, sid: str) -> None:
        """``sid`` is gone: forget its bucket."""
        self._tracked.discard(sid)
        self.events.forget(sid)

    def allow_event(self, sid: str) -> bool:
        """One Socket.IO call on connection ``sid``."""
        if sid not in self._tracked:
            return True
        if self.events.allow(sid, self.clock()):
            return True
        self.refused["events"] += 1
        return False

    @property
    def tracked(self) -> int:
        """Connections whose events are counted."""
        return len(self._tracked)


def _address(value: str | None) -> str | None:
    """``value`` normalised as an IP address, or None if it is not one."""
    if not value or len(value) > MAX_ADDRESS_LEN:
        return None
    try:
        return str(ipaddress.ip_address(value.strip().strip("[]")))
    except ValueError:
        return None
