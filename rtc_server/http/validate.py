"""Reading JSON request bodies and query strings: every field checked, every failure an ``invalid``
error that names the field (the REST twin of ``signaling.hub.payloads``)."""

from __future__ import annotations

import re
from typing import Any

from signaling.domain.errors import Invalid

_MISSING: Any = object()

LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}")
EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


def text(
    body: dict[str, Any],
    key: str,
    *,
    required: bool = False,
    max_len: int = 200,
    min_len: int = 0,
    default: str | None = None,
    strip: bool = True,
) -> Any:
    """A string field; ``default`` when absent (``invalid`` when absent and ``required``)."""
    value = body.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise Invalid(f"{key} is required", field=key)
        return default
    if not isinstance(value, str):
        raise Invalid(f"{key} must be a string", field=key)
    if strip:
        value = value.strip()
    if "\x00" in value:
        raise Invalid(f"{key} must not contain NUL characters", field=key)
    if len(value) > max_len:
        raise Invalid(f"{key} is longer than {max_len} characters", field=key)
    if len(value) < max(min_len, 1 if required else 0):
        raise Invalid(f"{key} is too short", field=key)
    return value


def integer(body: dict[str, Any], key: str, *, minimum: int, maximum: int, default: int | None = None) -> Any:
    """An integer field within ``[minimum, maximum]`` (booleans are not integers)."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{key} must be an integer", field=key)
    if not minimum <= value <= maximum:
        raise Invalid(f"{key} must be between {minimum} and {maximum}", field=key)
    return value


def boolean(body: dict[str, Any], key: str, *, default: bool | None = None) -> Any:
    """A ``true``/``false`` field."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Invalid(f"{key} must be true or false", field=key)
    return value


def string_list(body: dict[str, Any], key: str, *, max_items: int, max_len: int = 200) -> list[str] | None:
    """A list of distinct non-empty strings, or None when absent."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > max_items:
        raise Invalid(f"{key} must be a list of at most {max_items} strings", field=key)
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > max_len or "\x00" in item:
            raise Invalid(
                f"every item of {key} must be a non-empty string of at most {max_len} characters", field=key
            )
        if item.strip() in out:
            raise Invalid(f"{key} has a duplicate: {item.strip()[:60]!r}", field=key)
        out.append(item.strip())
    return out


def language(body: dict[str, Any], key: str = "language", *, default: str | None = None) -> Any:
    """A BCP 47-ish language tag such as ``en`` or ``pt-BR``."""
    value = text(body, key, max_len=16, default=default)
    if value and not LANGUAGE_RE.fullmatch(value):
        raise Invalid(f"{key} must be a language tag such as en or pt-BR", field=key)
    return value


def email(body: dict[str, Any], key: str = "email", *, required: bool = False) -> Any:
    """An e-mail address (loosely checked: something@domain.tld)."""
    value = text(body, key, required=required, max_len=254)
    if value and not EMAIL_RE.fullmatch(value):
        raise Invalid(f"{key} is not an e-mail address", field=key)
    return value


def only(body: dict[str, Any], allowed: set[str]) -> None:
    """Refuse unknown fields, so that a typo does not silently do nothing."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Invalid(f"unknown field {unknown[0]!r}", field=unknown[0])
