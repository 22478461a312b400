"""Cross-site scripting, extended to a list of payloads: script tags, ``img onerror``, ``svg onload``,
``javascript:`` URLs, template-literal and template-expression strings, attribute-breaking quotes,
``srcdoc`` iframes, mutation-XSS shapes; placed in message bodies (both directions), notes, visitor
names and e-mails, page URLs, uploaded file names, and article, flow and text-block text created through
the admin REST API; rendered by the agent console and the widget in Chromium.

A canary (``window.__xss``, set by every payload) must stay undefined, no dialog may open, no
Content-Security-Policy violation may be reported (one would mean markup was injected and only the CSP
stopped it), no element of either page may carry an ``on*`` attribute or a ``javascript:`` link, and every
payload must be visible as text. ``tests/browser/test_xss.py`` is the first, smaller version of this test
(payloads typed through the UI).
"""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from tests.browser import conftest as browser_fixtures
from tests.browser.conftest import agent_login, customer_start, new_page, shadow_text
from tests.conftest import Hub, RunningServer
from tests.reliability.conftest import figure

pytestmark = pytest.mark.browser
browser = browser_fixtures.browser
web_dist = browser_fixtures.web_dist

PAYLOADS = [
    "<script>window.__xss='script'</script>",
    "<img src=x onerror=\"window.__xss='img'\">",
    "<svg onload=\"window.__xss='svg'\"><circle r=1></svg>",
    "<svg><script>window.__xss='svg-script'</script></svg>",
    "javascript:window.__xss='js-url'",
    "<a href=\"javascript:window.__xss='a-href'\">click me</a>",
    "${window.__xss='template-literal'}",
    "`${(window.__xss='backtick')}`",
    "{{constructor.constructor('window.__xss=\"angular\"')()}}",
    '" onmouseover="window.__xss=\'attr-dq\'" x="',
    "' onfocus='window.__xss=\"attr-sq\"' autofocus '",
    "\"><img src=x onerror=window.__xss='break-out'>",
    "<iframe srcdoc=\"<script>parent.__xss='srcdoc'</script>\"></iframe>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss='mxss'>",
    "</textarea><script>window.__xss='textarea'</script>",
    "<details open ontoggle=window.__xss='details'>",
    "<object data=\"javascript:window.__xss='object'\"></object>",
    "data:text/html,<script>window.__xss='data-url'</script>",
]
NAME = PAYLOADS[1][:120]
#: File names carry no double quote (the multipart header quotes them).
FILE_NAMES = [
    "<script>window.__xss='file'</script>.txt",
    "<img src=x onerror=window.__xss='file-img'>.txt",
    "<svg onload=window.__xss='file-svg'>.txt",
    "javascript:window.__xss='file-js'.txt",
    "${window.__xss='file-tpl'}.txt",
    "'><img src=x onerror=window.__xss='file-sq'>.txt",
]
NOTE = f"NOTE-{uuid.uuid4().hex} <img src=x onerror=window.__xss='note'>"
#: Injected markup of any payload would carry one of these.
INJECTED_JS = """(root) => {
  const all = [...root.querySelectorAll('*')];
  return all.filter(e => [...e.attributes].some(a => a.name.startsWith('on')
      || (/^(href|src|data|action|formaction|srcdoc)$/.test(a.name) && /^\\s*(javascript|data):/i.test(a.value))
      || a.name === 'srcdoc')).map(e => e.outerHTML.slice(0, 120));
}"""
CSP_WATCH = (
    "window.__csp = []; document.addEventListener('securitypolicyviolation', "
    "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || '')), true);"
)


async def rest(http: aiohttp.ClientSession, method: str, url: str, token: str, body: Any) -> tuple[int, Any]:
    async with http.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json()


async def upload(
    http: aiohttp.ClientSession, url: str, token: str, cid: str, filename: str
) -> dict[str, Any]:
    """A multipart upload whose file name goes into the part header as raw UTF-8 (as browsers send it)."""
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="conversation_id"\r\n\r\n{cid}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: text/plain\r\n\r\njust text\r\n--{boundary}--\r\n"
    ).encode()
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    async with http.post(f"{url}/api/uploads", data=body, headers=headers) as r:
        body = await r.json()
        assert r.status == 201, body
        return dict(body["attachment"])


