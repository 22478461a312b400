"""The whole agent/customer story in two real Chromium pages against a real server: the customer
starts on /demo while the agent looks at another console view; the console rings and toasts; the
toast opens the conversation; Assign to me; a `#` text block with its variables filled; an image
upload seen on both sides; an article card; a flow answered in the widget; a note the customer never
sees; Done."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from playwright.async_api import Browser, Page

from tests.browser.conftest import (
    SCREENSHOTS,
    agent_login,
    customer_start,
    new_page,
    screenshots_wanted,
    shadow_text,
    wait_until,
)
from tests.conftest import RunningServer

pytestmark = pytest.mark.browser

CUSTOMER = "Marie Dupont"
NOTE = "VIP customer, refund approved internally"


def png_bytes() -> bytes:
    img = Image.new("RGB", (320, 200), (30, 110, 220))
    for x in range(0, 320, 40):
        for y in range(0, 200, 40):
            if (x + y) // 40 % 2:
                img.paste((250, 180, 40), (x, y, x + 40, y + 40))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


async def wait_image_loaded(page: Page, selector: str) -> None:
    await page.wait_for_selector(selector)
    await page.wait_for_function(
        """sel => { const all = [...document.querySelectorAll(sel)];
                    const host = document.getElementById('rtc-engage-widget');
                    if (host) all.push(...host.shadowRoot.querySelectorAll(sel));
                    return all.length && all.every(i => i.complete && i.naturalWidth > 0); }""",
        arg=selector,
    )


async def test_new_conversation_story(server: RunningServer, browser: Browser) -> None:
    """Pins features 1-5, 10, 11 in the browser: ring + toast while Live Chat is hidden, toast opens
    the conversation, Assign to me, `#` text block filled, image both sides, article card, flow run by
    the customer, note agent-only, resolve to Done."""
    base = server.url
    actx, agent, awatch = await new_page(browser, permissions=["notifications"], origin=base)
    cctx, customer, cwatch = await new_page(browser, 1280, 800)

    await agent_login(agent, base)
    await agent.evaluate("""() => {
        window.__rang = 0;
        document.getElementById('ringtone').addEventListener('play', () => window.__rang++);
    }""")
    await agent.click(".rail__item[data-view=profile]")  # another console view in front
    await agent.wait_for_selector(".view--profile:not([hidden])")

    # 1. the customer starts; the console rings and toasts; the badge counts it
    await customer_start(customer, base, CUSTOMER, "Hello, my parcel has not arrived")
    toast = agent.locator(".toast--incoming")
    await toast.wait_for()
    assert CUSTOMER in await toast.inner_text()
    await wait_until(agent, "() => window.__rang >= 1")
    assert await agent.evaluate("!document.getElementById('ringtone').paused")
    await agent.wait_for_selector(".section[data-section=unassigned] .badge:not([hidden])")
    assert (await agent.inner_text(".section[data-section=unassigned] .badge")).strip() == "1"

    # clicking the toast opens the conversation and silences the ringtone
    await toast.click()
    await agent.wait_for_selector(".view--livechat:not([hidden]) .conv .conv__name")
    assert await agent.inner_text(".conv__name") == CUSTOMER
    await wait_until(agent, "() => document.getElementById('ringtone').paused")
    assert await agent.locator(".toast--incoming").count() == 0

    # 2. Assign to me
    await agent.click("#assign-to-me")
    await agent.wait_for_selector(".conv__header .assignee")
    await customer.wait_for_selector(".msg--system >> text=Alice Martin joined the conversation")

    # 3. `#` opens the text-block search; Enter inserts the filled body; Enter sends
    await agent.click("#composer-input")
    await agent.keyboard.type("#hel")
    await agent.wait_for_selector("#textblock-popup .tbpopup__item")
    await agent.keyboard.press("Enter")
    filled = "Hello Marie Dupont, I am Alice Martin. How can I help you today?"
    assert await agent.input_value("#composer-input") == filled
    await agent.keyboard.press("Enter")
    await customer.wait_for_selector(f".msg--theirs >> text={filled}")

    # 4. image upload: thumbnail shown on both sides
    async with agent.expect_file_chooser() as fc:
        await agent.click(".attachbar__btn[data-action=image]")
    chooser = await fc.value
    await chooser.set_files(files=[{"name": "parcel.png", "mimeType": "image/png", "buffer": png_bytes()}])
    await wait_image_loaded(agent, ".msg--k-image img")
    await wait_image_loaded(customer, ".msg--k-image img")

    # 4. article card: picked in the console, a link opening in a new tab in the widget
    await agent.click(".attachbar__btn[data-action=article]")
    await agent.click(".picker--articles .pick >> text=Tracking an order")
    card = customer.locator(".msg--k-article a.article")
    await card.wait_for()
    assert await card.get_attribute("target") == "_blank"
    assert (await card.get_attribute("href") or "").startswith("https://example.com/")

    # 4. chat block: a text block sent as it is, variables filled by the server
    await agent.click(".attachbar__btn[data-action=chatblock]")
    await agent.click(".picker--chatblocks .pick >> text=Thank you")
    await customer.wait_for_selector(
        ".msg--k-chatblock >> text=Thank you for contacting us, Marie Dupont. Have a nice day!"
    )

    # 4. flow: sent by the agent, answered step by step by the customer
    await agent.click(".attachbar__btn[data-action=flow]")
    await agent.click(".picker--flows .pick >> text=Satisfaction survey")
    await customer.click(".wflow button[data-answer=Great]")
    comment = customer.locator(".wflow .wflow__input")
    await comment.fill("Quick and friendly")
    await comment.press("Enter")
    await customer.wait_for_selector(".wflow__done")
    await agent.wait_for_selector(".msg--k-flow_answer >> text=Great")
    await agent.wait_for_selector(".msg--k-flow_answer >> text=Quick and friendly")

    # 10. a note: yellow in the console, never on the customer's page
    await agent.click("label.switch")
    await agent.fill("#composer-input", NOTE)
    await agent.press("#composer-input", "Enter")
    await agent.wait_for_selector(f".msg--note:not(.msg--pending) >> text={NOTE}")
    await agent.click("label.switch")
    await agent.fill("#composer-input", "Your parcel is on its way.")
    await agent.press("#composer-input", "Enter")
    await customer.wait_for_selector(".msg--theirs >> text=Your parcel is on its way.")
    assert NOTE not in await shadow_text(customer)

    if screenshots_wanted():
        await take_screenshots(browser, base, agent, customer)

    # 11. Done: the green check moves it to Done; the customer is told; the note stayed hidden
    await agent.click("#resolve")
    await agent.wait_for_selector(".section[data-section=done].is-active")
    await agent.wait_for_selector(".conv-item >> text=" + CUSTOMER)
    assert await agent.input_value("#status") == "done"
    await customer.wait_for_selector(".msg--system >> text=Conversation resolved")
    await customer.reload()
    await customer.wait_for_selector(".wtimeline .msg--system >> text=Conversation resolved")
    assert NOTE not in await shadow_text(customer)

    assert awatch.errors == [] and cwatch.errors == []
    await actx.close()
    await cctx.close()


async def take_screenshots(browser: Browser, base: str, agent: Page, customer: Page) -> None:
    """docs/screenshots: the widget with a pending video-call prompt, then the console with the
    accepted request's green indicator and a second customer waiting under New/Unassigned."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await agent.click(".reqbtn[data-kind=video]")
    await customer.wait_for_selector(".prompt[data-kind=video]")
    await customer.screenshot(path=str(SCREENSHOTS / "widget.png"))
    await customer.click(".prompt[data-kind=video] button[data-action=accept]")
    await agent.wait_for_selector(".reqchip[data-kind=video] .green-dot")
    ctx2, other, _ = await new_page(browser, 1280, 800)
    await customer_start(other, base, "Jonas Weber", "Do you ship to Belgium?")
    await agent.wait_for_selector(".section[data-section=unassigned] .badge:not([hidden])")
    await agent.screenshot(path=str(SCREENSHOTS / "console.png"))
    await ctx2.close()
