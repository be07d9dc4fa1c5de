"""Settings fail closed and say what to fix."""

from __future__ import annotations

import io
import json
import logging

import pytest

from config.logging_setup import JsonFormatter, RedactSecrets, configure_logging
from config.settings import Settings, SettingsError, load_settings

SECRET = "0123456789abcdef-secret"


def test_missing_secret_refuses_with_a_fix():
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET is not set.*at least 16"):
        Settings.from_mapping({})


def test_short_secret_refused():
    with pytest.raises(SettingsError, match="15 characters long"):
        Settings.from_mapping({"WEBHOOK_SECRET": "x" * 15})


def test_defaults_are_the_embedded_demo():
    s = Settings.from_mapping({"WEBHOOK_SECRET": SECRET})
    assert s.database_url == "sqlite:///var/tv2ib.db"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert (s.ib_host, s.ib_port, s.ib_client_id, s.ib_account) == ("127.0.0.1", 4002, 1, None)
    assert s.admin_token is None and s.telegram_bot_token is None
    assert s.tradingview_ips_only is False and s.trusted_proxies == 0
    assert s.dedup_window_seconds == 60


def test_typed_values_and_chat_ids_stay_strings():
    s = Settings.from_mapping(
        {
            "WEBHOOK_SECRET": SECRET,
            "PORT": "9001",
            "TRADINGVIEW_IPS_ONLY": "yes",
            "TRUSTED_PROXIES": "1",
            "TELEGRAM_CHAT_ID": "-1001234567890, 42",
            "IB_ACCOUNT": "DU123",
            "STRATEGY_SECRETS": "trend=abcdefghijklmnop1,scalp=abcdefghijklmnop2",
        }
    )
    assert s.port == 9001 and s.tradingview_ips_only is True and s.trusted_proxies == 1
    assert s.telegram_chat_ids == ("-1001234567890", "42")
    assert s.ib_account == "DU123"
    assert s.strategy_secrets == {"trend": "abcdefghijklmnop1", "scalp": "abcdefghijklmnop2"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "eighty", "PORT must be a whole number"),
        ("TRUSTED_PROXIES", "-1", "TRUSTED_PROXIES must be at least 0"),
        ("TRADINGVIEW_IPS_ONLY", "maybe", "TRADINGVIEW_IPS_ONLY must be true or false"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be text or json"),
        ("STRATEGY_SECRETS", "trend", "STRATEGY_SECRETS must look like"),
        ("STRATEGY_SECRETS", "trend=short", "at least 16"),
        ("ADMIN_TOKEN", "short", "ADMIN_TOKEN must be at least 16"),
        ("STALE_ALERT_SECONDS", "nan", "STALE_ALERT_SECONDS must be a finite number"),  # never stale
        ("REQUEST_TIMEOUT_SECONDS", "inf", "REQUEST_TIMEOUT_SECONDS must be a finite number"),
    ],
)
def test_bad_values_name_the_variable(name, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_mapping({"WEBHOOK_SECRET": SECRET, name: value})


def test_limits_for_valid_alerts_and_admin_tokens_have_their_own_settings():
    s = Settings.from_mapping({"WEBHOOK_SECRET": SECRET})
    assert s.authenticated_rate_limit == "6000/minute" and s.admin_auth_failure_limit == "10/minute"
    s = Settings.from_mapping(
        {
            "WEBHOOK_SECRET": SECRET,
            "AUTHENTICATED_RATE_LIMIT": "200/second",
            "ADMIN_AUTH_FAILURE_LIMIT": "5/hour",
        }
    )
    assert s.authenticated_rate_limit == "200/second" and s.admin_auth_failure_limit == "5/hour"
    for name in ("AUTHENTICATED_RATE_LIMIT", "ADMIN_AUTH_FAILURE_LIMIT"):
        with pytest.raises(SettingsError, match=name):
            Settings.from_mapping({"WEBHOOK_SECRET": SECRET, name: "lots"})


def test_extended_hours_stop_limit_ticks():
    assert Settings.from_mapping({"WEBHOOK_SECRET": SECRET}).extended_hours_stop_limit_ticks == 10
    s = Settings.from_mapping({"WEBHOOK_SECRET": SECRET, "EXTENDED_HOURS_STOP_LIMIT_TICKS": "4"})
    assert s.extended_hours_stop_limit_ticks == 4
    for bad in ("0", "-2", "1.5", "many"):
        with pytest.raises(SettingsError, match="EXTENDED_HOURS_STOP_LIMIT_TICKS"):
            Settings.from_mapping({"WEBHOOK_SECRET": SECRET, "EXTENDED_HOURS_STOP_LIMIT_TICKS": bad})


def test_repr_hides_secrets():
    s = Settings.from_mapping({"WEBHOOK_SECRET": SECRET, "ADMIN_TOKEN": "admin-token-0123456789"})
    text = repr(s)
    assert SECRET not in text and "admin-token-0123456789" not in text
    assert "webhook_secret='***'" in text
    assert set(s.secrets()) == {SECRET, "admin-token-0123456789"}


def test_dotenv_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"WEBHOOK_SECRET={SECRET}\nPORT=7000\nIB_PORT=4001\n")
    s = load_settings({"PORT": "7001"}, dotenv_path=str(env_file))
    assert s.webhook_secret == SECRET and s.port == 7001 and s.ib_port == 4001


