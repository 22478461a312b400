"""Live DOM co-browsing end to end in real Chromium pages against a real server: the agent asks, the
customer accepts, the widget records the page with rrweb and streams it over a WebRTC data channel to
the server's aiortc peer, which relays it to the console's replay.

Pins: the request becomes ``active``; a DOM change and typing on the customer's page reach the
agent's replay iframe within a second; the secrets of the customer's form (password, hidden input,
``cc-number`` field, an ``rr-mask`` element, an ``rr-block`` element, an input and a textarea whose
value was emptied after their ``value``/text was set) appear in no data channel frame the server
received and nowhere in the agents' pages (replay iframe included); the replay iframe is sandboxed
without ``allow-scripts``; the agent's pointer and highlight show on the customer's page; an agent who
opens the session late gets a full snapshot; the customer's Stop ends the request and both sides
close their peer connections.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from rtc_server.app import MEDIA
from rtc_server.media.chunks import ChunkAssembler, is_chunk
from rtc_server.media.cobrowse import CobrowseRelay
from tests.browser.conftest import PASSWORD, SCREENSHOTS, new_page, screenshots_wanted
from tests.conftest import RunningServer

pytestmark = pytest.mark.browser

CANARIES = {
    "password": "PWcanary7f3a",
    "hidden": "HIDDENcanary91bc",
    "card": "4111canary5532",
    "masked": "MASKEDcanarye4d1",
    "blocked": "BLOCKEDcanary0a7c",
    "emptied": "EMPTIEDcanary66d2",
    "textarea": "TEXTAREAcanary3b9f",
}

#: Added to the demo shop page before the customer accepts (the recording starts on accept).
FORM = f"""
<section id="cb-test" style="padding: 16px 40px; background: #fff">
  <form id="cb-form" style="display: flex; gap: 16px; flex-wrap: wrap; align-items: end">
    <label>Name <input id="cb-name" name="cb-name" autocomplete="name"></label>
    <label>Password <input id="cb-password" type="password" value="{CANARIES["password"]}"></label>
    <input type="hidden" id="cb-token" name="cb-token" value="{CANARIES["hidden"]}">
    <label>Card number <input id="cb-card" autocomplete="cc-number" value="{CANARIES["card"]}"></label>
    <label>Coupon <input id="cb-coupon" value="{CANARIES["emptied"]}"></label>
    <label>Notes <textarea id="cb-notes" rows="1">{CANARIES["textarea"]}</textarea></label>
  </form>
  <p class="rr-mask" id="cb-account">Account holder {CANARIES["masked"]}</p>
  <div class="rr-block" id="cb-blocked">Internal {CANARIES["blocked"]}</div>
  <p id="cb-status" style="font-size: 20px; padding: 8px 12px; background: #eef4ff; display: inline-block">Ready</p>
  <ul id="cb-cart"></ul>
</section>
"""

#: Inserts FORM under the page header; then empties two fields whose value attribute stays (rrweb 2.1
#: would snapshot such an attribute raw).
INSERT_FORM = """html => {
  document.querySelector('header').insertAdjacentHTML('afterend', html);
  document.getElementById('cb-coupon').value = '';
  document.getElementById('cb-notes').value = '';
}"""

#: Keeps every RTCPeerConnection a page creates, to check they are all closed at the end.
TRACK_PEERS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__pcs.push(this); }
  };
})();
"""

#: Everything a page shows, the replay iframes' documents and form values included.
PAGE_TEXT = """() => {
  const parts = [document.documentElement.outerHTML];
  const host = document.getElementById('rtc-engage-widget');
  if (host && host.shadowRoot) parts.push(host.shadowRoot.innerHTML);
  for (const frame of document.querySelectorAll('iframe')) {
    const doc = frame.contentDocument;
    if (!doc) continue;
    parts.push(doc.documentElement.outerHTML);
    for (const el of doc.querySelectorAll('input, textarea, select')) parts.push(el.value);
  }
  for (const el of document.querySelectorAll('input, textarea, select')) parts.push(el.value);
  return parts.join('\\n');
}"""

