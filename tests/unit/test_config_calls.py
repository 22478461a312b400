"""The call settings of the configuration: the rejoin grace and recordings, their defaults and their
``RTC_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from rtc_server.config import load_config


def test_defaults_are_a_20_s_grace_and_no_recordings() -> None:
    """Out of the box a dropped participant has 20 s to come back, and nothing is recorded."""
    config = load_config(env={})
    assert config.media_rejoin_grace_s == 20.0 and config.recordings is False


def test_environment_sets_the_grace_and_turns_recordings_on(tmp_path: Path) -> None:
    """``RTC_MEDIA_REJOIN_GRACE_S`` and ``RTC_RECORDINGS=1``; recordings go under the data dir."""
    config = load_config(
        env={"RTC_MEDIA_REJOIN_GRACE_S": "5", "RTC_RECORDINGS": "1", "RTC_DATA_DIR": str(tmp_path)}
    )
    assert config.media_rejoin_grace_s == 5.0 and config.recordings is True
    assert Path(config.recordings_dir) == tmp_path.resolve() / "recordings"
