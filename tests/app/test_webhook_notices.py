"""A broken alert template is told to the trader (issue 16, item 9): TradingView never shows the
webhook's answer, so a 422 or a wrong secret would otherwise fail in silence until a trade is
missed.

The real app (Flask test client, real Redis, SQLite and PostgreSQL) writes the notices; the real
notifier delivers them to the fake Telegram Bot API, where the texts are read as the trader reads
them. Digests are flushed as the relay does (:func:`core.notice_digest.flush_due`), with a clock
past the window instead of a wait.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

import pytest
from app_helpers import SECRET, alert_body, post, raw_alert
from fakes.telegram_api import FakeTelegramAPI
from flask import Flask
from sqlalchemy import select

from app.resources import get_ctx
from core import notice_digest
from core.context import AppContext
from core.keys import NOTICE_DIGEST_PREFIX
from core.models import Alert, AlertStatus, Notice
from worker.notify import Notifier
from worker.notify.sender import SenderConfig

CHAT = "4242"
ATTACKER = "203.0.113.9"
STRATEGY_SECRET = "trend-only-secret-0123456789"
FAST = SenderConfig(poll_seconds=0.1, backoff_first=0.2, backoff_max=1.0)


@pytest.fixture
def tg_app(make_app: Callable[..., Flask], fake_tg: FakeTelegramAPI) -> Callable[..., Flask]:
    """An app whose notices go to the fake Bot API's chat ``CHAT`` (overrides: more settings)."""

    def build(**overrides: str) -> Flask:
        env = {
            **fake_tg.settings(CHAT),
            "STRATEGY_SECRETS": f"trend={STRATEGY_SECRET}",
            "NOTIFY_DIGEST_SECONDS": "60",
            **overrides,
        }
        return make_app(**env)

    return build


@pytest.fixture
def notified_app(
    tg_app: Callable[..., Flask], start_notifier: Callable[..., Notifier]
) -> Callable[..., tuple[Flask, AppContext]]:
    """tg_app's app (``overrides``: more settings) with the real notifier started on its database
    (stopped at teardown): the app and its context."""

    def build(**overrides: str) -> tuple[Flask, AppContext]:
        app = tg_app(**overrides)
        ctx = get_ctx(app)
        start_notifier(ctx.settings, ctx.sessions, sender_config=FAST)
        return app, ctx

    return build


def _rows(ctx: AppContext, kind: str) -> list[Notice]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Notice).where(Notice.kind == kind).order_by(Notice.id)))


def _delivered(ctx: AppContext, api: FakeTelegramAPI, kind: str, count: int) -> list[str]:
    """The texts of the ``count`` notices of ``kind`` once the notifier delivered all of them."""
    assert len(_rows(ctx, kind)) == count, [r.text for r in _rows(ctx, kind)]
    texts = [r.text for r in _rows(ctx, kind)]
    assert api.wait_for(lambda a: all(any(t in m.text for m in a.messages(CHAT)) for t in texts), 15)
    return texts


def _secrets_absent(text: str) -> None:
    readable = html.unescape(text).lower()
    for secret in (SECRET, STRATEGY_SECRET):
        assert secret.lower() not in readable, text


def _flush_after_window(ctx: AppContext) -> int:
    return notice_digest.flush_due(ctx, now=time.time() + ctx.settings.notify_digest_seconds + 1)


def _bad_secret(app: Flask, address: str = ATTACKER, **extra: Any) -> int:
    """POST an alert with a wrong secret (``extra``: other fields) from ``address``; its status."""
    body = alert_body(**{"secret": "not-the-secret-at-all-0000", **extra})
    return app.test_client().post("/webhook", json=body, environ_base={"REMOTE_ADDR": address}).status_code


# ---- alert_invalid -----------------------------------------------------------------------------


