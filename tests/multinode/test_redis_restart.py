"""Redis crashes mid-conversation and comes back: both nodes report not ready while it is gone (store
ping and pub/sub listener both checked), become ready again by themselves, and every acknowledged
message is there exactly once, in order, for clients that reconnect (to the other node) and sync."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .conftest import Cluster

pytestmark = pytest.mark.redis


async def test_redis_restart_loses_no_acknowledged_message(cluster: Cluster) -> None:
    """SIGKILL Redis (AOF, fsync always) after acknowledged messages from both nodes; /readyz is 503 on
    both nodes with the store and the listener down; after a restart on the same port and directory
    both nodes are ready again, reconnected clients sync every acknowledged message once, in order,
    and new messages cross nodes again."""
    alice = await cluster.hubs[1].agent("alice@example.com")
    customer = await cluster.hubs[0].customer(name="Crash Test")
    visitor_token = customer.token  # type: ignore[attr-defined]
    conv = (await customer.ok("conversation.start", {"body": "before the crash"}))["conversation"]
    cid = conv["id"]
    await alice.ok("conversation.assign", {"conversation_id": cid})

    acked: list[dict[str, Any]] = []
    for i in range(12):
        who = customer if i % 2 == 0 else alice
        payload = {"conversation_id": cid, "client_id": f"pre-{i}", "kind": "text", "body": f"pre {i}"}
        acked.append((await who.ok("message.send", payload))["message"])
    await customer.events.wait("message.new", lambda d: d["message"]["client_id"] == "pre-11")

    cluster.redis.kill()
    await cluster.wait_readiness(503, timeout=10)
    for node in (0, 1):
        status, body = await cluster.readyz(node)
        assert status == 503 and body["checks"]["store"] is False
    async with asyncio.timeout(10):  # the listener notices without help (connection reset or no pong)
        for node in (0, 1):
            while (await cluster.readyz(node))[1]["checks"]["pubsub"]:
                await asyncio.sleep(0.05)

    during = await customer.call(
        "message.send", {"conversation_id": cid, "client_id": "during", "kind": "text", "body": "lost?"}
    )
    assert during["ok"] is False and during["error"]["code"] == "unavailable"

    cluster.redis.start()
    await cluster.wait_readiness(200, timeout=20)

    await customer.disconnect()
    await alice.disconnect()
    customer2 = await cluster.connect(1, "/customer", visitor_token)  # each side now on the other node
    alice2 = await cluster.hubs[0].agent("alice@example.com")

    view = await customer2.ok("conversation.sync", {"conversation_id": cid, "after_seq": 0})
    texts = [m for m in view["messages"] if m["kind"] == "text"]
    assert [m["client_id"] for m in texts if m["client_id"].startswith("pre-")] == [
        m["client_id"] for m in acked
    ]
    by_client_id = {m["client_id"]: m for m in view["messages"]}
    for message in acked:
        assert by_client_id[message["client_id"]]["seq"] == message["seq"]
        assert by_client_id[message["client_id"]]["body"] == message["body"]
    seqs = [m["seq"] for m in view["messages"]]
    assert seqs == sorted(set(seqs))
    assert "during" not in by_client_id  # refused while Redis was down: never half-stored

    agent_view = await alice2.ok("conversation.sync", {"conversation_id": cid, "after_seq": 0})
    assert [m["seq"] for m in agent_view["messages"]] == list(
        range(1, agent_view["conversation"]["last_seq"] + 1)
    )

    retry = await customer2.ok(
        "message.send", {"conversation_id": cid, "client_id": "during", "kind": "text", "body": "again"}
    )
    got = await alice2.events.wait("message.new", lambda d: d["message"]["client_id"] == "during")
    assert got["message"]["seq"] == retry["message"]["seq"] == agent_view["conversation"]["last_seq"] + 1
    await alice2.ok(
        "message.send", {"conversation_id": cid, "client_id": "after", "kind": "text", "body": "ok"}
    )
    await customer2.events.wait("message.new", lambda d: d["message"]["client_id"] == "after")
