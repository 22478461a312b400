"""Pins credentials: scrypt password hashes (format, salt, round trip, malformed hashes), signed tokens
(round trip, tampering, wrong secret, expiry, and that any malformed input raises only Unauthorized),
and the site's user_hash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.domain.auth import (
    hash_password,
    sign_token,
    user_hash,
    verify_password,
    verify_token,
    verify_user_hash,
)
from signaling.domain.errors import Unauthorized

SECRET = b"s3cret-key-for-tests"
NOW = 1_700_000_000.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(secret: bytes, payload: bytes) -> str:
    """A token signed exactly like sign_token does, around an arbitrary payload."""
    seg = b64url(payload)
    return f"{seg}.{b64url(hmac.new(secret, seg.encode(), hashlib.sha256).digest())}"


def test_password_round_trip_and_format() -> None:
    """A hash verifies its password only, has the documented format, and is salted (two hashes differ)."""
    h = hash_password("correct horse ☃")
    parts = h.split("$")
    assert parts[:4] == ["scrypt", str(2**14), "8", "1"]
    assert len(base64.b64decode(parts[4])) == 16
    assert verify_password("correct horse ☃", h)
    assert not verify_password("correct horse", h)
    assert not verify_password("", h)
    assert hash_password("correct horse ☃") != h


def test_empty_password_hashes() -> None:
    """The empty password is hashed like any other (policy lives elsewhere)."""
    h = hash_password("")
    assert verify_password("", h)
    assert not verify_password(" ", h)


@pytest.mark.parametrize(
    "hashed",
    [
        "",
        "plain",
        "bcrypt$16384$8$1$AAAA$AAAA",
        "scrypt$16384$8$1$AAAA",
        "scrypt$x$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
        "scrypt$16385$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,
        "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,
        "scrypt$16384$0$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,
        "scrypt$16384$8$1$!!!!$" + "A" * 44,
        "scrypt$16384$8$1$$" + "A" * 44,
        "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
    ],
)
def test_malformed_hash_is_false_not_error(hashed: str) -> None:
    """A corrupt, foreign or resource-hungry stored hash just fails verification."""
    assert verify_password("pw", hashed) is False


def test_tampered_hash_fails() -> None:
    """Changing the stored digest or salt breaks verification."""
    h = hash_password("pw")
    head, salt, digest = h.rsplit("$", 2)
    other = base64.b64encode(bytes(32)).decode()
    assert not verify_password("pw", f"{head}${salt}${other}")
    assert not verify_password("pw", f"{head}${base64.b64encode(bytes(16)).decode()}${digest}")


def test_token_round_trip() -> None:
    """verify_token returns the signed claims plus exp = now + ttl; an exp in the claims is overwritten."""
    claims = {"sub": "ag_1", "kind": "agent", "v": 3, "name": "Zoë", "exp": 1}
    token = sign_token(SECRET, claims, 3600, NOW)
    assert verify_token(SECRET, token, NOW + 10) == {**claims, "exp": NOW + 3600}
    assert claims["exp"] == 1  # input not mutated
    assert token.count(".") == 1 and "=" not in token


def test_token_expiry_boundary() -> None:
    """Valid strictly before exp, refused from exp on with a clear message."""
    token = sign_token(SECRET, {"sub": "x"}, 60, NOW)
    assert verify_token(SECRET, token, NOW + 59.999)["sub"] == "x"
    for at in (NOW + 60, NOW + 10_000):
        with pytest.raises(Unauthorized, match="expired") as info:
            verify_token(SECRET, token, at)
        assert info.value.code == "unauthorized"


def test_wrong_secret_refused() -> None:
    """A token signed with another secret (or checked with an empty one) has a bad signature."""
    token = sign_token(SECRET, {"sub": "x"}, 60, NOW)
    for secret in (b"other", b""):
        with pytest.raises(Unauthorized, match="signature"):
            verify_token(secret, token, NOW)


def test_tampered_payload_or_signature_refused() -> None:
    """Changing any claim, or any character of the signature, is detected."""
    token = sign_token(SECRET, {"sub": "ag_1", "admin": False}, 60, NOW)
    payload, sig = token.split(".")
    forged = b64url(json.dumps({"sub": "ag_1", "admin": True, "exp": NOW + 60}).encode())
    with pytest.raises(Unauthorized, match="signature"):
        verify_token(SECRET, f"{forged}.{sig}", NOW)
    for i in range(len(sig)):
        flipped = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1 :]
        with pytest.raises(Unauthorized, match="signature"):
            verify_token(SECRET, f"{payload}.{flipped}", NOW)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'"str"',
        b"{}",
        b'{"exp": "soon"}',
        b'{"exp": true}',
        b'{"exp": NaN}',
        b"\xff\xfe",
    ],
)
def test_signed_but_malformed_payload_refused(payload: bytes) -> None:
    """Even with a valid signature, a payload that is not a JSON object with a numeric exp is refused."""
    with pytest.raises(Unauthorized, match="malformed"):
        verify_token(SECRET, forge(SECRET, payload), NOW)


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "a.",
        ".b",
        "a.b.c",
        "abc",
        "a b.c",
        "ab=.cd",
        "ab.c+d",
        "é.b",
        "a.b\n",
        "x" * 9000 + ".y",
        None,
        42,
        b"a.b",
    ],
)
def test_malformed_shapes_refused(token: object) -> None:
    """Obviously broken tokens (shape, charset, padding, length, type) are malformed."""
    with pytest.raises(Unauthorized, match="malformed"):
        verify_token(SECRET, token, NOW)  # type: ignore[arg-type]


def test_sign_token_rejects_bad_arguments() -> None:
    """Empty secret and non-positive ttl are programming errors."""
    with pytest.raises(ValueError):
        sign_token(b"", {}, 60, NOW)
    with pytest.raises(ValueError):
        sign_token(SECRET, {}, 0, NOW)


_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(max_examples=300)
@given(
    st.one_of(
        st.text(),
        st.text(alphabet=_B64URL_ALPHABET + ".=+/ "),
        st.builds(
            lambda a, b: f"{a}.{b}", st.text(alphabet=_B64URL_ALPHABET), st.text(alphabet=_B64URL_ALPHABET)
        ),
        st.binary(),
        st.none(),
        st.integers(),
        st.lists(st.text()),
    )
)
def test_arbitrary_tokens_only_raise_unauthorized(token: object) -> None:
    """Whatever a client sends as a token, verify_token raises Unauthorized and nothing else."""
    with pytest.raises(Unauthorized):
        verify_token(SECRET, token, NOW)  # type: ignore[arg-type]


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_signed_arbitrary_payloads_only_raise_unauthorized_or_pass(payload: bytes) -> None:
    """A correctly signed token around arbitrary bytes either verifies to a dict or raises Unauthorized."""
    try:
        claims = verify_token(SECRET, forge(SECRET, payload), NOW)
    except Unauthorized:
        return
    assert isinstance(claims, dict) and claims["exp"] > NOW


@settings(max_examples=100)
@given(
    st.dictionaries(
        st.text(max_size=10),
        st.one_of(
            st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3)
        ),
        max_size=5,
    ),
    st.integers(min_value=1, max_value=10**9),
    st.data(),
)
def test_token_round_trip_property(claims: dict, ttl: int, data: st.DataObject) -> None:
    """Any JSON-able claims survive a round trip, and flipping one character of the token breaks it."""
    token = sign_token(SECRET, claims, ttl, NOW)
    assert verify_token(SECRET, token, NOW) == {**claims, "exp": NOW + ttl}
    i = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.sampled_from(_B64URL_ALPHABET + "."))
    if replacement != token[i]:
        with pytest.raises(Unauthorized):
            verify_token(SECRET, token[:i] + replacement + token[i + 1 :], NOW)


def test_user_hash_matches_hmac_sha256_hex() -> None:
    """user_hash is the hex HMAC-SHA256 a site computes with the shared secret."""
    expected = hmac.new(SECRET, b"user-42", hashlib.sha256).hexdigest()
    assert user_hash(SECRET, "user-42") == expected
    assert len(expected) == 64


def test_verify_user_hash() -> None:
    """Any hex case verifies; another user, another secret, truncation, junk or non-str is False."""
    good = user_hash(SECRET, "user-42")
    assert verify_user_hash(SECRET, "user-42", good)
    assert verify_user_hash(SECRET, "user-42", good.upper())
    assert not verify_user_hash(SECRET, "user-43", good)
    assert not verify_user_hash(b"other", "user-42", good)
    assert not verify_user_hash(SECRET, "user-42", good[:-1])
    assert not verify_user_hash(SECRET, "user-42", good + "0")
    assert not verify_user_hash(SECRET, "user-42", f" {good}")
    assert not verify_user_hash(SECRET, "user-42", "")
    assert not verify_user_hash(SECRET, "user-42", "é" * 64)
    assert not verify_user_hash(SECRET, "user-42", None)  # type: ignore[arg-type]


@given(st.text(max_size=50), st.text(max_size=80))
def test_verify_user_hash_never_raises(user_id: str, given_hash: str) -> None:
    """Arbitrary input gives a bool; the true hash always verifies."""
    assert verify_user_hash(SECRET, user_id, given_hash) in (True, False)
    assert verify_user_hash(SECRET, user_id, user_hash(SECRET, user_id))
