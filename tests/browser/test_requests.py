"""Requests in the browser: the agent's buttons create them, the customer's prompt shows on every tab
and disappears on all of them once answered in one, the console shows the live state (spinner while
pending, the green indicator once accepted), and the customer's Stop button ends it."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tests.browser.conftest import agent_login, customer_start, new_page
from tests.conftest import RunningServer

pytestmark = pytest.mark.browser


async def test_request_prompt_accept_and_stop(server: RunningServer, browser: Browser) -> None:
    """Call request: pending spinner in the console, prompt in two customer tabs, accept in one ->
    both prompts gone, green indicator in the console, active bar with Stop -> ended on both sides;
    a declined video request shows as declined."""
    base = server.url
    actx, agent, _ = await new_page(browser)
    cctx, tab1, _ = await new_page(browser, 1280, 800)
    await agent_login(agent, base)
    await customer_start(tab1, base, "Paul Martin", "Can you call me?")
    tab2 = await cctx.new_page()  # same visitor (same localStorage), second tab
    await tab2.goto(base + "/demo")
    tab2.set_default_timeout(8000)
    await tab2.wait_for_selector("#rtc-engage-widget", state="attached")

    await agent.click(".conv-item")
    await agent.click("#assign-to-me")
    await agent.click(".reqbtn[data-kind=call]")
    await agent.wait_for_selector(".reqchip[data-kind=call][data-state=pending] .spinner")

    for tab in (tab1, tab2):
        await tab.wait_for_selector(".prompt[data-kind=call]")
    await tab1.bring_to_front()  # a background tab's animation frames are throttled
    await tab1.click(".prompt[data-kind=call] button[data-action=accept]")
    for tab in (tab1, tab2):
        await tab.wait_for_selector(".prompt", state="detached")
        await tab.wait_for_selector(".activebar__item[data-kind=call]")
    await agent.wait_for_selector(
        ".reqchip[data-kind=call][data-state=accepted] .green-dot, "
        ".reqchip[data-kind=call][data-state=active] .green-dot"
    )
    await agent.wait_for_selector(".reqbtn[data-kind=call] .green-dot")

    await tab2.bring_to_front()
    await tab2.click(".activebar__item[data-kind=call] .wbtn--stop")
    await agent.wait_for_selector(".reqchip[data-kind=call][data-state=ended]")
    for tab in (tab1, tab2):
        await tab.wait_for_selector(".activebar__item", state="detached")

    await agent.click(".reqbtn[data-kind=video]")
    await tab1.bring_to_front()
    await tab1.click(".prompt[data-kind=video] button[data-action=decline]")
    await agent.wait_for_selector(".reqchip[data-kind=video][data-state=declined]")
    await agent.wait_for_selector(".msg--system >> text=Video call declined")
    await actx.close()
    await cctx.close()