def test_a_422_alert_yields_one_notice_with_its_field_errors(
    notified_app: Callable[..., tuple[Flask, AppContext]], fake_tg: FakeTelegramAPI
) -> None:
    app, ctx = notified_app()
    answer = post(app.test_client(), alert_body(strategy="breakout", quantity=-5, takeProfit={"percent": 0}))
    assert answer.status_code == 422
    fields = answer.get_json()["fields"]

    (text,) = _delivered(ctx, fake_tg, "alert_invalid", 1)
    assert "Invalid alert, not executed" in text
    assert "strategy <b>breakout</b>" in text
    assert f"alert <code>{answer.get_json()['alert_id']}</code>" in text
    assert f"quantity: {fields['quantity'][0]}" in html.unescape(text)
    assert f"takeProfit.percent: {fields['takeProfit']['percent'][0]}" in html.unescape(text)
    assert "buy NASDAQ:AAPL" in text
    _secrets_absent(text)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (alert_body(ticker=SECRET), "ticker"),  # the secret pasted into the wrong field
        (alert_body(strategy=SECRET.upper(), quantity=0), "strategy"),  # any letter case
        (alert_body(extras={"note": f"key {SECRET.lower()}!"}), "extras.note"),
        (alert_body(extras={SECRET: 1}), "extras.***"),  # a key made of the secret
        (alert_body(ticker=f"X{STRATEGY_SECRET}"), "ticker"),  # another configured secret
        (raw_alert(f'"quantity": 1, "quantity": 1000, "comment": "{SECRET}"'), "quantity"),
        ('{"secret": "' + SECRET + '", "ticker": "' + SECRET + '", ', "body"),  # unreadable: 400
    ],
    ids=["ticker", "upper-case", "nested-value", "key", "strategy-secret", "duplicate-key", "unparsable"],
)
def test_the_secret_never_reaches_the_notice(
    notified_app: Callable[..., tuple[Flask, AppContext]], fake_tg: FakeTelegramAPI, body: Any, named: str
) -> None:
    app, ctx = notified_app()
    answer = post(app.test_client(), body)
    assert answer.status_code in (400, 422), answer.get_json()

    (text,) = _delivered(ctx, fake_tg, "alert_invalid", 1)
    assert f"• {named}:" in html.unescape(text)
    _secrets_absent(text)
    for message in fake_tg.messages(CHAT):
        _secrets_absent(message.text)


def test_a_template_firing_every_bar_gets_one_notice_then_one_digest_per_window(
    notified_app: Callable[..., tuple[Flask, AppContext]], fake_tg: FakeTelegramAPI
) -> None:
    app, ctx = notified_app()
    client = app.test_client()
    for _ in range(6):
        assert post(client, alert_body(strategy="every bar", quantity=-1)).status_code == 422
    assert post(client, alert_body(strategy="other", quantity=-1)).status_code == 422
    first = _rows(ctx, "alert_invalid")
    assert len(first) == 2  # one per strategy at once; five counted for the digest
    assert _flush_after_window(ctx) == 1

    texts = _delivered(ctx, fake_tg, "alert_invalid", 3)
    digest = texts[-1]
    assert "5 more invalid alerts, not executed" in digest
    assert "strategy <b>every bar</b>" in digest
    assert "quantity:" in digest  # the latest one's reason
    latest = max((a for a in _alerts(ctx) if a.strategy == "every bar"), key=lambda a: (a.received_at, a.id))
    assert latest.id in digest

    # Still broken: the next one joins the next digest instead of a notice of its own.
    assert post(client, alert_body(strategy="every bar", quantity=-1)).status_code == 422
    assert len(_rows(ctx, "alert_invalid")) == 3
    assert _flush_after_window(ctx) == 1
    assert "1 more invalid alert, not executed" in _delivered(ctx, fake_tg, "alert_invalid", 4)[-1]
    assert _flush_after_window(ctx) == 0  # nothing left to report
    assert all(a.status == AlertStatus.INVALID for a in _alerts(ctx))


def _alerts(ctx: AppContext) -> list[Alert]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Alert)))


# ---- auth_failed -------------------------------------------------------------------------------


@pytest.mark.usefixtures("one_limit_window")
def test_twenty_bad_secrets_from_one_address_yield_one_notice_with_the_address_and_count(
    notified_app: Callable[..., tuple[Flask, AppContext]], fake_tg: FakeTelegramAPI
) -> None:
    app, ctx = notified_app(AUTH_FAILURE_LIMIT="10/minute")
    statuses = [_bad_secret(app) for _ in range(20)]
    assert statuses.count(401) == 10 and statuses.count(429) == 10  # past the limit: still counted
    assert _rows(ctx, "auth_failed") == []  # the run is not over yet
    assert notice_digest.flush_due(ctx) == 0

    assert _flush_after_window(ctx) == 1
    (text,) = _delivered(ctx, fake_tg, "auth_failed", 1)
    assert "20 requests refused: no valid secret" in text
    assert f"{ATTACKER}: 20 × wrong or missing secret (401)" in text
    _secrets_absent(text)
    assert _flush_after_window(ctx) == 0
    assert _alerts(ctx) == []  # nothing stored


