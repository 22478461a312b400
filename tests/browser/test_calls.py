"""Calls in real Chromium pages (fake camera, microphone and screen) through the server's aiortc SFU.

Pins, for each kind, that media really flows between the pages, measured by each page's own
``RTCPeerConnection.getStats()``: a video call decodes the other side's video on both pages; an audio
call receives audio packets on both, and a colleague who joins it on the side hears both; a desktop share (the customer's ``getDisplayMedia`` from the Accept
click) is decoded by the agent; a shown screen (the agent's ``getDisplayMedia`` from "Share my screen") is
decoded by the customer; a conference of the agent, the customer and a guest who joined by the agent's
invite link decodes the two others on every page. Also: the call UI (names, running duration, Mute,
Camera off, Hang up), the request going ``active`` then ``ended``, and the timeline's start and end with
the duration on both pages.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.browser.conftest import SCREENSHOTS, agent_login, customer_start, new_page, screenshots_wanted
from tests.conftest import RunningServer, start_server

pytestmark = pytest.mark.browser

AGENT_CALL = "window.__console.calls.list()[0]"
CUSTOMER_CALL = "window.__rtcEngageWidget.calls && window.__rtcEngageWidget.calls.list()[0]"
GUEST_CALL = "window.__join && window.__join.call"

#: Connection figures of every call of the run (printed with ``-s``).
FIGURES: list[str] = []


async def stats(page: Page, call: str) -> dict[str, Any] | None:
    """The call's inbound figures (``shared/media.js`` ``Call.stats``), or None while there is no call."""
    result: dict[str, Any] | None = await page.evaluate(
        f"async () => {{ const c = {call}; return c ? await c.stats() : null; }}"
    )
    return result


