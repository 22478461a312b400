"""Text blocks for an anonymous customer (no name): ``{{customer.name}}`` never leaves a dangling
"Hello , I am ...". With the visitor's id it becomes "Visitor" + the id's last four characters in the
text's language (what the console shows); without it the empty name is dropped with the space or comma
that only existed for it, and a line that started with it starts with a capital."""

from __future__ import annotations

import pytest

from signaling.domain.textblocks import anonymous_name, fill

ANON = {"customer.name": "", "customer.email": "", "agent.name": "Alice Martin"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "Hello {{customer.name}}, I am {{agent.name}}. How can I help?",
            "Hello, I am Alice Martin. How can I help?",
        ),
        ("Bonjour {{customer.name}}, je suis {{agent.name}}.", "Bonjour, je suis Alice Martin."),
        ("Bonjour {{ customer.name }} !", "Bonjour !"),
        (
            "Thank you for contacting us, {{customer.name}}. Have a nice day!",
            "Thank you for contacting us. Have a nice day!",
        ),
        ("{{customer.name}}, welcome back!", "Welcome back!"),
        ("Thanks.\n{{customer.name}}: your order left today", "Thanks.\nYour order left today"),
        ("Hi {{customer.name}} and welcome", "Hi and welcome"),
        ("Goodbye {{customer.name}}", "Goodbye"),
        ("Write to {{customer.email}} or call us", "Write to or call us"),
    ],
)
def test_an_empty_name_is_dropped_with_its_punctuation(body: str, expected: str) -> None:
    """Without the visitor's id, the empty value goes with its space (and a comma before sentence
    punctuation); nothing else of the text changes."""
    assert fill(body, ANON) == expected


def test_with_the_visitor_id_the_name_is_visitor_and_four_characters_in_the_text_language() -> None:
    """ "Visitor 3f9c" in English, "Visiteur 3f9c" in French (any region), English for other languages
    and when the language is unknown; the same label as the console's list."""
    variables = {**ANON, "customer.id": "vs_0a1b2c3f9c"}
    body = "Hello {{customer.name}}, I am {{agent.name}}."
    assert fill(body, variables) == "Hello Visitor 3f9c, I am Alice Martin."
    assert fill(body, variables, language="en") == "Hello Visitor 3f9c, I am Alice Martin."
    assert fill("Bonjour {{customer.name}} !", variables, language="fr-CA") == "Bonjour Visiteur 3f9c !"
    assert fill(body, variables, language="de") == "Hello Visitor 3f9c, I am Alice Martin."
    assert anonymous_name("vs_1234abcd", "FR") == "Visiteur abcd"


def test_a_known_name_and_unknown_placeholders_are_unchanged() -> None:
    """A real name wins over the fallback; a whitespace-only name counts as none; unknown placeholders
    stay as written; a value is never tidied or expanded (only the template is)."""
    variables = {"customer.name": "Zoë", "customer.id": "vs_9999", "agent.name": "Sam"}
    assert fill("Hello {{customer.name}}, I am {{agent.name}}.", variables) == "Hello Zoë, I am Sam."
    assert fill("Hi {{customer.name}} {{customer.title}}", {"customer.name": "  "}) == "Hi {{customer.title}}"
    assert fill("{{agent.name}}, hi", {"agent.name": " , {{x}}\x00"}) == " , {{x}}\x00, hi"
