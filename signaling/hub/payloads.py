"""Reading client payloads: every field checked, every failure an ``invalid`` error naming the field."""

from __future__ import annotations

from typing import Any

from signaling.domain.errors import Invalid

MAX_ID = 200


def obj(payload: Any) -> dict[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise Invalid("the payload must be an object")
    return payload


def string(p: dict[str, Any], key: str, *, required: bool = True, max_len: int = MAX_ID,
           default: str | None = None) -> Any:
    value = p.get(key)
    if value is None:
        if required:
            raise Invalid(f"{key} is required", field=key)
        return default
    if not isinstance(value, str):
        raise Invalid(f"{key} must be a string", field=key)
    if len(value) > max_len:
        raise Invalid(f"{key} is longer than {max_len} characters", field=key)
    if not _is_utf8(value):
        raise Invalid(f"{key} is not valid text (lone surrogate)", field=key)
    if required and not value:
        raise Invalid(f"{key} must not be empty", field=key)
    return value


def _is_utf8(value: str) -> bool:
    """JSON may carry lone surrogates (``"\\ud800"``) that no store can encode: refuse them here."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def integer(p: dict[str, Any], key: str, *, default: int = 0, minimum: int = 0,
            maximum: int = 2**53) -> int:
    value = p.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{key} must be an integer", field=key)
    if value < minimum or value > maximum:
        raise Invalid(f"{key} is out of range", field=key)
    return value


def boolean(p: dict[str, Any], key: str, *, required: bool = True, default: bool = False) -> bool:
    value = p.get(key)
    if value is None:
        if required:
            raise Invalid(f"{key} is required", field=key)
        return default
    if not isinstance(value, bool):
        raise Invalid(f"{key} must be true or false", field=key)
    return value
