"""The server's rrweb masking (defence in depth): input values and input-event text, text inside
mask-class elements, blocked subtrees, added nodes and mutations, and events that are not rrweb's."""

from __future__ import annotations

import json

from rtc_server.media.masking import MaskingPolicy, RrwebScrubber, mask_text
from tests.media.rrweb_samples import (
    BLOCKED,
    CARD,
    NAME,
    NOTE,
    TOKEN,
    checkout_snapshot,
    element,
    find,
    input_event,
    meta,
    mutation,
    text,
)


def scrubbed_snapshot(policy: MaskingPolicy | None = None) -> tuple[RrwebScrubber, dict]:
    scrubber = RrwebScrubber(policy or MaskingPolicy())
    event, changed = scrubber.scrub(checkout_snapshot())
    assert event is not None and changed
    return scrubber, event


def test_snapshot_values_and_masked_text_never_leave() -> None:
    """Card number, hidden token, textarea note and the masked name are all replaced; the blocked
    element loses its children; button labels and page text stay."""
    _, event = scrubbed_snapshot()
    raw = json.dumps(event)
    for secret in (CARD, TOKEN, NOTE, NAME, BLOCKED):
        assert secret not in raw
    node = event["data"]["node"]
    assert find(node, 10)["attributes"]["value"] == mask_text(CARD)
    assert find(node, 17)["childNodes"] == []
    assert find(node, 19)["attributes"]["value"] == "Pay now"
    assert find(node, 24)["textContent"] == "Order total: 42 EUR"
    assert find(node, 20)["attributes"]["value"] == "****"


def test_input_event_text_is_masked() -> None:
    """Input events carry ``*`` of the same length, whatever the widget sent."""
    scrubber, _ = scrubbed_snapshot()
    event, changed = scrubber.scrub(input_event(10, CARD))
    assert changed and event["data"]["text"] == "*" * len(CARD)


def test_inputs_inside_a_masked_area_are_masked_even_without_mask_all_inputs() -> None:
    """With ``mask_all_inputs`` off, a plain input keeps its value but one inside ``rr-mask`` does not."""
    scrubber = RrwebScrubber(MaskingPolicy(mask_all_inputs=False))
    snapshot = checkout_snapshot()
    masked_div = find(snapshot["data"]["node"], 14)
    masked_div["childNodes"].append(element(30, "input", {"type": "text", "value": "secret"}))
    event, _ = scrubber.scrub(snapshot)
    assert find(event["data"]["node"], 10)["attributes"]["value"] == CARD
    assert find(event["data"]["node"], 30)["attributes"]["value"] == "******"
    plain, changed = scrubber.scrub(input_event(10, "abc"))
    assert not changed and plain["data"]["text"] == "abc"
    inside, changed = scrubber.scrub(input_event(30, "abc"))
    assert changed and inside["data"]["text"] == "***"


def test_mutations_are_scrubbed_with_the_node_index() -> None:
    """Text changes in masked nodes, ``value`` attribute changes on inputs and added nodes are masked;
    a class change to ``rr-mask`` masks the element's later text."""
    scrubber, _ = scrubbed_snapshot()
    event, changed = scrubber.scrub(
        mutation(
            texts=[{"id": 16, "value": "John Smith"}, {"id": 24, "value": "Order total: 50 EUR"}],
            attributes=[{"id": 10, "attributes": {"value": "5500 0000 0000 0004"}}],
            adds=[
                {"parentId": 14, "nextId": None, "node": text(40, "secret address")},
                {
                    "parentId": 5,
                    "nextId": None,
                    "node": element(41, "input", {"type": "email", "value": "a@b.c"}),
                },
            ],
        )
    )
    assert changed
    data = event["data"]
    assert data["texts"][0]["value"] == "**** *****"
    assert data["texts"][1]["value"] == "Order total: 50 EUR"
    assert data["attributes"][0]["attributes"]["value"] == "**** **** **** ****"
    assert data["adds"][0]["node"]["textContent"] == "****** *******"
    assert data["adds"][1]["node"]["attributes"]["value"] == "*****"
    scrubber.scrub(mutation(attributes=[{"id": 23, "attributes": {"class": "rr-mask"}}]))
    later, _ = scrubber.scrub(mutation(texts=[{"id": 24, "value": "now private"}]))
    assert later["data"]["texts"][0]["value"] == "*** *******"


def test_unchanged_events_are_reported_unchanged() -> None:
    """Meta, mouse moves and harmless mutations pass as they are (relayed byte for byte)."""
    scrubber, _ = scrubbed_snapshot()
    for event in (meta(), {"type": 3, "data": {"source": 1, "positions": []}, "timestamp": 5}):
        out, changed = scrubber.scrub(event)
        assert out == event and not changed


def test_non_rrweb_and_forbidden_events_are_dropped() -> None:
    """Not a dict, no numeric type/timestamp, unknown type, plugin events, console logs: dropped."""
    scrubber = RrwebScrubber(MaskingPolicy())
    for bad in (
        "text",
        [1, 2],
        {"type": "2", "timestamp": 1},
        {"type": 2, "timestamp": "now"},
        {"type": 9, "timestamp": 1},
        {"type": True, "timestamp": 1},
        {"type": 6, "data": {"plugin": "rrweb/console@1", "payload": {}}, "timestamp": 1},
        {"type": 3, "data": {"source": 11, "payload": ["password=hunter2"]}, "timestamp": 1},
        {"type": 2, "data": {"node": "x"}, "timestamp": 1},
    ):
        assert scrubber.scrub(bad) == (None, False)
    assert scrubber.dropped == 9


def test_hostile_shapes_do_not_raise() -> None:
    """Ill-typed fields inside a well-formed event are tolerated (ids that are lists, null attributes)."""
    scrubber = RrwebScrubber(MaskingPolicy())
    weird = {
        "type": 2,
        "data": {"node": {"type": 2, "tagName": None, "attributes": None, "childNodes": "nope", "id": [1]}},
        "timestamp": 1,
    }
    assert scrubber.scrub(weird)[0] is not None
    hostile = mutation(
        texts=[{"id": [1], "value": 3}],
        attributes=[{"id": {}, "attributes": []}],
        adds=[{"parentId": [], "node": 5}],
    )
    hostile["data"]["removes"] = [{"id": [1]}, "x"]
    assert scrubber.scrub(hostile)[0] is not None


def test_deep_pages_are_walked_iteratively() -> None:
    """A 400-level deep DOM (as deep as Python's json module can re-encode) is walked without
    recursion; the mask class at the top masks the text at the bottom."""
    node = text(99999, NAME)
    for depth in range(400):
        node = element(depth + 100, "div", {"class": "rr-mask"} if depth == 399 else {}, [node])
    event = {"type": 2, "data": {"node": node}, "timestamp": 1}
    out, changed = RrwebScrubber(MaskingPolicy()).scrub(event)
    assert changed and NAME not in json.dumps(out)


def test_policy_from_spec_keeps_defaults_for_bad_values() -> None:
    """Policy keys are read leniently: wrong types fall back to the safe defaults."""
    policy = MaskingPolicy.from_spec(
        {"mask_text_class": 3, "mask_all_inputs": "no", "block_class": "private"}
    )
    assert policy == MaskingPolicy(mask_text_class="rr-mask", block_class="private", mask_all_inputs=True)