def test_a_dotenv_that_is_not_utf8_is_a_settings_error_naming_the_line(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_bytes(
        b"\xef\xbb\xbf# r\xc3\xa9glage\nWEBHOOK_SECRET=" + SECRET.encode() + b"\nPORT=7000 # r\xe9glage\n"
    )
    with pytest.raises(SettingsError, match=r"\.env:3: not UTF-8 text \(byte 0xe9\); save the file as UTF-8"):
        load_settings({}, dotenv_path=str(env_file))
    env_file.write_bytes(env_file.read_bytes().replace(b"\xe9", b"\xc3\xa9"))  # the BOM is fine
    assert load_settings({}, dotenv_path=str(env_file)).port == 7000


def test_redaction_filter_scrubs_messages_args_and_extras():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "body=%s", (f'{{"secret": "{SECRET}"}}',), None
    )
    record.payload = f"token {SECRET}"
    assert RedactSecrets([SECRET]).filter(record)
    assert SECRET not in record.getMessage() and "***" in record.getMessage()
    assert record.payload == "token ***"


def test_json_log_lines_carry_extras_without_secrets():
    configure_logging("INFO", "json", [SECRET])
    handler = next(
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and getattr(h, "_tv2ib_configured", False)
    )
    buffer = io.StringIO()
    # not setStream: it flushes the handler's stream first, and when an earlier test in this process
    # made the handler, that stream is the earlier test's capture file, closed since
    previous, handler.stream = handler.stream, buffer
    try:
        logging.getLogger("tv2ib.test").info("webhook %s", SECRET, extra={"alert_id": "A1"})
    finally:
        handler.stream = previous
        configure_logging("INFO", "text", [])
    line = json.loads(buffer.getvalue().strip().splitlines()[-1])
    assert line["alert_id"] == "A1" and line["msg"] == "webhook ***" and line["level"] == "info"
    assert SECRET not in buffer.getvalue()
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "m"})), str)


def test_contract_settings_symbol_map_file_and_futures_roll_days():
    s = Settings.from_mapping({"WEBHOOK_SECRET": SECRET})
    assert s.symbol_map_file is None and s.futures_roll_days == 8
    s = Settings.from_mapping(
        {"WEBHOOK_SECRET": SECRET, "SYMBOL_MAP_FILE": " config/symbols.yaml ", "FUTURES_ROLL_DAYS": "0"}
    )
    assert s.symbol_map_file == "config/symbols.yaml" and s.futures_roll_days == 0
    for value, message in (("-1", "at least 0"), ("soon", "whole number"), ("400", "at most 365")):
        with pytest.raises(SettingsError, match=f"FUTURES_ROLL_DAYS must be .*{message}"):
            Settings.from_mapping({"WEBHOOK_SECRET": SECRET, "FUTURES_ROLL_DAYS": value})


