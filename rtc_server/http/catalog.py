"""Text blocks, articles and flows: read by every agent, written by admins, validated here.

Text blocks of a team are visible to that team's members (and admins) only; those without a team to
everyone. Article links must be absolute ``http(s)`` URLs (they become links in both UIs). A flow is a
list of steps ``{id, question, buttons: [str], free_text: bool}``, each answerable (buttons or free text).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from rtc_server.app import SERVICES
from rtc_server.http import validate as v
from rtc_server.http.core import principal, read_json, require_admin
from signaling.domain.errors import Conflict, Invalid, NotFound
from signaling.domain.models import Agent, Article, Flow, TextBlock, new_id
from signaling.services.container import Services

SHORTCUT_MAX = 40
TITLE_MAX = 200
SUMMARY_MAX = 1000
ARTICLE_BODY_MAX = 100_000
URL_MAX = 2000
FLOW_STEPS_MAX = 50
FLOW_BUTTONS_MAX = 20
QUESTION_MAX = 1000
BUTTON_MAX = 200
STEP_ID_MAX = 64


async def _reader(request: web.Request) -> Agent:
    who = await principal(request, "agent")
    assert who.agent is not None
    return who.agent


def _no_content() -> web.Response:
    return web.Response(status=204)


# -- text blocks ----------------------------------------------------------------------------------------


def _visible(agent: Agent, block: TextBlock) -> bool:
    return block.team_id is None or agent.is_admin or block.team_id in agent.team_ids


def _shortcut(body: dict[str, Any], required: bool) -> Any:
    value = v.text(body, "shortcut", required=required, max_len=SHORTCUT_MAX)
    if value is not None:
        value = value.lstrip("#")
        if not value or any(c.isspace() for c in value):
            raise Invalid("shortcut must be one word (no spaces)", field="shortcut")
    return value


async def _check_block(services: Services, block: TextBlock) -> None:
    if block.team_id is not None and await services.store.get_team(block.team_id) is None:
        raise NotFound("no such team", field="team_id")
    for other in await services.store.list_textblocks():
        same = (other.shortcut.casefold(), other.language, other.team_id)
        if other.id != block.id and same == (block.shortcut.casefold(), block.language, block.team_id):
            raise Conflict(
                "a text block with that shortcut exists for that language and team", field="shortcut"
            )


async def _block(request: web.Request, agent: Agent) -> TextBlock:
    block = await request.app[SERVICES].store.get_textblock(request.match_info["id"])
    if block is None or not _visible(agent, block):
        raise NotFound("no such text block")
    return block


async def list_textblocks(request: web.Request) -> web.Response:
    """``GET /api/textblocks[?q=]``: the blocks the caller may use; with ``q``, ranked search."""
    who = await principal(request, "agent")
    assert who.agent is not None
    services = request.app[SERVICES]
    q = request.query.get("q")
    if q is not None:
        found = await services.messages.search_textblocks(who, q[:200])
        return web.json_response({"textblocks": found})
    blocks = [b.to_wire() for b in await services.store.list_textblocks() if _visible(who.agent, b)]
    return web.json_response({"textblocks": blocks})


async def get_textblock(request: web.Request) -> web.Response:
    """``GET /api/textblocks/{id}``."""
    agent = await _reader(request)
    return web.json_response({"textblock": (await _block(request, agent)).to_wire()})


async def create_textblock(request: web.Request) -> web.Response:
    """``POST /api/textblocks`` (admin): ``{shortcut, title, body, language?, team_id?}``."""
    await require_admin(request)
    services = request.app[SERVICES]
    body = await read_json(request)
    v.only(body, {"shortcut", "title", "body", "language", "team_id"})
    block = TextBlock(
        id=new_id("tb"),
        shortcut=_shortcut(body, True),
        title=v.text(body, "title", required=True, max_len=TITLE_MAX),
        body=v.text(body, "body", required=True, max_len=services.message_max_chars),
        language=v.language(body, default="en") or "en",
        team_id=v.text(body, "team_id") or None,
    )
    await _check_block(services, block)
    block = await services.store.create_textblock(block)
    return web.json_response({"textblock": block.to_wire()}, status=201)


async def update_textblock(request: web.Request) -> web.Response:
    """``PATCH /api/textblocks/{id}`` (admin): any create field; ``team_id: null`` makes it global."""
    admin = await require_admin(request)
    services = request.app[SERVICES]
    body = await read_json(request)
    v.only(body, {"shortcut", "title", "body", "language", "team_id"})
    assert admin.agent is not None
    block = await _block(request, admin.agent)
    if (shortcut := _shortcut(body, False)) is not None:
        block.shortcut = shortcut
    for key, limit in (("title", TITLE_MAX), ("body", services.message_max_chars)):
        if (value := v.text(body, key, max_len=limit)) is not None:
            if not value:
                raise Invalid(f"{key} must not be empty", field=key)
            setattr(block, key, value)
    if language := v.language(body):
        block.language = language
    if "team_id" in body:
        block.team_id = v.text(body, "team_id") or None
    await _check_block(services, block)
    block = await services.store.update_textblock(block)
    return web.json_response({"textblock": block.to_wire()})


async def delete_textblock(request: web.Request) -> web.Response:
    """``DELETE /api/textblocks/{id}`` (admin)."""
    await require_admin(request)
    if not await request.app[SERVICES].store.delete_textblock(request.match_info["id"]):
        raise NotFound("no such text block")
    return _no_content()


# -- articles -------------------------------------------------------------------------------------------


def _article_wire(article: Article) -> dict[str, Any]:
    return {**article.to_wire(), "body": article.body}


def _url(body: dict[str, Any], required: bool) -> Any:
    value = v.text(body, "url", required=required, max_len=URL_MAX)
    if value is not None:
        parts = urlsplit(value)
        if (
            parts.scheme.lower() not in ("http", "https")
            or not parts.netloc
            or any(c.isspace() for c in value)
        ):
            raise Invalid("url must be an absolute http(s) URL", field="url")
    return value


async def _article(request: web.Request) -> Article:
    article = await request.app[SERVICES].store.get_article(request.match_info["id"])
    if article is None:
        raise NotFound("no such article")
    return article


async def list_articles(request: web.Request) -> web.Response:
    """``GET /api/articles[?q=&language=]``: every article, or those matching ``q``."""
    agent = await _reader(request)
    services = request.app[SERVICES]
    q = request.query.get("q")
    if q is not None:
        articles = await services.catalog.search_articles(
            q[:200], request.query.get("language") or agent.locale
        )
    else:
        articles = await services.store.list_articles()
    return web.json_response({"articles": [_article_wire(a) for a in articles]})


async def get_article(request: web.Request) -> web.Response:
    """``GET /api/articles/{id}``."""
    await _reader(request)
    return web.json_response({"article": _article_wire(await _article(request))})


async def create_article(request: web.Request) -> web.Response:
    """``POST /api/articles`` (admin): ``{title, summary, url, body?, language?}``."""
    await require_admin(request)
    body = await read_json(request)
    v.only(body, {"title", "summary", "url", "body", "language"})
    article = Article(
        id=new_id("ar"),
        title=v.text(body, "title", required=True, max_len=TITLE_MAX),
        summary=v.text(body, "summary", max_len=SUMMARY_MAX, default=""),
        url=_url(body, True),
        body=v.text(body, "body", max_len=ARTICLE_BODY_MAX, default=""),
        language=v.language(body, default="en") or "en",
    )
    article = await request.app[SERVICES].store.create_article(article)
    return web.json_response({"article": _article_wire(article)}, status=201)


async def update_article(request: web.Request) -> web.Response:
    """``PATCH /api/articles/{id}`` (admin): any create field."""
    await require_admin(request)
    body = await read_json(request)
    v.only(body, {"title", "summary", "url", "body", "language"})
    article = await _article(request)
    if (title := v.text(body, "title", max_len=TITLE_MAX)) is not None:
        if not title:
            raise Invalid("title must not be empty", field="title")
        article.title = title
    if (summary := v.text(body, "summary", max_len=SUMMARY_MAX)) is not None:
        article.summary = summary
    if (url := _url(body, False)) is not None:
        article.url = url
    if (text := v.text(body, "body", max_len=ARTICLE_BODY_MAX)) is not None:
        article.body = text
    if language := v.language(body):
        article.language = language
    article = await request.app[SERVICES].store.update_article(article)
    return web.json_response({"article": _article_wire(article)})


async def delete_article(request: web.Request) -> web.Response:
    """``DELETE /api/articles/{id}`` (admin)."""
    await require_admin(request)
    if not await request.app[SERVICES].store.delete_article(request.match_info["id"]):
        raise NotFound("no such article")
    return _no_content()


# -- flows ----------------------------------------------------------------------------------------------


def validate_steps(raw: Any) -> list[dict[str, Any]]:
    """The steps of a flow, normalised to ``{id, question, buttons, free_text}``; ``invalid`` naming the
    step otherwise."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= FLOW_STEPS_MAX:
        raise Invalid(f"steps must be a list of 1 to {FLOW_STEPS_MAX} steps", field="steps")
    steps: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, step in enumerate(raw):
        where = f"steps[{index}]"
        if not isinstance(step, dict):
            raise Invalid(f"{where} must be an object", field=where)
        unknown = sorted(set(step) - {"id", "question", "buttons", "free_text"})
        if unknown:
            raise Invalid(f"{where} has an unknown field {unknown[0]!r}", field=where)
        try:
            step_id = v.text(step, "id", required=True, max_len=STEP_ID_MAX)
            question = v.text(step, "question", required=True, max_len=QUESTION_MAX)
            buttons = v.string_list(step, "buttons", max_items=FLOW_BUTTONS_MAX, max_len=BUTTON_MAX) or []
            free_text = v.boolean(step, "free_text", default=False)
        except Invalid as exc:
            raise Invalid(f"{where}: {exc.message}", field=where) from None
        if step_id in seen:
            raise Invalid(f"{where}: the id {step_id!r} is used twice", field=where)
        if not buttons and not free_text:
            raise Invalid(f"{where}: a step needs buttons or free_text", field=where)
        seen.add(step_id)
        steps.append({"id": step_id, "question": question, "buttons": buttons, "free_text": free_text})
    return steps


