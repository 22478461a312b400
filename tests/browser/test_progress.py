"""Visible progress over a slow link, in real Chromium against a real server: the console's page is
throttled with the DevTools protocol (``Network.emulateNetworkConditions`` on its own CDP session).

Pins: a large upload shows a progress bar (XMLHttpRequest upload progress) whose value goes up step
by step, and Cancel stops it (nothing is sent, the row goes, the agent is told); a large file
attachment's download shows its own progress bar, moving up too, and can be cancelled; without the
throttle an upload completes and its message reaches the customer.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from playwright.async_api import Browser, CDPSession, Page

from tests.browser.conftest import PASSWORD, new_page
from tests.conftest import Hub, RunningServer

pytestmark = pytest.mark.browser

BIG = 3 * 1024 * 1024
THROTTLE_BPS = 400 * 1024  # about 8 s for BIG: time enough to see it move and to cancel


async def poll(page: Page, predicate: str, timeout: float = 8.0) -> None:
    """Wait until the JS function ``predicate`` is truthy (page.evaluate: the CSP never refuses it)."""
    async with asyncio.timeout(timeout):
        while not await page.evaluate(f"() => !!({predicate})()"):
            await asyncio.sleep(0.03)


async def throttle(cdp: CDPSession, bytes_per_s: float) -> None:
    """Limit the page's upload and download rates (``-1``: no limit)."""
    await cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 20 if bytes_per_s > 0 else 0,
            "uploadThroughput": bytes_per_s,
            "downloadThroughput": bytes_per_s,
        },
    )


async def rising_values(page: Page, selector: str, wanted: int = 4, timeout: float = 8.0) -> list[float]:
    """Sample the value of the progress bar at ``selector`` until ``wanted`` distinct values between 0
    and 1 were seen (in the order seen)."""
    seen: list[float] = []
    async with asyncio.timeout(timeout):
        while len(seen) < wanted:
            value = await page.evaluate(
                "sel => { const b = document.querySelector(sel); return b && b.hasAttribute('value') ? b.value : null; }",
                selector,
            )
            if value is not None and 0 < value < 1 and (not seen or value != seen[-1]):
                seen.append(value)
            await asyncio.sleep(0.12)
    return seen


async def choose_file(page: Page, action: str, name: str, data: bytes, mime: str) -> None:
    async with page.expect_file_chooser() as fc:
        await page.click(f".attachbar__btn[data-action={action}]")
    chooser = await fc.value
    await chooser.set_files(files=[{"name": name, "mimeType": mime, "buffer": data}])


async def test_upload_and_download_progress_over_a_slow_link(
    server: RunningServer, hub: Hub, browser: Browser
) -> None:
    """3 MB upload at 400 KB/s: the bar takes several increasing values, Cancel aborts it and no message
    is sent; unthrottled, the same file is sent; throttled again, its download's bar rises and Cancel
    stops it."""
    customer = await hub.customer(name="Slow Link")
    started = await customer.ok(
        "conversation.start", {"body": "My upload is slow", "page_url": server.url + "/demo"}
    )
    conv_id = started["conversation"]["id"]

    ctx, agent, watch = await new_page(browser)
    await agent.goto(server.url + "/agent/")
    await agent.fill("#login-email", "alice@example.com")
    await agent.fill("#login-password", PASSWORD)
    await agent.click(".login__form button[type=submit]")
    await agent.wait_for_selector(".console .section")
    await poll(agent, "() => window.__console && window.__console.hub.connected")
    await agent.click(f".conv-item[data-id='{conv_id}']")
    await agent.click("#assign-to-me")
    await agent.wait_for_selector(".conv__header .assignee")

    data = os.urandom(BIG)
    cdp = await ctx.new_cdp_session(agent)
    await cdp.send("Network.enable")
    await throttle(cdp, THROTTLE_BPS)

    # upload: the bar rises, then Cancel
    await choose_file(agent, "file", "big-report.bin", data, "application/octet-stream")
    await agent.wait_for_selector(".upload[data-name='big-report.bin'] progress.upload__bar")
    values = await rising_values(agent, ".upload__bar")
    assert values == sorted(values) and len(set(values)) >= 4, values
    label = await agent.get_attribute(".upload__bar", "aria-label")
    assert label == "Uploading big-report.bin"
    await agent.click(".upload__cancel")
    await agent.wait_for_selector(".upload", state="detached")
    await agent.wait_for_selector(".toast >> text=Upload of big-report.bin cancelled")
    await asyncio.sleep(0.3)
    assert await agent.locator(".msg--k-file").count() == 0

    # unthrottled, it goes through and the customer gets the file
    await throttle(cdp, -1)
    await choose_file(agent, "file", "big-report.bin", data, "application/octet-stream")
    await agent.wait_for_selector(
        ".msg--k-file:not(.msg--pending) .att__name >> text=big-report.bin", timeout=15000
    )
    await customer.events.wait("message.new", lambda m: m["message"]["kind"] == "file")
    assert await agent.locator(".upload").count() == 0

    # download of the attachment: its own bar rises, Cancel stops it
    await throttle(cdp, THROTTLE_BPS)
    await agent.click(".msg--k-file a.att--file")
    await agent.wait_for_selector(".msg--k-file .download progress.download__bar")
    values = await rising_values(agent, ".download__bar")
    assert values == sorted(values) and len(set(values)) >= 4, values
    await agent.click(".download__cancel")
    await agent.wait_for_selector(".download", state="detached")

    await throttle(cdp, -1)
    assert watch.errors == []
    await ctx.close()
