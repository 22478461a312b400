"""Accessibility of the pages, checked by axe-core (from npm, ``web/node_modules/axe-core``) in real
Chromium against a real server: the agent console (Live Chat with an open conversation, its request
chip and attachments, the redirect dialog, Profile & settings), the customer widget inside its open
shadow root (conversation, a pending request prompt, a flow card, the co-browsing sharing bar) and the
console's Co-Browsing view with a live session. Pins: no ``serious`` or ``critical`` violation.

axe is injected with Playwright's ``add_script_tag(path=...)``, an inline script that the pages'
Content-Security-Policy would refuse, so these contexts bypass the CSP (the other browser tests keep it).
axe traverses open shadow roots from the document, so the widget is checked by including its host.
The co-browse replay iframe holds the customer's page (not ours) and runs no script: it is not entered.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.browser.conftest import PASSWORD, WEB, PageWatch
from tests.conftest import RunningServer

pytestmark = pytest.mark.browser

AXE = WEB / "node_modules" / "axe-core" / "axe.min.js"
BAD = ("serious", "critical")


async def open_page(
    browser: Browser, width: int = 1366, height: int = 820
) -> tuple[BrowserContext, Page, PageWatch]:
    ctx = await browser.new_context(
        viewport={"width": width, "height": height}, bypass_csp=True, locale="en-US"
    )
    page = await ctx.new_page()
    page.set_default_timeout(8000)
    return ctx, page, PageWatch(page)


async def poll(page: Page, predicate: str, timeout: float = 8.0) -> None:
    """Wait until the JS function ``predicate`` is truthy in ``page`` (page.evaluate, never eval)."""
    async with asyncio.timeout(timeout):
        while not await page.evaluate(f"() => !!({predicate})()"):
            await asyncio.sleep(0.03)


async def axe(page: Page, context: Any = None) -> list[dict[str, Any]]:
    """The serious and critical violations axe finds in ``context`` (the whole document by default)."""
    if not await page.evaluate("() => !!window.axe"):
        await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        """async (context) => {
            const r = await axe.run(context || document, {
              iframes: false,
              resultTypes: ["violations"],
              runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] },
            });
            return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.map(n => ({ target: n.target, summary: n.failureSummary })) }));
        }""",
        context,
    )
    return [v for v in result if v["impact"] in BAD]


async def check(page: Page, where: str, context: Any = None) -> list[str]:
    """``[report]`` if axe finds serious or critical violations on ``page`` (in ``context``), else ``[]``."""
    found = await axe(page, context)
    if not found:
        return []
    lines = [f"{where}:"]
    for v in found:
        lines.append(f"  {v['impact']} {v['id']}: {v['help']}")
        lines += [
            f"    {' > '.join(map(str, n['target']))}: {n['summary']}".replace("\n", " ")
            for n in v["nodes"][:6]
        ]
    return ["\n".join(lines)]


async def login(page: Page, base: str) -> None:
    await page.goto(base + "/agent/")
    await page.fill("#login-email", "alice@example.com")
    await page.fill("#login-password", PASSWORD)
    await page.click(".login__form button[type=submit]")
    await page.wait_for_selector(".console .section")
    await poll(page, "() => window.__console && window.__console.hub.connected")


async def test_console_widget_and_cobrowse_view_have_no_serious_violations(
    server: RunningServer, browser: Browser
) -> None:
    """axe on the sign-in page, the console (open conversation with a pending request, the redirect
    dialog, Profile & settings), the widget (conversation, pending prompt, flow) and the Co-Browsing
    view with a live session plus the customer's sharing bar: no serious or critical violation."""
    base = server.url
    problems: list[str] = []
    actx, agent, awatch = await open_page(browser)
    cctx, customer, cwatch = await open_page(browser, 1200, 800)

    await agent.goto(base + "/agent/")
    await agent.wait_for_selector("#login-email")
    problems += await check(agent, "sign-in page")

    await customer.goto(base + "/demo")
    await customer.click("#rtc-engage-widget .launcher")
    await customer.wait_for_selector("#rtc-engage-widget .prechat")
    problems += await check(
        customer, "widget, before the conversation", {"include": [["#rtc-engage-widget"]]}
    )
    await customer.fill(".prechat input[name=name]", "Nina Rossi")
    await customer.fill(".prechat textarea", "Can you help me with the checkout?")
    await customer.click(".prechat button[type=submit]")
    await customer.wait_for_selector(".wtimeline .msg--mine:not(.msg--pending)")

    await login(agent, base)
    await agent.click(".conv-item")
    await agent.click("#assign-to-me")
    await agent.wait_for_selector(".conv__header .assignee")
    await agent.click(".attachbar__btn[data-action=flow]")
    await agent.click(".picker--flows .pick >> text=Satisfaction survey")
    await agent.click(".reqbtn[data-kind=call]")
    await agent.wait_for_selector(".reqchip[data-kind=call][data-state=pending]")
    await customer.wait_for_selector(".prompt[data-kind=call]")
    await customer.wait_for_selector(".wflow button[data-answer]")

    problems += await check(agent, "console, Live Chat with an open conversation")
    problems += await check(
        customer, "widget, conversation with a prompt and a flow", {"include": [["#rtc-engage-widget"]]}
    )

    await agent.click("#redirect")
    await agent.wait_for_selector(".modal[role=dialog]")
    problems += await check(agent, "console, redirect dialog")
    await agent.keyboard.press("Escape")
    await agent.wait_for_selector(".modal", state="detached")

    await agent.click(".rail__item[data-view=profile]")
    await agent.wait_for_selector(".view--profile:not([hidden])")
    problems += await check(agent, "console, Profile & settings")

    # co-browsing: the customer declines the call, accepts co-browsing; the console's view goes live
    await customer.click(".prompt[data-kind=call] button[data-action=decline]")
    await agent.click(".rail__item[data-view=livechat]")
    await agent.click(".attachbar__btn[data-action=cobrowse]")
    await customer.bring_to_front()
    await customer.click(".prompt[data-kind=cobrowse] button[data-action=accept]")
    await customer.wait_for_selector(".cb-bar")
    problems += await check(
        customer, "widget, co-browsing sharing bar", {"include": [["#rtc-engage-widget"]]}
    )
    await agent.bring_to_front()
    await agent.wait_for_selector(".reqchip[data-kind=cobrowse][data-state=active]", timeout=10000)
    await agent.click(".rail__item[data-view=cobrowse]")
    await agent.wait_for_selector(".cbs[data-state=live] .cbs__box:not([hidden]) iframe")
    problems += await check(agent, "console, Co-Browsing view with a live session")

    assert not problems, "\n".join(problems)
    assert awatch.errors == [] and cwatch.errors == []
    await actx.close()
    await cctx.close()


