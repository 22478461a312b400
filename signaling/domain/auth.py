"""Credentials: password hashes, signed tokens and the site's ``user_hash``.

- Passwords are hashed with scrypt and a random salt, encoded
  ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` so parameters can change later without breaking old
  hashes.
- Tokens are ``base64url(json claims).base64url(HMAC-SHA256(secret, first part))`` with an ``exp``
  claim (seconds since the epoch). :func:`verify_token` raises
  :class:`~signaling.domain.errors.Unauthorized`, and nothing else, for any token it refuses.
- ``user_hash`` is the hex HMAC-SHA256 of the site's ``user_id`` (PROTOCOL.md, ``POST /api/visitors``).

Every secret comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import secrets
from typing import Any

from signaling.domain.errors import Unauthorized

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
#: Upper bounds on what :func:`verify_password` accepts from a stored hash (memory and time safety).
_MAX_MEMORY = 2**26
_MAX_P = 16

#: Tokens longer than this are refused before any work is done.
MAX_TOKEN_LENGTH = 8192

_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` (``scrypt$n$r$p$salt_b64$hash_b64``)."""
    if not isinstance(password, str):
        raise TypeError("password must be a str")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return "$".join(
        (
            "scrypt",
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            base64.b64encode(salt).decode("ascii"),
            base64.b64encode(digest).decode("ascii"),
        )
    )


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches ``hashed``; False (never an error) for a malformed hash."""
    if not isinstance(password, str) or not isinstance(hashed, str):
        return False
    parts = hashed.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return False
    if not (1 < n and n & (n - 1) == 0 and 0 < r and 0 < p <= _MAX_P and 128 * n * r <= _MAX_MEMORY):
        return False
    if not salt or not 16 <= len(expected) <= 64:
        return False
    digest = _scrypt(password, salt, n, r, p, len(expected))
    return hmac.compare_digest(digest, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + 1024 * 1024
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem)


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload_segment: str) -> str:
    return _b64url_encode(hmac.new(secret, payload_segment.encode("ascii"), hashlib.sha256).digest())


def sign_token(secret: bytes, claims: dict[str, Any], ttl_s: int, now: float) -> str:
    """A token carrying ``claims`` plus ``exp = now + ttl_s``, signed with ``secret``.

    ``claims`` must be JSON-serialisable; an ``exp`` already in it is overwritten.
    """
    if not secret:
        raise ValueError("secret must not be empty")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    body = dict(claims)
    body["exp"] = now + ttl_s
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)
    payload = _b64url_encode(raw.encode("utf-8"))
    return f"{payload}.{_mac(secret, payload)}"


def verify_token(secret: bytes, token: str, now: float) -> dict[str, Any]:
    """The claims of ``token`` (``exp`` included) if ``secret`` signed it and it has not expired.

    Raises :class:`Unauthorized` with the message ``malformed token``, ``bad token signature`` or
    ``token expired``; never anything else, whatever ``token`` is.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("malformed token")
    parts = token.split(".")
    if len(parts) != 2 or not all(_B64URL.fullmatch(part) for part in parts):
        raise Unauthorized("malformed token")
    payload, signature = parts
    if not secret or not hmac.compare_digest(signature, _mac(secret, payload)):
        raise Unauthorized("bad token signature")
    try:
        claims = json.loads(_b64url_decode(payload).decode("utf-8"))
    except (ValueError, binascii.Error, RecursionError):
        raise Unauthorized("malformed token") from None
    if not isinstance(claims, dict):
        raise Unauthorized("malformed token")
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        raise Unauthorized("malformed token")
    if now >= exp:
        raise Unauthorized("token expired")
    return claims


def user_hash(secret: bytes, user_id: str) -> str:
    """The hex HMAC-SHA256 of ``user_id`` under ``secret``: what a site sends to prove a user's id."""
    return hmac.new(secret, user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def verify_user_hash(secret: bytes, user_id: str, given: str) -> bool:
    """Whether ``given`` (hex, any case) is :func:`user_hash` of ``user_id``; False for anything else."""
    if not isinstance(given, str) or not isinstance(user_id, str) or not _HEX64.fullmatch(given):
        return False
    return hmac.compare_digest(given.lower(), user_hash(secret, user_id))
