"""JSON for Socket.IO packets and the Redis store's JSON fields: ``orjson`` when it is installed (several times faster than the standard
library at encoding and decoding), the standard library otherwise, or whenever ``orjson`` refuses a
value (``bytes``, integers beyond 64 bits...), so that what was accepted before still is.

Same JSON values either way; only the bytes may differ (``orjson`` writes non-ASCII characters as
UTF-8 instead of ``\\uXXXX`` escapes), which every JSON parser reads identically.
"""

from __future__ import annotations

import json as _std
from typing import Any

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - the "fast" extra is not installed
    _orjson = None  # type: ignore[assignment]


def dumps(obj: Any, **kwargs: Any) -> str:
    """Compact JSON text (python-socketio asks for ``separators=(",", ":")``, which is orjson's only form)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(obj).decode()
        except TypeError:
            pass
    return _std.dumps(obj, **kwargs)


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """Parse JSON text; the standard library decides (and reports) what ``orjson`` refuses."""
    if _orjson is not None and not kwargs:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass
    return _std.loads(text, **kwargs)
