"""Fixtures of the reliability tests: figures printed in one greppable format, and sizes that grow
under ``make soak`` (``RTC_SOAK=1``).

Every test here prints its figures as ``FIGURE <test> <name>=<value> ...`` lines (shown with ``-s``,
or collected by ``make soak``); ``docs/reliability.md`` quotes them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

SOAK = os.environ.get("RTC_SOAK", "") not in ("", "0")


def scale(normal: Any, soak: Any) -> Any:
    """``normal`` in ``make test``, ``soak`` under ``make soak``."""
    return soak if SOAK else normal


def figure(test: str, **values: Any) -> None:
    """Print one line of figures."""
    parts = " ".join(f"{k}={v}" for k, v in values.items())
    print(f"\nFIGURE {test} {parts}", flush=True)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client with no connection cap (hundreds of sockets share it)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def login(http: aiohttp.ClientSession, url: str, email: str, password: str = "demo") -> dict[str, Any]:
    """``POST /api/auth/login``."""
    async with http.post(f"{url}/api/auth/login", json={"email": email, "password": password}) as resp:
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data


async def visitor(http: aiohttp.ClientSession, url: str, **fields: Any) -> dict[str, Any]:
    """``POST /api/visitors``."""
    async with http.post(f"{url}/api/visitors", json=fields) as resp:
        assert resp.status == 201, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data