#: Resolves with Date.now() once the shown replay iframe's #cb-status holds the marker text.
WAIT_REPLAY_TEXT = """marker => new Promise(resolve => {
  const tick = () => {
    const frame = document.querySelector('.cbs:not([hidden]) iframe');
    const status = frame && frame.contentDocument && frame.contentDocument.getElementById('cb-status');
    if (status && status.textContent === marker) { clearInterval(timer); resolve(Date.now()); }
  };
  const timer = setInterval(tick, 2);
})"""

#: Resolves with Date.now() once the replayed #cb-name input holds `n` characters.
WAIT_REPLAY_VALUE = """n => new Promise(resolve => {
  const tick = () => {
    const frame = document.querySelector('.cbs:not([hidden]) iframe');
    const input = frame && frame.contentDocument && frame.contentDocument.getElementById('cb-name');
    if (input && input.value.length === n) { clearInterval(timer); resolve([Date.now(), input.value]); }
  };
  const timer = setInterval(tick, 2);
})"""


class FrameTap:
    """Every data channel message the server's co-browse relays receive, as received."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, str]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = CobrowseRelay._on_message
        frames = self.frames

        def tapped(relay: CobrowseRelay, endpoint: Any, message: Any) -> None:
            text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
            frames.append((endpoint.participant.kind, text))
            original(relay, endpoint, message)

        monkeypatch.setattr(CobrowseRelay, "_on_message", tapped)

    def customer_text(self) -> str:
        """The customer's frames, chunked messages reassembled (a canary cut in two is found too)."""
        assembler = ChunkAssembler()
        texts = []
        for kind, text in self.frames:
            if kind != "customer":
                continue
            parsed = json.loads(text)
            if is_chunk(parsed):
                whole = assembler.feed(parsed)
                if whole is not None:
                    texts.append(whole)
            else:
                texts.append(text)
        return "\n".join(texts)


async def poll(page: Page, predicate: str, arg: Any = None, timeout: float = 8.0) -> None:
    """Wait until ``predicate`` (a JS function) is truthy in ``page``. Evaluated by ``page.evaluate``,
    which the pages' Content-Security-Policy (no ``unsafe-eval``) never refuses."""
    check = f"arg => !!({predicate})(arg)"
    async with asyncio.timeout(timeout):
        while not await page.evaluate(check, arg):
            await asyncio.sleep(0.02)


async def login(page: Page, base_url: str, email: str) -> None:
    """``conftest.agent_login`` without its string-expression ``wait_for_function``, which the console's
    Content-Security-Policy sometimes refuses (Playwright then evaluates it with ``eval``)."""
    await page.goto(base_url + "/agent/")
    await page.fill("#login-email", email)
    await page.fill("#login-password", PASSWORD)
    await page.click(".login__form button[type=submit]")
    await page.wait_for_selector(".console .section")
    await poll(page, "() => window.__console && window.__console.hub.connected")


async def measure_change(agent: Page, customer: Page, marker: str) -> float:
    """Milliseconds from a DOM change on the customer's page to its text in the agent's replay."""
    seen = asyncio.ensure_future(agent.evaluate(WAIT_REPLAY_TEXT, marker))
    await asyncio.sleep(0.05)  # the watcher runs
    changed_at = await customer.evaluate(
        """m => { const li = document.createElement('li'); li.textContent = m;
                  document.getElementById('cb-cart').append(li);
                  document.getElementById('cb-status').textContent = m; return Date.now(); }""",
        marker,
    )
    shown_at = await asyncio.wait_for(seen, 5)
    return float(shown_at - changed_at)


async def replay_point(agent: Page, element_id: str) -> tuple[float, float]:
    """Where, on the agent's page, the centre of a replayed element is drawn."""
    return tuple(  # type: ignore[return-value]
        await agent.evaluate(
            """id => {
              const frame = document.querySelector('.cbs:not([hidden]) iframe');
              const f = frame.getBoundingClientRect();
              const scale = f.width / frame.offsetWidth;
              const r = frame.contentDocument.getElementById(id).getBoundingClientRect();
              return [f.left + (r.left + r.width / 2) * scale, f.top + (r.top + r.height / 2) * scale];
            }""",
            element_id,
        )
    )


