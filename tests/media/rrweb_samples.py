"""rrweb 2.x events of a small checkout page, with the values a leaky recorder would let through."""

from __future__ import annotations

from typing import Any

CARD = "4111 1111 1111 1111"
TOKEN = "csrf-secret-token"
NOTE = "please call me at 555-0100"
NAME = "Jane Doe"
BLOCKED = "internal-only widget"


def meta(ts: int = 1) -> dict[str, Any]:
    return {
        "type": 4,
        "data": {"href": "https://shop.example/checkout", "width": 1280, "height": 800},
        "timestamp": ts,
    }


def element(
    id_: int, tag: str, attributes: dict[str, Any], children: list[dict[str, Any]] | None = None
) -> dict:
    return {"type": 2, "id": id_, "tagName": tag, "attributes": attributes, "childNodes": children or []}


def text(id_: int, content: str) -> dict[str, Any]:
    return {"type": 3, "id": id_, "textContent": content}


def checkout_snapshot(ts: int = 2, filler: int = 0) -> dict[str, Any]:
    """A full snapshot; ``filler`` adds that many paragraphs (to make it large)."""
    body_children = [
        element(10, "input", {"type": "text", "name": "card", "value": CARD}),
        element(11, "input", {"type": "hidden", "name": "csrf", "value": TOKEN}),
        element(12, "textarea", {"value": NOTE}, [text(13, NOTE)]),
        element(14, "div", {"class": "profile rr-mask"}, [element(15, "span", {}, [text(16, NAME)])]),
        element(17, "div", {"class": "rr-block"}, [text(18, BLOCKED)]),
        element(19, "input", {"type": "submit", "value": "Pay now"}),
        element(
            20, "select", {"value": "visa"}, [element(21, "option", {"value": "visa"}, [text(22, "Visa")])]
        ),
        element(23, "p", {}, [text(24, "Order total: 42 EUR")]),
    ]
    body_children += [
        element(1000 + 2 * i, "p", {}, [text(1001 + 2 * i, "lorem ipsum " * 8)]) for i in range(filler)
    ]
    html = element(3, "html", {}, [element(4, "head", {}), element(5, "body", {}, body_children)])
    node = {"type": 0, "id": 1, "childNodes": [{"type": 1, "id": 2, "name": "html"}, html]}
    return {"type": 2, "data": {"node": node, "initialOffset": {"left": 0, "top": 0}}, "timestamp": ts}


def input_event(node_id: int = 10, value: str = CARD, ts: int = 3) -> dict[str, Any]:
    return {
        "type": 3,
        "data": {"source": 5, "id": node_id, "text": value, "isChecked": False},
        "timestamp": ts,
    }


def mutation(ts: int = 4, **data: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"source": 0, "texts": [], "attributes": [], "removes": [], "adds": []}
    base.update(data)
    return {"type": 3, "data": base, "timestamp": ts}


def find(node: dict[str, Any], node_id: int) -> dict[str, Any] | None:
    """The serialized node with ``node_id`` under ``node``."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.get("id") == node_id:
            return current
        stack.extend(current.get("childNodes", []))
    return None