async def _flow(request: web.Request) -> Flow:
    flow = await request.app[SERVICES].store.get_flow(request.match_info["id"])
    if flow is None:
        raise NotFound("no such flow")
    return flow


async def list_flows(request: web.Request) -> web.Response:
    """``GET /api/flows``."""
    await _reader(request)
    flows = await request.app[SERVICES].store.list_flows()
    return web.json_response({"flows": [f.to_wire() for f in flows]})


async def get_flow(request: web.Request) -> web.Response:
    """``GET /api/flows/{id}``."""
    await _reader(request)
    return web.json_response({"flow": (await _flow(request)).to_wire()})


async def create_flow(request: web.Request) -> web.Response:
    """``POST /api/flows`` (admin): ``{name, steps, language?}``."""
    await require_admin(request)
    body = await read_json(request)
    v.only(body, {"name", "steps", "language"})
    flow = Flow(
        id=new_id("fl"),
        name=v.text(body, "name", required=True, max_len=TITLE_MAX),
        steps=validate_steps(body.get("steps")),
        language=v.language(body, default="en") or "en",
    )
    flow = await request.app[SERVICES].store.create_flow(flow)
    return web.json_response({"flow": flow.to_wire()}, status=201)


async def update_flow(request: web.Request) -> web.Response:
    """``PATCH /api/flows/{id}`` (admin): ``{name?, steps?, language?}`` (``steps`` replaces them all)."""
    await require_admin(request)
    body = await read_json(request)
    v.only(body, {"name", "steps", "language"})
    flow = await _flow(request)
    if (name := v.text(body, "name", max_len=TITLE_MAX)) is not None:
        if not name:
            raise Invalid("name must not be empty", field="name")
        flow.name = name
    if "steps" in body:
        flow.steps = validate_steps(body["steps"])
    if language := v.language(body):
        flow.language = language
    flow = await request.app[SERVICES].store.update_flow(flow)
    return web.json_response({"flow": flow.to_wire()})


async def delete_flow(request: web.Request) -> web.Response:
    """``DELETE /api/flows/{id}`` (admin)."""
    await require_admin(request)
    if not await request.app[SERVICES].store.delete_flow(request.match_info["id"]):
        raise NotFound("no such flow")
    return _no_content()


def setup(app: web.Application) -> None:
    """Register the catalog routes."""
    for name, (lister, getter, creator, updater, deleter) in {
        "textblocks": (list_textblocks, get_textblock, create_textblock, update_textblock, delete_textblock),
        "articles": (list_articles, get_article, create_article, update_article, delete_article),
        "flows": (list_flows, get_flow, create_flow, update_flow, delete_flow),
    }.items():
        app.router.add_get(f"/api/{name}", lister)
        app.router.add_post(f"/api/{name}", creator)
        app.router.add_get(f"/api/{name}/{{id}}", getter)
        app.router.add_patch(f"/api/{name}/{{id}}", updater)
        app.router.add_delete(f"/api/{name}/{{id}}", deleter)
