"""Options from the underlying's alert, as tables (worker/decision/options.py, option_choice.py,
option_prices.py): the direction table, the request's field errors, the expiry, each strike rule on
a grid of underlying prices, the delta choice, every refusal, and the option's prices. Pure logic:
no IB, no simulator (the worker does not call these rules yet)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.payload import StopLoss, TakeProfit
from worker.decision.option_choice import (
    OptionChain,
    OptionChoice,
    OptionQuote,
    OptionRefusal,
    choose,
    pick_expiry,
)
from worker.decision.option_prices import marketable_limit, premium_exits, spread_refusal, step, tick_grid
from worker.decision.options import (
    DIRECTIONS,
    Expiration,
    OptionRequest,
    direction_table,
    field_errors,
    parse_option_request,
)

D = Decimal
TODAY = date(2026, 7, 14)  # a Tuesday
ROOT = Path(__file__).resolve().parents[2]


def _range(low: str, high: str, step_by: str) -> tuple[Decimal, ...]:
    strikes, strike = [], D(low)
    while strike <= D(high):
        strikes.append(strike)
        strike += D(step_by)
    return tuple(strikes)


WEEKLY = _range("175", "200", "5")
MONTHLY = _range("170", "210", "2.5")
# Fridays: an expired one, five weeklies, three monthlies (third Fridays), a LEAP-like January
STRIKES = {
    date(2026, 7, 10): WEEKLY,
    **{date(2026, 7, 17 + 7 * n): WEEKLY for n in range(3)},
    date(2026, 8, 7): WEEKLY,
    date(2026, 8, 14): WEEKLY,
    date(2026, 8, 21): MONTHLY,
    date(2026, 9, 18): MONTHLY,
    date(2026, 10, 16): MONTHLY,
    date(2027, 1, 15): _range("150", "250", "10"),
}
CHAIN = OptionChain("AAPL", STRIKES)
AUG = date(2026, 8, 21)
DELTAS = ("0.95", "0.93", "0.90", "0.86", "0.80", "0.72", "0.63", "0.53", "0.44", "0.35", "0.27", "0.20", "0.15",
          "0.10", "0.07", "0.05", "0.03")  # fmt: skip
CALL_DELTAS = {strike: D(delta) for strike, delta in zip(MONTHLY, DELTAS, strict=True)}


def request(**fields: Any) -> OptionRequest:
    parsed, errors = parse_option_request(fields)
    assert not errors and parsed is not None, errors
    return parsed


def greeks(skip: tuple[str, ...] = ()) -> OptionChain:
    quotes = {}
    for strike, delta in CALL_DELTAS.items():
        if strike not in {D(text) for text in skip}:
            quotes[(AUG, strike, "C")] = OptionQuote(delta=delta)
            quotes[(AUG, strike, "P")] = OptionQuote(delta=delta - 1)
    return OptionChain("AAPL", STRIKES, quotes=quotes)


def test_the_chain_is_fridays():
    assert all(expiry.weekday() == 4 for expiry in STRIKES)


# --- direction ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option_type", "signal", "right", "side"),
    [
        ("call", "buy", "C", "BUY"),
        ("call", "sell", "C", "SELL"),
        ("put", "buy", "P", "SELL"),  # inverted: a bullish buy sells puts to open
        ("put", "sell", "P", "BUY"),  # inverted: a bearish sell buys puts to open
        ("both", "buy", "C", "BUY"),
        ("both", "sell", "P", "BUY"),
    ],
)
def test_direction_table(option_type, signal, right, side):
    choice = choose(
        request(optionType=option_type, expiration="2026-08-21"), CHAIN, D("187.40"), TODAY, signal
    )
    assert isinstance(choice, OptionChoice)
    assert (choice.right, choice.side) == (right, side)
    assert (
        DIRECTIONS[(option_type, signal)].rule[0].upper() + DIRECTIONS[(option_type, signal)].rule[1:]
        in choice.why
    )


def test_docs_hold_the_direction_table():
    assert direction_table() in (ROOT / "docs" / "contracts.md").read_text()


# --- the request's fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"optionType": "CALL", "expiration": "+6 months"}, {"option_type": "call", "expiration": Expiration(amount=6, unit="months")}),
        ({"optionType": "put", "expiration": "2026-03-20", "strikePrice": "187.5"},
         {"expiration": Expiration(on=date(2026, 3, 20)), "strike_price": D("187.5")}),
        ({"optionType": "both", "dteMin": "20", "dteMax": 45, "delta": -0.3}, {"dte_min": 20, "dte_max": 45, "delta": D("-0.3")}),
        ({"optionType": "call", "expiration": "+1 week", "intrinsicValue": "ITM", "strikesAway": 2, "strikeCount": 10},
         {"intrinsic_value": "itm", "strikes_away": 2, "strike_count": 10, "expiration": Expiration(amount=1, unit="weeks")}),
        ({"optionType": "call", "expiration": "30 days"}, {"expiration": Expiration(amount=30, unit="days")}),
        ({"optionType": "call", "expiration": "+1 Year", "strikePrice": None}, {"expiration": Expiration(amount=1, unit="years"), "strike_price": None}),
        ({"optionType": "call", "intrinsicValue": "otm", "dteMax": 0}, {"strikes_away": None, "dte_max": 0}),
    ],
)  # fmt: skip
def test_accepted_requests(raw, expected):
    parsed = request(**raw)
    for attr, value in expected.items():
        assert getattr(parsed, attr) == value
    assert OptionRequest.from_json(parsed.to_json()) == parsed


def test_a_stock_alert_has_no_option_request():
    assert parse_option_request({"ticker": "AAPL", "action": "buy", "strikePrice": None}) == (None, ())


BOTH_DAYS = {"optionType": "call", "expiration": "+1 day"}
EXPIRATION_FORMS = "must be a date (2026-03-20) or a time from today (+30 days, +2 weeks, +6 months, +1 year)"


@pytest.mark.parametrize(
    ("raw", "errors"),
    [
        ({**BOTH_DAYS, "optionType": "calls"}, {"optionType": ["must be one of call, put, both, got 'calls'"]}),
        ({**BOTH_DAYS, "expiration": "next month"}, {"expiration": [f"{EXPIRATION_FORMS}, got 'next month'"]}),
        ({**BOTH_DAYS, "expiration": 5}, {"expiration": [f"{EXPIRATION_FORMS}, got 5"]}),
        ({**BOTH_DAYS, "expiration": "2026-02-30"}, {"expiration": ["is not a calendar date: '2026-02-30'"]}),
        ({**BOTH_DAYS, "expiration": "+121 months"}, {"expiration": ["is too far out: at most +120 months"]}),
        ({**BOTH_DAYS, "intrinsicValue": "atm"}, {"intrinsicValue": ["must be one of itm, otm, got 'atm'"]}),
        ({**BOTH_DAYS, "intrinsicValue": "otm", "strikesAway": 0}, {"strikesAway": ["must be a whole number from 1 to 50, got 0"]}),
        ({**BOTH_DAYS, "intrinsicValue": "otm", "strikesAway": 1.5}, {"strikesAway": ["must be a whole number from 1 to 50, got 1.5"]}),
        ({**BOTH_DAYS, "strikeCount": 101}, {"strikeCount": ["must be a whole number from 1 to 100, got 101"]}),
        ({**BOTH_DAYS, "strikePrice": 0}, {"strikePrice": ["must be above 0, got 0"]}),
        ({**BOTH_DAYS, "strikePrice": True}, {"strikePrice": ["must be a number, got True"]}),
        ({**BOTH_DAYS, "strikePrice": "1e999"}, {"strikePrice": ["must be a finite number of at most 1,000,000,000,000"]}),
        ({**BOTH_DAYS, "delta": 1}, {"delta": ["must be above 0 and below 1 in size (0.30, or -0.30 for a put), got 1"]}),
        ({**BOTH_DAYS, "delta": "-0"}, {"delta": ["must be above 0 and below 1 in size (0.30, or -0.30 for a put), got '-0'"]}),
        ({**BOTH_DAYS, "delta": "abc"}, {"delta": ["must be a number, got 'abc'"]}),
        ({**BOTH_DAYS, "dteMin": -1}, {"dteMin": ["must be a whole number from 0 to 3660, got -1"]}),
        ({**BOTH_DAYS, "dteMin": 50, "dteMax": 30}, {"dteMin": ["must not be above dteMax (50 > 30)"]}),
        ({**BOTH_DAYS, "strikePrice": 190, "intrinsicValue": "itm", "strikesAway": 2},
         {"strikePrice": ["names the strike itself; leave out strikesAway and intrinsicValue"]}),
        ({**BOTH_DAYS, "delta": 0.3, "intrinsicValue": "otm"}, {"delta": ["picks the strike by itself; leave out intrinsicValue"]}),
        ({**BOTH_DAYS, "strikesAway": 2},
         {"strikesAway": ["needs intrinsicValue (itm or otm): the side of the money to count on"]}),
        ({**BOTH_DAYS, "intrinsicValue": "itm", "strikesAway": 6, "strikeCount": 10},
         {"strikesAway": ["must be at most half of strikeCount (6 > 10 // 2): strikeCount 10 scans the "
                          "at-the-money strike and 5 on each side of it"]}),
        ({"intrinsicValue": "otm", "strikesAway": 2}, {"optionType": ["is needed with intrinsicValue, strikesAway: call, put or both"]}),
        ({"optionType": "put"}, {"expiration": ["is needed with optionType: a date (2026-03-20) or a time from today "
                                                "(+30 days, +2 weeks, +6 months), or a dteMin/dteMax window of days to expiry"]}),
    ],
)  # fmt: skip
def test_field_errors(raw, errors):
    parsed, found = parse_option_request(raw)
    assert parsed is None
    assert field_errors(found) == errors
    assert all(str(error) == f"{error.field} {error.reason}" for error in found)


# --- expiry --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "text", "target"),
    [
        (date(2026, 1, 31), "+1 month", date(2026, 2, 28)),
        (date(2028, 1, 31), "+1 month", date(2028, 2, 29)),
        (date(2026, 3, 31), "+6 months", date(2026, 9, 30)),
        (date(2026, 12, 15), "+1 month", date(2027, 1, 15)),
        (date(2026, 12, 31), "+2 months", date(2027, 2, 28)),
        (date(2028, 2, 29), "+1 year", date(2029, 2, 28)),
        (date(2026, 7, 28), "+30 days", date(2026, 8, 27)),
        (date(2026, 12, 25), "+2 weeks", date(2027, 1, 8)),
        (date(2026, 12, 25), "2026-03-20", date(2026, 3, 20)),
    ],
)
def test_expiration_target(today, text, target):
    assert request(optionType="call", expiration=text).expiration.target(today) == target


@pytest.mark.parametrize(
    ("fields", "expiry", "why"),
    [
        ({"expiration": "+1 month"}, date(2026, 8, 14), "the first listed on or after 2026-08-14 (expiration +1 month)"),
        ({"expiration": "+2 weeks"}, date(2026, 7, 31), "the first listed on or after 2026-07-28 (expiration +2 weeks)"),
        ({"expiration": "+30 days"}, date(2026, 8, 14), "the first listed on or after 2026-08-13 (expiration +30 days)"),
        ({"expiration": "+32 days"}, date(2026, 8, 21), "on or after 2026-08-15"),  # a Saturday
        ({"expiration": "2026-08-15"}, date(2026, 8, 21), "on or after 2026-08-15 (expiration 2026-08-15)"),
        ({"expiration": "2026-08-21"}, date(2026, 8, 21), "expiry 2026-08-21, 38 days out"),
        ({"expiration": "+0 days"}, date(2026, 7, 17), "expiry 2026-07-17, 3 days out"),  # 07-10 has expired
        ({"expiration": "+2 months"}, date(2026, 9, 18), "on or after 2026-09-14 (expiration +2 months)"),
        ({"expiration": "+6 months"}, date(2027, 1, 15), "on or after 2027-01-14 (expiration +6 months)"),
        ({"expiration": "+1 month", "dteMin": 35}, date(2026, 8, 21),
         "on or after 2026-08-14 (expiration +1 month) with at least 35 days to expiry (dteMin)"),
        ({"dteMin": 20, "dteMax": 45}, date(2026, 8, 7), "expiry 2026-08-07, 24 days out: the first listed with 20 to 45 days"),
        ({"dteMax": 5}, date(2026, 7, 17), "with at most 5 days to expiry (dteMax)"),
        ({"dteMin": 60}, date(2026, 9, 18), "66 days out: the first listed with at least 60 days to expiry (dteMin)"),
    ],
)  # fmt: skip
def test_expiry(fields, expiry, why):
    picked = pick_expiry(request(optionType="call", **fields), "AAPL", list(STRIKES), TODAY)
    assert not isinstance(picked, OptionRefusal), picked
    assert picked[0] == expiry
    assert why in picked[1]


# --- strikes, on a grid of underlying prices ----------------------------------------------------

PRICES = (D("187.40"), D("187.50"), D("188.75"), D("189.99"))  # 188.75: halfway, the lower strike is ATM


@pytest.mark.parametrize(
    ("fields", "signal", "strikes"),
    [
        ({}, "buy", ("187.5", "187.5", "187.5", "190")),  # at the money
        ({"optionType": "put"}, "sell", ("187.5", "187.5", "187.5", "190")),
        ({"intrinsicValue": "otm"}, "buy", ("190", "190", "190", "192.5")),
        ({"intrinsicValue": "otm", "strikesAway": 2}, "buy", ("192.5", "192.5", "192.5", "195")),
        ({"intrinsicValue": "itm"}, "buy", ("185", "185", "185", "187.5")),
        ({"intrinsicValue": "itm", "strikesAway": 3, "strikeCount": 6}, "buy", ("180", "180", "180", "182.5")),
        ({"optionType": "put", "intrinsicValue": "itm"}, "sell", ("190", "190", "190", "192.5")),
        ({"optionType": "put", "intrinsicValue": "otm", "strikesAway": 2}, "buy", ("182.5", "182.5", "182.5", "185")),
        ({"optionType": "both", "intrinsicValue": "otm"}, "sell", ("185", "185", "185", "187.5")),  # a put
        ({"strikePrice": 180}, "buy", ("180", "180", "180", "180")),
    ],
)  # fmt: skip
def test_strike_rules_over_prices(fields, signal, strikes):
    req = request(**{"optionType": "call", "expiration": "2026-08-21", **fields})
    for underlying, strike in zip(PRICES, strikes, strict=True):
        choice = choose(req, CHAIN, underlying, TODAY, signal)
        assert isinstance(choice, OptionChoice), choice
        assert (choice.expiry, choice.strike) == (AUG, D(strike)), underlying
        right_ok = (
            choice.strike > underlying
            if fields.get("intrinsicValue") == "otm"
            else choice.strike < underlying
        )
        if "intrinsicValue" in fields and choice.right == "C":
            assert right_ok  # really out of (in) the money, never the at-the-money strike
        if "intrinsicValue" in fields and choice.right == "P":
            assert not right_ok


def test_the_choice_explains_itself():
    req = request(optionType="call", expiration="+1 month", intrinsicValue="otm", strikesAway=2)
    choice = choose(req, CHAIN, D("187.40"), TODAY, "buy")
    assert isinstance(choice, OptionChoice)
    assert choice.describe() == "AAPL 2026-08-14 call 195"
    assert choice.why == (
        "AAPL at 187.40, at the money 185. Expiry 2026-08-14, 31 days out: the first listed on or after "
        "2026-08-14 (expiration +1 month). Strike 195: the 2nd strike out of the money for a call "
        "(intrinsicValue otm, strikesAway 2), counted from the at-the-money 185: 190, 195. "
        "Buy with optionType call: buy calls to open."
    )
    assert (choice.atm_strike, choice.candidates, choice.rule) == (D(185), (D(190), D(195)), "intrinsicValue")
    assert OptionChoice.from_json(choice.to_json()) == choice


# --- delta ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "signal", "chain", "strike", "said"),
    [
        ({"delta": 0.30}, "buy", greeks(), "195", "its delta 0.270 is the nearest to the delta target 0.3"),
        ({"delta": 0.5}, "buy", greeks(), "187.5", "its delta 0.530"),
        ({"optionType": "put", "delta": -0.30}, "sell", greeks(), "182.5", "its delta -0.280"),
        ({"optionType": "both", "delta": 0.30}, "sell", greeks(), "182.5", "buy puts to open"),  # the sign is ignored
        ({"delta": 0.10}, "buy", greeks(), "200", "among the 11 strikes scanned around the money (175, "),
        ({"delta": 0.10, "strikeCount": 12}, "buy", greeks(), "202.5", "among the 13 strikes scanned"),
        ({"delta": 0.31}, "buy", greeks(), "192.5", "its delta 0.350"),  # a tie with 195: nearer the money
        ({"delta": 0.30}, "buy", greeks(skip=("195",)), "192.5", "; no greeks for 195)"),
    ],
)  # fmt: skip
def test_delta_choice(fields, signal, chain, strike, said):
    req = request(**{"optionType": "call", "expiration": "2026-08-21", **fields})
    choice = choose(req, chain, D("187.40"), TODAY, signal)
    assert isinstance(choice, OptionChoice), choice
    assert (choice.strike, choice.rule) == (D(strike), "delta")
    assert choice.delta == chain.quotes[(AUG, D(strike), choice.right)].delta
    assert said in choice.why


# --- every refusal -------------------------------------------------------------------------------

LISTED = (
    "2026-07-17 (3 days), 2026-07-24 (10 days), 2026-07-31 (17 days), 2026-08-07 (24 days), "
    "2026-08-14 (31 days), 2026-08-21 (38 days) and 3 more"
)


@pytest.mark.parametrize(
    ("fields", "chain", "price", "field", "reason"),
    [
        ({"expiration": "2026-07-13"}, CHAIN, "187.40", "expiration", "expiration 2026-07-13 is before today (2026-07-14)"),
        ({"expiration": "+1 year"}, CHAIN, "187.40", "expiration",
         f"no AAPL expiry on or after 2027-07-14 (expiration +1 year); IB lists {LISTED}"),
        ({"dteMin": 40, "dteMax": 60}, CHAIN, "187.40", "dteMin",
         f"no AAPL expiry with 40 to 60 days to expiry (dteMin, dteMax); IB lists {LISTED}"),
        ({"expiration": "+1 month", "dteMax": 20}, CHAIN, "187.40", "expiration",
         f"no AAPL expiry on or after 2026-08-14 (expiration +1 month) and with at most 20 days to expiry (dteMax); IB lists {LISTED}"),
        ({"expiration": "+1 day"}, OptionChain("AAPL", {date(2026, 7, 10): WEEKLY}), "187.40", "expiration",
         "IB lists no AAPL option expiring today or later"),
        ({"expiration": "2026-08-21", "strikePrice": 188}, CHAIN, "187.40", "strikePrice",
         "strikePrice 188 is not listed for AAPL 2026-08-21 calls (nearest listed: 187.50, 190)"),
        ({"expiration": "2026-08-21", "intrinsicValue": "otm", "strikesAway": 2}, CHAIN, "208", "strikesAway",
         "strikesAway 2: the AAPL 2026-08-21 calls list 1 strike(s) out of the money past the at-the-money 207.50"),
        ({"expiration": "2026-08-21", "intrinsicValue": "otm", "strikesAway": 2, "strikeCount": 4}, CHAIN, "208", "strikesAway",
         "strikesAway 2: the AAPL 2026-08-21 calls list 1 strike(s) out of the money past the at-the-money 207.50 "
         "among the 4 scanned (strikeCount 4)"),
        ({"expiration": "2026-08-21", "delta": 0.3, "strikeCount": 4}, CHAIN, "187.40", "delta",
         "delta 0.3: IB gave no model greeks for any of the 5 AAPL 2026-08-21 calls scanned (strikes 182.50, 185, 187.50, 190, 192.50)"),
        ({"expiration": "2026-08-21", "optionType": "put"}, OptionChain("AAPL", STRIKES, rights=frozenset({"C"})), "187.40",
         "optionType", "IB lists no puts on AAPL (sell with optionType put (inverted): buy puts to open)"),
        ({"expiration": "2026-08-21"}, CHAIN, "0", None, "no usable price for AAPL (0.00): the money cannot be placed"),
        ({"expiration": "2026-08-21"}, CHAIN, None, None, "no usable price for AAPL (none): the money cannot be placed"),
    ],
)  # fmt: skip
def test_refusals(fields, chain, price, field, reason):
    req = request(**{"optionType": "call", **fields})
    refusal = choose(
        req, chain, None if price is None else D(price), TODAY, "sell" if req.option_type == "put" else "buy"
    )
    assert refusal == OptionRefusal(field, reason)


# --- prices --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "price", "ticks", "way", "expected"),
    [
        ("standard", "2.95", 1, "up", "3.00"),
        ("standard", "3.00", 1, "up", "3.10"),
        ("standard", "3.00", 1, "down", "2.95"),
        ("standard", "3.10", 1, "down", "3.00"),
        ("standard", "2.90", 3, "up", "3.10"),
        ("penny_pilot", "2.99", 1, "up", "3.00"),
        ("penny_pilot", "3.00", 1, "up", "3.05"),
        ("penny_pilot", "3.00", 1, "down", "2.99"),
        ("penny_pilot", "3.05", 2, "down", "2.99"),
        ("penny", "3.00", 1, "up", "3.01"),
        ("penny", "2.99", 0, "up", "2.99"),
    ],
)
def test_ticks_across_three_dollars(rule, price, ticks, way, expected):
    assert step(tick_grid(rule), D(price), ticks, way) == D(expected)


@pytest.mark.parametrize(
    ("rule", "price", "way", "expected"),
    [
        ("standard", "2.97", "up", "3.00"),
        ("standard", "3.03", "up", "3.10"),
        ("standard", "3.03", "down", "3.00"),
        ("standard", "2.97", "down", "2.95"),
        ("penny_pilot", "2.995", "up", "3.00"),
        ("penny_pilot", "3.02", "up", "3.05"),
        ("penny_pilot", "3.02", "down", "3.00"),
        ("penny_pilot", "2.995", "down", "2.99"),
        ("penny", "3.025", "down", "3.02"),
    ],
)
def test_rounding_at_three_dollars(rule, price, way, expected):
    assert tick_grid(rule).round(D(price), way) == D(expected)


CALL = "AAPL 2026-08-21 call 190"


@pytest.mark.parametrize(
    ("rule", "bid", "ask", "side", "ticks", "limit", "edge"),
    [
        ("standard", "1.00", "1.10", "BUY", 0, "1.05", ""),
        ("standard", "1.00", "1.10", "BUY", 1, "1.10", ""),
        ("standard", "1.00", "1.10", "BUY", 3, "1.10", ", capped at the ask 1.10"),
        (
            "standard",
            "1.00",
            "1.15",
            "BUY",
            0,
            "1.05",
            "",
        ),  # mid 1.075: on the grid below, never above the mid
        ("standard", "1.00", "1.15", "BUY", 1, "1.10", ""),
        ("standard", "1.00", "1.15", "SELL", 0, "1.10", ""),
        ("standard", "1.00", "1.15", "SELL", 1, "1.05", ""),
        ("standard", "2.80", "3.20", "BUY", 1, "3.10", ""),  # the mid 3.00 steps in dimes
        ("standard", "2.80", "3.20", "BUY", 2, "3.20", ""),
        ("standard", "2.80", "3.20", "SELL", 1, "2.95", ""),  # below 3.00 in nickels
        ("standard", "2.80", "3.20", "SELL", 2, "2.90", ""),
        ("penny_pilot", "2.96", "3.05", "BUY", 1, "3.05", ""),
        ("penny_pilot", "2.96", "3.05", "SELL", 1, "3.00", ""),
        ("penny_pilot", "2.96", "3.05", "SELL", 2, "2.99", ""),
        ("standard", "0.05", "0.10", "SELL", 3, "0.05", ", held at the bid 0.05"),
        ("standard", "0", "0.10", "SELL", 2, "0.05", ", held at the smallest price 0.05"),
        (
            "standard",
            "0",
            "0.05",
            "BUY",
            0,
            "0.05",
            ", raised to the smallest price 0.05",
        ),  # the mid 0.025 is below the smallest price
    ],
)
def test_marketable_limit(rule, bid, ask, side, ticks, limit, edge):
    entry = marketable_limit(D(bid), D(ask), side, ticks, tick_grid(rule), CALL)
    assert not isinstance(entry, OptionRefusal), entry
    assert entry.price == D(limit)
    assert entry.why.startswith(f"{side} limit {D(limit):.2f}: the mid ")
    assert entry.why.endswith(f"({tick_grid(rule).describe()}){edge}")


@pytest.mark.parametrize(
    ("bid", "ask", "reason"),
    [
        (None, "1.10", f"no quote for {CALL}: IB gave no bid"),
        ("1.00", None, f"no quote for {CALL}: IB gave no ask"),
        ("1.20", "1.10", f"the quote for {CALL} is crossed (bid 1.20 above ask 1.10)"),
        ("0", "0", f"no usable quote for {CALL} (bid 0.00, ask 0.00)"),
    ],
)
def test_quotes_that_give_no_price(bid, ask, reason):
    as_decimal = [None if value is None else D(value) for value in (bid, ask)]
    assert marketable_limit(*as_decimal, "BUY", 1, tick_grid("standard"), CALL) == OptionRefusal(None, reason)
    assert spread_refusal(*as_decimal, D(10), CALL) == OptionRefusal(None, reason)


@pytest.mark.parametrize(
    ("bid", "ask", "max_percent", "reason"),
    [
        ("2.00", "2.20", "10", None),  # 9.5%
        ("1.90", "2.10", "10", None),  # exactly 10%: only wider is refused
        ("2.00", "2.20", "9", f"the spread of {CALL} is too wide: 0.20 (bid 2.00, ask 2.20) is 9.5% of the mid 2.10, above the 9% allowed"),
        ("0", "0.10", "50", f"the spread of {CALL} is too wide: 0.10 (bid 0.00, ask 0.10) is 200.0% of the mid 0.05, above the 50% allowed"),
        ("1.00", "1.30", "12.5", f"the spread of {CALL} is too wide: 0.30 (bid 1.00, ask 1.30) is 26.1% of the mid 1.15, above the 12.5% allowed"),
    ],
)  # fmt: skip
def test_spread_filter(bid, ask, max_percent, reason):
    found = spread_refusal(D(bid), D(ask), D(max_percent), CALL)
    assert found == (None if reason is None else OptionRefusal(None, reason))


STANDARD = "bands 0.05 from 0, 0.1 from 3"


@pytest.mark.parametrize(
    ("entry", "side", "tp", "sl", "rule", "expected"),
    [
        ("2.40", "BUY", TakeProfit(percent=D(50)), StopLoss(percent=D(30)), "standard", ("3.60", "1.70")),
        ("2.40", "SELL", TakeProfit(percent=D(50)), StopLoss(percent=D(30)), "standard", ("1.20", "3.10")),
        ("2.90", "BUY", TakeProfit(amount=D("0.12")), StopLoss(amount=D("0.12")), "standard", ("3.10", "2.80")),
        ("2.90", "BUY", TakeProfit(amount=D("0.12")), None, "penny_pilot", ("3.05", None)),
        ("2.90", "SELL", None, StopLoss(amount=D("0.12")), "penny_pilot", (None, "3.00")),
        ("2.40", "BUY", None, None, "standard", (None, None)),
        ("3.20", "SELL", None, StopLoss(amount=D("0.05")), "standard",
         OptionRefusal("stopLoss.amount", f"stopLoss.amount=0.05 is less than a tick ({STANDARD}) from the entry 3.20: the stopLoss would land on it")),
        ("1.00", "SELL", TakeProfit(percent=D(100)), None, "standard",
         OptionRefusal("takeProfit.percent", "takeProfit.percent=100 puts the takeProfit at 0.00: an option's premium does not go to 0 or below")),
        ("0.10", "SELL", TakeProfit(percent=D(80)), None, "standard",
         OptionRefusal("takeProfit.percent", "takeProfit.percent=80 puts the takeProfit at 0.02 (0.00 on the grid): an option's premium does not go to 0 or below")),
        ("1.00", "BUY", None, StopLoss(amount=D("1.5")), "standard",
         OptionRefusal("stopLoss.amount", "stopLoss.amount=1.5 puts the stopLoss at -0.50: an option's premium does not go to 0 or below")),
        ("2.40", "BUY", TakeProfit(limit_price=D(200)), None, "standard",
         OptionRefusal("takeProfit.limitPrice", "takeProfit.limitPrice is a price on the underlying's chart; an option's takeProfit is measured on its premium: use takeProfit.percent or takeProfit.amount")),
        ("2.40", "BUY", None, StopLoss(stop_price=D(180)), "standard",
         OptionRefusal("stopLoss.stopPrice", "stopLoss.stopPrice is a price on the underlying's chart; an option's stopLoss is measured on its premium: use stopLoss.percent or stopLoss.amount")),
        ("2.40", "BUY", None, StopLoss(type="trailing_stop", trail_percent=D(20)), "standard",
         OptionRefusal("stopLoss.type", "a trailing_stop stopLoss is not yet made for options: use a stop with percent or amount")),
        ("2.40", "BUY", TakeProfit(ticks=D(4)), None, "standard",
         OptionRefusal("takeProfit.ticks", "takeProfit.ticks is not yet made for options (their tick changes at 3.00): use percent or amount")),
    ],
)  # fmt: skip
def test_exits_on_the_premium(entry, side, tp, sl, rule, expected):
    found = premium_exits(D(entry), side, tp, sl, tick_grid(rule))
    if isinstance(expected, OptionRefusal):
        assert found == expected
        return
    assert not isinstance(found, OptionRefusal), found
    as_decimal = tuple(None if value is None else D(value) for value in expected)
    assert (found.take_profit, found.stop_loss) == as_decimal
    for price in (found.take_profit, found.stop_loss):
        assert price is None or tick_grid(rule).on_grid(price)
    if found.take_profit is not None:  # on the profit side of the entry, the stop on the loss side
        assert (found.take_profit - D(entry)) * (1 if side == "BUY" else -1) > 0
    if found.stop_loss is not None:
        assert (found.stop_loss - D(entry)) * (1 if side == "BUY" else -1) < 0


# --- properties over many quotes, chains and prices ---------------------------------------------

RULES = st.sampled_from(["standard", "penny_pilot", "penny"])
CENTS = st.integers(min_value=0, max_value=2000).map(lambda n: D(n) / 100)


@given(RULES, CENTS, CENTS, st.sampled_from(["BUY", "SELL"]), st.integers(min_value=0, max_value=6))
def test_an_entry_limit_is_on_the_grid_and_never_past_the_quote(rule, low, width, side, ticks):
    grid = tick_grid(rule)
    bid, ask = grid.round(low, "down"), grid.round(low + width + D("0.01"), "up")
    entry = marketable_limit(bid, ask, side, ticks, grid, CALL)
    assert not isinstance(entry, OptionRefusal)
    assert grid.on_grid(entry.price) and entry.price > 0
    if side == "BUY":
        assert entry.price <= ask
    else:
        assert entry.price >= bid


@given(
    st.integers(min_value=1, max_value=40).map(lambda n: D(n) * D("2.5") + 100),
    st.integers(min_value=10000, max_value=20000).map(lambda n: D(n) / 100),
    st.sampled_from(["itm", "otm"]),
    st.integers(min_value=1, max_value=4),
    st.sampled_from(["call", "put"]),
)
def test_intrinsic_picks_are_really_in_or_out_of_the_money(top, underlying, intrinsic, away, option_type):
    strikes = _range("100", str(top), "2.5")
    chain = OptionChain("XYZ", {AUG: strikes})
    req = request(optionType=option_type, expiration="2026-08-21", intrinsicValue=intrinsic, strikesAway=away)
    choice = choose(req, chain, underlying, TODAY, "buy")
    if isinstance(choice, OptionRefusal):
        assert choice.field == "strikesAway"
        return
    in_the_money = choice.strike < underlying if choice.right == "C" else choice.strike > underlying
    assert in_the_money == (intrinsic == "itm")
    assert choice.strike != choice.atm_strike
