"""Server-side enforcement of the co-browse masking policy on rrweb events (defence in depth).

The customer's widget masks first (rrweb ``maskInputOptions``, ``maskTextClass``, ``blockClass`` and
an ``emit`` hook scrubbing ``attributes.value``). The server checks every event again before relaying
it, so a widget with a wrong configuration, an old rrweb or a known rrweb leak still shows the agent
nothing it should not. :class:`RrwebScrubber` keeps a small index of the recorded page's nodes (id ->
tag, masked) built from full snapshots and added nodes, and:

- replaces the ``text`` of every input event with ``*`` (one per character);
- replaces ``attributes.value`` of ``input`` (except button-like types), ``textarea`` and ``select``
  nodes, in snapshots, added nodes and attribute mutations;
- replaces every non-space character of text inside an element with the mask class (and of a
  ``textarea``'s text) with ``*``, in snapshots, added nodes and text mutations; input values inside
  such an element are masked even when ``mask_all_inputs`` is off;
- empties blocked elements (block class) of their children;
- drops events that are not rrweb events, plugin events and console-log records.

Policy keys (``SessionSpec.policy``): ``mask_text_class`` (default ``rr-mask``), ``block_class``
(default ``rr-block``), ``mask_all_inputs`` (default true), ``allow_plugins`` (default false). Each node remembers its parent, so an element
that gains the mask class later masks its descendants' later text changes and values too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# rrweb EventType / IncrementalSource / NodeType values (rrweb 2.x).
FULL_SNAPSHOT = 2
INCREMENTAL_SNAPSHOT = 3
META = 4
PLUGIN = 6
EVENT_TYPES = range(0, 7)
MUTATION = 0
INPUT = 5
LOG = 11
NODE_ELEMENT = 2
NODE_TEXT = 3

INPUT_TAGS = frozenset({"input", "textarea", "select"})
BUTTON_INPUT_TYPES = frozenset({"button", "submit", "reset", "image"})
_NON_SPACE = re.compile(r"\S")


@dataclass(frozen=True, slots=True)
class MaskingPolicy:
    """What the server masks, from ``SessionSpec.policy``."""

    mask_text_class: str | None = "rr-mask"
    block_class: str | None = "rr-block"
    mask_all_inputs: bool = True
    allow_plugins: bool = False

    @classmethod
    def from_spec(cls, policy: dict[str, Any]) -> MaskingPolicy:
        """Read the policy keys, keeping defaults for missing or ill-typed values."""

        def text(key: str, default: str | None) -> str | None:
            value = policy.get(key, default)
            return value if isinstance(value, str) and value else default

        def flag(key: str, default: bool) -> bool:
            value = policy.get(key, default)
            return value if isinstance(value, bool) else default

        defaults = cls()
        return cls(
            mask_text_class=text("mask_text_class", defaults.mask_text_class),
            block_class=text("block_class", defaults.block_class),
            mask_all_inputs=flag("mask_all_inputs", defaults.mask_all_inputs),
            allow_plugins=flag("allow_plugins", defaults.allow_plugins),
        )


def mask_text(value: Any) -> Any:
    """Every non-space character of a string replaced with ``*`` (other values unchanged)."""
    return _NON_SPACE.sub("*", value) if isinstance(value, str) else value


@dataclass(slots=True)
class _Node:
    tag: str | None
    masked: bool
    """Text inside this node must be masked (when it was added)."""
    input_type: str | None = None
    parent: int | None = None
    own_mask: bool = False
    """The element itself carries the mask class."""


class RrwebScrubber:
    """Checks and scrubs the rrweb events of one recording, in order."""

    def __init__(self, policy: MaskingPolicy) -> None:
        self.policy = policy
        self._nodes: dict[int, _Node] = {}
        self.dropped = 0
        """Events refused."""
        self.scrubbed = 0
        """Events changed."""

    def scrub(self, event: Any) -> tuple[dict[str, Any] | None, bool]:
        """``(event, changed)``: the event to relay (modified in place) or ``None`` to drop it."""
        if not _is_event(event):
            self.dropped += 1
            return None, False
        kind = event["type"]
        data = event.get("data")
        changed = False
        if kind == PLUGIN and not self.policy.allow_plugins:
            self.dropped += 1
            return None, False
        if kind == FULL_SNAPSHOT:
            if not isinstance(data, dict) or not isinstance(data.get("node"), dict):
                self.dropped += 1
                return None, False
            self._nodes.clear()
            changed = self._walk(data["node"], parent=None)
        elif kind == INCREMENTAL_SNAPSHOT:
            if not isinstance(data, dict):
                self.dropped += 1
                return None, False
            source = data.get("source")
            if source == LOG:
                self.dropped += 1
                return None, False
            if source == MUTATION:
                changed = self._mutation(data)
            elif source == INPUT:
                changed = self._input(data)
        if changed:
            self.scrubbed += 1
        return event, changed

    # -- nodes -----------------------------------------------------------------------------------------

    def _walk(self, root: dict[str, Any], parent: _Node | None, parent_id: int | None = None) -> bool:
        """Index and scrub a serialized node tree (iteratively: pages can be deep)."""
        changed = False
        stack: list[tuple[Any, _Node | None, int | None]] = [(root, parent, parent_id)]
        while stack:
            node, parent, parent_id = stack.pop()
            if not isinstance(node, dict):
                continue
            info, node_changed = self._visit(node, parent)
            info.parent = parent_id
            node_id = node.get("id")
            changed |= node_changed
            children = node.get("childNodes")
            if isinstance(children, list):
                if info.tag is not None and self._has_class(node, self.policy.block_class) and children:
                    node["childNodes"] = []
                    changed = True
                    continue
                own_id = node_id if isinstance(node_id, int) else None
                stack.extend((child, info, own_id) for child in reversed(children))
        return changed

    def _visit(self, node: dict[str, Any], parent: _Node | None) -> tuple[_Node, bool]:
        parent_masked = parent is not None and (
            parent.masked or (parent.tag == "textarea" and self.policy.mask_all_inputs)
        )
        changed = False
        node_type = node.get("type")
        if node_type == NODE_ELEMENT:
            tag = str(node.get("tagName", "")).lower()
            attributes = node.get("attributes")
            attributes = attributes if isinstance(attributes, dict) else {}
            own_mask = self._has_class(node, self.policy.mask_text_class)
            input_type = str(attributes.get("type", "")).lower() if tag == "input" else None
            info = _Node(tag, parent_masked or own_mask, input_type, own_mask=own_mask)
            if "value" in attributes and self._masks_value(info):
                masked_value = mask_text(attributes["value"]) if isinstance(attributes["value"], str) else ""
                if masked_value != attributes["value"]:
                    attributes["value"] = masked_value
                    changed = True
        elif node_type == NODE_TEXT:
            info = _Node(None, parent_masked)
            if parent_masked and not node.get("isStyle"):
                text = node.get("textContent")
                masked_text = mask_text(text)
                if masked_text != text:
                    node["textContent"] = masked_text
                    changed = True
        else:
            info = _Node(None, parent_masked)
        node_id = node.get("id")
        if isinstance(node_id, int):
            self._nodes[node_id] = info
        return info, changed

    def _node(self, node_id: Any) -> _Node | None:
        return self._nodes.get(node_id) if isinstance(node_id, int) else None

    def _inside_mask(self, info: _Node) -> bool:
        """Whether the node, or an ancestor (now: classes change), masks text."""
        seen = 0
        current: _Node | None = info
        while current is not None and seen < 10_000:
            if current.masked or current.own_mask:
                return True
            if current.tag == "textarea" and self.policy.mask_all_inputs and current is not info:
                return True
            current = self._node(current.parent)
            seen += 1
        return False

    def _masks_value(self, info: _Node) -> bool:
        if info.tag not in INPUT_TAGS or info.input_type in BUTTON_INPUT_TYPES:
            return False
        return self.policy.mask_all_inputs or self._inside_mask(info)

    @staticmethod
    def _has_class(node: dict[str, Any], name: str | None) -> bool:
        if not name:
            return False
        attributes = node.get("attributes")
        if not isinstance(attributes, dict):
            return False
        classes = attributes.get("class")
        return isinstance(classes, str) and name in classes.split()

    # -- incremental events ----------------------------------------------------------------------------------

    def _mutation(self, data: dict[str, Any]) -> bool:
        changed = False
        for removal in _dicts(data.get("removes")):
            node_id = removal.get("id")
            if isinstance(node_id, int):
                self._nodes.pop(node_id, None)
        for addition in _dicts(data.get("adds")):
            parent = self._node(addition.get("parentId"))
            if isinstance(addition.get("node"), dict):
                parent_id = addition.get("parentId")
                if parent is not None and not parent.masked and self._inside_mask(parent):
                    parent = _Node(parent.tag, True, parent.input_type, parent.parent, parent.own_mask)
                changed |= self._walk(
                    addition["node"], parent, parent_id if isinstance(parent_id, int) else None
                )
        for text in _dicts(data.get("texts")):
            info = self._node(text.get("id"))
            if info is not None and self._inside_mask(info) and isinstance(text.get("value"), str):
                masked_text = mask_text(text["value"])
                if masked_text != text["value"]:
                    text["value"] = masked_text
                    changed = True
        for change in _dicts(data.get("attributes")):
            info = self._node(change.get("id"))
            attributes = change.get("attributes")
            if info is None or not isinstance(attributes, dict):
                continue
            if "class" in attributes:
                info.own_mask = self._class_masks(attributes["class"])
                info.masked = info.masked or info.own_mask
            if "type" in attributes and info.tag == "input":
                info.input_type = str(attributes["type"] or "").lower()
            if "value" in attributes and self._masks_value(info) and isinstance(attributes["value"], str):
                masked_value = mask_text(attributes["value"])
                if masked_value != attributes["value"]:
                    attributes["value"] = masked_value
                    changed = True
        return changed

    def _class_masks(self, classes: Any) -> bool:
        name = self.policy.mask_text_class
        return bool(name) and isinstance(classes, str) and name in classes.split()

    def _input(self, data: dict[str, Any]) -> bool:
        text = data.get("text")
        if not isinstance(text, str) or not text:
            return False
        info = self._node(data.get("id"))
        if info is not None and info.input_type in BUTTON_INPUT_TYPES:
            return False
        if not self.policy.mask_all_inputs and not (info is not None and self._inside_mask(info)):
            return False
        masked = "*" * len(text)
        if masked == text:
            return False
        data["text"] = masked
        return True


def _is_event(event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    kind, timestamp = event.get("type"), event.get("timestamp")
    return (
        isinstance(kind, int)
        and not isinstance(kind, bool)
        and kind in EVENT_TYPES
        and isinstance(timestamp, int | float)
        and not isinstance(timestamp, bool)
    )


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
