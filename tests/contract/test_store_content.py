"""Contract: text blocks, articles, flows (CRUD) and attachments."""

from __future__ import annotations

import dataclasses

import pytest

from signaling.domain.errors import Conflict, NotFound
from signaling.domain.models import Article, Attachment, Flow, TextBlock
from signaling.storage.base import Store

from .conftest import Seed, at


async def test_textblocks_crud(store: Store) -> None:
    """Text blocks round-trip (team_id None or set), list oldest first, update, delete once."""
    b1 = TextBlock(
        id="tb_1", shortcut="hi", title="Greeting", body="Hello {name}", team_id=None, created_at=at(2)
    )
    b2 = TextBlock(
        id="tb_2", shortcut="bye", title="Bye", body="Ciao", language="it", team_id="tm_1", created_at=at(1)
    )
    assert await store.create_textblock(b1) == b1
    await store.create_textblock(b2)
    assert await store.get_textblock("tb_1") == b1
    assert await store.get_textblock("tb_missing") is None
    assert [b.id for b in await store.list_textblocks()] == ["tb_2", "tb_1"]
    changed = dataclasses.replace(b1, body="Hi {name}!", team_id="tm_2")
    assert await store.update_textblock(changed) == changed
    assert await store.get_textblock("tb_1") == changed
    with pytest.raises(NotFound):
        await store.update_textblock(dataclasses.replace(b1, id="tb_ghost"))
    with pytest.raises(Conflict):
        await store.create_textblock(b1)
    assert await store.delete_textblock("tb_1") is True
    assert await store.delete_textblock("tb_1") is False
    assert [b.id for b in await store.list_textblocks()] == ["tb_2"]


async def test_articles_crud(store: Store) -> None:
    """Articles round-trip, list oldest first, update, delete once."""
    a = Article(
        id="ar_1",
        title="Returns",
        summary="How to return",
        url="https://x/returns",
        body="...",
        created_at=at(1),
    )
    b = Article(
        id="ar_2", title="Shipping", summary="Times", url="https://x/ship", language="de", created_at=at(2)
    )
    assert await store.create_article(a) == a
    await store.create_article(b)
    assert [x.id for x in await store.list_articles()] == ["ar_1", "ar_2"]
    changed = dataclasses.replace(a, title="Returns & refunds")
    assert await store.update_article(changed) == changed
    assert await store.get_article("ar_1") == changed
    assert await store.get_article("ar_missing") is None
    with pytest.raises(NotFound):
        await store.update_article(dataclasses.replace(a, id="ar_ghost"))
    assert await store.delete_article("ar_2") is True
    assert await store.delete_article("ar_2") is False
    assert await store.get_article("ar_2") is None


async def test_flows_crud_with_json_steps(store: Store) -> None:
    """Flow steps (a list of dicts) round-trip exactly, and returned steps are fresh objects."""
    steps = [
        {"id": "s1", "question": "Größe?", "buttons": ["S", "M", "L"], "free_text": False},
        {"id": "s2", "question": "Anything else?", "buttons": [], "free_text": True},
    ]
    flow = Flow(id="fl_1", name="Sizing", steps=steps, created_at=at(1))
    created = await store.create_flow(flow)
    assert created == flow
    created.steps[0]["buttons"].append("XL")
    got = await store.get_flow("fl_1")
    assert got is not None and got.steps == steps and got.steps[0]["buttons"] == ["S", "M", "L"]
    changed = dataclasses.replace(flow, name="Sizing v2", steps=steps[:1], language="de")
    assert await store.update_flow(changed) == changed
    assert [f.name for f in await store.list_flows()] == ["Sizing v2"]
    with pytest.raises(NotFound):
        await store.update_flow(dataclasses.replace(flow, id="fl_ghost"))
    assert await store.delete_flow("fl_1") is True
    assert await store.delete_flow("fl_1") is False
    assert await store.list_flows() == []
    assert await store.get_flow("fl_1") is None


async def test_attachments_create_and_get(store: Store, seed: Seed) -> None:
    """Attachment metadata round-trips; an unknown id reads None."""
    conv = await seed.conversation()
    att = Attachment(
        id="at_1",
        conversation_id=conv.id,
        uploader_kind="customer",
        uploader_id="vi_1",
        name="receipt.pdf",
        mime="application/pdf",
        size=12345,
        storage_name="d41d8cd98f00",
        kind="file",
        has_thumbnail=True,
        created_at=at(3),
    )
    assert await store.create_attachment(att) == att
    assert await store.get_attachment("at_1") == att
    assert await store.get_attachment("at_missing") is None
    with pytest.raises(Conflict):
        await store.create_attachment(att)


async def test_attachment_needs_its_conversation(store: Store) -> None:
    """An attachment for a conversation that does not exist is refused with NotFound."""
    att = Attachment(
        id="at_1",
        conversation_id="cv_missing",
        uploader_kind="agent",
        uploader_id="ag_1",
        name="a.png",
        mime="image/png",
        size=1,
        storage_name="x",
    )
    with pytest.raises(NotFound):
        await store.create_attachment(att)
    assert await store.get_attachment("at_1") is None
