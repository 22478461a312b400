"""Fixtures of the store contract suite.

Every test taking ``store`` (or ``make_store`` / ``open_store``) runs once per entry of
:data:`STORE_FACTORIES`. To add an implementation, append one factory: given the test's
``pytest.FixtureRequest`` (to reach other fixtures, e.g. a redis-server) and a private directory, it
returns ``make(node_id="local") -> Store``, a maker of *unopened* stores that all share one backing
database for the duration of the test (so a test can close a store and open a new one on the same data).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest

from signaling.domain.models import (
    Agent,
    Author,
    Conversation,
    Message,
    Request,
    Team,
    Visitor,
    new_id,
)
from signaling.storage.base import AppendResult, Store
from signaling.storage.sqlite import SqliteStore
from tests.redis_server import RedisServer, redis_available


class MakeStore(Protocol):
    """Makes an unopened store on the test's shared backing data."""

    def __call__(self, node_id: str = "local") -> Store: ...


StoreFactory = Callable[[pytest.FixtureRequest, Path], MakeStore]


def sqlite_factory(request: pytest.FixtureRequest, workdir: Path, writer: str = "process") -> MakeStore:
    """SQLite on one file in the test's tmp dir, its writer a process of its own (the default) or, with
    ``writer="thread"``, a thread of the test's process."""
    path = workdir / "store.sqlite3"

    def make(node_id: str = "local") -> Store:
        return SqliteStore(path, node_id=node_id, writer=writer)

    return make


def redis_factory(request: pytest.FixtureRequest, workdir: Path) -> MakeStore:
    """RedisStore on the session's redis-server, emptied for this test."""
    from signaling.storage.redis_store import RedisStore

    server: RedisServer = request.getfixturevalue("redis_server")
    server.flushall()

    def make(node_id: str = "local") -> Store:
        return RedisStore(server.url, node_id=node_id, max_connections=50)

    return make


#: name -> factory; the ``store`` fixtures are parametrized over these keys.
STORE_FACTORIES: dict[str, StoreFactory] = {
    "sqlite": sqlite_factory,
    "sqlite-thread": functools.partial(sqlite_factory, writer="thread"),
    "redis": redis_factory,
}

#: A fixed instant tests build times from, so ordering assertions never depend on the clock.
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(params=list(STORE_FACTORIES))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    """A maker of unopened stores of one implementation, sharing the test's data."""
    return STORE_FACTORIES[request.param](request, tmp_path)


@pytest.fixture
async def open_store(make_store: MakeStore) -> AsyncIterator[Callable[..., Awaitable[Store]]]:
    """``await open_store(node_id=...)``: an opened store, closed at teardown (closing twice is fine)."""
    opened: list[Store] = []

    async def _open(node_id: str = "local") -> Store:
        store = make_store(node_id)
        await store.open()
        opened.append(store)
        return store

    yield _open
    for store in reversed(opened):
        await store.close()


@pytest.fixture
async def store(open_store: Callable[..., Awaitable[Store]]) -> Store:
    """An opened, empty store."""
    return await open_store()


class Seed:
    """Builders of valid records, stored through the store under test."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._n = itertools.count(1)

    async def team(self, name: str | None = None, **kw: Any) -> Team:
        return await self.store.create_team(Team(id=new_id("tm"), name=name or f"Team {next(self._n)}", **kw))

    async def agent(self, team_ids: list[str] | None = None, email: str | None = None, **kw: Any) -> Agent:
        n = next(self._n)
        agent = Agent(
            id=new_id("ag"),
            email=email or f"agent{n}@example.com",
            name=kw.pop("name", f"Agent {n}"),
            password_hash="x",
            team_ids=team_ids or [],
            **kw,
        )
        return await self.store.create_agent(agent)

    async def visitor(self, **kw: Any) -> Visitor:
        return await self.store.create_visitor(Visitor(id=new_id("vi"), **kw))

    async def conversation(
        self, team: Team | None = None, visitor: Visitor | None = None, **kw: Any
    ) -> Conversation:
        team = team or await self.team()
        visitor = visitor or await self.visitor()
        return await self.store.create_conversation(
            Conversation(id=kw.pop("id", new_id("cv")), visitor_id=visitor.id, team_id=team.id, **kw)
        )

    async def message(
        self,
        conversation_id: str,
        body: str = "hello",
        *,
        author_kind: str = "customer",
        kind: str = "text",
        client_id: str | None = None,
        **kw: Any,
    ) -> AppendResult:
        return await self.store.append_message(
            self.new_message(conversation_id, body, author_kind, kind, client_id, **kw)
        )

    def new_message(
        self,
        conversation_id: str,
        body: str = "hello",
        author_kind: str = "customer",
        kind: str = "text",
        client_id: str | None = None,
        **kw: Any,
    ) -> Message:
        return Message(
            id=new_id("ms"),
            conversation_id=conversation_id,
            seq=0,
            client_id=new_id("cl") if client_id is None else client_id,
            author=Author(kind=author_kind, id=f"{author_kind}-1", name=author_kind.title()),
            kind=kind,
            body=body,
            **kw,
        )

    def new_request(
        self, conversation_id: str, kind: str = "call", state: str = "pending", **kw: Any
    ) -> Request:
        return Request(
            id=new_id("rq"),
            conversation_id=conversation_id,
            kind=kind,
            state=state,
            requested_by="ag_1",
            **kw,
        )


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An opened SqliteStore on a fresh file, its writer a thread (the SQLite-only tests that hold the writer
    or hand it functions of their own; the batches run the same code in the writer process)."""
    store = SqliteStore(tmp_path / "s.sqlite3", writer="thread")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def seed(store: Store) -> Seed:
    """Record builders bound to ``store``."""
    return Seed(store)


# -- Redis (appended by the several-nodes work) ----------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real ``redis-server`` for the whole session (each test empties it first)."""
    if not redis_available():
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
