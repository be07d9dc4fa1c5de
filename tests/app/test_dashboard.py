"""The dashboard: sign-in, CSRF, the alert detail page, flatten with confirmation, escaping, secrets."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from app_helpers import SECRET, alert_body, post
from rq import Queue
from support import TEST_ADMIN_TOKEN

from app.resources import get_ctx, resources
from core.keys import queue_name
from core.models import Alert, AlertEvent, Fill, Order, Position

TOKEN = TEST_ADMIN_TOKEN
HOSTILE = "<script>alert(1)</script>"


def sign_in(client) -> str:
    """Sign in through the form; returns the session's CSRF token as the home page renders it."""
    assert client.post("/login", data={"token": TOKEN}).status_code == 302
    return csrf_of(client.get("/").get_data(as_text=True))


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def seed(ctx) -> str:
    """One submitted bracket on ES1! with a hostile strategy name, its orders, a fill and events."""
    now = datetime.now(UTC)
    alert_id = "01JDASHBOARDTEST0000000001"
    with ctx.sessions.begin() as s:
        s.add(
            Alert(
                id=alert_id,
                status="submitted",
                reason="bracket sent: entry, tp, sl",
                received_at=now - timedelta(minutes=3),
                raw_body='{"ticker": "ES1!", "action": "buy", "strategy": "'
                + HOSTILE
                + '", "quantity": "2"}',
                payload={"ticker": "ES1!", "action": "buy", "strategy": HOSTILE, "quantity": 2},
                strategy=HOSTILE,
                ticker="ES1!",
                action="buy",
                plan={
                    "kind": "bracket",
                    "instrument": {
                        "symbol": "ES",
                        "local_symbol": "ESZ6",
                        "sec_type": "FUT",
                        "exchange": "CME",
                        "currency": "USD",
                        "con_id": 495512563,
                        "min_tick": "0.25",
                    },
                    "legs": [
                        {
                            "leg": "entry",
                            "action": "BUY",
                            "order_type": "LMT",
                            "quantity": "2",
                            "limit_price": "5001.25",
                            "stop_price": None,
                            "tif": "DAY",
                        },
                        {
                            "leg": "tp",
                            "action": "SELL",
                            "order_type": "LMT",
                            "quantity": "2",
                            "limit_price": "5051.75",
                            "stop_price": None,
                            "tif": "GTC",
                        },
                        {
                            "leg": "sl",
                            "action": "SELL",
                            "order_type": "STP",
                            "quantity": "2",
                            "limit_price": None,
                            "stop_price": "4975.50",
                            "tif": "GTC",
                        },
                    ],
                    "reference_price": "5001.3",
                    "reference_source": "alert price",
                    "notes": ["limit rounded to the 0.25 tick"],
                },
            )
        )
        s.flush()
        for leg, side, kind, lmt, stp, status, ib_id in (
            ("entry", "BUY", "LMT", "5001.25", None, "Filled", 101),
            ("tp", "SELL", "LMT", "5051.75", None, "Submitted", 102),
            ("sl", "SELL", "STP", None, "4975.50", "PreSubmitted", 103),
        ):
            s.add(
                Order(
                    alert_id=alert_id,
                    leg=leg,
                    order_ref=f"tv2ib:{alert_id}:{leg}",
                    ib_order_id=ib_id,
                    perm_id=900000 + ib_id,
                    symbol="ES",
                    action=side,
                    order_type=kind,
                    quantity=Decimal(2),
                    limit_price=None if lmt is None else Decimal(lmt),
                    stop_price=None if stp is None else Decimal(stp),
                    status=status,
                    filled_quantity=Decimal(2 if status == "Filled" else 0),
                    avg_fill_price=Decimal("5001.25") if status == "Filled" else None,
                )
            )
        s.flush()
        entry = s.query(Order).filter_by(alert_id=alert_id, leg="entry").one()
        s.add(
            Fill(
                exec_id="0000e0d5.6a3f.01.01",
                alert_id=alert_id,
                order_id=entry.id,
                leg="entry",
                side="BOT",
                price=Decimal("5001.25"),
                quantity=Decimal(2),
                commission=Decimal("4.24"),
                symbol="ES",
                time=now - timedelta(minutes=2),
            )
        )
        s.add(
            Position(
                account="DU123",
                con_id=495512563,
                symbol="ES",
                sec_type="FUT",
                local_symbol="ESZ6",
                quantity=Decimal(2),
                avg_cost=Decimal("250062.5"),
            )
        )
        for status, message in (
            ("queued", "on tv2ib:orders:default"),
            ("submitted", "bracket sent: perm 900101"),
        ):
            s.add(
                AlertEvent(alert_id=alert_id, status=status, message=message, at=now - timedelta(minutes=2))
            )
    return alert_id


