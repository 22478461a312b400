"""The ringtone's life: it starts when a conversation arrives while the console shows another view,
stops when someone else takes the conversation, and starts again (with a "redirected to you" toast)
when a colleague redirects a conversation to this agent."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tests.browser.conftest import agent_login, new_page, wait_until
from tests.conftest import Hub, RunningServer

pytestmark = pytest.mark.browser

PAUSED = "document.getElementById('ringtone').paused"


async def test_ring_stops_when_taken_and_rings_on_redirect(
    server: RunningServer, hub: Hub, browser: Browser
) -> None:
    """Alice (Profile view in front) rings for a new conversation; Bob assigns it -> Alice's ringtone
    stops and the toast goes; Bob redirects it to Alice -> she rings again and the toast says so."""
    ctx, alice, watch = await new_page(browser)
    await agent_login(alice, server.url)
    await alice.click(".rail__item[data-view=profile]")
    bob = await hub.agent("bob@example.com")
    customer = await hub.customer(name="Nina Haas")
    conv = (await customer.ok("conversation.start", {"body": "Hello?", "page_url": server.url + "/demo"}))[
        "conversation"
    ]

    await alice.wait_for_selector(f".toast--incoming[data-conversation='{conv['id']}']")
    await wait_until(alice, f"() => !{PAUSED}")
    await bob.ok("conversation.assign", {"conversation_id": conv["id"]})
    await wait_until(alice, f"() => {PAUSED}")
    await alice.wait_for_selector(".toast--incoming", state="detached")

    await bob.ok(
        "conversation.assign",
        {
            "conversation_id": conv["id"],
            "agent_id": await alice.evaluate("window.__console.me.id"),
            "note": "VIP",
        },
    )
    toast = alice.locator(".toast--incoming")
    await toast.wait_for()
    assert "redirected to you" in (await toast.inner_text()).lower()
    await wait_until(alice, f"() => !{PAUSED}")
    await toast.click()
    await wait_until(alice, f"() => {PAUSED}")
    await alice.wait_for_selector(".msg--note >> text=VIP")
    assert watch.errors == []
    await ctx.close()
