"""Recording retention (``RTC_RECORDINGS_KEEP_DAYS``): ``sweep_recordings`` deletes finished recordings
last written before the cut-off and nothing else: not newer ones, not a call still being written (its
``.parts`` folder), not foreign files; 0 days keeps everything. The app runs it hourly."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rtc_server.config import load_config
from rtc_server.media.recording import sweep_recordings

DAY = 86400.0


def _file(path: Path, age_days: float, now: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"webm")
    os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    return path


def test_only_finished_recordings_past_the_cutoff_go(tmp_path: Path) -> None:
    """An old recording goes; a recent one, an old part of a call in progress and a foreign file stay."""
    now = time.time()
    old = _file(tmp_path / "rq_old.webm", 31, now)
    recent = _file(tmp_path / "rq_new.webm", 2, now)
    part = _file(tmp_path / "rq_live.parts" / "0.webm", 40, now)
    foreign = _file(tmp_path / "notes.txt", 90, now)
    assert sweep_recordings(tmp_path, 30, now) == 1
    assert not old.exists()
    assert recent.exists() and part.exists() and foreign.exists()


def test_zero_days_or_no_folder_keeps_everything(tmp_path: Path) -> None:
    """The default (0) deletes nothing; a server that never recorded has no folder and nothing to do."""
    now = time.time()
    old = _file(tmp_path / "rq_old.webm", 400, now)
    assert sweep_recordings(tmp_path, 0, now) == 0
    assert old.exists()
    assert sweep_recordings(tmp_path / "missing", 30, now) == 0


def test_the_setting_reads_from_the_environment() -> None:
    """``RTC_RECORDINGS_KEEP_DAYS`` sets ``recordings_keep_days``; it defaults to 0 (keep)."""
    assert load_config(env={}).recordings_keep_days == 0
    assert load_config(env={"RTC_RECORDINGS_KEEP_DAYS": "30"}).recordings_keep_days == 30
