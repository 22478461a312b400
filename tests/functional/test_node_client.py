"""The official Node ``socket.io-client`` drives a whole chat: any standard Socket.IO v4 client works."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import RunningServer

NODE_DIR = Path(__file__).resolve().parent.parent / "node"


@pytest.mark.node
@pytest.mark.parametrize(
    ("agent_parser", "customer_parser", "transport"),
    [
        ("json", "json", "default"),
        ("msgpack", "msgpack", "websocket"),
        ("msgpack", "msgpack", "polling"),
        ("json", "msgpack", "default"),
        ("msgpack", "json", "websocket"),
    ],
)
async def test_node_socketio_client_chat(
    server: RunningServer, agent_parser: str, customer_parser: str, transport: str
) -> None:
    """Refusal with a reason, ring, assign, message, idempotent resend, invalid payload, notes hidden, a
    server-side disconnect; with the JSON parser, with socket.io-msgpack-parser, and with both at once (a
    broadcast reaches each socket in its own parser), on each transport."""
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "socket.io-msgpack-parser").exists():
        pytest.fail("node and tests/node/node_modules are required: run `make test` (it runs npm ci)")
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "scenario.mjs"), server.url, agent_parser, customer_parser, transport,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, stderr.decode()
    out = json.loads(stdout.decode().strip().splitlines()[-1])
    assert out["refused"]["code"] == "unauthorized"
    assert out["no_auth"] == "unauthorized"
    expected = "polling" if transport == "polling" else "websocket"
    assert out["transports"] == [expected, expected] or transport == "default"
    assert out["ring"] is True
    assert out["assigned"] is True
    assert out["agent_message"] is True
    assert out["customer_message"] is True
    assert out["idempotent"] is True
    assert out["note"] is True
    assert out["invalid"] == "invalid"
    assert out["binary_invalid"] == "invalid"
    assert out["sync_has_note"] is False
    assert out["note_leaked"] is False
    assert out["revoked"] == "password_changed"
    assert out["server_disconnect"] == "io server disconnect"
