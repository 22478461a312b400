"""The hub's fast path: python-socketio and python-engineio subclasses that keep the Socket.IO v4 protocol
and API while doing less work per packet (see ``docs/architecture.md``, "The hub's fast path")."""

from rtc_server.fastio.manager import FastManager, FastRedisManager
from rtc_server.fastio.server import FastAsyncServer

__all__ = ["FastAsyncServer", "FastManager", "FastRedisManager"]
