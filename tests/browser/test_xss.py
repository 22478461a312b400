"""Nothing a customer or an agent types runs as code: script payloads in a message, in the visitor's
name and in an uploaded file's name are shown as text on both pages, and a canary set by any of them
(`window.__xss`) stays undefined, with no dialog opened."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tests.browser.conftest import agent_login, customer_start, new_page, shadow_text
from tests.conftest import RunningServer

pytestmark = pytest.mark.browser

NAME = '<img src=x onerror="window.__xss=1;alert(1)">'
BODY = '<script>window.__xss=2;alert(2)</script><svg onload="window.__xss=3"></svg>'
FILE = "<img src=y onerror=window.__xss=4>.txt"
AGENT_BODY = '"><iframe srcdoc="<script>parent.__xss=5</script>"></iframe>'


async def test_payloads_render_as_text(server: RunningServer, browser: Browser) -> None:
    """XSS payloads in the visitor name, a message body, a file name and an agent reply stay inert
    text in the console and in the widget."""
    base = server.url
    actx, agent, awatch = await new_page(browser)
    cctx, customer, cwatch = await new_page(browser, 1280, 800)
    await agent_login(agent, base)
    await customer_start(customer, base, NAME, BODY)

    # the customer also uploads a file whose name is a payload
    async with customer.expect_file_chooser() as fc:
        await customer.click(".wcomposer .wbtn--icon")
    await (await fc.value).set_files(files=[{"name": FILE, "mimeType": "text/plain", "buffer": b"hello"}])
    await customer.wait_for_selector(".msg--k-file:not(.msg--pending)")

    # the agent sees all of it as text, in the list, the toast and the timeline
    item = agent.locator(".conv-item").first
    await item.wait_for()
    assert await item.locator(".conv-item__name").inner_text() == NAME
    await item.click()
    await agent.wait_for_selector(".msg--k-file")
    assert await agent.inner_text(".conv__name") == NAME
    texts = await agent.locator(".msg--theirs .msg__text").all_inner_texts()
    assert BODY in texts
    await agent.wait_for_selector(".msg--k-file .att__name")
    file_name = await agent.inner_text(".msg--k-file .att__name")
    assert "onerror" in file_name  # shown (possibly made safe by the server), never parsed

    await agent.click("#assign-to-me")
    await agent.fill("#composer-input", AGENT_BODY)
    await agent.press("#composer-input", "Enter")
    await customer.wait_for_selector(".msg--theirs .msg__text")
    assert AGENT_BODY in await shadow_text(customer)
    assert BODY in await shadow_text(customer)

    for page, watch in ((agent, awatch), (customer, cwatch)):
        assert await page.evaluate("typeof window.__xss") == "undefined"
        assert watch.dialogs == []
        assert await page.locator("iframe").count() == 0
    # no element was created from the payloads on either side
    assert await agent.locator(".conv img[src='x'], .conv svg[onload]").count() == 0
    assert (
        await customer.evaluate(
            "document.getElementById('rtc-engage-widget').shadowRoot.querySelectorAll('img[src=\"x\"], svg[onload], script').length"
        )
        == 0
    )
    await actx.close()
    await cctx.close()
