"""The main story in the reader's language, in real Chromium against a real server, once in English and
once in French: the customer's browser language (Playwright's ``locale``) picks the widget's language;
the agent's stored setting, switched in the console's Profile & settings (PATCH /api/me), picks the
console's. Pins: visible words of both pages come from the catalogue ("Attribuer à moi", "Notes",
"Pièces jointes", "Blocs de texte", "Demander le bureau", "Terminé", ...); a system message stored as
code + params reads in each reader's language (an English agent and a French customer at once); the
``#`` search puts the conversation's language first; the setting survives a reload.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from rtc_server.app import SERVICES
from tests.browser.conftest import PASSWORD, PageWatch
from tests.conftest import RunningServer

pytestmark = pytest.mark.browser

CUSTOMER = "Marie Dupont"


@dataclass(frozen=True)
class Words:
    """What each page must show in one language."""

    browser: str  # the customer's browser locale
    widget_title: str
    start: str
    profile_title: str
    assign: str
    request_desktop: str
    show_screen: str
    attachments: str
    chatblocks: str
    ask_cobrowse: str
    notes: str
    call_ended: str
    joined: str
    block_shortcut: str
    block_text: str
    send_article: str
    done_section: str
    done_status: str
    resolved: str


WORDS = {
    "en": Words(
        browser="en-US",
        widget_title="Chat with us",
        start="Start chat",
        profile_title="Profile & settings",
        assign="Assign to me",
        request_desktop="Request desktop",
        show_screen="Show screen",
        attachments="Attachments",
        chatblocks="Chatblocks",
        ask_cobrowse="Ask for Co-Browsing",
        notes="Notes",
        call_ended="Call ended after 3 min, 12 sec",
        joined="Alice Martin joined the conversation",
        block_shortcut="#hello",
        block_text="Hello Marie Dupont, I am Alice Martin. How can I help you today?",
        send_article="Send an article",
        done_section="Done",
        done_status="Done",
        resolved="Conversation resolved",
    ),
    "fr": Words(
        browser="fr-FR",
        widget_title="Discutez avec nous",
        start="Démarrer le chat",
        profile_title="Profil et paramètres",
        assign="Attribuer à moi",
        request_desktop="Demander le bureau",
        show_screen="Afficher l'écran",
        attachments="Pièces jointes",
        chatblocks="Blocs de texte",
        ask_cobrowse="Demander la co-navigation",
        notes="Notes",
        call_ended="Appel terminé après 3 min et 12 s",
        joined="Alice Martin a rejoint la conversation",
        block_shortcut="#bonjour",
        block_text="Bonjour Marie Dupont, je suis Alice Martin. Comment puis-je vous aider ?",
        send_article="Envoyer un article",
        done_section="Terminé",
        done_status="Terminé",
        resolved="Conversation résolue",
    ),
}


async def open_page(
    browser: Browser, locale: str, width: int, height: int
) -> tuple[BrowserContext, Page, PageWatch]:
    ctx = await browser.new_context(viewport={"width": width, "height": height}, locale=locale)
    page = await ctx.new_page()
    page.set_default_timeout(8000)
    return ctx, page, PageWatch(page)


async def poll(page: Page, predicate: str, timeout: float = 8.0) -> None:
    """Wait until the JS function ``predicate`` is truthy (page.evaluate: the CSP never refuses it)."""
    async with asyncio.timeout(timeout):
        while not await page.evaluate(f"() => !!({predicate})()"):
            await asyncio.sleep(0.03)


async def text_of(page: Page, selector: str) -> str:
    return (await page.inner_text(selector)).strip()


@pytest.mark.parametrize("lang", ["en", "fr"])
async def test_main_story_in_the_readers_language(server: RunningServer, browser: Browser, lang: str) -> None:
    """The customer (browser in ``lang``) starts a chat; the agent (English until switched in Profile &
    settings) opens it, reads a stored `request.ended` system message in English while the customer
    reads it in ``lang``, switches (fr), assigns, uses `#`, Notes, the article picker and resolves;
    every visible word checked is the catalogue's for that language, also after a reload."""
    w = WORDS[lang]
    base = server.url
    actx, agent, awatch = await open_page(browser, "en-US", 1366, 820)
    cctx, customer, cwatch = await open_page(browser, w.browser, 1280, 800)

    # the widget follows the browser's language
    await customer.goto(base + "/demo")
    await customer.click("#rtc-engage-widget .launcher")
    assert await text_of(customer, ".panel__title") == w.widget_title
    assert await customer.get_attribute(".rtc-widget", "lang") == lang
    assert await text_of(customer, ".prechat button[type=submit]") == w.start
    await customer.fill(".prechat input[name=name]", CUSTOMER)
    await customer.fill(".prechat textarea", "Hello / Bonjour")
    await customer.click(".prechat button[type=submit]")
    await customer.wait_for_selector(".wtimeline .msg--mine:not(.msg--pending)")

    # the agent (English for now) opens it
    await agent.goto(base + "/agent/")
    await agent.fill("#login-email", "alice@example.com")
    await agent.fill("#login-password", PASSWORD)
    await agent.click(".login__form button[type=submit]")
    await agent.wait_for_selector(".console .section")
    await poll(agent, "() => window.__console && window.__console.hub.connected")
    await agent.click(f".conv-item >> text={CUSTOMER}")
    await agent.wait_for_selector("#assign-to-me")
    assert await text_of(agent, "#assign-to-me") == "Assign to me"

    # a system message stored as code + params: each reader reads it in their own language
    conv_id = await agent.evaluate("() => window.__console.pane.id")
    services = server.app[SERVICES]
    conv = await services.store.get_conversation(conv_id)
    await services.timeline.system(conv, "request.ended", request_id="rq_test", kind="call", duration_s=192)
    await agent.wait_for_selector(".msg--system >> text=Call ended after 3 min, 12 sec")
    await customer.wait_for_selector(f".msg--system >> text={w.call_ended}")

    if lang != "en":
        # switch the console's language in Profile & settings: saved with the agent, drawn again
        await agent.click(".rail__item[data-view=profile]")
        await agent.select_option("#profile-language", lang)
        await agent.wait_for_selector(f".view--profile h1 >> text={w.profile_title}")
        assert await agent.evaluate("() => document.documentElement.lang") == lang
        me = await services.store.get_agent(await agent.evaluate("() => window.__console.me.id"))
        assert me is not None and me.locale == lang
        await agent.click(".rail__item[data-view=livechat]")
        await agent.wait_for_selector(f".msg--system >> text={w.call_ended}")

    # the open conversation's words
    assert await text_of(agent, "#assign-to-me") == w.assign
    assert await agent.get_attribute(".reqbtn[data-kind=desktop]", "aria-label") != ""
    await agent.click(".reqbtn[data-kind=desktop]")
    items = [s.strip() for s in await agent.locator(".menu [role=menuitem]").all_inner_texts()]
    assert items == [w.request_desktop, w.show_screen]
    await agent.keyboard.press("Escape")  # the menu closes, the focus goes back to its button
    await agent.wait_for_selector(".menu", state="detached")
    assert await agent.evaluate("() => document.activeElement.dataset.kind") == "desktop"
    assert await agent.get_attribute("#attachbar", "aria-label") == w.attachments
    assert await text_of(agent, ".attachbar__btn[data-action=chatblock]") == w.chatblocks
    assert await text_of(agent, ".attachbar__btn[data-action=cobrowse]") == w.ask_cobrowse
    assert await text_of(agent, "label.switch .switch__label") == w.notes

    await agent.click("#assign-to-me")
    await customer.wait_for_selector(f".msg--system >> text={w.joined}")
    await agent.wait_for_selector(f".msg--system >> text={w.joined}")

    # `#`: the conversation's language first; Enter inserts the filled block, Enter sends it
    await agent.click("#composer-input")
    await agent.keyboard.type("#")
    await agent.wait_for_selector("#textblock-popup .tbpopup__item")
    first = await agent.get_attribute("#textblock-popup .tbpopup__item >> nth=0", "lang")
    assert first == lang
    await agent.keyboard.type(w.block_shortcut[1:4])
    await agent.wait_for_selector(f"#textblock-popup .tbpopup__item.is-active >> text={w.block_shortcut}")
    await agent.keyboard.press("Enter")
    assert await agent.input_value("#composer-input") == w.block_text
    await agent.keyboard.press("Enter")
    await customer.wait_for_selector(f".msg--theirs >> text={w.block_text}")

    # the article picker speaks the console's language
    await agent.click(".attachbar__btn[data-action=article]")
    assert await text_of(agent, ".modal h2") == w.send_article
    await agent.keyboard.press("Escape")
    await agent.wait_for_selector(".modal", state="detached")

    # Done
    await agent.click("#resolve")
    await agent.wait_for_selector(".section[data-section=done].is-active")
    assert await text_of(agent, ".section[data-section=done] .section__label") == w.done_section
    assert (
        await agent.evaluate("() => document.getElementById('status').selectedOptions[0].textContent")
        == w.done_status
    )
    await customer.wait_for_selector(f".msg--system >> text={w.resolved}")

    # the agent's language is stored: a reload keeps it
    await agent.reload()
    await agent.wait_for_selector(".console .section")
    assert await text_of(agent, ".section[data-section=done] .section__label") == w.done_section
    assert await agent.evaluate("() => document.documentElement.lang") == lang

    assert awatch.errors == [] and cwatch.errors == []
    await actx.close()
    await cctx.close()
