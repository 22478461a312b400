"""Browser fixtures: the built web pages (built here when the sources are newer), Debian's Chromium
driven by Playwright (never a downloaded browser), and helpers to drive the console and the widget.

The ``server`` fixture of ``tests/conftest.py`` serves ``web/dist``; these tests need it built. When
``web/node_modules`` exists the pages are (re)built with ``npm run build`` if missing or stale;
otherwise the tests are skipped with the command to run.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
DIST = WEB / "dist"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-gpu",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
#: Where tests save screenshots of the pages when ``RTC_SCREENSHOTS`` is set (docs/screenshots).
SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "demo"

pytestmark = pytest.mark.browser


def _newest_source() -> float:
    files = [p for p in (WEB / "src").rglob("*") if p.is_file()] + [WEB / "build.mjs", WEB / "package.json"]
    return max(p.stat().st_mtime for p in files)


def _built_at() -> float:
    outputs = [
        DIST / "agent" / "index.html",
        DIST / "agent" / "app.js",
        DIST / "widget.js",
        DIST / "demo" / "index.html",
        DIST / "ringtone.wav",
    ]
    if not all(p.exists() for p in outputs):
        return 0.0
    return min(p.stat().st_mtime for p in outputs)


@pytest.fixture(scope="session")
def web_dist() -> Path:
    """``web/dist``, built first when missing or older than ``web/src``."""
    if _built_at() < _newest_source():
        if not (WEB / "node_modules").is_dir():
            pytest.skip(
                "web/dist is missing or stale and web/node_modules is absent: run "
                "`cd web && npm ci && npm run build` (or `make web`)"
            )
        subprocess.run(["npm", "run", "build"], cwd=WEB, check=True, capture_output=True, timeout=120)
    return DIST


@pytest.fixture
async def browser(web_dist: Path) -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        await b.close()


class PageWatch:
    """Collects a page's uncaught errors and dialogs (a dialog would mean injected script ran)."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("dialog", self._dialog)

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()


async def new_page(
    browser: Browser,
    width: int = 1366,
    height: int = 820,
    permissions: list[str] | None = None,
    origin: str | None = None,
) -> tuple[BrowserContext, Page, PageWatch]:
    ctx = await browser.new_context(viewport={"width": width, "height": height})
    if permissions and origin:
        await ctx.grant_permissions(permissions, origin=origin)
    page = await ctx.new_page()
    page.set_default_timeout(8000)
    return ctx, page, PageWatch(page)


async def agent_login(page: Page, base_url: str, email: str = "alice@example.com") -> None:
    """Open the console and sign in."""
    await page.goto(base_url + "/agent/")
    await page.fill("#login-email", email)
    await page.fill("#login-password", PASSWORD)
    await page.click(".login__form button[type=submit]")
    await page.wait_for_selector(".console .section")
    # the console is connected once the first section's list has loaded
    await wait_until(page, "() => !!(window.__console && window.__console.hub.connected)")


async def wait_until(page: Page, js_function: str, timeout: float = 10.0) -> None:
    """Poll ``js_function`` (a JS function source, e.g. ``"() => ..."``) until it returns truthy.

    Playwright's ``wait_for_function`` with a string expression may be refused by the pages' CSP (no
    'unsafe-eval'); ``evaluate`` of a function is not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await page.evaluate(js_function):
        assert loop.time() < deadline, f"timed out waiting for {js_function}"
        await asyncio.sleep(0.05)


async def customer_start(page: Page, base_url: str, name: str, first_message: str) -> None:
    """Open the demo shop, open the widget and start a conversation."""
    await page.goto(base_url + "/demo")
    await page.click("#rtc-engage-widget .launcher")
    await page.fill(".prechat input[name=name]", name)
    await page.fill(".prechat textarea", first_message)
    await page.click(".prechat button[type=submit]")
    await page.wait_for_selector(".wtimeline .msg--mine:not(.msg--pending)")


async def shadow_text(page: Page) -> str:
    """Everything the widget shows, as text."""
    return await page.evaluate("document.getElementById('rtc-engage-widget').shadowRoot.textContent")


def screenshots_wanted() -> bool:
    return bool(os.environ.get("RTC_SCREENSHOTS"))
