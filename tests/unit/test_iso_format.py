"""``iso()``, the timestamp format of every wire shape: UTC, a ``Z`` suffix, milliseconds truncated, a
four-digit year, the same instant whatever the input's zone, and ``parse_iso`` reads it back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from signaling.domain.models import iso, parse_iso


def test_utc_with_milliseconds_truncated() -> None:
    """Microseconds are cut to milliseconds (never rounded up into the next second)."""
    assert iso(datetime(2026, 11, 25, 16, 5, 9, 999_999, tzinfo=UTC)) == "2026-11-25T16:05:09.999Z"
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 6_000, tzinfo=UTC)) == "2026-01-02T03:04:05.006Z"


def test_another_zone_is_converted_to_utc() -> None:
    """An aware time in another zone names the same instant in UTC."""
    paris = timezone(timedelta(hours=1))
    assert iso(datetime(2026, 11, 25, 17, 0, 0, tzinfo=paris)) == "2026-11-25T16:00:00.000Z"


def test_years_have_four_digits_and_none_stays_none() -> None:
    """ISO-8601 wants four year digits (strftime gave ``5-01-...`` for year 5); None is None."""
    assert iso(datetime(5, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0005-01-02T03:04:05.000Z"
    assert iso(None) is None


def test_parse_iso_reads_it_back() -> None:
    """The round trip keeps the instant to the millisecond."""
    ts = datetime(2026, 11, 25, 16, 5, 9, 123_000, tzinfo=UTC)
    assert parse_iso(iso(ts)) == ts
