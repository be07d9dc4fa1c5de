"""Slippage and latency as the admin API and the dashboard show them (real app on SQLite and
PostgreSQL), from the alerts of tests/execution_seed.py; and the profit figures of core/profit.py."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from execution_seed import BUY_ID, OPTION_ID, SELL_ID, seed_executions
from jsonschema import Draft202012Validator
from support import TEST_ADMIN_TOKEN

from core import profit
from core.models import Alert
from core.profit import PnlFill
from core.slippage import NO_OPTION_REFERENCE

AUTH = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}


def test_an_alert_carries_its_slippage_and_latency(client, ctx):
    seed_executions(ctx.sessions)
    doc = client.get(f"/api/alerts/{BUY_ID}", headers=AUTH).get_json()
    execution = doc["execution"]
    assert execution["currency"] == "USD" and execution["multiplier"] == 1
    own = execution["alert"]
    assert own["legs"] == ["entry"] and own["side"] == "BUY" and own["quantity"] == 2
    assert own["avg_price"] == pytest.approx(190.5) and own["reference_price"] == 190
    assert own["reference_source"] == "price"
    assert own["slippage"] == pytest.approx(1.0) and own["slippage_bps"] == pytest.approx(26.3158)
    [tp] = execution["exits"]
    assert tp["reference_source"] == "limit price" and tp["slippage"] == pytest.approx(-0.2)
    latency = execution["latency"]
    assert latency["signal_to_fill_seconds"] == pytest.approx(1.2)
    assert latency["arrival_to_fill_seconds"] == pytest.approx(0.8)

    # a future: the multiplier counts for the money, a sell below the price is a cost
    future = client.get(f"/api/alerts/{SELL_ID}", headers=AUTH).get_json()["execution"]
    assert future["multiplier"] == 50 and future["alert"]["slippage"] == pytest.approx(12.5)
    assert future["alert"]["slippage_bps"] == pytest.approx(0.5)
    # an option chosen from the underlying's alert: no nonsense number
    option = client.get(f"/api/alerts/{OPTION_ID}", headers=AUTH).get_json()["execution"]["alert"]
    assert option["slippage"] is None and option["note"] == NO_OPTION_REFERENCE and option["avg_price"] == 4.1


def test_performance_per_strategy(client, ctx):
    seed_executions(ctx.sessions)
    doc = client.get("/api/performance", headers=AUTH).get_json()
    assert doc["days"] == 90 and "alerts" not in doc
    rows = {r["strategy"]: r for r in doc["strategies"]}
    trend = rows["trend"]
    assert trend["filled"] == 2 and trend["measured"] == 2
    assert trend["slippage_bps_mean"] == pytest.approx((26.3158 + 0.5) / 2, abs=1e-3)
    assert trend["slippage_by_currency"] == {
        "USD": {"alerts": 2, "total": 13.5, "mean": 6.75, "median": 6.75}
    }
    assert trend["exits_measured"] == 2  # the take-profit (a gain) and the stop (filled at its trigger)
    assert trend["exit_slippage_bps_mean"] == pytest.approx((-0.10 / 192 * 10000 + 0) / 2, abs=1e-3)
    assert trend["signal_to_fill_p50"] == pytest.approx(1.6) and trend["signal_to_fill_p90"] == pytest.approx(
        1.92
    )
    assert trend["arrival_to_fill_p50"] == pytest.approx(1.2)
    assert rows["opts"]["filled"] == 1 and rows["opts"]["measured"] == 0
    assert rows["opts"]["slippage_bps_mean"] is None and rows["opts"]["slippage_by_currency"] == {}

    one = client.get("/api/performance?strategy=trend&days=7", headers=AUTH).get_json()
    assert one["days"] == 7 and [r["strategy"] for r in one["strategies"]] == ["trend"]
    assert [a["id"] for a in one["alerts"]] == [SELL_ID, BUY_ID]
    assert client.get("/api/performance?strategy=nosuch", headers=AUTH).get_json()["strategies"] == []
    assert client.get("/api/performance?days=abc", headers=AUTH).status_code == 400
    assert client.get("/api/performance").status_code == 401


def test_the_answers_match_their_description(client, ctx):
    """/openapi.json describes the new keys exactly (additionalProperties: false everywhere)."""
    seed_executions(ctx.sessions)
    components = client.get("/openapi.json").get_json()["components"]
    for path, schema in (
        (f"/api/alerts/{BUY_ID}", "AlertDoc"),
        (f"/api/alerts/{OPTION_ID}", "AlertDoc"),
        ("/api/performance?strategy=trend", "PerformanceDoc"),
        ("/api/performance", "PerformanceDoc"),
        ("/api/profit", "ProfitDoc"),
        ("/api/profit?days=7", "ProfitDoc"),
        ("/api/daily?days=3", "DailyDoc"),
    ):
        body = client.get(path, headers=AUTH).get_json()
        validator = Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": components})
        assert list(validator.iter_errors(body)) == [], path


def test_alert_page_shows_the_slippage_and_the_strategy_page_its_charts(client, ctx):
    seed_executions(ctx.sessions)
    page = client.get(f"/alerts/{BUY_ID}", headers=AUTH).get_data(as_text=True)
    row = re.search(r'<tr data-legs="entry">(.*?)</tr>', page, re.S)
    assert row is not None
    assert "190.5" in row.group(1) and "+1.00" in row.group(1) and "+26.3" in row.group(1)
    assert re.search(r'<tr data-legs="tp">.*?-0.20.*?</tr>', page, re.S)
    assert "Signal &rarr; first fill <b>1.20 s</b>" in page
    option = client.get(f"/alerts/{OPTION_ID}", headers=AUTH).get_data(as_text=True)
    assert "no reference price for the option" in option

    strategy = client.get("/strategies/trend", headers=AUTH).get_data(as_text=True)
    assert re.search(r'id="strategy-slippage">avg <b>\+13\.4 bps</b>', strategy)
    assert "+13.50 USD in all" in strategy
    assert 'id="chart-slippage"' in strategy and 'id="chart-signal"' in strategy
    assert (
        "Slippage against the alert price, trend (bps, positive is a cost): 2 alerts, median +26.3 bps"
        in strategy
    )
    assert "Signal (alert time) to first fill, trend: 2 alerts, median 2.00 s" in strategy
    empty = client.get("/strategies/opts", headers=AUTH).get_data(as_text=True)
    assert "no fill against an alert price yet" in empty


def test_the_alert_page_of_a_plan_without_a_reference_price(client, ctx):
    # a cancel alert's plan, and a "nothing to do" one, store no reference_price
    with ctx.sessions.begin() as session:
        session.add(Alert(id="01JSLIPCANCEL0000000000000", status="cancelled", ticker="AAPL", action="cancel",
                          plan={"kind": "cancel", "cancelled": ["tv2ib:01JX:entry"]}))  # fmt: skip
    answer = client.get("/alerts/01JSLIPCANCEL0000000000000", headers=AUTH)
    assert answer.status_code == 200 and "Reference price <b>—</b>" in answer.get_data(as_text=True)


T = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def pnl(trade: str, minutes: float, realized: str | None, fee: str = "1", strategy: str = "s",
        currency: str | None = "USD", at: datetime = T) -> PnlFill:  # fmt: skip
    return PnlFill(trade, strategy, at + timedelta(minutes=minutes), None if realized is None else Decimal(realized),
                   Decimal(fee), currency)  # fmt: skip


def test_profit_figures():
    fills = [
        pnl("a", 0, "0"),  # an opening: realizes nothing
        pnl("a", 5, "30"),  # +30: a win
        pnl("b", 10, "0", strategy="t"),
        pnl("b", 20, "-10", strategy="t"),  # a loss
        pnl("c", 30, "-15", strategy="t"),  # another: the drawdown from +30 goes to +5
        pnl("d", 40, "20"),  # back up
        pnl("e", 50, "100", currency="EUR"),  # never added to the dollars
    ]
    doc = profit.profit_of(fills)
    (usd,) = [c for c in doc["currencies"] if c["currency"] == "USD"]
    assert usd["trades"] == 4 and usd["wins"] == 2 and usd["losses"] == 2 and usd["win_rate"] == 0.5
    assert usd["realized_pnl"] == 25 and usd["commissions"] == 6 and usd["fills"] == 6
    assert usd["gross_profit"] == 50 and usd["gross_loss"] == 25 and usd["profit_factor"] == 2
    assert usd["avg_trade"] == 6.25 and usd["best_trade"] == 30 and usd["worst_trade"] == -15
    assert usd["max_drawdown"] == 25 and usd["best_strategy"] == "s" and usd["best_strategy_pnl"] == 50
    (eur,) = [c for c in doc["currencies"] if c["currency"] == "EUR"]
    assert eur["trades"] == 1 and eur["profit_factor"] is None and eur["max_drawdown"] == 0
    assert doc["first_fill"] == T.isoformat() and doc["since"] is None
    assert profit.profit_of([]) == {"since": None, "first_fill": None, "last_fill": None, "currencies": []}


def test_daily_figures():
    fills = [
        pnl("a", 0, "0", at=T - timedelta(days=1)),
        pnl("a", 5, "12.5", at=T - timedelta(days=1)),
        pnl("b", 0, "-2", fee="0.5"),
        pnl("c", 1, None, currency=None),  # its commission report has not come yet
    ]
    days = profit.daily_of(fills, date(2026, 11, 20), 3)
    assert [d["date"] for d in days] == ["2026-11-20", "2026-11-19", "2026-11-18"]
    assert days[0]["currencies"]["USD"] == {"realized_pnl": -2, "commissions": 0.5, "fills": 1, "trades": 1}
    assert days[0]["currencies"]["?"]["fills"] == 1
    assert days[1]["currencies"] == {"USD": {"realized_pnl": 12.5, "commissions": 2, "fills": 2, "trades": 1}}
    assert days[2]["currencies"] == {}


def test_profit_and_daily_from_the_database(ctx):
    seed_executions(ctx.sessions)
    doc = profit.profit(ctx.sessions)
    [usd] = doc["currencies"]
    assert usd["trades"] == 2 and usd["wins"] == 1 and usd["realized_pnl"] == pytest.approx(1.7)
    assert usd["best_strategy"] == "trend" and usd["fills"] == 6
    today = profit.daily(ctx.sessions, days=2)
    assert len(today) == 2 and sum(d["currencies"].get("USD", {}).get("fills", 0) for d in today) == 6


def test_profit_and_daily_over_the_api(client, ctx):
    """Telegram's /profit and /daily, for scripts: the same figures at /api/profit and /api/daily."""
    seed_executions(ctx.sessions)
    [usd] = client.get("/api/profit", headers=AUTH).get_json()["currencies"]
    assert usd["trades"] == 2 and usd["wins"] == 1 and usd["realized_pnl"] == pytest.approx(1.7)
    days = client.get("/api/daily?days=2", headers=AUTH).get_json()["days"]
    assert len(days) == 2 and sum(d["currencies"].get("USD", {}).get("fills", 0) for d in days) == 6
    assert client.get("/api/daily?days=x", headers=AUTH).status_code == 400
    assert client.get("/api/profit").status_code == 401