async def active(page: Page, shadow: bool = False) -> dict[str, Any]:
    """What has the keyboard focus: ``{tag, id, cls, kind, inModal}`` (inside the widget's shadow root if ``shadow``)."""
    return await page.evaluate(
        """shadow => {
            let el = document.activeElement;
            if (shadow) el = document.getElementById('rtc-engage-widget').shadowRoot.activeElement;
            if (!el) return {};
            return { tag: el.tagName.toLowerCase(), id: el.id, cls: el.className || '', kind: el.dataset.kind || '',
                     action: el.dataset.action || '', inModal: !!el.closest('.modal') };
        }""",
        shadow,
    )


async def test_keyboard_only(server: RunningServer, browser: Browser) -> None:
    """The widget and the console driven by the keyboard alone: the launcher opens the chat with the
    focus in its field, Enter starts the conversation, Escape closes and gives the focus back to the
    launcher; in the console Enter opens a conversation (focus to the input field) and assigns it,
    `#` + arrows + Enter insert a text block, arrows move in the attachment toolbar, the redirect
    dialog keeps Tab inside and Escape returns the focus to its button."""
    base = server.url
    cctx, customer, cwatch = await open_page(browser, 1200, 800)
    actx, agent, awatch = await open_page(browser)

    await customer.goto(base + "/demo")
    await customer.focus("#rtc-engage-widget .launcher")
    await customer.keyboard.press("Enter")
    await customer.wait_for_selector(".prechat textarea")
    await poll(customer, "() => document.getElementById('rtc-engage-widget').shadowRoot.activeElement")
    assert (await active(customer, shadow=True))["tag"] == "textarea"
    await customer.keyboard.type("Typed with the keyboard only")
    await customer.keyboard.press("Enter")
    await customer.wait_for_selector(".wtimeline .msg--mine:not(.msg--pending)")
    await customer.keyboard.press("Escape")
    await customer.wait_for_selector(".panel", state="hidden")
    assert "launcher" in (await active(customer, shadow=True))["cls"]
    assert await customer.get_attribute(".launcher", "aria-expanded") == "false"

    await login(agent, base)
    await agent.focus(".conv-item")
    await agent.keyboard.press("Enter")
    await agent.wait_for_selector("#assign-to-me")
    await poll(agent, "() => document.activeElement && document.activeElement.id === 'composer-input'")
    await agent.focus("#assign-to-me")
    await agent.keyboard.press("Enter")
    await agent.wait_for_selector(".conv__header .assignee")
    assert (await active(agent))["id"] == "composer-input"  # assigned: on to the input field

    await agent.keyboard.type("#")
    await agent.wait_for_selector("#textblock-popup .tbpopup__item")
    await agent.keyboard.press("ArrowDown")
    chosen = await agent.get_attribute("#textblock-popup .tbpopup__item.is-active", "id")
    assert await agent.get_attribute("#composer-input", "aria-activedescendant") == chosen
    await agent.keyboard.press("Enter")
    assert (await agent.input_value("#composer-input")).strip()
    await agent.fill("#composer-input", "")

    await agent.focus(".attachbar__btn[data-action=article]")
    await agent.keyboard.press("ArrowRight")
    assert (await active(agent))["action"] == "image"
    await agent.keyboard.press("ArrowLeft")
    await agent.keyboard.press("ArrowLeft")
    assert (await active(agent))["action"] == "chatblock"

    await agent.focus("#redirect")
    await agent.keyboard.press("Enter")
    await agent.wait_for_selector(".modal[role=dialog]")
    assert (await active(agent))["inModal"]
    for _ in range(12):
        await agent.keyboard.press("Tab")
        assert (await active(agent))["inModal"]
    await agent.keyboard.press("Escape")
    await agent.wait_for_selector(".modal", state="detached")
    assert (await active(agent))["id"] == "redirect"

    assert awatch.errors == [] and cwatch.errors == []
    await actx.close()
    await cctx.close()


async def test_opening_the_widget_never_takes_the_focus_from_a_field_the_visitor_chose(
    server: RunningServer, browser: Browser
) -> None:
    """The launcher puts the focus in the message field, but a visitor who goes straight to the name field
    keeps it: the late second focus (for pages still laying the panel out) must not pull it away, or their
    name would be typed into the message."""
    cctx, customer, _ = await open_page(browser, 1200, 800)
    await customer.goto(server.url + "/demo")
    await customer.evaluate(
        """() => {
            const root = document.getElementById('rtc-engage-widget').shadowRoot;
            root.querySelector('.launcher').click();
            root.querySelector('.prechat input[name=name]').focus();
        }"""
    )
    await customer.keyboard.type("Nina Fast")
    await asyncio.sleep(0.2)  # past the widget's delayed focus
    assert (await active(customer, shadow=True))["tag"] == "input"
    await customer.keyboard.type(" Typist")
    assert await customer.input_value(".prechat input[name=name]") == "Nina Fast Typist"
    assert await customer.input_value(".prechat textarea") == ""
    await cctx.close()