def test_disabled_without_admin_token_explains_how_to_enable(make_app):
    answer = make_app(ADMIN_TOKEN="").test_client().get("/")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 403 and answer.mimetype == "text/html"
    assert "ADMIN_TOKEN" in page and "16 characters" in page


def test_login_cookie_bearer_and_no_token_in_urls(client):
    assert client.get("/").status_code == 401
    assert client.post("/login", data={"token": "wrong-wrong-wrong-wrong"}).status_code == 401
    # A token in the URL is never accepted: URLs land in logs and history.
    assert client.get(f"/?token={TOKEN}").status_code == 401
    answer = client.post("/login", data={"token": TOKEN})
    cookie = answer.headers["Set-Cookie"]
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    assert client.get("/").status_code == 200
    other = client.application.test_client()
    assert other.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert other.get("/", headers={"Authorization": "Bearer wrong-wrong-wrong-wrong"}).status_code == 401
    other.set_cookie(
        "tv2ib_session", "forged.0000000000000000000000000000000000000000000000000000000000000000"
    )
    assert other.get("/").status_code == 401


def test_alert_detail_page_shows_everything_escaped(client, ctx):
    alert_id = seed(ctx)
    sign_in(client)
    answer = client.get(f"/alerts/{alert_id}")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    # summary
    assert "submitted" in page and "bracket sent: entry, tp, sl" in page and "ES1!" in page
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", page) and "3 min ago" in page
    # raw body and payload, escaped
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert "&#34;quantity&#34;: &#34;2&#34;" in page or "&quot;quantity&quot;: &quot;2&quot;" in page
    # plan
    assert "5051.75" in page and "4975.5" in page and "alert price" in page and "ESZ6" in page
    assert "limit rounded to the 0.25 tick" in page
    # orders with IB ids, fills, audit trail
    for text in (
        "900101",
        "900103",
        "PreSubmitted",
        "0000e0d5.6a3f.01.01",
        "4.24",
        "bracket sent: perm 900101",
    ):
        assert text in page, text
    assert client.get("/alerts/01JNOSUCHALERT000000000000").status_code == 404


def test_invalid_alert_shows_field_errors_and_raw_body_without_secret(client):
    alert_id = post(client, alert_body(action="buyy", ticker="ES1!")).get_json()["alert_id"]
    sign_in(client)
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "invalid" in page and "Field errors" in page and "action" in page and "buyy" in page
    assert SECRET not in page


def test_home_lists_filters_and_orders_working_first(client, ctx):
    alert_id = seed(ctx)
    post(client, alert_body(action="nonsense"))  # one invalid alert for the filter
    sign_in(client)
    page = client.get("/").get_data(as_text=True)
    assert alert_id in page and 'Database <span class="st-ok">ok</span>' in page
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert re.search(r"T\d\d:\d\d:\d\dZ", page) and " ago" in page
    # working orders (102, 103) come before the filled entry (101)
    assert page.index(">102<") < page.index(">101<") and page.index(">103<") < page.index(">101<")
    alerts_table = client.get("/?status=invalid").get_data(as_text=True).split("<h2>Positions")[0]
    assert alert_id not in alerts_table and 'pill st-bad">invalid<' in alerts_table
    alerts_table = client.get("/?status=submitted").get_data(as_text=True).split("<h2>Positions")[0]
    assert alert_id in alerts_table and 'pill st-bad">invalid<' not in alerts_table


def test_empty_state_shows_the_curl_for_this_server(client):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    page = client.get("/", base_url="http://tv2ib.example:8000", headers=headers).get_data(as_text=True)
    assert "No alerts yet" in page and "http://tv2ib.example:8000/webhook" in page
    assert "X-Webhook-Secret: $WEBHOOK_SECRET" in page and SECRET not in page


