"""Dashboard pictures, alert search and pages, the strategy page (real app, SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from test_dashboard import TOKEN

from app import analytics
from core.models import Alert, Fill, Order

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _alert_id(n: int) -> str:
    return f"01JINSIGHTS{n:015d}"


def seed_trades(ctx, now: datetime) -> None:
    """breakout: a win (+100, fee 2) and a loss (-40, fee 2); meanrev: one open entry (fee 1).

    Latencies (receipt to first order): 0.03 s, 0.2 s, 1.5 s.
    """
    rows = [
        # n, strategy, ticker, status, realized pnl of the exit fill, latency
        (1, "breakout", "AAPL", "filled", Decimal(100), 0.03),
        (2, "breakout", "MSFT", "filled", Decimal(-40), 0.2),
        (3, "meanrev", "AAPL", "submitted", None, 1.5),
    ]
    with ctx.sessions.begin() as s:
        for n, strategy, ticker, status, pnl, latency in rows:
            received = now - timedelta(
                seconds=30 - 5 * n
            )  # seconds, not minutes: "today" even just after midnight
            s.add(
                Alert(
                    id=_alert_id(n),
                    status=status,
                    strategy=strategy,
                    ticker=ticker,
                    action="buy",
                    received_at=received,
                )
            )
            s.flush()
            order = Order(
                alert_id=_alert_id(n),
                leg="entry",
                order_ref=f"tv2ib:{_alert_id(n)}:entry",
                action="BUY",
                order_type="MKT",
                quantity=Decimal(1),
                status="Filled",
                created_at=received + timedelta(seconds=latency),
            )
            s.add(order)
            s.flush()
            fills = [("entry", "BOT", Decimal(0), Decimal(1))]
            if pnl is not None:
                fills.append(("exit", "SLD", pnl, Decimal(1)))
            for index, (leg, side, realized, fee) in enumerate(fills):
                s.add(
                    Fill(
                        exec_id=f"exec-{n}-{index}",
                        alert_id=_alert_id(n),
                        order_id=order.id,
                        leg=leg,
                        side=side,
                        price=Decimal(100),
                        quantity=Decimal(1),
                        commission=fee,
                        realized_pnl=realized,
                        time=received + timedelta(seconds=1 + index),
                    )
                )
        for n in range(4, 4 + 55):  # older alerts without strategy, for pagination
            s.add(
                Alert(
                    id=f"01JINSIGHTR{n:015d}",
                    status="invalid",
                    ticker="SPY",
                    received_at=now - timedelta(days=2),
                )
            )


def test_strategy_figures_pnl_curve_and_latencies(ctx):
    now = datetime.now(UTC)
    seed_trades(ctx, now)
    stats = {s["strategy"]: s for s in analytics.strategy_stats(ctx.sessions)}
    assert stats["breakout"] | {} == {
        "strategy": "breakout",
        "alerts": 2,
        "filled": 2,
        "trades": 2,
        "wins": 1,
        "win_rate": 0.5,
        "pnl": 56.0,  # 100 - 40 - 4 fees
    }
    assert (
        stats["meanrev"]["trades"] == 0
        and stats["meanrev"]["win_rate"] is None
        and stats["meanrev"]["pnl"] == -1.0
    )
    assert stats["(none)"]["alerts"] == 55
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    curve = analytics.pnl_curve(ctx.sessions, start, end)
    assert [v for _, v in curve] == [-1.0, 98.0, 97.0, 56.0, 55.0]
    assert [v for _, v in analytics.pnl_curve(ctx.sessions, start, end, strategy="meanrev")] == [-1.0]
    assert sorted(round(x, 3) for x in analytics.latencies(ctx.sessions, start, end)) == [0.03, 0.2, 1.5]


def test_home_draws_the_days_pictures(client, ctx):
    seed_trades(ctx, datetime.now(UTC))
    page = client.get("/", headers=AUTH).get_data(as_text=True)
    for figure in ("chart-pnl", "chart-strategies", "chart-latency"):
        assert re.search(rf'id="{figure}"><figcaption>[^<]*</figcaption><svg class="chart', page), figure
    # per-strategy table with win rate, linking to the strategy page
    assert '<a href="/strategies/breakout">breakout</a>' in page and ">50%<" in page and ">56.00<" in page
    assert 'aria-label="Webhook to order on the wire today: 3 alerts, median 200 ms"' in page


def test_alert_search_and_pages(client, ctx):
    seed_trades(ctx, datetime.now(UTC))

    def ids(query: str) -> list[str]:
        page = client.get("/" + query, headers=AUTH).get_data(as_text=True)
        return re.findall(r'data-alert="([0-9A-Z]+)"', page)

    assert ids("?ticker=aapl") == [_alert_id(3), _alert_id(1)]  # case-insensitive, newest first
    assert ids("?strategy=breakout&ticker=AAPL") == [_alert_id(1)]
    assert ids("?status=submitted") == [_alert_id(3)]
    recent = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert set(ids(f"?since={recent}")) == {_alert_id(1), _alert_id(2), _alert_id(3)}
    assert len(ids(f"?until={recent}")) == 50
    assert "55 alerts match" in client.get(f"/?until={recent}", headers=AUTH).get_data(as_text=True)
    first = client.get("/", headers=AUTH).get_data(as_text=True)
    assert "58 alerts; page 1 of 2" in first and len(re.findall("data-alert=", first)) == 50
    assert 'href="/?page=2" rel="next"' in first and 'rel="prev"' not in first
    second = client.get("/?page=2", headers=AUTH).get_data(as_text=True)
    assert len(re.findall("data-alert=", second)) == 8 and 'href="/?page=1" rel="prev"' in second
    filtered = client.get("/?status=invalid&page=1", headers=AUTH).get_data(as_text=True)
    assert "55 alerts match; page 1 of 2" in filtered and 'href="/?status=invalid&amp;page=2"' in filtered
    odd = client.get("/?since=yesterday&status=bogus", headers=AUTH).get_data(as_text=True)
    assert (
        "since: &#39;yesterday&#39; is not a date and time" in odd
        and "unknown status &#39;bogus&#39; ignored" in odd
    )
    assert "No alert matches this search" in client.get("/?ticker=NOPE", headers=AUTH).get_data(as_text=True)


def test_strategy_page(client, ctx):
    seed_trades(ctx, datetime.now(UTC))
    answer = client.get("/strategies/breakout", headers=AUTH)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "<h1>Strategy" in page
    assert "50%" in page and "(1 of 2)" in page and "<b>56.00</b>" in page
    assert re.findall(r'data-alert="([0-9A-Z]+)"', page) == [_alert_id(2), _alert_id(1)]
    assert 'class="chart chart-line"' in page and 'class="chart chart-hist"' in page
    assert '<select name="strategy">' not in page  # the strategy is fixed on its own page
    only_aapl = client.get("/strategies/breakout?ticker=AAPL", headers=AUTH).get_data(as_text=True)
    assert re.findall(r'data-alert="([0-9A-Z]+)"', only_aapl) == [_alert_id(1)]
    assert client.get("/strategies/nosuch", headers=AUTH).status_code == 404
    assert client.get("/strategies/breakout").status_code == 401


def test_alert_page_has_its_timeline_chart(client, ctx):
    seed_trades(ctx, datetime.now(UTC))
    page = client.get(f"/alerts/{_alert_id(1)}", headers=AUTH).get_data(as_text=True)
    assert 'id="alert-timeline"><svg class="chart chart-bars"' in page  # empty: no audit rows seeded
    assert "no steps recorded yet" in page and '<a href="/strategies/breakout">breakout</a>' in page
