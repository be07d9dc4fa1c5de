"""The settings of margin without a round trip (issue 18): their defaults and bounds."""

from __future__ import annotations

import pytest

from config.settings import Settings, SettingsError

SECRET = "s" * 32


def test_defaults():
    s = Settings.from_mapping({"WEBHOOK_SECRET": SECRET})
    assert (s.margin_refresh_seconds, s.margin_max_age_seconds, s.margin_safety_factor) == (60.0, 300.0, 1.1)


def test_values_are_read():
    s = Settings.from_mapping({"WEBHOOK_SECRET": SECRET, "MARGIN_REFRESH_SECONDS": "30",
                               "MARGIN_MAX_AGE_SECONDS": "0", "MARGIN_SAFETY_FACTOR": "1.25"})  # fmt: skip
    assert (s.margin_refresh_seconds, s.margin_max_age_seconds, s.margin_safety_factor) == (30.0, 0.0, 1.25)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MARGIN_REFRESH_SECONDS", "1", "MARGIN_REFRESH_SECONDS must be at least 5"),
        ("MARGIN_MAX_AGE_SECONDS", "-1", "MARGIN_MAX_AGE_SECONDS must be at least 0"),
        ("MARGIN_SAFETY_FACTOR", "0.9", "MARGIN_SAFETY_FACTOR must be at least 1"),
        ("MARGIN_SAFETY_FACTOR", "lots", "MARGIN_SAFETY_FACTOR must be a number"),
        ("MARGIN_MAX_AGE_SECONDS", "nan", "MARGIN_MAX_AGE_SECONDS must be a finite number"),  # never stale
        ("MARGIN_SAFETY_FACTOR", "inf", "MARGIN_SAFETY_FACTOR must be a finite number"),
    ],
)
def test_bad_values_name_the_variable(name, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_mapping({"WEBHOOK_SECRET": SECRET, name: value})
