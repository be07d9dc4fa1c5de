"""The settings of kept market-data subscriptions (issue 18): their defaults and bounds."""

from __future__ import annotations

import pytest

from config.settings import Settings, SettingsError

SECRET = "s" * 32


def test_defaults_and_values():
    s = Settings.from_mapping({"WEBHOOK_SECRET": SECRET})
    assert (s.market_data_lines, s.market_data_max_age_seconds) == (20, 300.0)
    s = Settings.from_mapping({"WEBHOOK_SECRET": SECRET, "MARKET_DATA_LINES": "0",
                               "MARKET_DATA_MAX_AGE_SECONDS": "30"})  # fmt: skip
    assert (s.market_data_lines, s.market_data_max_age_seconds) == (0, 30.0)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MARKET_DATA_LINES", "-1", "MARKET_DATA_LINES must be at least 0"),
        ("MARKET_DATA_LINES", "many", "MARKET_DATA_LINES must be"),
        ("MARKET_DATA_MAX_AGE_SECONDS", "0.5", "MARKET_DATA_MAX_AGE_SECONDS must be at least 1"),
        ("MARKET_DATA_MAX_AGE_SECONDS", "nan", "MARKET_DATA_MAX_AGE_SECONDS must be a finite number"),  # never stale
        ("MARKET_DATA_MAX_AGE_SECONDS", "inf", "MARKET_DATA_MAX_AGE_SECONDS must be a finite number"),
    ],
)  # fmt: skip
def test_bad_values_name_the_variable(name, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_mapping({"WEBHOOK_SECRET": SECRET, name: value})
