"""The notifier's settings: NOTIFY switches, alarm delays, daily summary time (fail closed on typos)."""

from __future__ import annotations

import pytest

from config.settings import Settings, SettingsError

BASE = {"WEBHOOK_SECRET": "x" * 20}


def test_defaults() -> None:
    s = Settings.from_mapping(BASE)
    assert s.notify_modes == {} and s.daily_summary_time is None
    assert s.ib_alarm_after_seconds == 60 and s.redis_alarm_after_seconds == 30


def test_notify_modes_parse() -> None:
    s = Settings.from_mapping({**BASE, "NOTIFY": " Fill=Silent, order_rejected=off ,default=on"})
    assert s.notify_modes == {"fill": "silent", "order_rejected": "off", "*": "on"}


@pytest.mark.parametrize("raw", ["fill", "fill=loud", "fi ll=on", "=on", "fill=on,daily"])
def test_bad_notify_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="NOTIFY"):
        Settings.from_mapping({**BASE, "NOTIFY": raw})


def test_unrelated_notify_variables_are_ignored() -> None:
    # systemd sets NOTIFY_SOCKET for Type=notify services: it must not be read as a switch.
    assert Settings.from_mapping({**BASE, "NOTIFY_SOCKET": "/run/systemd/notify"}).notify_modes == {}


@pytest.mark.parametrize(
    ("raw", "expected"), [("7:05", "07:05"), ("23:59", "23:59"), ("00:00", "00:00"), ("", None)]
)
def test_daily_summary_time(raw: str, expected: str | None) -> None:
    assert Settings.from_mapping({**BASE, "DAILY_SUMMARY_TIME": raw}).daily_summary_time == expected


@pytest.mark.parametrize("raw", ["24:00", "12", "12:60", "noon", "-1:00"])
def test_bad_daily_summary_time(raw: str) -> None:
    with pytest.raises(SettingsError, match="DAILY_SUMMARY_TIME"):
        Settings.from_mapping({**BASE, "DAILY_SUMMARY_TIME": raw})


def test_alarm_delays() -> None:
    s = Settings.from_mapping({**BASE, "IB_ALARM_AFTER_SECONDS": "5", "REDIS_ALARM_AFTER_SECONDS": "0"})
    assert s.ib_alarm_after_seconds == 5 and s.redis_alarm_after_seconds == 0
    with pytest.raises(SettingsError, match="IB_ALARM_AFTER_SECONDS"):
        Settings.from_mapping({**BASE, "IB_ALARM_AFTER_SECONDS": "-1"})


@pytest.mark.parametrize(("raw", "expected"), [("", "09:30"), ("8:00", "08:00"), ("15:45", "15:45")])
def test_option_expiry_alarm_time(raw: str, expected: str) -> None:
    """New York time of the option expiry alarm (docs/contracts.md, Expiry); unset: 09:30."""
    assert (
        Settings.from_mapping({**BASE, "OPTION_EXPIRY_ALARM_TIME": raw}).option_expiry_alarm_time == expected
    )
    with pytest.raises(SettingsError, match="OPTION_EXPIRY_ALARM_TIME must be a New York time of day"):
        Settings.from_mapping({**BASE, "OPTION_EXPIRY_ALARM_TIME": "9.30"})