@pytest.mark.usefixtures("one_limit_window")
def test_refused_addresses_are_counted_and_many_addresses_make_one_bounded_notice(
    notified_app: Callable[..., tuple[Flask, AppContext]], fake_tg: FakeTelegramAPI
) -> None:
    app, ctx = notified_app(TRADINGVIEW_IPS_ONLY="true")
    for n in range(notice_digest.MAX_AUTH_ADDRESSES + 15):
        assert _bad_secret(app, address=f"198.51.100.{n}", secret=SECRET) == 403
    assert _bad_secret(app, address="52.89.214.238") == 401  # a TradingView address, wrong secret

    assert _flush_after_window(ctx) == 1
    (text,) = _delivered(ctx, fake_tg, "auth_failed", 1)
    assert f"{notice_digest.MAX_AUTH_ADDRESSES + 16} requests refused" in text
    assert "198.51.100.0: 1 × address not allowed by TRADINGVIEW_IPS_ONLY (403)" in text
    assert "• other addresses:" in text
    assert text.count("• ") == notice_digest.MAX_AUTH_ADDRESSES + 1  # the addresses, then the rest


def test_a_template_that_lost_its_json_is_reported_like_a_wrong_secret(
    notified_app: Callable[..., tuple[Flask, AppContext]], fake_tg: FakeTelegramAPI
) -> None:
    app, ctx = notified_app()
    answer = app.test_client().post(
        "/webhook",
        data="Order buy @ 1 filled on AAPL",  # a message that is no JSON and holds no secret
        content_type="text/plain",
        environ_base={"REMOTE_ADDR": "52.89.214.238"},
    )
    assert answer.status_code == 400

    assert _flush_after_window(ctx) == 1
    (text,) = _delivered(ctx, fake_tg, "auth_failed", 1)
    assert "1 request refused: no valid secret" in text
    assert "52.89.214.238: 1 × body not JSON and no secret in it (400)" in text
    assert _alerts(ctx) == []


def test_a_failed_authentication_costs_one_redis_call_and_a_valid_alert_none_for_notices(
    tg_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tg_app()
    ctx = get_ctx(app)
    calls: list[tuple[Any, ...]] = []
    real = ctx.redis.execute_command

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ctx.redis, "execute_command", spy)
    assert _bad_secret(app) == 401
    assert [c[0] for c in calls] == ["EVALSHA"]  # the rate limit and the notice's count together

    calls.clear()
    assert post(app.test_client(), alert_body()).status_code == 202
    touched = [a for c in calls for a in c if isinstance(a, str) and a.startswith(NOTICE_DIGEST_PREFIX)]
    assert touched == []
    assert _rows(ctx, "alert_invalid") == []


# ---- switching them off ------------------------------------------------------------------------


@pytest.mark.parametrize("notify", ["alert_invalid=off", "*=off"])
def test_alert_invalid_off_is_silent(tg_app: Callable[..., Flask], notify: str) -> None:
    app = tg_app(NOTIFY=notify)
    ctx = get_ctx(app)
    for _ in range(3):
        assert post(app.test_client(), alert_body(quantity=-1)).status_code == 422
    assert _flush_after_window(ctx) == 0
    assert _rows(ctx, "alert_invalid") == []
    assert ctx.redis.keys(f"{NOTICE_DIGEST_PREFIX}*") == []


@pytest.mark.parametrize("notify", ["auth_failed=off", "*=off"])
def test_auth_failed_off_is_silent(tg_app: Callable[..., Flask], notify: str) -> None:
    app = tg_app(NOTIFY=notify)
    ctx = get_ctx(app)
    for _ in range(20):
        assert _bad_secret(app) == 401
    assert _flush_after_window(ctx) == 0
    assert _rows(ctx, "auth_failed") == []
    assert ctx.redis.keys(f"{NOTICE_DIGEST_PREFIX}*") == []


def test_silent_mode_delivers_without_sound(
    notified_app: Callable[..., tuple[Flask, AppContext]], fake_tg: FakeTelegramAPI
) -> None:
    app, ctx = notified_app(NOTIFY="alert_invalid=silent,auth_failed=silent")
    assert post(app.test_client(), alert_body(quantity=-1)).status_code == 422
    assert _bad_secret(app) == 401
    assert _flush_after_window(ctx) == 1
    _delivered(ctx, fake_tg, "alert_invalid", 1)
    _delivered(ctx, fake_tg, "auth_failed", 1)
    assert all(m.disable_notification for m in fake_tg.messages(CHAT))


def test_redis_down_reports_every_invalid_alert_and_answers_as_before(
    tg_app: Callable[..., Flask],
) -> None:
    app = tg_app(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens on port 1
    ctx = get_ctx(app)
    for _ in range(2):
        assert post(app.test_client(), alert_body(quantity=-1)).status_code == 422
    assert len(_rows(ctx, "alert_invalid")) == 2  # fail open: told rather than counted
    assert _bad_secret(app) == 401
