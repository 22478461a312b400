"""The chunk envelope of ``web/src/shared/chunks.js`` (run in Chromium) against the server's
``rtc_server/media/chunks.py``: what one side writes, the other reassembles, byte for byte, including
texts over 262,144 UTF-8 bytes with non-ASCII characters and surrogate pairs at piece boundaries; every
envelope the browser writes fits in one data channel message; small texts are sent as they are."""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import Browser, Page

from rtc_server.media.chunks import MAX_MESSAGE_BYTES, ChunkAssembler, ChunkWriter
from tests.browser.conftest import ROOT, new_page

pytestmark = pytest.mark.browser

CHUNKS_JS = ROOT / "web" / "src" / "shared" / "chunks.js"


async def load_chunks(page: Page) -> None:
    """chunks.js as a classic script: its exports become globals of the page."""
    source = re.sub(r"^export ", "", CHUNKS_JS.read_text(), flags=re.MULTILINE)
    await page.add_script_tag(
        content=source + "\nwindow.C = {ChunkWriter, ChunkAssembler, utf8Length, fits};"
    )


def texts() -> list[str]:
    """JSON texts: small, just over the limit in ASCII, and large with multi-byte characters placed
    across the browser's 65,536-code-unit piece boundaries."""
    emoji = "\U0001f600"  # a surrogate pair in JavaScript
    ascii_big = json.dumps({"type": 2, "data": "a" * 300_000})
    # the pair starts at code unit 65,535: a naive split would cut it in two
    boundary = json.dumps(
        {"d": "b" * (65_535 - len('{"d": "')) + emoji + "c" * 70_000 + "é" * 90_000}, ensure_ascii=False
    )
    mixed = json.dumps(
        {"t": "x", "q": 'quote " and \\ backslash', "s": ("€" + emoji + "z") * 40_000}, ensure_ascii=False
    )
    return [json.dumps({"type": 3, "data": {"source": 0}}), ascii_big, boundary, mixed]


async def test_browser_writes_what_the_server_reassembles(browser: Browser) -> None:
    """chunks.js ChunkWriter -> rtc_server ChunkAssembler gives back each text, every envelope under
    262,144 bytes, and utf8Length agrees with Python's UTF-8 length."""
    ctx, page, _ = await new_page(browser)
    await load_chunks(page)
    for text in texts():
        messages = await page.evaluate("t => new C.ChunkWriter('w').messages(t)", text)
        assert await page.evaluate("t => C.utf8Length(t)", text) == len(text.encode("utf-8"))
        if len(text.encode("utf-8")) <= MAX_MESSAGE_BYTES:
            assert messages == [text]
            continue
        assert len(messages) > 1
        assembler = ChunkAssembler()
        whole = None
        for message in messages:
            assert len(message.encode("utf-8")) <= MAX_MESSAGE_BYTES
            whole = assembler.feed(json.loads(message))
        assert whole == text
    await ctx.close()


async def test_server_writes_what_the_browser_reassembles(browser: Browser) -> None:
    """rtc_server ChunkWriter -> chunks.js ChunkAssembler gives back each text; a piece out of
    sequence is refused and the next message still arrives."""
    ctx, page, _ = await new_page(browser)
    await load_chunks(page)
    writer = ChunkWriter()
    for text in texts():
        messages = list(writer.messages(text))
        whole = await page.evaluate(
            """ms => { const a = new C.ChunkAssembler(); let out = null;
                       for (const m of ms) { const p = JSON.parse(m); out = p.t === 'chunk' ? a.feed(p) : m; }
                       return out; }""",
            messages,
        )
        assert whole == text
    broken = list(writer.messages(texts()[1]))
    refused = await page.evaluate(
        """([bad, good]) => { const a = new C.ChunkAssembler();
                              a.feed(JSON.parse(bad[0]));
                              let error = null;
                              try { a.feed(JSON.parse(bad[2])); } catch (e) { error = String(e); }
                              let out = null; for (const m of good) out = a.feed(JSON.parse(m));
                              return [error, out && out.length]; }""",
        [broken, list(writer.messages(texts()[1]))],
    )
    assert refused[0] and "sequence" in refused[0]
    assert refused[1] == len(texts()[1])
    await ctx.close()
