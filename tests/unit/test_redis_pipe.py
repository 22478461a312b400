"""The auto-pipelined Redis connection (``signaling.storage.redis_pipe``) against a real redis-server:
replies reach their own callers in order, errors keep redis-py's classes, a script missing from Redis
is loaded, a cancelled caller does not shift the replies of the others, and a lost connection fails
the calls in flight and is reopened by the next call; batches keep their order; a subscriber gets
published messages in order and notices a lost connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError

from rtc_server.pubsub import _RedisPySubscriber
from signaling.storage.redis_pipe import RedisPipe, RedisSubscriber, encode_command
from tests.redis_server import RedisServer, redis_available

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
async def pipe(server: RedisServer) -> AsyncIterator[RedisPipe]:
    p = RedisPipe(server.url)
    yield p
    await p.close()


def test_commands_are_encoded_as_redis_py_does() -> None:
    """Strings as UTF-8, numbers as their repr, bytes as they are; booleans and other types refused."""
    assert encode_command(["SET", "k", "é", 3, 1.5, b"\x00"]) == (
        b"*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n$1\r\n3\r\n$3\r\n1.5\r\n$1\r\n\x00\r\n"
    )
    with pytest.raises(DataError):
        encode_command(["SET", "k", True])
    with pytest.raises(DataError):
        encode_command(["SET", "k", None])


async def test_concurrent_calls_each_get_their_own_reply(pipe: RedisPipe) -> None:
    """Hundreds of calls issued at once (one pipelined write) are answered to the right callers."""
    await asyncio.gather(*(pipe.call("SET", f"k{i}", f"v{i}") for i in range(300)))
    replies = await asyncio.gather(*(pipe.call("GET", f"k{i}") for i in range(300)))
    assert replies == [f"v{i}" for i in range(300)]
    assert await pipe.call("INCRBY", "n", 5) == 5


async def test_an_error_reply_is_a_response_error_and_the_next_call_works(pipe: RedisPipe) -> None:
    """A refused command raises redis-py's ResponseError for its caller only."""
    await pipe.call("SET", "s", "text")
    results = await asyncio.gather(pipe.call("INCR", "s"), pipe.call("GET", "s"), return_exceptions=True)
    assert isinstance(results[0], ResponseError)
    assert results[1] == "text"


async def test_a_script_unknown_to_redis_is_loaded_and_run(pipe: RedisPipe) -> None:
    """EVALSHA falls back to EVAL after SCRIPT FLUSH (a restarted or flushed Redis)."""
    pipe.register("ECHO2", "return {KEYS[1], ARGV[1] .. ARGV[1]}")
    assert await pipe.script("ECHO2", ["a"], ["b"]) == ["a", "bb"]
    await pipe.call("SCRIPT", "FLUSH")
    assert await pipe.script("ECHO2", ["c"], ["d"]) == ["c", "dd"]


async def test_a_cancelled_caller_does_not_shift_other_replies(pipe: RedisPipe) -> None:
    """A caller cancelled while its command is on the wire: the others still get their own replies."""
    await pipe.call("SET", "x", "1")
    first = asyncio.ensure_future(pipe.call("GET", "x"))
    second = asyncio.ensure_future(pipe.call("ECHO", "two"))
    await asyncio.sleep(0)  # both are queued
    first.cancel()
    assert await second == "two"
    assert await pipe.call("ECHO", "three") == "three"


async def test_a_lost_connection_fails_calls_in_flight_and_the_next_call_reconnects(
    server: RedisServer, pipe: RedisPipe
) -> None:
    """Redis killed: the call waiting on it raises ConnectionError (nothing is repeated silently);
    once Redis is back, the next call opens a new connection."""
    await pipe.call("SET", "persist", "yes")
    blocked = asyncio.ensure_future(pipe.call("BLPOP", "nothing", "5"))  # a reply still to come
    await asyncio.sleep(0.2)
    server.kill()
    with pytest.raises(RedisConnectionError):
        await blocked
    with pytest.raises(RedisConnectionError):
        await pipe.call("PING")  # Redis is down: refused, not hung
    server.start()
    assert await pipe.call("PING") == "PONG"
    assert await pipe.call("GET", "persist") == "yes"  # the append-only file kept it


async def test_a_closed_pipe_refuses_calls(pipe: RedisPipe) -> None:
    """After close(), calls fail at once instead of reconnecting."""
    assert await pipe.call("PING") == "PONG"
    await pipe.close()
    with pytest.raises(RedisConnectionError):
        await pipe.call("PING")


async def test_a_batch_keeps_its_order_and_reports_each_refusal(pipe: RedisPipe) -> None:
    """batch(): replies in command order, an error in place of a refused command, scripts by EVALSHA
    once their body was sent on this connection (and again after SCRIPT FLUSH)."""
    script = "return redis.call('INCR', KEYS[1])"
    first = await pipe.batch(
        [("SET", "b", "1"), ("EVAL", script, 1, "b"), ("INCR", "nope-text"), ("GET", "b")]
    )
    assert first[:2] == ["OK", 2] and first[3] == "2"
    await pipe.call("SET", "t", "x")
    second = await pipe.batch([("INCR", "t"), ("EVAL", script, 1, "b")])
    assert isinstance(second[0], ResponseError) and second[1] == 3
    await pipe.call("SCRIPT", "FLUSH")
    third = await pipe.batch([("EVAL", script, 1, "b")])
    assert isinstance(third[0], ResponseError)  # NOSCRIPT once: the next batch sends the body again
    assert await pipe.batch([("EVAL", script, 1, "b")]) == [4]
    assert await pipe.eval(script, 1, "b") == 5


@pytest.mark.parametrize("kind", [RedisSubscriber, _RedisPySubscriber], ids=["pipe", "redis-py"])
async def test_a_subscriber_gets_published_messages_in_order(
    server: RedisServer, pipe: RedisPipe, kind: Any
) -> None:
    """RedisSubscriber (and the redis-py one used for TLS URLs, same interface): the messages of its
    channels as (channel, bytes), in publish order; a pong counts as a sign of life; get() returns None
    when nothing came in time."""
    sub = await kind.open(server.url, ["c1", "c2"], connect_timeout=2)
    try:
        for _ in range(50):  # until both subscriptions are confirmed
            if await pipe.call("PUBSUB", "NUMSUB", "c1", "c2") == ["c1", 1, "c2", 1]:
                break
            await asyncio.sleep(0.02)
        await pipe.batch([("PUBLISH", "c1", f"m{i}") for i in range(100)] + [("PUBLISH", "c2", b"\x00bin")])
        got = [await sub.get(timeout=2) for _ in range(101)]
        assert got[:100] == [(b"c1", f"m{i}".encode()) for i in range(100)]
        assert got[100] == (b"c2", b"\x00bin")
        before = sub.heard
        await asyncio.sleep(0.01)
        await sub.ping()
        assert await sub.get(timeout=0.3) is None
        assert sub.heard > before
    finally:
        await sub.close()


async def test_a_subscriber_raises_once_its_connection_is_lost(server: RedisServer) -> None:
    """A killed Redis: get() raises ConnectionError instead of waiting forever."""
    sub = await RedisSubscriber.open(server.url, ["c"])
    try:
        server.kill()
        with pytest.raises(RedisConnectionError):
            await sub.get(timeout=5)
    finally:
        await sub.close()
