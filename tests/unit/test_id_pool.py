"""Pins ``IdPool``, the message ids of the hot path: the same shape as ``new_id`` (prefix, 16 base64url
characters), ordered by time (so that SQLite's id index takes each commit's inserts on a few pages),
never a repeat across refills, and a forked child that does not hand out its parent's next ids."""

from __future__ import annotations

import base64
import os
import re
import time

import pytest

from signaling.domain.models import SORTED_ALPHABET, IdPool, new_id, time_chars

ID = re.compile(r"^msg_[A-Za-z0-9_-]{16}$")


def test_same_shape_as_new_id() -> None:
    """Pool ids and ``new_id`` ids look alike: the prefix and 16 base64url characters."""
    pool = IdPool(batch=4)
    for value in (pool.new("msg"), new_id("msg")):
        assert ID.match(value), value
        assert len(base64.urlsafe_b64decode(value[4:])) == 12


def test_time_chars_sort_as_the_times_do() -> None:
    """The sorted alphabet is the base64url one in byte order, and written times sort as numbers do,
    across every character position (each step below carries into a different one)."""
    assert sorted(SORTED_ALPHABET) == list(SORTED_ALPHABET)
    assert set(SORTED_ALPHABET) == set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    now = time.time_ns() // 1_000_000
    times = sorted({now, now + 1, 0, 63, 64, 4095, 4096, 2**36 - 1, 2**36, 2**42 - 1, now - 1, now + 2**30})
    written = [time_chars(t) for t in times]
    assert all(len(w) == 7 for w in written)
    assert written == sorted(written)
    assert len(set(written)) == len(written)
    for t in [*times, 123_456_789_012, 2**41 + 2**29 + 77]:  # each character is its 6 bits
        assert time_chars(t) == "".join(SORTED_ALPHABET[(t >> s) & 63] for s in (36, 30, 24, 18, 12, 6, 0))


def test_pool_ids_are_ordered_by_time() -> None:
    """Ids drawn in later milliseconds sort after earlier ones (what keeps the id index's inserts
    together); within one millisecond they differ by their random part."""
    pool = IdPool(batch=8)
    ids = []
    for _ in range(5):
        ids.append(pool.new("msg"))
        time.sleep(0.002)
    assert ids == sorted(ids)
    burst = [pool.new("msg") for _ in range(500)]
    assert len(set(burst)) == len(burst)
    assert all(later[4:11] >= earlier[4:11] for earlier, later in zip(burst, burst[1:], strict=False))


def test_unique_across_refills() -> None:
    """A small batch refills many times; no id comes out twice."""
    pool = IdPool(batch=3)
    ids = [pool.new("msg") for _ in range(3000)]
    assert len(set(ids)) == len(ids)
    assert all(ID.match(i) for i in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_does_not_repeat_parent_ids() -> None:
    """After a fork the child draws fresh bytes instead of the parent's next ids."""
    pool = IdPool(batch=64)
    pool.new("msg")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.close(read)
        os.write(write, " ".join(pool.new("msg") for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        child = fh.read().split()
    os.waitpid(pid, 0)
    parent = [pool.new("msg") for _ in range(5)]
    assert len(child) == 5
    assert not set(child) & set(parent)


def test_pools_share_one_fork_hook_and_are_not_kept_alive() -> None:
    """Pools come and go (one per app): none is kept alive by the fork hook, so the set of pools to
    empty after a fork holds the live ones only."""
    import gc

    from signaling.domain import models

    before = len(models._POOLS)
    pools = [IdPool() for _ in range(50)]
    assert len(models._POOLS) == before + 50
    del pools
    gc.collect()
    assert len(models._POOLS) == before
