"""Which store and which SQLite writer a configuration picks (``rtc_server.stores.make_store``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtc_server.config import load_config
from rtc_server.stores import make_store
from signaling.storage.sqlite import SqliteStore


def test_the_sqlite_writer_is_a_process_by_default_and_follows_the_environment(tmp_path: Path) -> None:
    """No setting: the writer process; ``RTC_SQLITE_WRITER=thread``: the writer thread."""
    default = make_store(load_config({"RTC_DATA_DIR": str(tmp_path)}))
    assert isinstance(default, SqliteStore) and default.writer == "process"
    thread = make_store(load_config({"RTC_DATA_DIR": str(tmp_path), "RTC_SQLITE_WRITER": "thread"}))
    assert isinstance(thread, SqliteStore) and thread.writer == "thread"


def test_an_unknown_sqlite_writer_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    """A typo in ``RTC_SQLITE_WRITER`` ends the start with the values it accepts, not a traceback."""
    with pytest.raises(SystemExit) as stopped:
        make_store(load_config({"RTC_DATA_DIR": str(tmp_path), "RTC_SQLITE_WRITER": "proces"}))
    assert str(stopped.value) == "unsupported SQLite writer 'proces': use process or thread"
    with pytest.raises(ValueError, match="writer must be one of"):
        SqliteStore(tmp_path / "x.sqlite3", writer="fork")
