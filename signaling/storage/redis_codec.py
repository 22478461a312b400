"""How records become Redis hash fields and back.

Every field of a record dataclass is one hash field holding text: ``str`` as is, ``int`` in decimal,
``bool`` as ``1``/``0``, a datetime as integer microseconds since the Unix epoch (exact, comparable
in Lua, and usable as a sorted-set score: 2026 is about 1.8e15, well under 2**53), lists and dicts as
JSON. ``None`` is the field's absence. A :class:`~signaling.domain.models.Message` flattens its
author into ``author_kind`` / ``author_id`` / ``author_name``.

Fields whose name starts with ``_`` are the store's own bookkeeping and are ignored when decoding.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from signaling import jsonfast
from signaling.domain.models import Author, Message

T = TypeVar("T")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def micros(value: datetime) -> int:
    """A datetime as integer microseconds since the epoch (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // _MICRO


def from_micros(value: int | str) -> datetime:
    """The inverse of :func:`micros`: a timezone-aware UTC datetime."""
    return EPOCH + timedelta(microseconds=int(value))


def fold(value: str) -> str:
    """The case-insensitive key of names, emails and search text (as the SQLite store folds them)."""
    return value.casefold()


def to_json(value: Any) -> str:
    """Compact JSON text, UTF-8 characters unescaped (:mod:`signaling.jsonfast`: orjson when installed)."""
    return jsonfast.dumps(value, ensure_ascii=False, separators=(",", ":"))


from_json = jsonfast.loads


# -- per-class field kinds -----------------------------------------------------------------------------

_KINDS: dict[type, dict[str, str]] = {}


def _kind_of(annotation: Any) -> str:
    """``str``, ``int``, ``bool``, ``dt`` or ``json`` for one (possibly optional) annotation."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _kind_of(args[0])
        return "json"
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is str:
        return "str"
    if annotation is datetime:
        return "dt"
    return "json"


def _kinds(cls: type) -> dict[str, str]:
    kinds = _KINDS.get(cls)
    if kinds is None:
        hints = typing.get_type_hints(cls)
        kinds = {f.name: _kind_of(hints[f.name]) for f in dataclasses.fields(cls)}
        _KINDS[cls] = kinds
    return kinds


def _encode_value(kind: str, value: Any) -> str:
    if kind == "str":
        return str(value)
    if kind == "bool":
        return "1" if value else "0"
    if kind == "int":
        return str(int(value))
    if kind == "dt":
        return str(micros(value))
    return to_json(value)


def _decode_value(kind: str, text: str) -> Any:
    if kind == "str":
        return text
    if kind == "bool":
        return text == "1"
    if kind == "int":
        return int(text)
    if kind == "dt":
        return from_micros(text)
    return from_json(text)


# -- records ------------------------------------------------------------------------------------------


def encode(record: Any) -> dict[str, str]:
    """A record's non-``None`` fields as hash fields (see the module docstring)."""
    if isinstance(record, Message):
        return encode_message(record)
    kinds = _kinds(type(record))
    out: dict[str, str] = {}
    for name, kind in kinds.items():
        value = getattr(record, name)
        if value is not None:
            out[name] = _encode_value(kind, value)
    return out


def decode(cls: type[T], mapping: Mapping[str, str]) -> T:
    """The record of class ``cls`` a hash holds (absent optional fields become ``None``)."""
    kinds = _kinds(cls)
    values: dict[str, Any] = {}
    for name, kind in kinds.items():
        text = mapping.get(name)
        if text is not None:
            values[name] = _decode_value(kind, text)
        else:
            values[name] = None
    return cls(**values)


def flat(mapping: Mapping[str, str]) -> list[str]:
    """``{k: v, ...}`` as ``[k, v, ...]`` (Lua scripts take field/value pairs as arguments)."""
    out: list[str] = []
    for key, value in mapping.items():
        out.append(key)
        out.append(value)
    return out


def pairs(items: list[Any]) -> dict[str, str]:
    """The inverse of :func:`flat` (what ``HGETALL`` or a stream entry returns from a script)."""
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


# -- messages -----------------------------------------------------------------------------------------


def encode_message(m: Message, seq: int | None = None) -> dict[str, str]:
    """A message as stream-entry fields; ``seq`` is left out unless given."""
    out = {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "client_id": m.client_id or "",
        "author_kind": m.author.kind,
        "author_id": m.author.id,
        "author_name": m.author.name,
        "kind": m.kind,
        "body": m.body,
        "data": to_json(m.data),
        "created_at": str(micros(m.created_at)),
    }
    if seq is not None:
        out["seq"] = str(seq)
    return out


def decode_message(mapping: Mapping[str, str]) -> Message:
    """The message a stream entry holds."""
    return Message(
        id=mapping["id"],
        conversation_id=mapping["conversation_id"],
        seq=int(mapping["seq"]),
        client_id=mapping.get("client_id", ""),
        author=Author(
            kind=mapping["author_kind"], id=mapping["author_id"], name=mapping.get("author_name", "")
        ),
        kind=mapping["kind"],
        body=mapping.get("body", ""),
        data=from_json(mapping.get("data", "{}")),
        created_at=from_micros(mapping["created_at"]),
    )