async def test_cobrowse_live_masked_pointer_late_agent_and_stop(
    server: RunningServer, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole co-browse story (see the module docstring), with latencies measured."""
    tap = FrameTap()
    tap.install(monkeypatch)
    base = server.url

    cctx, customer, cwatch = await new_page(browser, 1200, 760)
    await cctx.add_init_script(TRACK_PEERS)
    actx, alice, awatch = await new_page(browser)
    await actx.add_init_script(TRACK_PEERS)

    await customer.goto(base + "/demo")
    await customer.evaluate(INSERT_FORM, FORM)
    await customer.click("#rtc-engage-widget .launcher")
    await customer.fill(".prechat input[name=name]", "Nina Rossi")
    await customer.fill(".prechat textarea", "Can you help me with the checkout?")
    await customer.click(".prechat button[type=submit]")
    await customer.wait_for_selector(".wtimeline .msg--mine:not(.msg--pending)")

    await login(alice, base, "alice@example.com")
    await alice.click(".conv-item")
    await alice.click("#assign-to-me")
    await alice.click(".attachbar__btn[data-action=cobrowse]")
    await alice.wait_for_selector(".reqchip[data-kind=cobrowse][data-state=pending]")

    await customer.bring_to_front()
    await customer.click(".prompt[data-kind=cobrowse] button[data-action=accept]")
    bar = customer.locator(".cb-bar")
    await bar.wait_for()
    assert "Your screen is being shared with Alice Martin" in await bar.inner_text()

    # Alice asked: her console joins by itself; the first snapshot makes the request active.
    await alice.bring_to_front()
    await alice.wait_for_selector(".reqchip[data-kind=cobrowse][data-state=active]", timeout=10000)
    await alice.wait_for_selector(
        ".rail__item[data-view=cobrowse] .rail__blink:not([hidden])", state="attached"
    )
    await alice.click(".rail__item[data-view=cobrowse]")
    await alice.wait_for_selector(".cbs[data-state=live] .cbs__box:not([hidden]) iframe")
    sandbox = await alice.get_attribute(".cbs iframe", "sandbox")
    assert sandbox is not None and sandbox.split() == ["allow-same-origin"]
    await poll(
        alice,
        "() => { const f = document.querySelector('.cbs iframe');"
        " return f && f.contentDocument && f.contentDocument.getElementById('cb-status'); }",
    )

    # A DOM change, then typing, reach the replay within a second.
    latencies = [await measure_change(alice, customer, f"marker-{i}") for i in range(5)]
    await customer.evaluate(
        "() => document.getElementById('cb-name').addEventListener('input', () => { window.__typedAt = Date.now(); })"
    )
    typed = asyncio.ensure_future(alice.evaluate(WAIT_REPLAY_VALUE, 5))
    await customer.click("#cb-name")
    await customer.keyboard.type("Nina!")
    shown_at, replayed_value = await asyncio.wait_for(typed, 5)
    typing_latency = shown_at - await customer.evaluate("window.__typedAt")
    assert replayed_value == "*****"  # every input value is masked
    print(f"\nco-browse latency ms: dom changes {latencies}, typing {typing_latency}")
    assert max(latencies) < 1000 and typing_latency < 1000

    # The agent's pointer and a highlight show on the customer's page, where the agent points.
    x, y = await replay_point(alice, "cb-status")
    await alice.mouse.move(x - 5, y - 5)
    await alice.mouse.move(x, y)
    label = customer.locator(".cb-pointer__label")
    await label.wait_for()
    assert await label.inner_text() == "Alice Martin"
    target = await customer.evaluate(
        "() => { const r = document.getElementById('cb-status').getBoundingClientRect();"
        " return [r.left + r.width / 2, r.top + r.height / 2]; }"
    )
    await poll(
        customer,
        """([tx, ty]) => { const dot = document.getElementById('rtc-engage-widget').shadowRoot
               .querySelector('.cb-pointer__dot').getBoundingClientRect();
             return Math.abs(dot.left + dot.width / 2 - tx) < 12 && Math.abs(dot.top + dot.height / 2 - ty) < 12; }""",
        target,
    )
    await alice.mouse.click(x, y)
    highlight = customer.locator(".cb-highlight")
    await highlight.wait_for()
    box = await highlight.bounding_box()
    assert box is not None and box["x"] <= target[0] <= box["x"] + box["width"]

    if screenshots_wanted():
        await alice.mouse.move(x + 40, y + 60)
        await asyncio.sleep(0.4)
        await alice.screenshot(path=str(SCREENSHOTS / "cobrowse.png"))
        await customer.screenshot(path=str(SCREENSHOTS / "cobrowse-customer.png"))

    # A change larger than a data channel message (262,144 bytes) travels in chunk envelopes.
    await customer.evaluate(
        """() => { const frag = document.createDocumentFragment();
                   for (let i = 0; i < 600; i++) {
                     const li = document.createElement('li'); li.textContent = 'bulk line ' + i + ' ' + 'x'.repeat(600);
                     frag.append(li); }
                   document.getElementById('cb-cart').append(frag); }"""
    )
    await poll(
        alice,
        "() => document.querySelector('.cbs iframe').contentDocument.body.textContent.includes('bulk line 599')",
    )
    assert any('"t":"chunk"' in text for kind, text in tap.frames if kind == "customer")

    # A second agent opens the session late and gets a full snapshot of the page as it is now.
    bctx, bob, bwatch = await new_page(browser)
    await bctx.add_init_script(TRACK_PEERS)
    await login(bob, base, "bob@example.com")
    conv_id = await alice.evaluate("window.__console.openId")
    await bob.evaluate("id => window.__console.openConversation(id)", conv_id)
    await bob.click(".reqchip[data-kind=cobrowse] .reqchip__watch")
    await bob.wait_for_selector(".cbs[data-state=live] iframe")
    await poll(
        bob,
        "() => { const f = document.querySelector('.cbs:not([hidden]) iframe');"
        " return f && f.contentDocument && f.contentDocument.body"
        " && f.contentDocument.body.textContent.includes('marker-4'); }",
    )
    late = await measure_change(bob, customer, "after-bob")
    print(f"co-browse latency ms, late agent: {late}")
    assert late < 1000
    await poll(
        alice,
        "() => document.querySelector('.cbs iframe').contentDocument.body.textContent.includes('after-bob')",
    )

    # The secrets never left the customer's browser, and no agent page holds them.
    received = tap.customer_text()
    assert "marker-4" in received and "Northwind" in received  # the tap saw the recording
    assert '"type":2' in received  # full snapshots
    for page in (alice, bob):
        shown = await page.evaluate(PAGE_TEXT)
        assert "marker-4" in shown
        for name, canary in CANARIES.items():
            assert canary not in shown, f"{name} canary on an agent page"
    for name, canary in CANARIES.items():
        assert canary not in received, f"{name} canary reached the server"
    events = [json.loads(t) for t in received.split("\n")]
    assert events and all(isinstance(e.get("type"), int) for e in events)
    assert any(len(t) > 262_144 for t in received.split("\n"))  # a chunked one, whole again

    # The customer stops: the request ends, both sides clean up.
    request_id = await customer.evaluate(
        "() => document.getElementById('rtc-engage-widget').shadowRoot.querySelector('.cb-bar').dataset.id"
    )
    await customer.bring_to_front()
    await customer.click(".cb-bar__stop")
    await customer.wait_for_selector(".cb-bar", state="detached")
    for page in (alice, bob):
        await page.wait_for_selector(".cbs", state="detached")
        await page.wait_for_selector(".cbv__empty:not([hidden])", state="attached")
    await bob.evaluate("id => window.__console.openConversation(id)", conv_id)
    await bob.wait_for_selector(".reqchip[data-kind=cobrowse][data-state=ended]")
    await alice.wait_for_selector(".rail__item[data-view=cobrowse] .rail__blink[hidden]", state="attached")
    for page in (customer, alice, bob):
        await poll(
            page, "() => window.__pcs.length > 0 && window.__pcs.every(pc => pc.connectionState === 'closed')"
        )
    assert request_id not in server.app[MEDIA].sessions  # type: ignore[attr-defined]
    for watch in (cwatch, awatch, bwatch):
        assert watch.errors == [] and watch.dialogs == []
    for ctx in (actx, bctx, cctx):
        await ctx.close()
