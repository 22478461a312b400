"""The chunk envelope: splitting keeps every message under 262,144 bytes, reassembly restores the exact
text, and broken sequences are discarded without poisoning the next message."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtc_server.media.chunks import (
    CLIENT_PIECE_CHARS,
    MAX_MESSAGE_BYTES,
    ChunkAssembler,
    ChunkError,
    ChunkWriter,
    is_chunk,
)


def envelopes(text: str) -> list[str]:
    return list(ChunkWriter().messages(text))


def reassemble(messages: list[str]) -> str | None:
    assembler = ChunkAssembler()
    result = None
    for message in messages:
        parsed = json.loads(message)
        result = assembler.feed(parsed) if is_chunk(parsed) else message
    return result


def test_small_messages_are_not_chunked() -> None:
    """A message under the limit is sent as it is."""
    assert envelopes('{"type":4}') == ['{"type":4}']


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"type": 2, "data": "x" * 600_000}),
        json.dumps({"type": 2, "data": '"\\' * 200_000}),  # escapes double in size
        json.dumps({"type": 2, "data": "é😀" * 100_000}, ensure_ascii=False),
    ],
    ids=["ascii", "escapes", "non-ascii"],
)
def test_large_messages_are_split_under_the_limit_and_restored(text: str) -> None:
    """Every envelope fits a data channel message; concatenating the pieces restores the text."""
    messages = envelopes(text)
    assert len(messages) > 1
    assert all(len(m.encode("utf-8")) <= MAX_MESSAGE_BYTES for m in messages)
    assert reassemble(messages) == text


def test_client_piece_size_always_fits() -> None:
    """The documented client piece size (65,536 code units) fits even for worst-case characters."""
    piece = "\u20ac" * CLIENT_PIECE_CHARS  # 3 UTF-8 bytes each
    envelope = json.dumps({"t": "chunk", "id": "c1", "i": 0, "n": 2, "d": piece}, ensure_ascii=False)
    assert len(envelope.encode("utf-8")) <= MAX_MESSAGE_BYTES


@given(st.text(min_size=0, max_size=2000), st.integers(min_value=1, max_value=300))
@settings(max_examples=60, deadline=None)
def test_any_text_round_trips(text: str, piece: int) -> None:
    """Property: any text split with any piece size is restored exactly."""
    writer = ChunkWriter(piece_chars=piece)
    payload = json.dumps([{"type": 3, "data": text}] * 200)
    messages = list(writer.messages(payload))
    assert reassemble(messages) == payload


def test_out_of_sequence_pieces_are_discarded() -> None:
    """A skipped piece, a changed count or a new id mid-message raise ChunkError; the next message
    still reassembles."""
    assembler = ChunkAssembler()
    assert assembler.feed({"t": "chunk", "id": "a", "i": 0, "n": 3, "d": "{"}) is None
    with pytest.raises(ChunkError):
        assembler.feed({"t": "chunk", "id": "a", "i": 2, "n": 3, "d": "}"})
    assert not assembler.pending
    with pytest.raises(ChunkError):
        assembler.feed({"t": "chunk", "id": "b", "i": 1, "n": 2, "d": "x"})
    assembler.feed({"t": "chunk", "id": "c", "i": 0, "n": 2, "d": "[1,"})
    assert assembler.feed({"t": "chunk", "id": "c", "i": 1, "n": 2, "d": "2]"}) == "[1,2]"


@pytest.mark.parametrize(
    "envelope",
    [
        {"t": "chunk", "id": "", "i": 0, "n": 1, "d": "x"},
        {"t": "chunk", "id": "x" * 65, "i": 0, "n": 1, "d": "x"},
        {"t": "chunk", "id": 5, "i": 0, "n": 1, "d": "x"},
        {"t": "chunk", "id": "a", "i": 1, "n": 1, "d": "x"},
        {"t": "chunk", "id": "a", "i": 0, "n": 0, "d": "x"},
        {"t": "chunk", "id": "a", "i": True, "n": 2, "d": "x"},
        {"t": "chunk", "id": "a", "i": 0, "n": 100_000, "d": "x"},
        {"t": "chunk", "id": "a", "i": 0, "n": 1, "d": 5},
    ],
)
def test_malformed_envelopes_are_refused(envelope: dict) -> None:
    """Bad id, index, count or piece type: ChunkError."""
    with pytest.raises(ChunkError):
        ChunkAssembler().feed(envelope)


def test_reassembled_size_is_capped() -> None:
    """A message growing past the cap is discarded."""
    assembler = ChunkAssembler(max_bytes=10)
    assembler.feed({"t": "chunk", "id": "a", "i": 0, "n": 3, "d": "x" * 6})
    with pytest.raises(ChunkError):
        assembler.feed({"t": "chunk", "id": "a", "i": 1, "n": 3, "d": "x" * 6})


def test_gzip_messages_round_trip_and_are_small() -> None:
    """A compressed message (``"enc": "gzip"`` on its first envelope) reassembles to the exact text and
    costs a fraction of the plain envelopes."""
    text = json.dumps({"type": 2, "data": ["lorem ipsum dolor sit amet"] * 30_000})
    writer = ChunkWriter()
    packed = list(writer.messages(text, compress=True))
    plain = list(writer.messages(text))
    assert json.loads(packed[0])["enc"] == "gzip"
    assert sum(map(len, packed)) * 10 < sum(map(len, plain))
    assert reassemble(packed) == text
    small = '{"type":3}'
    assert list(writer.messages(small, compress=True)) == [small]  # not worth compressing


def test_gzip_bombs_and_garbage_are_refused() -> None:
    """Inflated size is capped; bad base64, bad gzip and unknown encodings raise ChunkError."""
    import base64
    import gzip

    bomb = base64.b64encode(gzip.compress(b"[" + b"0," * 1_000_000 + b"0]")).decode()
    with pytest.raises(ChunkError):
        ChunkAssembler(max_bytes=100_000).feed(
            {"t": "chunk", "id": "b", "i": 0, "n": 1, "enc": "gzip", "d": bomb}
        )
    for envelope in (
        {"t": "chunk", "id": "g", "i": 0, "n": 1, "enc": "gzip", "d": "not base64!"},
        {"t": "chunk", "id": "g", "i": 0, "n": 1, "enc": "gzip", "d": base64.b64encode(b"plain").decode()},
        {"t": "chunk", "id": "g", "i": 0, "n": 1, "enc": "br", "d": ""},
    ):
        with pytest.raises(ChunkError):
            ChunkAssembler().feed(envelope)
