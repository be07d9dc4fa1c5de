"""Typed, frozen settings built from a plain mapping (the environment plus an optional `.env`).

Tests build settings from a dict and never touch ``os.environ``. Dangerous defaults are absent on
purpose: without ``WEBHOOK_SECRET`` (at least 16 characters) nothing starts (fail closed).
"""

from __future__ import annotations

import codecs
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path

from config.values import (
    MIN_SECRET_LENGTH,
    SettingsError,
    boolean,
    check_rate,
    csv_items,
    market_data_type,
    notify_modes,
    number,
    optional,
    quantity,
    strategy_secrets,
    time_of_day,
    whole_number,
)

# A typo guard until per-contract risk limits exist, not a risk limit: IDEALPRO forex is sized in
# units of the base currency (one standard lot = 100,000 EUR), so the ceiling must let a 10-lot
# forex order through while refusing sizes no retail account sends (a timestamp, a volume or a
# price pasted into the quantity: 1e12 was once accepted).
DEFAULT_MAX_ORDER_QUANTITY = Decimal(1_000_000)
DEFAULT_SQLITE_URL = "sqlite:///var/tv2ib.db"


def _check_stream_threads(numbers: dict[str, int | float | Decimal]) -> None:
    """Default ``EVENTS_MAX_STREAMS`` to half of ``WEB_THREADS`` (rounded down), and refuse a value
    that leaves webhook intake no thread: a live event stream holds one of a web process's
    ``WEB_THREADS`` threads for its whole life (app/events.py), so with as many streams as threads,
    open dashboards starve ``/webhook`` and ``/healthz``."""
    threads = int(numbers.get("web_threads", 4))
    streams = int(numbers.setdefault("events_max_streams", threads // 2))
    if streams >= threads:
        raise SettingsError(
            f"EVENTS_MAX_STREAMS ({streams}) must be less than WEB_THREADS ({threads}): each live event "
            "stream holds one web thread for its whole life, and at least one thread per web process must "
            "stay free for /webhook and /healthz. Lower EVENTS_MAX_STREAMS (0 turns live streams off) "
            "or raise WEB_THREADS"
        )


def _default_web_workers() -> int:
    # gunicorn's rule of thumb is 2*cores+1; intake is I/O bound (DB commit, Redis push), so
    # fewer processes with a few threads each use less memory for the same throughput.
    return max(2, (os.cpu_count() or 1) + 1)


def _given(env: Mapping[str, str], name: str) -> str | None:
    """The variable's text, or None when it is unset or empty (the default then applies)."""
    raw = env.get(name)
    return None if raw is None or raw == "" else raw


def _credentials(env: Mapping[str, str]) -> dict[str, object]:
    """``WEBHOOK_SECRET`` (required: nothing starts without it) and ``ADMIN_TOKEN`` (optional), both
    long enough not to be guessed."""
    secret = env.get("WEBHOOK_SECRET", "")
    if not secret.strip():
        raise SettingsError(
            "WEBHOOK_SECRET is not set. Every alert must carry this shared secret; set it to a "
            f"random string of at least {MIN_SECRET_LENGTH} characters, for example: "
            "export WEBHOOK_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    secret = secret.strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise SettingsError(
            f"WEBHOOK_SECRET is {len(secret)} characters long; it must be at least "
            f"{MIN_SECRET_LENGTH} so it cannot be guessed"
        )
    admin_token = optional(env.get("ADMIN_TOKEN"))
    if admin_token is not None and len(admin_token) < MIN_SECRET_LENGTH:
        raise SettingsError(f"ADMIN_TOKEN must be at least {MIN_SECRET_LENGTH} characters")
    return {"webhook_secret": secret, "admin_token": admin_token}


def _texts(env: Mapping[str, str]) -> dict[str, object]:
    """The settings written as text: addresses, names, files, rate limits, notice modes."""
    log_format = env.get("LOG_FORMAT", "text").strip().lower()
    if log_format not in {"text", "json"}:
        raise SettingsError(f"LOG_FORMAT must be text or json, got {log_format!r}")
    get = env.get
    return {
        "strategy_secrets": strategy_secrets(get("STRATEGY_SECRETS")),
        "database_url": optional(get("DATABASE_URL")) or DEFAULT_SQLITE_URL,
        "redis_url": optional(get("REDIS_URL")) or "redis://127.0.0.1:6379/0",
        "log_format": log_format,
        "log_level": (get("LOG_LEVEL") or "INFO").strip().upper(),
        "ib_host": optional(get("IB_HOST")) or "127.0.0.1",
        "ib_account": optional(get("IB_ACCOUNT")),
        "telegram_bot_token": optional(get("TELEGRAM_BOT_TOKEN")),
        "telegram_chat_ids": csv_items(get("TELEGRAM_CHAT_ID") or get("TELEGRAM_CHAT_IDS")),
        "telegram_api_url": optional(get("TELEGRAM_API_URL")) or "https://api.telegram.org/bot",
        "rate_limit": optional(get("RATE_LIMIT")) or "120/minute",
        "auth_failure_limit": optional(get("AUTH_FAILURE_LIMIT")) or "10/minute",
        "authenticated_rate_limit": optional(get("AUTHENTICATED_RATE_LIMIT")) or "6000/minute",
        "admin_auth_failure_limit": optional(get("ADMIN_AUTH_FAILURE_LIMIT")) or "10/minute",
        "notify_modes": notify_modes(env),
        "daily_summary_time": time_of_day("DAILY_SUMMARY_TIME", get("DAILY_SUMMARY_TIME")),
        "option_last_entry_time": time_of_day(
            "OPTION_LAST_ENTRY_TIME", get("OPTION_LAST_ENTRY_TIME"), "New York"
        )
        or "15:00",
        "option_expiry_alarm_time": time_of_day(
            "OPTION_EXPIRY_ALARM_TIME", get("OPTION_EXPIRY_ALARM_TIME"), "New York"
        )
        or "09:30",
        "worker_metrics_host": optional(get("WORKER_METRICS_HOST")) or "127.0.0.1",
        "risk_file": optional(get("RISK_FILE")),
        "symbol_map_file": optional(get("SYMBOL_MAP_FILE")),
    }


# Whole-number settings: field -> (variable, minimum). Unset: the field's default.
_INTS = {
    "port": ("PORT", 1),
    "web_workers": ("WEB_WORKERS", 1),
    "web_threads": ("WEB_THREADS", 1),
    "trusted_proxies": ("TRUSTED_PROXIES", 0),
    "max_body_bytes": ("MAX_BODY_BYTES", 1024),
    "ib_port": ("IB_PORT", 1),
    "ib_client_id": ("IB_CLIENT_ID", 0),
    "worker_metrics_port": ("WORKER_METRICS_PORT", 0),
    "events_max_streams": ("EVENTS_MAX_STREAMS", 0),
    "futures_roll_days": ("FUTURES_ROLL_DAYS", 0),
    "extended_hours_stop_limit_ticks": ("EXTENDED_HOURS_STOP_LIMIT_TICKS", 1),
    "market_data_lines": ("MARKET_DATA_LINES", 0),
    "option_entry_ticks": ("OPTION_ENTRY_TICKS", 0),
}
# Numbers of seconds: field -> (variable, minimum).
_FLOATS = {
    "dedup_window_seconds": ("DEDUP_WINDOW_SECONDS", 0.0),
    "stale_alert_seconds": ("STALE_ALERT_SECONDS", 1.0),
    "ib_alarm_after_seconds": ("IB_ALARM_AFTER_SECONDS", 0.0),
    "ib_alarm_repeat_seconds": ("IB_ALARM_REPEAT_SECONDS", 0.0),
    "notify_digest_seconds": ("NOTIFY_DIGEST_SECONDS", 1.0),
    "redis_alarm_after_seconds": ("REDIS_ALARM_AFTER_SECONDS", 0.0),
    "events_stream_seconds": ("EVENTS_STREAM_SECONDS", 1.0),
    "request_timeout_seconds": ("REQUEST_TIMEOUT_SECONDS", 1.0),
    "session_max_age_seconds": ("SESSION_MAX_AGE_SECONDS", 60.0),
    "session_idle_seconds": ("SESSION_IDLE_SECONDS", 60.0),
    "reversal_fill_timeout_seconds": ("REVERSAL_FILL_TIMEOUT_SECONDS", 1.0),
    "margin_check_timeout_seconds": ("MARGIN_CHECK_TIMEOUT_SECONDS", 0.5),
    "margin_refresh_seconds": ("MARGIN_REFRESH_SECONDS", 5.0),
    "margin_max_age_seconds": ("MARGIN_MAX_AGE_SECONDS", 0.0),
    "margin_safety_factor": ("MARGIN_SAFETY_FACTOR", 1.0),
    "market_data_max_age_seconds": ("MARKET_DATA_MAX_AGE_SECONDS", 1.0),
    "ib_prune_done_after_seconds": ("IB_PRUNE_DONE_AFTER_SECONDS", 0.0),
    "option_max_spread_percent": ("OPTION_MAX_SPREAD_PERCENT", 0.0),
}
_RATES = (
    ("rate_limit", "RATE_LIMIT"),
    ("auth_failure_limit", "AUTH_FAILURE_LIMIT"),
    ("authenticated_rate_limit", "AUTHENTICATED_RATE_LIMIT"),
    ("admin_auth_failure_limit", "ADMIN_AUTH_FAILURE_LIMIT"),
)


def _numbers(env: Mapping[str, str]) -> dict[str, int | float | Decimal]:
    """The whole numbers and the seconds that are set, each within its bounds."""
    ints = {attr: whole_number(name, raw, minimum) for attr, (name, minimum) in _INTS.items()
            if (raw := _given(env, name)) is not None}  # fmt: skip
    if ints.get("futures_roll_days", 0) > 365:
        raise SettingsError(f"FUTURES_ROLL_DAYS must be at most 365, got {env.get('FUTURES_ROLL_DAYS')!r}")
    if ints.get("option_entry_ticks", 0) > 100:
        raise SettingsError(f"OPTION_ENTRY_TICKS must be at most 100, got {env.get('OPTION_ENTRY_TICKS')!r}")
    if ints.get("worker_metrics_port", 0) > 65535:
        raise SettingsError(
            f"WORKER_METRICS_PORT must be a TCP port (0 = off), got {env.get('WORKER_METRICS_PORT')!r}"
        )
    floats = {attr: number(name, raw, minimum) for attr, (name, minimum) in _FLOATS.items()
              if (raw := _given(env, name)) is not None}  # fmt: skip
    return {**ints, **floats}


def _switches(env: Mapping[str, str]) -> dict[str, object]:
    """The on/off settings and the market data type, where set."""
    values: dict[str, object] = {}
    for attr, name in (
        ("tradingview_ips_only", "TRADINGVIEW_IPS_ONLY"),
        ("flatten_unprotected", "FLATTEN_UNPROTECTED"),
    ):
        if (raw := _given(env, name)) is not None:
            values[attr] = boolean(name, raw)
    if (raw := _given(env, "IB_MARKET_DATA_TYPE")) is not None:
        values["ib_market_data_type"] = market_data_type(raw)
    if (raw := _given(env, "MARGIN_CHECK")) is not None:
        values["margin_check"] = boolean("MARGIN_CHECK", raw)
    return values


# Continuous futures (ES1!) move to the next contract this many calendar days before the front's
# last trade date: CME's equity index futures roll on the Thursday 8 days before expiry (the third
# Friday), when volume (and TradingView's ES1!) moves to the next quarter. docs/contracts.md.
DEFAULT_FUTURES_ROLL_DAYS = 8


@dataclass(frozen=True, repr=False)
class Settings:
    """Every tunable of tv2ib. Build with :meth:`from_mapping`; ``repr`` hides secrets."""

    webhook_secret: str
    admin_token: str | None = None
    strategy_secrets: Mapping[str, str] = field(default_factory=dict)
    database_url: str = DEFAULT_SQLITE_URL
    redis_url: str = "redis://127.0.0.1:6379/0"
    port: int = 8000
    web_workers: int = field(default_factory=_default_web_workers)
    web_threads: int = 4
    log_format: str = "text"
    log_level: str = "INFO"
    tradingview_ips_only: bool = False
    trusted_proxies: int = 0
    dedup_window_seconds: float = 60.0
    max_body_bytes: int = 64 * 1024
    # A request (headers and body) not complete this long after it started is answered 408.
    request_timeout_seconds: float = 10.0
    rate_limit: str = "120/minute"  # requests WITHOUT a valid secret, per address (Redis)
    auth_failure_limit: str = "10/minute"  # wrong webhook secrets per address (Redis)
    # requests WITH a valid secret, per address, counted in each web process (bar-close bursts)
    authenticated_rate_limit: str = "6000/minute"
    admin_auth_failure_limit: str = "10/minute"  # wrong admin tokens per address (Redis)
    ib_host: str = "127.0.0.1"
    ib_port: int = 4002
    ib_client_id: int = 1
    ib_account: str | None = None
    stale_alert_seconds: float = 120.0
    max_order_quantity: Decimal = DEFAULT_MAX_ORDER_QUANTITY
    telegram_bot_token: str | None = None
    telegram_chat_ids: tuple[str, ...] = ()
    telegram_api_url: str = "https://api.telegram.org/bot"
    # Notices: per-kind mode on|silent|off, NOTIFY="fill=on,daily_summary=silent,*=on".
    notify_modes: Mapping[str, str] = field(default_factory=dict)
    # Invalid alerts of one strategy after the first, and failed authentications, are reported
    # together in one notice per this many seconds (core/notice_digest.py), not one per request.
    notify_digest_seconds: float = 300.0
    ib_alarm_after_seconds: float = 60.0
    # the IB outage alarm again every this many seconds while IB stays down (0 = once per outage)
    ib_alarm_repeat_seconds: float = 3600.0
    redis_alarm_after_seconds: float = 30.0
    daily_summary_time: str | None = None  # "HH:MM" UTC; None = no daily summary
    # The execution worker's own /metrics (worker/metrics.py); port 0 = not served.
    worker_metrics_port: int = 0
    worker_metrics_host: str = "127.0.0.1"
    # Live event streams (SSE) per web process, each holding a thread: default half of WEB_THREADS
    # (rounded down), always fewer than WEB_THREADS (intake keeps at least one thread).
    events_max_streams: int = 2
    events_stream_seconds: float = 60.0
    # Dashboard sign-in: ends this long after sign-in, or after this long without a request.
    session_max_age_seconds: float = 12 * 3600.0
    session_idle_seconds: float = 3600.0
    # A reversal is a close then an open: how long the open waits for the close to fill completely
    # (not filled by then: nothing is opened and the old protection is put back).
    reversal_fill_timeout_seconds: float = 30.0
    # The protective-order guard could not put a missing take-profit / stop-loss back: besides the
    # `unprotected` alarm, close the position at market (off by default: closing a position is a
    # trading decision the trader makes, unless they asked for it here).
    flatten_unprotected: bool = False
    # The trader's limits, default sizing and fan-out accounts (core/risk_file.py). None: the
    # default, config/risk.yaml when that file exists (else no limits).
    risk_file: str | None = None
    # Contracts (docs/contracts.md): the symbol-map file (YAML; None: the built-in rules only) and
    # the default roll of continuous futures (calendar days before the last trade date).
    symbol_map_file: str | None = None
    futures_roll_days: int = DEFAULT_FUTURES_ROLL_DAYS
    # extendedHours: a stop becomes a stop-limit this many ticks beyond the stop, a market order a
    # limit this many ticks through the reference (IB does not trigger stops outside regular hours;
    # worker/decision/order_types.py, docs/orders.md)
    extended_hours_stop_limit_ticks: int = 10
    # Market data and margin (docs/market-data-and-margin.md): IB's reqMarketDataType for reference
    # prices (live, frozen, delayed, delayed-frozen; a refused live request falls back to delayed),
    # and IB's what-if margin check before every opening order (off: skipped), with its timeout.
    ib_market_data_type: str = "live"
    # Market-data subscriptions kept open for the contracts traded (0: a snapshot per quote), and
    # how old a kept subscription's last update may be when its price is used (worker/ib/quote_streams.py)
    market_data_lines: int = 20
    market_data_max_age_seconds: float = 300.0
    # Finished orders (and their fills) the worker's IB session forgets this long after their final
    # state was recorded (worker/ib/pruning.py: memory stays bounded); 0: never
    ib_prune_done_after_seconds: float = 3600.0
    margin_check: bool = True
    margin_check_timeout_seconds: float = 5.0
    # A warm contract's margin without a round trip: per-unit figures learned from IB's what-ifs,
    # asked again in the background this often, used on the hot path up to this age (0: never,
    # every entry asks IB) with this safety factor (quantity x per unit x factor <= AvailableFunds).
    margin_refresh_seconds: float = 60.0
    margin_max_age_seconds: float = 300.0
    margin_safety_factor: float = 1.1
    # Options (docs/contracts.md): an entry is a limit at the quote's mid this many ticks toward
    # the side that fills (never past the far side); refused when the spread is wider than this
    # percent of the mid; no new position in an option expiring today after this time (New York)
    option_entry_ticks: int = 1
    option_max_spread_percent: float = 10.0
    option_last_entry_time: str = "15:00"
    # the alarm naming the option positions that expire today, from this time on (New York)
    option_expiry_alarm_time: str = "09:30"

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from an environment-like mapping, raising :class:`SettingsError`."""
        values = {**_credentials(env), **_texts(env)}
        numbers = _numbers(env)
        for attr, name in _RATES:
            check_rate(name, str(values[attr]))
        if (raw := _given(env, "MAX_ORDER_QUANTITY")) is not None:
            numbers["max_order_quantity"] = quantity("MAX_ORDER_QUANTITY", raw)
        _check_stream_threads(numbers)
        # each helper's names are fields of this class; their values' types are checked where read
        return cls(**values, **numbers, **_switches(env))  # type: ignore[arg-type]

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for redaction filters."""
        values = [self.webhook_secret, self.admin_token, self.telegram_bot_token]
        values.extend(self.strategy_secrets.values())
        return tuple(v for v in values if v)

    def __repr__(self) -> str:
        hidden = {"webhook_secret", "admin_token", "telegram_bot_token", "strategy_secrets"}
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            parts.append(f"{f.name}={'***' if f.name in hidden and value else value!r}")
        return f"Settings({', '.join(parts)})"


def read_dotenv(path: str | os.PathLike[str] = ".env") -> dict[str, str]:
    """Read a `.env` file if present (values in the real environment win); one that cannot be read
    or is not UTF-8 text is a :class:`SettingsError` naming the file and the line."""
    if not Path(path).is_file():
        return {}
    from dotenv import dotenv_values

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror or exc}") from None
    raw = raw.removeprefix(codecs.BOM_UTF8)  # editors on Windows write one
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SettingsError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def load_settings(environ: Mapping[str, str] | None = None, dotenv_path: str = ".env") -> Settings:
    """Settings from ``.env`` overlaid by the real environment."""
    merged = read_dotenv(dotenv_path)
    merged.update(os.environ if environ is None else environ)
    return Settings.from_mapping(merged)