@pytest.mark.parametrize(
    ("env", "data_type", "margin", "timeout"),
    [
        ({}, "live", True, 5.0),
        ({"IB_MARKET_DATA_TYPE": "delayed", "MARGIN_CHECK": "off"}, "delayed", False, 5.0),
        (
            {"IB_MARKET_DATA_TYPE": "Delayed_Frozen", "MARGIN_CHECK_TIMEOUT_SECONDS": "2"},
            "delayed-frozen",
            True,
            2.0,
        ),
        ({"IB_MARKET_DATA_TYPE": "2", "MARGIN_CHECK": "on"}, "frozen", True, 5.0),
    ],
)
def test_market_data_type_and_margin_check(env, data_type, margin, timeout):
    s = Settings.from_mapping({"WEBHOOK_SECRET": SECRET, **env})
    assert (s.ib_market_data_type, s.margin_check, s.margin_check_timeout_seconds) == (
        data_type,
        margin,
        timeout,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "IB_MARKET_DATA_TYPE",
            "realtime",
            "IB_MARKET_DATA_TYPE must be one of live, frozen, delayed, delayed-frozen",
        ),
        ("IB_MARKET_DATA_TYPE", "5", "IB_MARKET_DATA_TYPE must be one of"),
        ("MARGIN_CHECK", "sometimes", "MARGIN_CHECK must be true or false"),
        ("MARGIN_CHECK_TIMEOUT_SECONDS", "0.1", "MARGIN_CHECK_TIMEOUT_SECONDS must be at least 0.5"),
    ],
)
def test_bad_market_data_and_margin_settings_name_the_variable(name, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_mapping({"WEBHOOK_SECRET": SECRET, name: value})


# Each live event stream holds a web thread for its whole life: intake must keep at least one.
@pytest.mark.parametrize(
    ("env", "streams"),
    [
        ({}, 2),  # 4 threads by default: 2 streams, 2 threads for intake
        ({"WEB_THREADS": "2"}, 1),
        ({"WEB_THREADS": "3"}, 1),
        ({"WEB_THREADS": "1"}, 0),  # one thread: no live streams, intake keeps it
        ({"WEB_THREADS": "2", "EVENTS_MAX_STREAMS": "1"}, 1),
        ({"WEB_THREADS": "8", "EVENTS_MAX_STREAMS": "7"}, 7),
        ({"WEB_THREADS": "1", "EVENTS_MAX_STREAMS": "0"}, 0),
        ({"EVENTS_MAX_STREAMS": "3"}, 3),
    ],
)
def test_event_streams_leave_intake_a_thread(env, streams):
    assert Settings.from_mapping({"WEBHOOK_SECRET": SECRET, **env}).events_max_streams == streams


@pytest.mark.parametrize(
    "env",
    [
        {"WEB_THREADS": "2", "EVENTS_MAX_STREAMS": "2"},  # the probe's setting: two streams starve /webhook
        {"WEB_THREADS": "2", "EVENTS_MAX_STREAMS": "5"},
        {"WEB_THREADS": "1", "EVENTS_MAX_STREAMS": "1"},
        {"EVENTS_MAX_STREAMS": "4"},  # WEB_THREADS' default is 4
    ],
)
def test_event_streams_that_would_take_every_thread_are_refused(env):
    with pytest.raises(SettingsError) as refused:
        Settings.from_mapping({"WEBHOOK_SECRET": SECRET, **env})
    message = str(refused.value)
    assert "EVENTS_MAX_STREAMS" in message and "WEB_THREADS" in message
    assert "must be less than" in message and "/webhook" in message