async def wait_media(
    page: Page, call: str, *, videos: int = 0, audios: int = 0, timeout: float = 20.0
) -> dict[str, Any]:
    """Wait until the call decodes frames on ``videos`` inbound videos and receives packets on ``audios``."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        last = await stats(page, call)
        if last is not None:
            decoding = [v for v in last["video"] if v["framesDecoded"] > 0]
            hearing = [a for a in last["audio"] if a["packetsReceived"] > 0]
            if len(decoding) >= videos and len(hearing) >= audios:
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"no media in time on {page.url}: {last}")


async def wait_js(page: Page, expression: str, timeout: float = 10.0) -> None:
    """Poll ``expression`` in the page (``wait_for_function`` evaluates strings, which the pages' CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"{expression} did not become true")
        await asyncio.sleep(0.1)


def figure(label: str, s: dict[str, Any]) -> None:
    frames = [v["framesDecoded"] for v in s["video"]]
    sizes = [f"{v['frameWidth']}x{v['frameHeight']}" for v in s["video"]]
    packets = [a["packetsReceived"] for a in s["audio"]]
    FIGURES.append(
        f"{label}: times(ms from call start) {s['times']}, frames {frames} {sizes}, audio packets {packets}"
    )
    print(FIGURES[-1])


async def chat(browser: Browser, server: RunningServer, customer_name: str) -> tuple[Any, Page, Any, Page]:
    """An agent (Alice) assigned to a new conversation of a customer, the conversation open."""
    actx, agent, _ = await new_page(browser, 1366, 860)
    cctx, customer, _ = await new_page(browser, 1100, 860)
    for page in (agent, customer):
        page.set_default_timeout(15000)  # media on a busy 2-core machine
    await agent_login(agent, server.url)
    await customer_start(customer, server.url, customer_name, "Can we talk?")
    await agent.click(".conv-item")
    await agent.click("#assign-to-me")
    await agent.wait_for_selector(".assignee")
    return actx, agent, cctx, customer


async def ask_and_accept(agent: Page, customer: Page, kind: str) -> None:
    """The agent asks for ``kind`` (Desktop and Show screen from the desktop menu); the customer accepts."""
    if kind in ("desktop", "show_screen"):
        await agent.click(".reqbtn[data-kind=desktop]")
        label = "Request desktop" if kind == "desktop" else "Show screen"
        await agent.click(f".menu__item:has-text('{label}')")
    else:
        await agent.click(f".reqbtn[data-kind={kind}]")
    await customer.click(f".prompt[data-kind={kind}] button[data-action=accept]")


async def timeline_text(page: Page, selector: str) -> str:
    return " | ".join(await page.locator(selector).all_inner_texts())


async def test_video_call_both_ways_then_hang_up(server: RunningServer, browser: Browser) -> None:
    """Video call: each page decodes the other's camera and hears it; the UI shows names, a running
    duration, Mute and Camera off; the request goes active; the customer's Hang up ends it on both pages
    and both timelines show the start and the end with its duration."""
    actx, agent, cctx, customer = await chat(browser, server, "Paul Martin")
    await ask_and_accept(agent, customer, "video")
    a = await wait_media(agent, AGENT_CALL, videos=1, audios=1)
    c = await wait_media(customer, CUSTOMER_CALL, videos=1, audios=1)
    await agent.wait_for_selector(".reqchip[data-kind=video][data-state=active]")
    assert a["video"][0]["frameWidth"] == 640 and c["video"][0]["frameWidth"] == 640
    await agent.wait_for_selector(".calldock .call[data-state=live] .call__timer:text-matches('00:0[1-9]')")
    assert "Paul Martin" in await agent.inner_text(".calldock .call__people")
    assert "Alice Martin" in await customer.inner_text(".wcall .call__people")
    await agent.click(".calldock [data-action=mute]")
    await agent.wait_for_selector(".calldock [data-action=mute][aria-pressed=true]")
    assert await agent.evaluate(f"{AGENT_CALL}.stream.getAudioTracks()[0].enabled") is False
    await customer.click(".wcall [data-action=camera]")
    assert await customer.evaluate(f"{CUSTOMER_CALL}.stream.getVideoTracks()[0].enabled") is False
    await customer.click(".wcall [data-action=camera]")
    figure("video call, agent", await wait_media(agent, AGENT_CALL, videos=1))
    figure("video call, customer", await wait_media(customer, CUSTOMER_CALL, videos=1))
    if screenshots_wanted():
        await asyncio.sleep(1.5)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await agent.screenshot(path=str(SCREENSHOTS / "video-call-agent.png"))
        await customer.screenshot(path=str(SCREENSHOTS / "video-call-customer.png"))

    await customer.click(".wcall [data-action=hangup]")
    await agent.wait_for_selector(".reqchip[data-kind=video][data-state=ended]")
    await agent.wait_for_selector(".calldock .call", state="detached")
    await customer.wait_for_selector(".wcall .call", state="detached")
    assert await agent.evaluate("window.__console.calls.list().length") == 0
    await agent.wait_for_selector(".msg--system:has-text('Video call ended after')")
    await customer.wait_for_selector(".msg--system:has-text('Video call ended after')")
    agent_log = await timeline_text(agent, ".conv__timeline .msg--system")
    customer_log = await timeline_text(customer, ".wtimeline .msg--system")
    for log in (agent_log, customer_log):
        assert "Video call started" in log and re.search(r"Video call ended after \d", log), log
    await actx.close()
    await cctx.close()


async def test_audio_call_both_ways_and_a_colleague_on_the_side(
    server: RunningServer, browser: Browser
) -> None:
    """Audio call: both pages receive audio packets from the other and no video. A colleague joins from
    the request chip and hears both, named; his Leave does not end the call; the agent's Hang up ends it
    (request ended, call UI gone on both pages, the customer's microphone stopped)."""
    actx, agent, cctx, customer = await chat(browser, server, "Nora Audio")
    await ask_and_accept(agent, customer, "call")
    a = await wait_media(agent, AGENT_CALL, audios=1)
    c = await wait_media(customer, CUSTOMER_CALL, audios=1)
    assert a["video"] == [] and c["video"] == []
    await agent.wait_for_selector(".reqchip[data-kind=call][data-state=active]")
    figure("audio call, agent", a)
    figure("audio call, customer", c)

    bctx, bob, _ = await new_page(browser, 1280, 800)
    bob.set_default_timeout(15000)
    await agent_login(bob, server.url, "bob@example.com")
    await bob.click("[data-section=team]")
    await bob.click(".conv-item")
    await bob.click(".reqchip[data-kind=call] [data-action=join-call]")
    await wait_media(bob, AGENT_CALL, audios=2)
    await wait_media(customer, CUSTOMER_CALL, audios=2)
    names = await bob.locator(".calldock .call__tiles .tile__name").all_inner_texts()
    assert sorted(names) == ["Alice Martin", "Nora Audio"]
    await bob.click(".calldock [data-action=hangup]")  # "Leave": the call goes on
    await bob.wait_for_selector(".calldock .call", state="detached")
    await bctx.close()
    await wait_js(customer, f"{CUSTOMER_CALL}.tiles.size === 1")
    await agent.wait_for_selector(".reqchip[data-kind=call][data-state=active]")

    await customer.evaluate(f"window.__track = {CUSTOMER_CALL}.stream.getAudioTracks()[0]")
    await agent.click(".calldock [data-action=hangup]")
    await customer.wait_for_selector(".wcall .call", state="detached")
    await agent.wait_for_selector(".reqchip[data-kind=call][data-state=ended]")
    assert await customer.evaluate("window.__track.readyState") == "ended"
    await agent.wait_for_selector(".msg--system:has-text('Call ended after')")
    await actx.close()
    await cctx.close()


async def test_desktop_share_then_show_screen(server: RunningServer, browser: Browser) -> None:
    """Request desktop: the customer's Accept click opens the screen picker (auto-selected) and the agent
    decodes the shared screen while the customer sees that they share. Then Show screen in the same
    conversation: after the customer accepts, the agent's "Share my screen" click shares a screen that the
    customer decodes."""
    actx, agent, cctx, customer = await chat(browser, server, "Dana Desk")
    await ask_and_accept(agent, customer, "desktop")
    a = await wait_media(agent, AGENT_CALL, videos=1)
    assert a["video"][0]["frameWidth"] > 0
    figure("desktop share, agent", a)
    await customer.wait_for_selector(".wcall .call__waiting:has-text('You are sharing your screen')")
    await agent.wait_for_selector(".reqchip[data-kind=desktop][data-state=active]")
    await agent.click(".calldock [data-action=hangup]")
    await customer.wait_for_selector(".wcall .call", state="detached")
    await agent.wait_for_selector(".reqchip[data-kind=desktop][data-state=ended]")

    await ask_and_accept(agent, customer, "show_screen")
    await agent.click(".calldock .call[data-kind=show_screen] [data-action=share]")
    c = await wait_media(customer, CUSTOMER_CALL, videos=1)
    assert c["video"][0]["frameWidth"] > 0
    figure("show screen, customer", c)
    await agent.wait_for_selector(".reqchip[data-kind=show_screen][data-state=active]")
    await customer.click(".wcall [data-action=hangup]")
    await agent.wait_for_selector(".calldock .call", state="detached")
    await actx.close()
    await cctx.close()


async def test_three_party_conference_with_a_guest_by_link(server: RunningServer, browser: Browser) -> None:
    """Conference: the agent and the customer join; a colleague invited from "Add people" joins from his
    console's invitation and receives media, then leaves; the agent's invite link lets a guest join from the
    join page with camera and microphone; every page decodes the two others' video and receives their
    audio, with the publishers' names on the tiles; the guest and the customer leave while the agent stays,
    the guest joins again, and the agent's End closes the room for everyone, the guest's page included."""
    actx, agent, cctx, customer = await chat(browser, server, "Cleo Conf")
    bctx, bob, _ = await new_page(browser, 1280, 800)
    bob.set_default_timeout(15000)
    await agent_login(bob, server.url, "bob@example.com")
    await ask_and_accept(agent, customer, "conference")
    # a colleague: invited from "Add people", joins from the invitation in his console, then leaves
    await agent.click(".calldock [data-action=add-people]")
    await agent.click(".callpop__row:has-text('Bob Durand') [data-action=invite]")
    await bob.click(".callinvite:has-text('Alice Martin invites you') [data-action=join]")
    await wait_media(bob, AGENT_CALL, videos=1, audios=1)
    await bob.click(".calldock [data-action=hangup]")
    await bob.wait_for_selector(".calldock .call", state="detached")
    await bctx.close()
    await agent.click(".calldock [data-action=invite-link]")
    await agent.wait_for_selector(".callpop[data-ready='1']")
    url = await agent.input_value(".calllink__url")
    assert url.startswith(server.url + "/join/?t=")
    gctx, guest, _ = await new_page(browser, 1100, 760)
    guest.set_default_timeout(15000)
    await guest.goto(url)
    await guest.wait_for_selector("text=Alice Martin invites you to a conference call.")
    await guest.fill("input[name=name]", "Gus Guest")
    await guest.click("button[type=submit]")

    for page, call, label in (
        (agent, AGENT_CALL, "agent"),
        (customer, CUSTOMER_CALL, "customer"),
        (guest, GUEST_CALL, "guest"),
    ):
        s = await wait_media(page, call, videos=2, audios=2, timeout=25)
        figure(f"conference, {label}", s)
    names = await guest.locator(".call__tiles .tile__name").all_inner_texts()
    assert sorted(names) == ["Alice Martin", "Cleo Conf", "You"]
    assert sorted(await agent.locator(".calldock .tile__name").all_inner_texts()) == [
        "Cleo Conf",
        "Gus Guest",
        "You",
    ]
    await agent.wait_for_selector(".reqchip[data-kind=conference][data-state=active]")
    if screenshots_wanted():
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await guest.screenshot(path=str(SCREENSHOTS / "conference-guest.png"))
        await agent.screenshot(path=str(SCREENSHOTS / "conference-agent.png"))

    await guest.click("[data-action=hangup]")
    await guest.wait_for_selector("text=You left the conference call.")
    await wait_js(agent, f"{AGENT_CALL}.tiles.size === 1")  # the guest's tile is gone
    await customer.click(".wcall [data-action=hangup]")
    await wait_js(agent, f"{AGENT_CALL}.tiles.size === 0")
    await agent.wait_for_selector(
        ".reqchip[data-kind=conference][data-state=active]"
    )  # the agent is still in
    await guest.click("button:has-text('Join again')")
    await guest.click("button[type=submit]")  # the name is remembered
    await wait_media(guest, GUEST_CALL, videos=1, audios=1)
    await agent.click(".reqchip[data-kind=conference] .btn--danger")  # End: for everyone
    await guest.wait_for_selector("text=The conference call has ended.")  # told by its peer closing
    await agent.wait_for_selector(".reqchip[data-kind=conference][data-state=ended]")
    await agent.wait_for_selector(".msg--system:has-text('Conference call ended after')")
    await actx.close()
    await cctx.close()
    await gctx.close()


async def test_a_reloaded_customer_page_rejoins_the_video_call(
    server: RunningServer, browser: Browser
) -> None:
    """Rejoin grace: the customer reloads the page in the middle of a video call. The call is not ended
    (no ``request.end`` on the way out): the reloaded widget finds the request still live, joins again by
    itself, both pages decode each other's video again, and the request is still ``active``."""
    actx, agent, cctx, customer = await chat(browser, server, "Rita Reload")
    await ask_and_accept(agent, customer, "video")
    await wait_media(agent, AGENT_CALL, videos=1, audios=1)
    await wait_media(customer, CUSTOMER_CALL, videos=1, audios=1)
    await agent.wait_for_selector(".reqchip[data-kind=video][data-state=active]")
    before = (await stats(agent, AGENT_CALL) or {"video": [{"framesDecoded": 0}]})["video"][0][
        "framesDecoded"
    ]
    await customer.reload()
    c = await wait_media(customer, CUSTOMER_CALL, videos=1, audios=1, timeout=30)
    assert c["video"][0]["frameWidth"] == 640
    deadline = time.monotonic() + 20
    while True:
        a = await stats(agent, AGENT_CALL)
        if a and a["video"] and max(v["framesDecoded"] for v in a["video"]) > before + 30:
            break
        assert time.monotonic() < deadline, f"the agent decodes no new frames: {a}"
        await asyncio.sleep(0.2)
    assert await agent.locator(".reqchip[data-kind=video][data-state=active]").count() == 1
    assert await agent.locator(".reqchip[data-kind=video][data-state=ended]").count() == 0
    await wait_js(
        agent,
        "!document.querySelector('.calldock .call__away') || document.querySelector('.calldock .call__away').hidden",
        15,
    )
    await agent.click(".calldock [data-action=hangup]")
    await customer.wait_for_selector(".wcall .call", state="detached")
    await actx.close()
    await cctx.close()


async def test_a_reloaded_console_rejoins_the_agents_video_call(
    server: RunningServer, browser: Browser
) -> None:
    """Rejoin grace, agent side: the agent who asked reloads the console mid-call; the console (still
    signed in) finds the request live, joins again by itself, and both pages decode each other's video
    again; the request never left ``active``."""
    actx, agent, cctx, customer = await chat(browser, server, "Rick Reload")
    await ask_and_accept(agent, customer, "video")
    await wait_media(agent, AGENT_CALL, videos=1, audios=1)
    await wait_media(customer, CUSTOMER_CALL, videos=1, audios=1)
    await agent.wait_for_selector(".reqchip[data-kind=video][data-state=active]")
    before = max(v["framesDecoded"] for v in (await stats(customer, CUSTOMER_CALL) or {"video": []})["video"])
    await agent.reload()
    a = await wait_media(agent, AGENT_CALL, videos=1, audios=1, timeout=30)
    assert a["video"][0]["frameWidth"] == 640
    deadline = time.monotonic() + 20
    while True:
        c = await stats(customer, CUSTOMER_CALL)
        if c and c["video"] and max(v["framesDecoded"] for v in c["video"]) > before + 30:
            break
        assert time.monotonic() < deadline, f"the customer decodes no new frames: {c}"
        await asyncio.sleep(0.2)
    states = await customer.evaluate(
        "() => [...window.__rtcEngageWidget.model.requests.values()].map((r) => r.state)"
    )
    assert states == ["active"], states
    await customer.click(".wcall [data-action=hangup]")
    await agent.wait_for_selector(".calldock .call", state="detached")
    await actx.close()
    await cctx.close()


async def test_a_customer_who_leaves_for_good_is_reconnecting_then_the_call_ends(
    tmp_path: Any, browser: Browser
) -> None:
    """The customer's page goes away for good (its tab is closed) on a server with a 3 s rejoin grace:
    the agent's call shows that the customer is reconnecting, then the request ends (``peer_dropped``)
    and the agent's call UI goes away."""
    srv = await start_server(tmp_path, media_rejoin_grace_s=3.0)
    try:
        actx, agent, cctx, customer = await chat(browser, srv, "Gus Gone")
        await ask_and_accept(agent, customer, "video")
        await wait_media(agent, AGENT_CALL, videos=1, audios=1)
        await agent.wait_for_selector(".reqchip[data-kind=video][data-state=active]")
        await cctx.close()
        away = agent.locator(".calldock .call__away:not([hidden])")
        await away.wait_for(timeout=20000)
        assert "Gus Gone is reconnecting" in await away.inner_text()
        await agent.wait_for_selector(".reqchip[data-kind=video][data-state=ended]", timeout=20000)
        await agent.wait_for_selector(".calldock .call", state="detached")
        await actx.close()
    finally:
        await srv.runner.cleanup()


async def test_a_recorded_video_call_says_so_on_both_pages(tmp_path: Any, browser: Browser) -> None:
    """Recording with consent: on a server that records, the agent turns on Record and asks for a video
    call; the customer's prompt says the session will be recorded; both call UIs show REC; after the
    hang-up the agent's chip offers the recording, which the REST route serves as a WebM."""
    srv = await start_server(tmp_path, recordings=True)
    try:
        actx, agent, cctx, customer = await chat(browser, srv, "Rosa Rec")
        await agent.click(".reqbtn--rec")
        await agent.wait_for_selector(".reqbtn--rec[aria-pressed=true]")
        await agent.click(".reqbtn[data-kind=video]")
        prompt = customer.locator(".prompt[data-kind=video] .prompt__text")
        await prompt.wait_for()
        assert "will be recorded" in await prompt.inner_text()
        if screenshots_wanted():
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await asyncio.sleep(0.4)  # past the prompt's pop-in
            await customer.screenshot(path=str(SCREENSHOTS / "recorded-call-consent.png"))
        await customer.click(".prompt[data-kind=video] button[data-action=accept]")
        await wait_media(agent, AGENT_CALL, videos=1, audios=1)
        await wait_media(customer, CUSTOMER_CALL, videos=1, audios=1)
        await agent.wait_for_selector(".calldock .call__rec:not([hidden])")
        await customer.wait_for_selector(".wcall .call__rec:not([hidden])")
        await agent.wait_for_selector(".reqchip[data-kind=video] .reqchip__rec")
        await asyncio.sleep(1.0)
        if screenshots_wanted():
            await agent.screenshot(path=str(SCREENSHOTS / "recorded-call-agent.png"))
        await agent.click(".calldock [data-action=hangup]")
        await agent.wait_for_selector(
            ".reqchip[data-kind=video][data-state=ended] [data-action=download-recording]"
        )
        rid = await agent.get_attribute(".reqchip[data-kind=video]", "data-id")
        deadline = time.monotonic() + 20
        while True:
            status = await agent.evaluate(
                "async (id) => (await fetch('/api/requests/' + id + '/recording', "
                "{headers: {Authorization: 'Bearer ' + window.__console.token}})).status",
                rid,
            )
            if status == 200:
                break
            assert status == 404 and time.monotonic() < deadline, status
            await asyncio.sleep(0.3)
        await actx.close()
        await cctx.close()
    finally:
        await srv.runner.cleanup()
