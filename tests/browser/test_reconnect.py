"""Recovery in the browser: while a page's socket is down it shows "Reconnecting…", what it sends is
kept and resent with the same client_id after the reconnect (stored once), and what it missed arrives
through `conversation.sync` from the highest seq it had, once and in order."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page

from tests.browser.conftest import agent_login, customer_start, new_page
from tests.conftest import RunningServer

pytestmark = pytest.mark.browser

DROP = """hub => { const s = hub.socket; s.io.reconnection(false); s.io.engine.close(); }"""
RESTORE = """hub => { const s = hub.socket; s.io.reconnection(true); s.connect(); }"""


async def count_text(page: Page, selector: str, text: str) -> int:
    return await page.locator(selector).filter(has_text=text).count()


async def test_offline_sends_and_missed_messages(server: RunningServer, browser: Browser) -> None:
    """Agent offline: the customer's two messages arrive after the reconnect, in order, once; the
    agent's message typed while offline is delivered once. Same for the widget going offline."""
    base = server.url
    actx, agent, awatch = await new_page(browser)
    cctx, customer, cwatch = await new_page(browser, 1280, 800)
    await agent_login(agent, base)
    await customer_start(customer, base, "Lea Roux", "Hi there")
    await agent.click(".conv-item")
    await agent.click("#assign-to-me")
    await customer.wait_for_selector(".msg--system >> text=joined the conversation")

    # the console drops; the customer goes on writing; the agent writes too
    agent_hub = await agent.evaluate_handle("window.__console.hub")
    await agent.evaluate(DROP, agent_hub)
    await agent.wait_for_selector(".banner--offline >> text=Reconnecting…")
    for text in ("missed one", "missed two"):
        await customer.fill(".wcomposer__input", text)
        await customer.press(".wcomposer__input", "Enter")
        await customer.wait_for_selector(f".msg--mine:not(.msg--pending) >> text={text}")
    await agent.fill("#composer-input", "sent while offline")
    await agent.press("#composer-input", "Enter")
    await agent.wait_for_selector(".msg--pending >> text=sent while offline")
    await agent.evaluate(RESTORE, agent_hub)
    await agent.wait_for_selector(".banner--online >> text=Back online")
    await agent.wait_for_selector(".msg--theirs >> text=missed two")
    await customer.wait_for_selector(".msg--theirs >> text=sent while offline")
    texts = await agent.locator(".msg--theirs .msg__text").all_inner_texts()
    assert texts == ["Hi there", "missed one", "missed two"]
    await agent.wait_for_selector(".msg--mine:not(.msg--pending) >> text=sent while offline")
    assert await count_text(agent, ".msg--mine", "sent while offline") == 1
    assert await count_text(customer, ".msg--theirs", "sent while offline") == 1

    # now the widget drops
    widget_hub = await customer.evaluate_handle("window.__rtcEngageWidget.hub")
    await customer.evaluate(DROP, widget_hub)
    await customer.wait_for_selector(".wstatus--offline")
    await agent.fill("#composer-input", "are you still there?")
    await agent.press("#composer-input", "Enter")
    await customer.fill(".wcomposer__input", "typed offline")
    await customer.press(".wcomposer__input", "Enter")
    await customer.evaluate(RESTORE, widget_hub)
    await customer.wait_for_selector(".msg--theirs >> text=are you still there?")
    await agent.wait_for_selector(".msg--theirs >> text=typed offline")
    await customer.wait_for_selector(".msg--mine:not(.msg--pending) >> text=typed offline")
    assert await count_text(customer, ".msg--mine", "typed offline") == 1
    assert await count_text(agent, ".msg--theirs", "typed offline") == 1
    assert awatch.errors == [] and cwatch.errors == []
    await actx.close()
    await cctx.close()
