"""The risk rules as pure checks (worker/risk/checks.py): each key tripped once, its reason read;
the exchange calendar (worker/risk/calendar.py); the trading day's boundary (worker/risk/state.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.risk_file import RiskRules
from worker.risk.calendar import calendar_name, session_at
from worker.risk.checks import DailyPnl, OpeningOrder, RiskContext, Session, evaluate, first_failure, money
from worker.risk.state import day_bounds, trading_day

D = Decimal

ORDER = OpeningOrder(
    ticker="AAPL", symbol="AAPL", local_symbol="AAPL", side="BUY", quantity=D(300), price=D(190),
    price_source="limit price", multiplier=D(1), currency="USD", legs=3, position_before=D(0),
    position_after=D(300),
)  # fmt: skip
CTX = RiskContext(
    order=ORDER, account="DU1", other_exposure=D(100000), working_orders=2, working_tv2ib=2,
    orders_last_minute=1, daily=DailyPnl(D(-500), D(-200), False, "2026-11-30 17:00 America/New_York"),
    session=Session("regular", "XNYS", "regular session"), alert_price=D(190), quote=D("190.50"),
    quote_source="IB last price",
)  # fmt: skip
MES = replace(ORDER, ticker="MES1!", symbol="MES", local_symbol="MESZ6", quantity=D(3), price=D(6000),
              multiplier=D(5), position_after=D(3))  # fmt: skip


def rules(source: str = "defaults", **limits) -> RiskRules:
    return RiskRules(**limits, sources={key: source for key in limits})


def refusal(r: RiskRules, ctx: RiskContext = CTX) -> str | None:
    failed = first_failure(evaluate(r, ctx))
    return failed.message if failed else None


# rule set, context changes, the refusal (exact)
TRIPS = [
    (
        rules('strategy "trend"', max_order_notional=D(50000)),
        {},
        'risk: max_order_notional 50,000 USD (strategy "trend") exceeded: 300 AAPL × 190.00 = 57,000 USD',
    ),
    (
        rules(max_order_notional=D(80000)),
        {"order": MES},
        "risk: max_order_notional 80,000 USD (defaults) exceeded: 3 MESZ6 × 6,000.00 × 5 = 90,000 USD",
    ),
    (
        rules('account "DU1"', max_order_quantity=D(250)),
        {},
        'risk: max_order_quantity 250 (account "DU1") exceeded: BUY 300 AAPL',
    ),
    (
        rules(max_position_quantity=D(400)),
        {"order": replace(ORDER, position_before=D(200), position_after=D(500))},
        "risk: max_position_quantity 400 (defaults) exceeded: AAPL would be long 500 after this order (now 200)",
    ),
    (
        rules(max_position_notional=D(50000)),
        {},
        "risk: max_position_notional 50,000 USD (defaults) exceeded: the position after this order, "
        "300 AAPL × 190.00 = 57,000 USD",
    ),
    (
        rules(max_gross_exposure=D(150000)),
        {},
        "risk: max_gross_exposure 150,000 USD (defaults) exceeded: other positions 100,000 + AAPL after this "
        "order 57,000 = 157,000 USD",
    ),
    (
        rules(max_open_orders=4),
        {"working_orders": 3, "working_tv2ib": 2},
        "risk: max_open_orders 4 (defaults) exceeded: 3 working at IB (2 tv2ib, 1 other) + 3 of this alert = 6",
    ),
    (
        rules(max_orders_per_minute=3),
        {"orders_last_minute": 3},
        "risk: max_orders_per_minute 3 (defaults) exceeded: 3 opening order(s) sent for account DU1 in the "
        "last 60 s; this would be 4",
    ),
    (
        rules('account "DU1"', daily_loss_limit=D(2000)),
        {"daily": DailyPnl(D(-1900), D("-250.50"), False, "2026-11-30 17:00 America/New_York")},
        'risk: daily_loss_limit 2,000 USD (account "DU1") reached: entries halted until 2026-11-30 17:00 '
        "America/New_York; today's PnL -2,150.50 USD (realized -1,900 + unrealized -250.50)",
    ),
    (
        rules(daily_loss_limit=D(2000)),
        {"daily": DailyPnl(D(0), D(0), True, "2026-11-30 17:00 America/New_York")},
        "risk: daily_loss_limit 2,000 USD (defaults) reached earlier today: entries halted until 2026-11-30 17:00 "
        "America/New_York; today's PnL 0 USD (realized 0 + unrealized 0)",
    ),
    (
        rules(allow=("MSFT", "NVDA")),
        {},
        "risk: allow list (defaults): AAPL (AAPL at IB) is not on it (MSFT, NVDA)",
    ),
    (
        rules(deny=("AAPL",)),
        {"order": replace(ORDER, ticker="NASDAQ:AAPL")},
        "risk: deny list (defaults): AAPL is on it",
    ),
    (rules(deny=("MESZ6",)), {"order": MES}, "risk: deny list (defaults): MESZ6 is on it"),
    (
        rules(trading_hours="regular"),
        {"session": Session("extended", "XNYS", "pre-market, Mon 08:15")},
        "risk: trading_hours regular (defaults): AAPL is in extended hours now (XNYS: pre-market, Mon 08:15)",
    ),
    (
        rules(trading_hours="extended"),
        {"session": Session("closed", "XNYS", "weekend, Sat")},
        "risk: trading_hours extended (defaults): AAPL is closed now (XNYS: weekend, Sat)",
    ),
    (
        rules(trading_hours="regular"),
        {"session": Session("unknown", "", "no calendar for STK on KSE")},
        "risk: trading_hours regular (defaults): cannot tell whether AAPL trades now: no calendar for STK on KSE",
    ),
    (  # an alert's ignoreTradingWindows, not allowed: refused whatever the hour, naming both
        rules(trading_hours="regular"),
        {"ignore_trading_windows": True},
        "risk: trading_hours regular (defaults): the alert's ignoreTradingWindows: true is not allowed: the risk "
        "file does not set allow_ignore_trading_windows: true (set it in the strategy's section or in defaults "
        "to let its alerts skip trading_hours)",
    ),
    (
        RiskRules(
            trading_hours="extended",
            allow_ignore_trading_windows=False,
            sources={"trading_hours": "defaults", "allow_ignore_trading_windows": 'account "DU1"'},
        ),
        {"ignore_trading_windows": True, "session": Session("closed", "XNYS", "weekend, Sat")},
        "risk: trading_hours extended (defaults): the alert's ignoreTradingWindows: true is not allowed: "
        'allow_ignore_trading_windows is false (account "DU1") (set it in the strategy\'s section or in defaults '
        "to let its alerts skip trading_hours)",
    ),  # fmt: skip
    (
        rules(max_price_deviation_percent=D(1)),
        {"quote": D(200)},
        "risk: max_price_deviation_percent 1.00% (defaults) exceeded: the alert's price 190.00 is 5.00% from IB's "
        "IB last price 200.00 for AAPL (a stale alert, or another symbol?)",
    ),
    (
        rules(max_price_deviation_percent=D(1)),
        {"quote": None},
        "risk: max_price_deviation_percent 1.00% (defaults): cannot be checked: no quote from IB for AAPL",
    ),
    (
        rules(max_order_notional=D(1000)),
        {"order": replace(ORDER, price=None, price_source="")},
        "risk: max_order_notional 1,000 USD (defaults): cannot be checked: no price for AAPL "
        "(no limit price and no market data)",
    ),
]


@pytest.mark.parametrize(("rule_set", "changes", "expected"), TRIPS)
def test_each_rule_trips_with_its_numbers(rule_set, changes, expected):
    assert refusal(rule_set, replace(CTX, **changes)) == expected


def test_within_every_limit_nothing_is_refused_and_every_check_is_recorded():
    everything = rules(
        max_order_quantity=D(300), max_order_notional=D(57000), max_position_quantity=D(300),
        max_position_notional=D(57000), max_gross_exposure=D(157000), max_open_orders=5,
        max_orders_per_minute=2, daily_loss_limit=D(701), allow=("AAPL",), deny=("TSLA",),
        trading_hours="regular", max_price_deviation_percent=D(1),
    )  # fmt: skip
    checks = evaluate(everything, CTX)
    assert first_failure(checks) is None
    assert {c.rule for c in checks} == {
        "allow", "trading_hours", "daily_loss_limit", "max_price_deviation_percent", "max_order_quantity",
        "max_order_notional", "max_position_quantity", "max_position_notional", "max_gross_exposure",
        "max_open_orders", "max_orders_per_minute",
    }  # fmt: skip
    notional = next(c for c in checks if c.rule == "max_order_notional")
    assert notional.to_json() == {"rule": "max_order_notional", "limit": "57000", "value": "57000",
                                  "passed": True, "source": "defaults"}  # fmt: skip


def test_a_passing_check_formats_no_number_however_large_the_limit():
    """A limit is formatted only for a refusal: 1e5000 (which the loader now refuses) once failed
    every alert, formatting it needs more digits than Python converts (issue 16, item 5)."""
    huge = D("1e5000")
    everything = rules(
        max_order_quantity=huge, max_order_notional=huge, max_position_quantity=huge, max_position_notional=huge,
        max_gross_exposure=huge, daily_loss_limit=huge, max_price_deviation_percent=D(100),
    )  # fmt: skip
    checks = evaluate(everything, CTX)
    assert first_failure(checks) is None and all(c.message == "" for c in checks)
    assert len(checks) == 7


def test_each_sections_allow_list_must_name_the_symbol_and_the_refusal_names_the_section():
    both = RiskRules(
        allow=("AAPL",), allow_layers=(("defaults", ("AAPL", "MSFT")), ('account "DU1"', ("MSFT",)))
    )
    checks = evaluate(both, CTX)
    assert [(c.rule, c.source, c.passed) for c in checks] == [
        ("allow", "defaults", True), ("allow", 'account "DU1"', False)
    ]  # fmt: skip
    assert checks[-1].message == 'risk: allow list (account "DU1"): AAPL (AAPL at IB) is not on it (MSFT)'
    prefixed = replace(both, allow_layers=(("defaults", ("AAPL",)), ('account "DU1"', ("NASDAQ:AAPL",))))
    assert refusal(prefixed, replace(CTX, order=replace(ORDER, ticker="NASDAQ:AAPL"))) is None


def test_no_alert_price_skips_the_deviation_rule_and_says_so():
    checks = evaluate(rules(max_price_deviation_percent=D(1)), replace(CTX, alert_price=None, quote=None))
    assert [(c.rule, c.passed) for c in checks] == [("max_price_deviation_percent", None)]
    assert "skipped: the alert has no price" in checks[0].message


@pytest.mark.parametrize(
    ("session", "ignore", "allowed", "passed", "message"),
    [
        # allowed: trading_hours is not applied, at any hour, and the check says why
        (Session("closed", "XNYS", "weekend, Sat"), True, True, True,
         'not applied: the alert\'s ignoreTradingWindows, allowed by allow_ignore_trading_windows (strategy "night")'),
        (Session("unknown", "", "no calendar for STK on KSE"), True, True, True,
         'not applied: the alert\'s ignoreTradingWindows, allowed by allow_ignore_trading_windows (strategy "night")'),
        # allowed but not asked: the rule holds as always
        (Session("closed", "XNYS", "weekend, Sat"), False, True, False,
         "risk: trading_hours regular (defaults): AAPL is closed now (XNYS: weekend, Sat)"),
        (Session("regular", "XNYS", "regular session"), False, True, True, ""),
        # asked, not allowed: refused even inside the session (said on the first alert, not at night)
        (Session("regular", "XNYS", "regular session"), True, False, False,
         "risk: trading_hours regular (defaults): the alert's ignoreTradingWindows: true is not allowed"),
    ],
)  # fmt: skip
def test_ignore_trading_windows_is_honoured_only_where_the_risk_file_allows_it(
    session, ignore, allowed, passed, message
):
    sources = {"trading_hours": "defaults", "allow_ignore_trading_windows": 'strategy "night"'}
    rule_set = RiskRules(trading_hours="regular", allow_ignore_trading_windows=allowed, sources=sources)
    (check,) = evaluate(rule_set, replace(CTX, session=session, ignore_trading_windows=ignore))
    assert (check.rule, check.passed) == ("trading_hours", passed)
    assert check.message.startswith(message) and (message or not check.message)


def test_ignore_trading_windows_without_a_trading_hours_rule_changes_nothing():
    assert evaluate(RiskRules(), replace(CTX, ignore_trading_windows=True)) == []


def test_no_rules_no_checks_and_forex_passes_any_hours_rule():
    assert evaluate(RiskRules(), CTX) == []
    fx = replace(CTX, session=Session("always", "", "CASH trades around the clock (no exchange calendar)"))
    assert refusal(rules(trading_hours="regular"), fx) is None


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False))
def test_money_keeps_its_value_with_separators(value):
    text = money(value)
    assert Decimal(text.replace(",", "")) == value


# ---------------------------------------------------------------------- the calendar


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("moment", "state", "word"),
    [
        ("2026-11-28T12:00:00-05:00", "closed", "weekend"),  # a Saturday
        ("2026-12-25T11:00:00-05:00", "closed", "holiday"),  # Christmas, a weekday
        ("2026-11-26T11:00:00-05:00", "closed", "holiday"),  # Thanksgiving
        ("2026-11-30T08:15:00-05:00", "extended", "pre-market"),
        ("2026-11-30T10:00:00-05:00", "regular", "regular"),
        ("2026-11-30T17:30:00-05:00", "extended", "after-hours"),
        ("2026-11-30T21:00:00-05:00", "closed", "overnight"),
        (
            "2026-11-27T14:00:00-05:00",
            "extended",
            "after-hours",
        ),  # the day after Thanksgiving closes at 13:00
    ],
)
def test_us_stock_sessions_from_the_calendar(moment, state, word):
    session = session_at("STK", "SMART", at(moment), primary_exchange="NASDAQ", currency="USD")
    assert (session.state, session.calendar) == (state, "XNYS")
    assert word in session.detail


def test_pre_market_is_refused_under_regular_and_allowed_under_extended():
    pre = session_at("STK", "SMART", at("2026-11-30T08:15:00-05:00"), primary_exchange="NYSE", currency="USD")
    ctx = replace(CTX, session=pre)
    assert "AAPL is in extended hours now (XNYS: pre-market" in (
        refusal(rules(trading_hours="regular"), ctx) or ""
    )
    assert refusal(rules(trading_hours="extended"), ctx) is None
    saturday = session_at("STK", "SMART", at("2026-11-28T10:00:00-05:00"), currency="USD")
    assert "closed now (XNYS: weekend" in (
        refusal(rules(trading_hours="extended"), replace(CTX, session=saturday)) or ""
    )


def test_mapping_futures_forex_and_unknown():
    assert calendar_name("FUT", "CME") == "CMES"
    assert calendar_name("STK", "SMART", "LSE", "GBP") == "XLON"
    assert calendar_name("CASH", "IDEALPRO") == ""
    assert calendar_name("STK", "SMART", "KSE", "KRW") is None
    assert session_at("CASH", "IDEALPRO", at("2026-11-28T12:00:00+00:00")).state == "always"
    assert (
        session_at("STK", "SMART", at("2026-11-30T12:00:00+00:00"), primary_exchange="KSE").state == "unknown"
    )
    sunday_night = session_at("FUT", "CME", at("2026-11-29T19:00:00-05:00"))  # Globex reopened at 17:00 CT
    assert sunday_night.state == "regular" and sunday_night.calendar == "CMES"
    assert session_at("FUT", "CME", at("2026-11-28T12:00:00-05:00")).state == "closed"


# ---------------------------------------------------------------------- the trading day


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        ("2026-11-30T16:59:00-05:00", "2026-11-30"),
        ("2026-11-30T17:00:00-05:00", "2026-12-01"),
        ("2026-11-30T23:30:00+00:00", "2026-12-01"),  # 18:30 New York
        ("2026-07-01T20:59:00+00:00", "2026-07-01"),  # 16:59 EDT
        ("2026-07-01T21:00:00+00:00", "2026-07-02"),  # 17:00 EDT
    ],
)
def test_the_trading_day_ends_at_17_new_york(moment, day):
    assert trading_day(at(moment)) == date.fromisoformat(day)


def test_day_bounds():
    start, end = day_bounds(date(2026, 11, 30))
    assert start == datetime(2026, 11, 29, 22, 0, tzinfo=UTC) and end == datetime(
        2026, 11, 30, 22, 0, tzinfo=UTC
    )


@given(
    quantity=st.integers(min_value=1, max_value=10**6),
    cents=st.integers(min_value=1, max_value=10**7),
    limit=st.integers(min_value=1, max_value=10**9),
    multiplier=st.sampled_from([1, 5, 50, 100]),
)
def test_the_notional_rule_refuses_exactly_above_the_limit(quantity, cents, limit, multiplier):
    order = replace(ORDER, quantity=D(quantity), price=D(cents) / 100, multiplier=D(multiplier))
    notional = D(quantity) * D(cents) / 100 * multiplier
    message = refusal(rules(max_order_notional=D(limit)), replace(CTX, order=order))
    assert (message is not None) == (notional > limit)
    if message:
        assert message.endswith(f"= {money(notional)} USD")
