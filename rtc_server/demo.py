"""The demo workspace that ``--demo`` creates on first start (see README for the logins)."""

from __future__ import annotations

from signaling.domain.auth import hash_password
from signaling.domain.models import Agent, Article, Flow, Team, TextBlock, new_id
from signaling.storage.base import Store

DEMO_PASSWORD = "demo"
DEMO_FLAG = "demo_seeded"


async def seed_demo(store: Store) -> bool:
    """Create the demo teams, agents, text blocks, articles and flow once; False if already there."""
    if await store.get_meta(DEMO_FLAG):
        return False
    support = await store.get_team_by_name("support") or await store.create_team(
        Team(id=new_id("tm"), name="support", routing="manual"))
    sales = await store.get_team_by_name("sales") or await store.create_team(
        Team(id=new_id("tm"), name="sales", routing="auto"))
    hashed = hash_password(DEMO_PASSWORD)
    for email, name, team, admin in (
        ("alice@example.com", "Alice Martin", support, True),
        ("bob@example.com", "Bob Durand", support, False),
        ("carol@example.com", "Carol Petit", sales, False),
    ):
        if await store.get_agent_by_email(email) is None:
            await store.create_agent(Agent(id=new_id("ag"), email=email, name=name, password_hash=hashed,
                                           team_ids=[team.id], is_admin=admin, status="online"))
    blocks = [
        ("hello", "Greeting", "Hello {{customer.name}}, I am {{agent.name}}. How can I help you today?", "en"),
        ("bonjour", "Salutation", "Bonjour {{customer.name}}, je suis {{agent.name}}. Comment puis-je vous aider ?",
         "fr"),
        ("thanks", "Thank you", "Thank you for contacting us, {{customer.name}}. Have a nice day!", "en"),
        ("refund", "Refund policy", "Refunds are processed within 5 business days after we receive the item.",
         "en"),
        ("shipping", "Shipping times", "Orders ship within 24 hours; delivery takes 2 to 4 business days.", "en"),
        ("cobrowse", "Co-browsing offer", "May I look at your screen with you? I will send a request you can "
         "accept or decline.", "en"),
    ]
    for shortcut, title, body, lang in blocks:
        await store.create_textblock(TextBlock(id=new_id("tb"), shortcut=shortcut, title=title, body=body,
                                               language=lang))
    for title, summary, url, body in (
        ("Resetting your password", "Step-by-step guide to get back into your account.",
         "https://example.com/help/reset-password", "Open the login page, choose Forgot password..."),
        ("Tracking an order", "Where to find your parcel's tracking number and status.",
         "https://example.com/help/tracking", "Your tracking number is in the confirmation e-mail..."),
        ("Returns and refunds", "How to send an item back and when you get your money.",
         "https://example.com/help/returns", "You have 30 days to return an item..."),
    ):
        await store.create_article(Article(id=new_id("ar"), title=title, summary=summary, url=url, body=body))
    await store.create_flow(Flow(id=new_id("fl"), name="Satisfaction survey", steps=[
        {"id": "rating", "question": "How would you rate our help today?",
         "buttons": ["Great", "Okay", "Poor"], "free_text": False},
        {"id": "comment", "question": "Anything we could do better?", "buttons": [], "free_text": True},
    ]))
    await store.create_flow(Flow(id=new_id("fl"), name="Contact details", steps=[
        {"id": "topic", "question": "What is your question about?",
         "buttons": ["Billing", "Delivery", "Technical"], "free_text": False},
        {"id": "phone", "question": "Which phone number can we call you on?", "buttons": [], "free_text": True},
    ]))
    await store.set_meta(DEMO_FLAG, "1")
    return True
