"""Typed errors with stable wire codes.

Every error the hub or the REST API returns is one of these; ``code`` is the stable word that goes on
the wire (``{ok: false, error: {code, message}}``), ``message`` is for humans.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error with a stable wire code."""

    code = "internal"
    http_status = 500

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details = details

    def to_wire(self) -> dict[str, object]:
        err: dict[str, object] = {"code": self.code, "message": self.message}
        if self.details:
            err["details"] = self.details
        return err


class Invalid(DomainError):
    """The payload is malformed or a value is out of range."""

    code = "invalid"
    http_status = 400


class Unauthorized(DomainError):
    """No valid credentials."""

    code = "unauthorized"
    http_status = 401


class Forbidden(DomainError):
    """Valid credentials, but not allowed to touch this."""

    code = "forbidden"
    http_status = 403


class NotFound(DomainError):
    """No such thing, or the caller may not know that it exists."""

    code = "not_found"
    http_status = 404


class Conflict(DomainError):
    """The state changed under the caller (someone else won a race, an illegal transition)."""

    code = "conflict"
    http_status = 409


class TooLarge(DomainError):
    """Above a size cap."""

    code = "too_large"
    http_status = 413


class RateLimited(DomainError):
    """Too many calls in a window."""

    code = "rate_limited"
    http_status = 429


class Unavailable(DomainError):
    """A dependency (store, media plane) cannot serve the call now."""

    code = "unavailable"
    http_status = 503