def test_flatten_requires_confirmation_and_enqueues_the_job(client, ctx):
    csrf = sign_in(client)
    confirm = client.get("/flatten").get_data(as_text=True)
    assert "Flatten ALL positions and cancel all working orders?" in confirm and "Confirm" in confirm
    queue = Queue(queue_name(None), connection=ctx.redis)
    assert "the default account" in confirm  # no worker, no IB_ACCOUNT: the queue of alerts naming none
    unconfirmed = client.post("/flatten", data={"csrf_token": csrf, "account": ""})
    assert unconfirmed.status_code == 400 and queue.count == 0
    done = client.post("/flatten", data={"csrf_token": csrf, "account": "", "confirm": "yes"})
    page = done.get_data(as_text=True)
    assert done.status_code == 200 and queue.count == 1
    job = queue.jobs[0]
    assert job.func_name == "worker.jobs.flatten_all" and job.args == (None, "dashboard")
    assert job.id in page


def test_flatten_goes_to_the_queue_of_this_deployments_account(make_app):
    client = make_app(IB_ACCOUNT="DU777").test_client()
    csrf = sign_in(client)
    assert "<b>DU777</b>" in client.get("/flatten").get_data(as_text=True)
    client.post("/flatten", data={"csrf_token": csrf, "account": "DU777", "confirm": "yes"})
    ctx = get_ctx(client.application)
    jobs = Queue(queue_name("DU777"), connection=ctx.redis).jobs
    assert [(j.func_name, j.args) for j in jobs] == [("worker.jobs.flatten_all", ("DU777", "dashboard"))]
    assert Queue(queue_name(None), connection=ctx.redis).count == 0


@pytest.mark.parametrize(
    "headers, with_token",
    [({}, False), ({"Origin": "https://evil.example"}, True), ({"Referer": "https://evil.example/x"}, True)],
)
def test_cross_site_posts_are_refused(client, ctx, headers, with_token):
    csrf = sign_in(client)
    data = {"paused": "1", "confirm": "yes", **({"csrf_token": csrf} if with_token else {})}
    assert client.post("/control", data=data, headers=headers).status_code == 403
    assert client.post("/flatten", data=data, headers=headers).status_code == 403
    assert "PAUSED" not in client.get("/").get_data(as_text=True)
    assert Queue(queue_name(None), connection=ctx.redis).count == 0


def test_pause_and_resume_buttons(client):
    csrf = sign_in(client)
    same_site = {"Origin": "http://localhost"}
    assert (
        client.post("/control", data={"paused": "1", "csrf_token": csrf}, headers=same_site).status_code
        == 302
    )
    assert "PAUSED" in client.get("/").get_data(as_text=True)
    client.post("/control", data={"paused": "0", "csrf_token": csrf})
    assert "PAUSED" not in client.get("/").get_data(as_text=True)
    status = client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()
    assert status["paused"] is False


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_database_unreachable_is_shown_not_a_traceback(client, ctx, db_url):
    sign_in(client)
    Path(db_url.removeprefix("sqlite:///")).unlink()  # the next connection finds no tables
    ctx.engine.dispose()
    answer = client.get("/")
    assert answer.status_code == 503 and "Database unreachable" in answer.get_data(as_text=True)


def test_pages_cannot_be_framed_or_run_foreign_or_inline_scripts(client, ctx):
    seed(ctx)
    sign_in(client)
    headers = client.get("/flatten").headers
    policy = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self';" in policy
    assert "unsafe" not in policy and "connect-src 'self'" in policy
    assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
    page = client.get("/").get_data(as_text=True)
    # the only script is our own file (no inline code, nothing from elsewhere)
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/dashboard-static/live.js" defer>']
    assert "</script>" in page and not re.search(r"<script[^>]*>[^<]", page) and " on" + "click=" not in page
    script = client.get("/dashboard-static/live.js")
    assert script.status_code == 200 and "EventSource" in script.get_data(as_text=True)


