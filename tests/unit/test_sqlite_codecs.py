"""The SQLite store's time codec: ``ts`` (formatted by hand, once per message) gives exactly the text
``isoformat(timespec="microseconds")`` gives for the UTC value, for any datetime, naive ones taken as UTC,
and ``dt_req`` reads it back to the same instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from signaling.storage.sqlite_rows import dt_req, ts, utc

_OFFSETS = st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_TIMES = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31))


@given(_TIMES, st.one_of(st.none(), st.just(UTC), _OFFSETS))
def test_ts_is_isoformat_of_the_utc_value(naive: datetime, tz: timezone | None) -> None:
    """Same text as the library's ISO format of the UTC value (fixed width: years padded, microseconds
    always written), for naive, UTC and offset datetimes; and it reads back to the same instant."""
    value = naive if tz is None else naive.replace(tzinfo=tz)
    try:
        expected_utc = value.replace(tzinfo=UTC) if tz is None else value.astimezone(UTC)
    except OverflowError:  # an offset pushed it out of datetime's range: not a storable time
        return
    text = ts(value)
    assert text == expected_utc.isoformat(timespec="microseconds")
    assert len(text) == 32
    assert utc(value) == expected_utc
    assert dt_req(text) == expected_utc


def test_ts_of_none_is_none() -> None:
    """Nullable columns stay NULL."""
    assert ts(None) is None
