"""The conversation list's preview of a system message reads in the agent's language. The server keeps
``last_message_preview`` as English text ("Video call ended") and sends ``last_message_system: {code,
params}`` beside it; a French console renders "Appel vidéo terminé" for conversations it never opened
(after a fresh sign-in), and keeps doing so for system messages that arrive while it is open. Real
server, real Socket.IO customers, real Chromium."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser

from tests.browser.conftest import agent_login, new_page
from tests.conftest import Hub, RunningServer

pytestmark = pytest.mark.browser


async def test_system_previews_in_the_agents_language(server: RunningServer, browser: Browser) -> None:
    """French agent: an ended video call, a joined conversation and a cancelled call read in French in
    the list, never in the stored English."""
    async with aiohttp.ClientSession() as http:
        hub = Hub(server, http)
        login = await hub.login("alice@example.com")
        async with http.patch(
            f"{server.url}/api/me",
            json={"locale": "fr"},
            headers={"Authorization": f"Bearer {login['token']}"},
        ) as resp:
            assert resp.status == 200, await resp.text()
        alice = await hub.connect("/agent", login["token"])
        convs: dict[str, dict[str, Any]] = {}
        customers = {}
        for name in ("Vidéo Client", "Rejoint Client", "Appel Client"):
            customer = await hub.customer(name=name)
            conv = (await customer.ok("conversation.start", {"body": "Bonjour"}))["conversation"]
            await alice.ok("conversation.assign", {"conversation_id": conv["id"]})
            convs[name], customers[name] = conv, customer
            assert "last_message_system" not in conv and "last_message_preview" not in conv  # agents only
        video = await alice.ok(
            "request.create", {"conversation_id": convs["Vidéo Client"]["id"], "kind": "video"}
        )
        await customers["Vidéo Client"].ok(
            "request.respond", {"request_id": video["request"]["id"], "accept": True}
        )
        await alice.ok("request.end", {"request_id": video["request"]["id"]})
        listed = (await alice.ok("conversations.list", {"section": "mine"}))["conversations"]
        by_name = {c["visitor"]["name"]: c for c in listed}
        assert by_name["Vidéo Client"]["last_message_preview"] == "Video call ended"
        assert by_name["Vidéo Client"]["last_message_system"]["code"] == "request.ended"
        assert by_name["Rejoint Client"]["last_message_preview"] == "Alice Martin joined the conversation"
        assert by_name["Rejoint Client"]["last_message_system"]["code"] == "conversation.assigned"

        ctx, page, watch = await new_page(browser)
        await agent_login(page, server.url)
        await page.click(".section[data-section=mine]")

        def item(name: str) -> Any:
            return page.locator(".conv-item", has_text=name).locator(".conv-item__preview")

        await item("Vidéo Client").wait_for()
        assert await item("Vidéo Client").inner_text() == "Appel vidéo terminé"
        assert await item("Rejoint Client").inner_text() == "Alice Martin a rejoint la conversation"
        assert await item("Appel Client").inner_text() == "Alice Martin a rejoint la conversation"

        # live: a system message for a conversation the console has not opened
        call = await alice.ok(
            "request.create", {"conversation_id": convs["Appel Client"]["id"], "kind": "call"}
        )
        await (
            page.locator(".conv-item", has_text="Appel Client")
            .locator(".conv-item__preview", has_text="Appel demandé")
            .wait_for()
        )
        await alice.ok("request.end", {"request_id": call["request"]["id"]})
        await (
            page.locator(".conv-item", has_text="Appel Client")
            .locator(".conv-item__preview", has_text="Appel annulé")
            .wait_for()
        )
        # a customer's text still shows as typed
        await customers["Rejoint Client"].ok(
            "message.send",
            {
                "conversation_id": convs["Rejoint Client"]["id"],
                "client_id": "c-1",
                "kind": "text",
                "body": "Merci",
            },
        )
        await (
            page.locator(".conv-item", has_text="Rejoint Client")
            .locator(".conv-item__preview", has_text="Merci")
            .wait_for()
        )
        texts = " ".join(await page.locator(".conv-item__preview").all_inner_texts())
        assert "ended" not in texts and "joined" not in texts and "requested" not in texts
        assert watch.errors == []
        await ctx.close()
        for c in hub.clients:
            await c.disconnect()