def test_login_from_another_site_is_refused(client):
    answer = client.post("/login", data={"token": TOKEN}, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403 and "Set-Cookie" not in answer.headers


def test_no_secret_on_any_page(client, ctx):
    alert_id = seed(ctx)
    posted = post(client, alert_body(strategy="s1")).get_json()["alert_id"]
    csrf = sign_in(client)
    pages = [client.get(path) for path in ("/", f"/alerts/{alert_id}", f"/alerts/{posted}", "/flatten")]
    pages.append(client.post("/flatten", data={"csrf_token": csrf, "confirm": "yes"}))
    pages.append(client.application.test_client().get("/"))  # the login page
    pages.append(client.get("/dashboard-static/dashboard.css"))
    for answer in pages:
        body = answer.get_data(as_text=True)
        assert SECRET not in body and TOKEN not in body


def session_cookie(answer) -> str:
    """The tv2ib_session value a Set-Cookie header carries."""
    match = re.search(r"tv2ib_session=([^;]+)", answer.headers["Set-Cookie"])
    assert match, answer.headers["Set-Cookie"]
    return match.group(1)


def test_logout_ends_the_session_on_the_server(client):
    value = session_cookie(client.post("/login", data={"token": TOKEN}))
    copy = client.application.test_client()  # e.g. the cookie copied off a shared computer
    copy.set_cookie("tv2ib_session", value)
    assert copy.get("/").status_code == 200
    csrf = csrf_of(client.get("/").get_data(as_text=True))
    answer = client.post("/logout", data={"csrf_token": csrf})
    assert answer.status_code == 302
    assert "tv2ib_session=;" in answer.headers["Set-Cookie"] or "Max-Age=0" in answer.headers["Set-Cookie"]
    assert client.get("/").status_code == 401
    assert copy.get("/").status_code == 401  # the copy stopped working too


@pytest.mark.parametrize(
    ("trusted_proxies", "headers", "secure"),
    [
        pytest.param("1", {"X-Forwarded-Proto": "https"}, True, id="https-at-the-trusted-proxy"),
        pytest.param("1", {"X-Forwarded-Proto": "http"}, False, id="http-at-the-trusted-proxy"),
        pytest.param("1", {"X-Forwarded-Proto": "https, http"}, False, id="client-claims-https"),
        pytest.param("2", {"X-Forwarded-Proto": "https, http"}, True, id="two-proxies-outer-https"),
        pytest.param("0", {"X-Forwarded-Proto": "https"}, False, id="no-trusted-proxy"),
    ],
)
def test_cookie_is_secure_when_the_trusted_proxy_says_https(make_app, trusted_proxies, headers, secure):
    client = make_app(ADMIN_TOKEN=TOKEN, TRUSTED_PROXIES=trusted_proxies).test_client()
    answer = client.post("/login", data={"token": TOKEN}, headers=headers)
    assert answer.status_code == 302
    assert ("Secure" in answer.headers["Set-Cookie"].split("; ")) is secure


def test_cookie_is_secure_on_a_direct_https_request(client):
    answer = client.post("/login", data={"token": TOKEN}, base_url="https://localhost")
    assert "Secure" in answer.headers["Set-Cookie"].split("; ")


def test_sessions_expire_on_the_server_idle_and_absolute(make_app):
    app = make_app(ADMIN_TOKEN=TOKEN, SESSION_IDLE_SECONDS="600", SESSION_MAX_AGE_SECONDS="3600")
    store = resources(app).sessions
    client = app.test_client()
    answer = client.post("/login", data={"token": TOKEN})
    assert "Max-Age=3600" in answer.headers["Set-Cookie"]
    key = "tv2ib:dashboard:session:" + session_cookie(answer).split(".")[0]
    # idle: the record's lifetime is the idle time, renewed by each request
    assert 0 < store.redis.pttl(key) <= 600_000
    store.redis.pexpire(key, 1)  # as if ten idle minutes went by
    time.sleep(0.01)
    assert client.get("/").status_code == 401
    # absolute: one hour after sign-in, however busy the session
    client.post("/login", data={"token": TOKEN})
    assert client.get("/").status_code == 200
    signed_in = time.time()
    store.clock = lambda: signed_in + 3601
    assert client.get("/").status_code == 401
    store.clock = time.time
    assert client.get("/").status_code == 401  # ended for good, not only while the clock is late


def test_sign_in_is_refused_while_redis_is_down(make_app):
    app = make_app(ADMIN_TOKEN=TOKEN, REDIS_URL="redis://127.0.0.1:1/0")
    answer = app.test_client().post("/login", data={"token": TOKEN})
    assert answer.status_code == 503 and "Redis" in answer.get_data(as_text=True)
    assert "Set-Cookie" not in answer.headers


def test_alert_page_shows_the_checks_before_ib_with_their_numbers(client, ctx):
    """Sizing, market data, margin and every risk rule compared: readable on the alert page, not
    only as JSON (issue 11: every decision visible)."""
    alert_id = seed(ctx)
    with ctx.sessions.begin() as s:
        alert = s.get(Alert, alert_id)
        alert.plan = {
            **(alert.plan or {}),
            "sizing": {"rule": "risk_percent", "source": "alert",
                       "text": "sizing: 1% of 1,003,211.00 USD NetLiquidation = 10,032.11 USD risk ÷ (190.00 − 186.20) × 1 = 2640.0289 → 2640"},
            "market_data": {"type": "delayed", "requested": "live", "why": "IB error 10089"},
            "margin": {"verdict": "ok", "order": "BUY 2640 AAPL MKT", "init_margin_change": "125400",
                       "currency": "USD", "available_funds": "998000"},
            "risk": {"checks": [
                {"rule": "max_order_notional", "limit": "600000", "value": "501600", "passed": True,
                 "source": 'strategy "trend"'},
                {"rule": "max_open_orders", "limit": "2", "value": "3", "passed": False, "source": "defaults",
                 "message": "risk: max_open_orders 2 (defaults) exceeded: 3"},
            ]},
        }  # fmt: skip
    sign_in(client)
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Checks before IB" in page
    assert "NetLiquidation = 10,032.11 USD risk" in page and "risk_percent" in page
    assert "delayed" in page and "asked live" in page and "IB error 10089" in page
    assert "BUY 2640 AAPL MKT" in page and "125,400" in page
    assert "max_order_notional" in page
    assert "strategy &#34;trend&#34;" in page or "strategy &quot;trend&quot;" in page
    assert "risk: max_open_orders 2 (defaults) exceeded: 3" in page and "refused" in page


def test_alert_page_shows_the_contract_the_worker_stored_and_the_option_chosen(client, ctx):
    """The worker stores the contract under ``plan["contract"]`` and an option's choice under
    ``plan["option"]`` (worker/decision/stored.py): both readable on the page, not only as JSON."""
    alert_id = seed(ctx)
    with ctx.sessions.begin() as s:
        alert = s.get(Alert, alert_id)
        plan = {k: v for k, v in (alert.plan or {}).items() if k != "instrument"}
        alert.plan = {
            **plan,
            "contract": {"symbol": "AAPL", "local_symbol": "AAPL  270108P00187500", "sec_type": "OPT",
                         "exchange": "SMART", "currency": "USD", "con_id": 1138735996, "min_tick": "0.01"},
            "option": {"rule": "sell (bearish) with optionType both: buy puts to open", "action": "buy",
                       "contract": "AAPL 2027-01-08 put 187.50",
                       "why": "AAPL at 190.00, at the money 190. Strike 187.50: the 1st strike out of the money.",
                       "entry": {"limit": "3.40", "mid": "3.38", "why": "BUY limit 3.40: the mid 3.38 plus 1 tick"},
                       "closed_first": {"alert": "01JDASHBOARDCHILD000000001", "contract": "long 2 AAPL  270108C00192500"}},
        }  # fmt: skip
    sign_in(client)
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Contract <b>AAPL  270108P00187500</b>" in page and "OPT SMART USD" in page
    assert "AAPL 2027-01-08 put 187.50" in page and "the 1st strike out of the money" in page
    assert "BUY limit 3.40: the mid 3.38 plus 1 tick" in page
    assert (
        "closed first: long 2 AAPL  270108C00192500" in page and "/alerts/01JDASHBOARDCHILD000000001" in page
    )


def test_home_and_the_status_show_the_locks_a_worker_announced_that_still_hold(client, ctx):
    """The risk file's protections (docs/risk.md "Protections"): the worker's ``risk:locks:<account>``
    row; a lock whose time is up is not shown."""
    import json

    from core.models import Control

    now = datetime.now(UTC)

    def lock(strategy: str, symbol: str, until: datetime) -> dict:
        return {"rule": "stop_out_cooldown_minutes", "strategy": strategy, "symbol": symbol,
                "since": (until - timedelta(minutes=30)).isoformat(), "until": until.isoformat(),
                "label": "cooldown 30 min after a stop-out", "why": f"{symbol} stopped out at 14:02",
                "source": "defaults"}  # fmt: skip

    with ctx.sessions.begin() as session:
        session.add(Control(key="risk:locks:DU1", value=json.dumps([lock("trend", "AAPL", now + timedelta(minutes=9)),
                                                                    lock("old", "MSFT", now - timedelta(minutes=1))])))  # fmt: skip
    sign_in(client)
    page = client.get("/").get_data(as_text=True)
    assert 'id="locks"' in page and "trend · AAPL" in page and "old · MSFT" not in page
    status = client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()
    assert [(x["account"], x["strategy"], x["symbol"], x["why"]) for x in status["locks"]] == [
        ("DU1", "trend", "AAPL", "AAPL stopped out at 14:02")
    ]
