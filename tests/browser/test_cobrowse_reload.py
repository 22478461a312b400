"""The console learns the live co-browse sessions again after a reload: on every (re)connect it calls
``requests.live``, so the rail's blinking dot and the Co-Browsing view's list come back, the agent who
asked joins the session by itself once the customer accepts, and an agent who never opened the
conversation in this page can open the session from the view and gets the customer's page.

The first test's live reload happens while a second agent watches; the second test has a lone agent
reload: the media plane keeps an agent's place in a co-browse session for the rejoin grace, so the
session survives and her console joins it again.

Before ``requests.live`` the console only knew the requests of conversations it had synced in this page:
after a reload the Co-Browsing view was empty and the rail said nothing was live.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.browser.conftest import PageWatch, agent_login, new_page, wait_until
from tests.conftest import RunningServer

Side = tuple[BrowserContext, Page, PageWatch]

pytestmark = pytest.mark.browser

REPLAY_HAS = """marker => {
  const frame = document.querySelector('.cbs:not([hidden]) iframe');
  return !!(frame && frame.contentDocument && frame.contentDocument.body
            && frame.contentDocument.body.textContent.includes(marker));
}"""


async def mark(customer: Page, text: str) -> None:
    """A DOM change on the customer's page."""
    await customer.evaluate(
        "t => { const p = document.createElement('p'); p.textContent = t; document.body.append(p); }", text
    )


async def ask_for_cobrowse(browser: Browser, base: str) -> tuple[Side, Side]:
    """Nina writes from the demo page; Alice signs in, takes the conversation and asks to co-browse
    (pending). Returns ``(context, page, watch)`` of the customer, then of Alice."""
    customer_side = await new_page(browser, 1200, 760)
    alice_side = await new_page(browser)
    customer, alice = customer_side[1], alice_side[1]
    await customer.goto(base + "/demo")
    await customer.click("#rtc-engage-widget .launcher")
    await customer.fill(".prechat input[name=name]", "Nina Rossi")
    await customer.fill(".prechat textarea", "Can you look at my cart?")
    await customer.click(".prechat button[type=submit]")
    await customer.wait_for_selector(".wtimeline .msg--mine:not(.msg--pending)")
    await agent_login(alice, base)
    await alice.click(".conv-item")
    await alice.click("#assign-to-me")
    await alice.click(".attachbar__btn[data-action=cobrowse]")
    await alice.wait_for_selector(".reqchip[data-kind=cobrowse][data-state=pending]")
    return customer_side, alice_side


async def replay_shows(agent: Page, marker: str, timeout: float = 10.0) -> None:
    await wait_until(agent, f"() => ({REPLAY_HAS})({marker!r})", timeout=timeout)


async def test_cobrowse_sessions_come_back_after_a_reload(server: RunningServer, browser: Browser) -> None:
    """Alice asks for co-browsing and reloads before the customer answers: the view lists the pending
    request, and when the customer accepts Alice's console joins by itself. Bob, freshly signed in and
    without opening the conversation, sees the live session in the view, opens it and gets the page.
    Alice reloads again: the rail blinks, the view lists the session as live, Alice opens it and her
    replay follows the page again."""
    base = server.url
    (cctx, customer, cwatch), (actx, alice, awatch) = await ask_for_cobrowse(browser, base)

    # 1. reload while pending: the view lists it; the customer accepts; Alice joins by herself
    await alice.reload()
    await wait_until(alice, "() => !!(window.__console && window.__console.hub.connected)")
    await alice.click(".rail__item[data-view=cobrowse]")
    pending = alice.locator(".cbv__item[data-state=pending]")
    await pending.wait_for()
    assert "Nina Rossi" in await pending.inner_text()
    await customer.bring_to_front()
    await customer.click(".prompt[data-kind=cobrowse] button[data-action=accept]")
    await customer.locator(".cb-bar").wait_for()
    await alice.bring_to_front()
    await alice.wait_for_selector(".cbv__item[data-state=active]", timeout=10000)
    await alice.wait_for_selector(".cbs[data-state=live] iframe", timeout=10000)
    await mark(customer, "first-marker")
    await replay_shows(alice, "first-marker")

    # 2. another agent, fresh page, never opened the conversation: the view lists it and opens it
    bctx, bob, bwatch = await new_page(browser)
    await agent_login(bob, base, "bob@example.com")
    await bob.wait_for_selector(
        ".rail__item[data-view=cobrowse] .rail__blink:not([hidden])", state="attached"
    )
    await bob.click(".rail__item[data-view=cobrowse]")
    bob_item = bob.locator(".cbv__item[data-state=active]")
    await bob_item.wait_for()
    assert "Nina Rossi" in await bob_item.inner_text()
    await bob_item.click()
    await bob.wait_for_selector(".cbs[data-state=live] iframe", timeout=10000)
    await replay_shows(bob, "first-marker")

    # 3. Alice reloads while the session is live (Bob still watches, so it goes on)
    await alice.reload()
    await wait_until(alice, "() => !!(window.__console && window.__console.hub.connected)")
    await alice.wait_for_selector(
        ".rail__item[data-view=cobrowse] .rail__blink:not([hidden])", state="attached"
    )
    await alice.click(".rail__item[data-view=cobrowse]")
    item = alice.locator(".cbv__item[data-state=active]")
    await item.wait_for()
    assert "Nina Rossi" in await item.inner_text()
    await item.click()
    await alice.wait_for_selector(".cbs[data-state=live] iframe", timeout=10000)
    await mark(customer, "after-reload")
    await replay_shows(alice, "after-reload")
    await replay_shows(bob, "after-reload")

    # the customer is still sharing, and nothing failed in any page
    assert await customer.locator(".cb-bar").is_visible()
    assert awatch.errors == [] and bwatch.errors == [] and cwatch.errors == []
    for ctx in (bctx, actx, cctx):
        await ctx.close()


async def test_a_lone_agent_reloading_keeps_the_session(server: RunningServer, browser: Browser) -> None:
    """Alice alone watches and reloads: the session survives (the agent's peer gets the rejoin grace),
    the view lists it, and her replay follows the page again (before the grace covered co-browsing
    agents, the reload ended the request with ``peer_dropped``)."""
    base = server.url
    (cctx, customer, cwatch), (actx, alice, awatch) = await ask_for_cobrowse(browser, base)
    await customer.bring_to_front()
    await customer.click(".prompt[data-kind=cobrowse] button[data-action=accept]")
    await customer.locator(".cb-bar").wait_for()
    await alice.bring_to_front()
    await alice.wait_for_selector(".reqchip[data-kind=cobrowse][data-state=active]", timeout=10000)
    await mark(customer, "m1")
    await alice.click(".rail__item[data-view=cobrowse]")
    await replay_shows(alice, "m1")
    await alice.reload()
    await wait_until(alice, "() => !!(window.__console && window.__console.hub.connected)")
    await alice.click(".rail__item[data-view=cobrowse]")
    item = alice.locator(".cbv__item[data-state=active]")
    await item.wait_for()
    await item.click()
    await alice.wait_for_selector(".cbs[data-state=live] iframe", timeout=10000)
    await mark(customer, "m2")
    await replay_shows(alice, "m2")
    assert await customer.locator(".cb-bar").is_visible()
    assert awatch.errors == [] and cwatch.errors == []