async def watched_page(browser: Browser, width: int, height: int) -> tuple[Any, Page, Any]:
    ctx, page, watch = await new_page(browser, width, height)
    await ctx.add_init_script(CSP_WATCH)
    return ctx, page, watch


async def verdict(page: Page, watch: Any, widget: bool) -> dict[str, Any]:
    """What ran or was injected on ``page`` (the widget's shadow root, or the console document)."""
    root = "document.getElementById('rtc-engage-widget').shadowRoot" if widget else "document"
    return {
        "canary": await page.evaluate("typeof window.__xss === 'undefined' ? null : String(window.__xss)"),
        "dialogs": list(watch.dialogs),
        "csp": await page.evaluate("window.__csp || []"),
        "injected": await page.evaluate(f"() => ({INJECTED_JS})({root})"),
        "iframes": await page.evaluate(f"{root}.querySelectorAll('iframe, object, embed').length"),
    }


@pytest.mark.timeout(180)
async def test_xss_payloads_never_run_in_the_console_or_the_widget(
    server: RunningServer, browser: Browser, hub: Hub
) -> None:
    """Every payload, in every place user or admin text is shown, renders as text on both pages:
    executions = 0, dialogs = 0, CSP violations = 0, injected elements = 0."""
    base = server.url
    http = hub.http
    admin = (await hub.login("alice@example.com"))["token"]

    # admin-made content: an article, a flow, a text block, each field a payload
    bad_url_status, _ = await rest(
        http,
        "POST",
        f"{base}/api/articles",
        admin,
        {"title": "x", "summary": "x", "url": "javascript:window.__xss='article-url'"},
    )
    assert bad_url_status == 400  # javascript: article links are refused at the API
    status, art = await rest(
        http,
        "POST",
        f"{base}/api/articles",
        admin,
        {
            "title": PAYLOADS[0],
            "summary": PAYLOADS[2],
            "body": PAYLOADS[3],
            "url": "https://example.com/help?q=" + urllib.parse.quote(PAYLOADS[4]),
        },
    )
    assert status == 201, art
    status, flow = await rest(
        http,
        "POST",
        f"{base}/api/flows",
        admin,
        {
            "name": PAYLOADS[6],
            "steps": [
                {"id": "s1", "question": PAYLOADS[9], "buttons": [PAYLOADS[10][:200], PAYLOADS[11][:200]]},
                {"id": "s2", "question": PAYLOADS[12], "buttons": [], "free_text": True},
            ],
        },
    )
    assert status == 201, flow
    status, block = await rest(
        http,
        "POST",
        f"{base}/api/textblocks",
        admin,
        {"shortcut": "xss" + uuid.uuid4().hex[:6], "title": PAYLOADS[13], "body": PAYLOADS[14]},
    )
    assert status == 201, block

    actx, agent, awatch = await watched_page(browser, 1366, 900)
    cctx, customer, cwatch = await watched_page(browser, 1280, 900)
    # the customer starts in the widget with a payload as name and first message
    await customer_start(customer, base, NAME, PAYLOADS[5])
    token = await customer.evaluate(
        "Object.entries(localStorage).find(([k]) => k.startsWith('rtc-engage.visitor:'))[1]"
    )
    me = await hub.connect("/customer", token)
    cid = (await me.ok("conversations.list", {}))["conversations"][0]["id"]
    alice = await hub.agent("alice@example.com")

    # the customer (through its own token) sends every payload and files named with them
    for i, text in enumerate(PAYLOADS):
        await me.ok(
            "message.send", {"conversation_id": cid, "client_id": f"c{i}", "kind": "text", "body": text}
        )
    stored_names = []
    for i, text in enumerate(FILE_NAMES):
        att = await upload(http, base, token, cid, text)
        stored_names.append(att["name"])
        await me.ok(
            "message.send",
            {"conversation_id": cid, "client_id": f"f{i}", "kind": "file", "attachment_id": att["id"]},
        )
    # the agent answers with every payload, a note, the article, the flow and the text block
    for i, text in enumerate(PAYLOADS):
        await alice.ok(
            "message.send", {"conversation_id": cid, "client_id": f"a{i}", "kind": "text", "body": text}
        )
    await alice.ok("note.add", {"conversation_id": cid, "body": NOTE})
    await alice.ok(
        "message.send",
        {"conversation_id": cid, "client_id": "art", "kind": "article", "article_id": art["article"]["id"]},
    )
    await alice.ok(
        "message.send",
        {"conversation_id": cid, "client_id": "flow", "kind": "flow", "flow_id": flow["flow"]["id"]},
    )
    await alice.ok(
        "message.send",
        {
            "conversation_id": cid,
            "client_id": "tb",
            "kind": "chatblock",
            "textblock_id": block["textblock"]["id"],
        },
    )
    await alice.ok(
        "message.send",
        {"conversation_id": cid, "client_id": "last", "kind": "text", "body": "END-OF-PAYLOADS"},
    )
    # other visitors: payload names, e-mails and page URLs, listed in the console
    for i, text in enumerate(PAYLOADS[6:12]):
        v = await hub.visitor(name=text[:120], email=f"x{i}@example.com")
        other = await hub.connect("/customer", v["token"])
        await other.ok("conversation.start", {"body": PAYLOADS[i], "page_url": PAYLOADS[4]})

    # the widget renders all of it
    await customer.wait_for_selector(".wtimeline .msg >> text=END-OF-PAYLOADS")
    await customer.click(".wflow button >> nth=0")  # answer the flow's first step with a payload button
    await customer.wait_for_timeout(300)
    widget_text = await shadow_text(customer)

    # the console: the list shows the payload names; the conversation shows everything
    await agent_login(agent, base)
    items = agent.locator(".conv-item")
    await items.first.wait_for()
    names = await agent.locator(".conv-item .conv-item__name").all_inner_texts()
    index = names.index(NAME)
    await items.nth(index).click()
    await agent.wait_for_selector(".conv .msg >> text=END-OF-PAYLOADS")
    await agent.wait_for_selector(".msg--k-flow_answer")
    console_text = await agent.inner_text("body")
    list_text = " ".join(names)

    # another conversation: a payload name in the header and a javascript: page URL (never a link)
    other_index = names.index(PAYLOADS[6][:120])
    await items.nth(other_index).click()
    await agent.wait_for_function(
        "n => document.querySelector('.conv__name') && document.querySelector('.conv__name').innerText === n",
        arg=PAYLOADS[6][:120],
    )
    assert await agent.locator(".conv__page").count() == 0

    missing_widget = [p for p in PAYLOADS if p not in widget_text]
    missing_console = [p for p in PAYLOADS if p not in console_text]
    missing_names = [p[:120] for p in PAYLOADS[6:12] if p[:120] not in list_text]
    missing_files = [f for f in stored_names if f not in widget_text or f not in console_text]
    results = {
        "console": await verdict(agent, awatch, False),
        "widget": await verdict(customer, cwatch, True),
    }
    executions = sum(1 for r in results.values() if r["canary"] is not None) + sum(
        len(r["dialogs"]) for r in results.values()
    )
    figure(
        "xss",
        payloads=len(PAYLOADS),
        places="messages(both ways),note,visitor_name,email,page_url,file_name,article,flow,text_block",
        pages="console,widget",
        executions=executions,
        csp_violations=sum(len(r["csp"]) for r in results.values()),
        injected_elements=sum(len(r["injected"]) for r in results.values()),
        missing_text=len(missing_widget) + len(missing_console) + len(missing_names) + len(missing_files),
    )
    for page_name, r in results.items():
        assert r["canary"] is None, (page_name, r)
        assert r["dialogs"] == [], (page_name, r)
        assert r["csp"] == [], (page_name, r)
        assert r["injected"] == [], (page_name, r)
        assert r["iframes"] == 0, (page_name, r)
    assert missing_widget == [] and missing_console == [] and missing_names == [], (
        missing_widget,
        missing_console,
    )
    assert missing_files == [], missing_files  # shown as stored (the server only replaces path separators)
    assert NOTE in console_text and NOTE not in widget_text  # the note stayed on the agent side
    assert awatch.errors == [] and cwatch.errors == []
    await actx.close()
    await cctx.close()
