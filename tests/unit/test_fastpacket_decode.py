"""Pins the fast decoder of incoming Socket.IO packets (``FastPacket``): every text, well formed or not,
decodes to what python-socketio's own decoder gives (type, namespace, ack id, data, attachments), or is
refused by both with a ``ValueError``."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from socketio.packet import Packet

from rtc_server.fastio.packet import FastPacket


def _decode(cls: type[Packet], text: str) -> Any:
    try:
        p = cls(encoded_packet=text)
    except ValueError:
        return "refused"
    return (p.packet_type, p.namespace, p.id, p.data, p.attachment_count)


CASES = [
    '2/agent,12["message.send",{"body":"h\\u00e9","n":[1,2]}]',
    '2/agent,["typing",{"typing":true}]',
    '2/customer,0["message.send",{}]',
    '2/agent?x=1,5["a"]',
    '2/a-b,5["a"]',
    "2/,5[1]",
    "2/agent," + "9" * 100 + '["a"]',
    "2/agent," + "9" * 101 + '["a"]',
    '2/agent,12["unterminated',
    '2/agent,12{"not":"array"}',
    '21-/agent,3[{"_placeholder":true,"num":0}]',
    '2["no namespace"]',
    '3/customer,4[{"ok":true}]',
    "2/agent",
    "2/agent,",
]


def test_known_packets_decode_like_python_socketio() -> None:
    """Events with and without ids, queries, odd namespaces, 100 and 101 digit ids, bad JSON, binary
    headers, other packet types: the same outcome as python-socketio's decoder."""
    for text in CASES:
        assert _decode(FastPacket, text) == _decode(Packet, text), text


PIECES = st.sampled_from(
    ["2", "3", "5", "/", "/agent", ",", "?q", "-", "1", "12", "[", "]", '"x"', "{}", "["]
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(PIECES, min_size=1, max_size=8).map("".join), st.sampled_from(['["e",{"a":1}]', "[1]", "", "x"])
)
def test_generated_packets_decode_like_python_socketio(head: str, tail: str) -> None:
    """Arbitrary headers made of packet syntax, followed by JSON or junk: the same outcome either way."""
    text = head + tail
    assert _decode(FastPacket, text) == _decode(Packet, text), text
