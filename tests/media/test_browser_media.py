"""The media plane with real Chromium peers (fake camera and microphone): a conference in which the
server renegotiates with each browser (Chromium must accept the server's renumbered offers), and a
co-browse channel carrying a chunked 600 KB event from one browser to another."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from rtc_server.media.gateway import AiortcMediaGateway
from signaling.services.ports import MediaEvent, Participant, SessionSpec
from tests.media.conftest import wait_for

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--no-first-run",
]

PAGE = """<!doctype html><meta charset="utf-8"><body><script>
let pc, channel, received = [], parts = {}, gzipped = 0;
async function join(media, withChannel) {
  pc = new RTCPeerConnection();
  if (media) {
    const s = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
    for (const t of s.getTracks()) pc.addTransceiver(t, {direction: 'sendrecv', streams: [s]});
  }
  if (withChannel) {
    channel = pc.createDataChannel('cobrowse');
    channel.onopen = () => channel.send(JSON.stringify({t: 'hello', enc: ['gzip']}));
    channel.onmessage = async (e) => {
      const m = JSON.parse(e.data);
      if (m.t !== 'chunk') { received.push(m); return; }
      const p = parts[m.id] = parts[m.id] || {pieces: [], enc: null};
      if (m.i === 0) p.enc = m.enc || null;
      p.pieces[m.i] = m.d;
      if (p.pieces.filter(x => x !== undefined).length !== m.n) return;
      let text = p.pieces.join('');
      if (p.enc === 'gzip') {
        const bytes = Uint8Array.from(atob(text), c => c.charCodeAt(0));
        text = await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).text();
        gzipped += 1;
      }
      received.push(JSON.parse(text));
    };
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => { if (pc.iceGatheringState === 'complete') r();
    else pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); });
  return pc.localDescription.sdp;
}
async function applyAnswer(sdp) { await pc.setRemoteDescription({type: 'answer', sdp}); }
async function onServerOffer(sdp) {
  await pc.setRemoteDescription({type: 'offer', sdp});
  await pc.setLocalDescription(await pc.createAnswer());
  return pc.localDescription.sdp;
}
function sendEvent(event) {            // what the widget does: chunk above 262,144 bytes
  const text = JSON.stringify(event);
  if (new Blob([text]).size <= 262144) { channel.send(text); return; }
  const n = Math.ceil(text.length / 65536);
  for (let i = 0; i < n; i++) channel.send(JSON.stringify({t: 'chunk', id: 'e1', i, n, d: text.slice(i * 65536, (i + 1) * 65536)}));
}
async function video() {
  const out = [];
  (await pc.getStats()).forEach(r => { if (r.type === 'inbound-rtp' && r.kind === 'video') out.push(r.framesDecoded || 0); });
  return out;
}
</script></body>"""


@pytest.fixture
async def page_url() -> AsyncIterator[str]:
    """A tiny page on 127.0.0.1 (a secure context for getUserMedia), port 0."""

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_peer(
    chromium: Any,
    url: str,
    gateway: AiortcMediaGateway,
    request_id: str,
    who: Participant,
    media: bool,
    channel: bool,
) -> Any:
    page = await (await chromium.new_context()).new_page()
    await page.goto(url)
    offer = await page.evaluate("([m, c]) => join(m, c)", [media, channel])
    answer = await gateway.offer(request_id, who, offer, "offer")
    await page.evaluate("sdp => applyAnswer(sdp)", answer["sdp"])
    return page


async def test_chromium_conference_with_server_renegotiation(chromium: Any, page_url: str) -> None:
    """Three Chromium participants: every server offer is accepted (answered without error), and each
    browser decodes the two other participants' videos."""
    gateway = AiortcMediaGateway(host_addresses=["127.0.0.1"])
    pages: dict[str, Any] = {}
    failures: list[str] = []

    async def sink(event: MediaEvent) -> None:
        if event.type == "offer" and event.participant is not None:
            try:
                answer = await pages[event.participant.key].evaluate(
                    "sdp => onServerOffer(sdp)", event.data["sdp"]
                )
                await gateway.answer(event.request_id, event.participant, answer, "answer")
            except Exception as exc:  # noqa: BLE001 - the test reports it
                failures.append(repr(exc))

    gateway.set_event_sink(sink)
    await gateway.open_session(SessionSpec("conf", "conference"))
    try:
        for kind, pid in (("agent", "a1"), ("customer", "c1"), ("guest", "g1")):
            who = Participant(kind, pid)
            pages[who.key] = await open_peer(
                chromium, page_url, gateway, "conf", who, media=True, channel=False
            )

        async def decoding() -> bool:
            counts = [await page.evaluate("video()") for page in pages.values()]
            return all(len([n for n in c if n > 5]) == 2 for c in counts)

        for _ in range(150):
            if await decoding():
                break
            await asyncio.sleep(0.1)
        assert await decoding()
        assert failures == []
    finally:
        await gateway.shutdown()


async def test_chromium_cobrowse_chunked_event_reaches_the_agent_masked(chromium: Any, page_url: str) -> None:
    """A 300 KB full snapshot sent by a Chromium customer in plain chunk envelopes (sliced JavaScript
    strings) reaches the Chromium agent, which announced gzip, compressed (inflated with
    ``DecompressionStream``), whole, with the input value scrubbed."""
    gateway = AiortcMediaGateway(host_addresses=["127.0.0.1"])
    await gateway.open_session(SessionSpec("cb", "cobrowse", {"mask_all_inputs": True}))
    try:
        customer = await open_peer(
            chromium, page_url, gateway, "cb", Participant("customer", "c1"), False, True
        )
        agent = await open_peer(chromium, page_url, gateway, "cb", Participant("agent", "a1"), False, True)
        await wait_for(
            lambda: bool(gateway.sessions["cb"].cobrowse and gateway.sessions["cb"].cobrowse._agents), 10
        )
        filler = [{"type": 3, "id": 100 + i, "textContent": "lorem ipsum dolor é " * 3} for i in range(4_000)]
        card = {
            "type": 2,
            "id": 5,
            "tagName": "input",
            "attributes": {"value": "4111 1111 1111 1111"},
            "childNodes": [],
        }
        snapshot = {
            "type": 2,
            "timestamp": 2,
            "data": {"node": {"type": 0, "id": 1, "childNodes": [card, *filler]}},
        }
        assert len(json.dumps(snapshot)) > 300_000
        await customer.evaluate(
            "e => { sendEvent({type: 4, timestamp: 1, data: {href: 'x', width: 1, height: 1}}); sendEvent(e); }",
            snapshot,
        )
        for _ in range(100):
            if await agent.evaluate("received.length") >= 2:
                break
            await asyncio.sleep(0.1)
        got = await agent.evaluate(
            "received.map(e => [e.type, JSON.stringify(e).length, e.data && e.data.node ? e.data.node.childNodes[0].attributes.value : null])"
        )
        assert [g[0] for g in got] == [4, 2]
        assert got[1][1] > 300_000 and got[1][2] == "**** **** **** ****"
        assert await agent.evaluate("gzipped") == 1
    finally:
        await gateway.shutdown()
