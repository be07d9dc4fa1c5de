"""The option fields at intake (issue 20): an alert on the underlying that asks for an option, and
a ticker that names one. Each value and each combination is checked with core/option_fields.py's
rules and refused with a 422 naming the field and that module's reason; option tickers in OCC's and
TradersPost's forms are accepted, upper-cased, and junk stays refused. Real app on real Redis."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
from app_helpers import alert_body, get_alert, post, queued_jobs

from core.option_tickers import parse_option_ticker

OPTIONS = {"optionType": "call", "expiration": "+30 days"}


def _payload(client, ctx, **fields):
    answer = post(client, alert_body(**fields))
    assert answer.status_code == 202, answer.get_json()
    return get_alert(ctx, answer.get_json()["alert_id"]).payload


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        # each value
        ({**OPTIONS, "optionType": "straddle"}, "optionType", "must be one of call, put, both, got 'straddle'"),
        ({**OPTIONS, "optionType": 1}, "optionType", "must be one of call, put, both"),
        ({**OPTIONS, "expiration": "next month"}, "expiration", "must be a date (2026-03-20) or a time from today"),
        ({**OPTIONS, "expiration": "2026-02-30"}, "expiration", "is not a calendar date"),
        ({**OPTIONS, "expiration": "+11 years"}, "expiration", "is too far out: at most +10 years"),
        ({**OPTIONS, "intrinsicValue": "atm"}, "intrinsicValue", "must be one of itm, otm"),
        ({**OPTIONS, "intrinsicValue": "itm", "strikesAway": 0}, "strikesAway", "whole number from 1 to 50"),
        ({**OPTIONS, "intrinsicValue": "itm", "strikesAway": "1.5"}, "strikesAway", "whole number from 1 to 50"),
        ({**OPTIONS, "strikeCount": 101}, "strikeCount", "whole number from 1 to 100"),
        ({**OPTIONS, "strikePrice": 0}, "strikePrice", "must be above 0"),
        ({**OPTIONS, "strikePrice": "lots"}, "strikePrice", "must be a number, got 'lots'"),
        ({**OPTIONS, "strikePrice": "1_000"}, "strikePrice", "must be a number"),
        ({**OPTIONS, "strikePrice": True}, "strikePrice", "must be a number"),
        ({**OPTIONS, "delta": 1}, "delta", "above 0 and below 1 in size"),
        ({**OPTIONS, "delta": "-0"}, "delta", "above 0 and below 1 in size"),
        ({**OPTIONS, "delta": "1e-20"}, "delta", "too close to 0"),
        ({**OPTIONS, "dteMin": -1}, "dteMin", "whole number from 0 to 3660"),
        ({**OPTIONS, "dteMax": 3661}, "dteMax", "whole number from 0 to 3660"),
        ({**OPTIONS, "expiration": "{{plot_0}}"}, "expiration", "the placeholder {{plot_0}} was not filled in"),
        # combinations
        ({"strikePrice": 190}, "optionType", "is needed with strikePrice: call, put or both"),
        ({"optionType": "put"}, "expiration", "is needed with optionType"),
        ({**OPTIONS, "strikePrice": 190, "strikeCount": 10}, "strikePrice", "names the strike itself; leave out strikeCount"),
        ({**OPTIONS, "delta": 0.3, "intrinsicValue": "otm"}, "delta", "picks the strike by itself; leave out intrinsicValue"),
        ({**OPTIONS, "strikesAway": 2}, "strikesAway", "needs intrinsicValue (itm or otm)"),
        ({**OPTIONS, "intrinsicValue": "otm", "strikesAway": 6, "strikeCount": 10}, "strikesAway", "at most half of strikeCount"),
        ({"optionType": "call", "dteMin": 40, "dteMax": "30"}, "dteMin", "must not be above dteMax (40 > 30)"),
        # with the ticker and the action
        ({**OPTIONS, "ticker": "AAPL250117C00150000"}, "optionType", "already names the contract (AAPL 2025-01-17 call 150)"),
        ({"ticker": "SPY 250624C596", "strikePrice": 596}, "strikePrice", "already names the contract"),
    ],
)  # fmt: skip
def test_a_bad_option_value_or_combination_is_a_422_naming_the_field(
    client, redis_client, fields, field, words
):
    answer = post(client, alert_body(**fields))
    assert answer.status_code == 422, answer.get_json()
    found = answer.get_json()["fields"]
    assert words in " ".join(found[field]), found
    assert queued_jobs(redis_client) == []


def test_every_problem_of_the_option_fields_is_named_at_once(client):
    answer = post(
        client, alert_body(optionType="call", expiration="+30 days", strikesAway=2, dteMin=9, dteMax=3)
    )
    assert answer.status_code == 422
    assert sorted(answer.get_json()["fields"]) == ["dteMin", "strikesAway"]
    values = post(client, alert_body(optionType="calls", delta=7, quantity=-1))
    assert sorted(values.get_json()["fields"]) == ["delta", "optionType", "quantity"]


def test_numbers_may_be_text_choices_any_case_and_null_is_absent(client, ctx):
    payload = _payload(client, ctx, optionType=" BOTH ", expiration="2026-03-20", delta="-0.30", dteMin="20",
                       dteMax=45.0, strikePrice=None, intrinsicValue=None)  # fmt: skip
    assert payload["optionType"] == "both" and payload["expiration"] == "2026-03-20"
    assert payload["delta"] == -0.3 and payload["dteMin"] == 20 and payload["dteMax"] == 45
    assert payload["strikePrice"] is None and payload["intrinsicValue"] is None
    plain = _payload(client, ctx, optionType=None, id="no-options")
    assert all(plain[key] is None for key in ("optionType", "expiration", "delta", "dteMax"))


def test_traderspost_spelling_instrinsic_value_is_read_as_intrinsic_value(client, ctx):
    payload = _payload(client, ctx, **OPTIONS, instrinsicValue="ITM", strikesAway="2")
    assert (
        payload["intrinsicValue"] == "itm"
        and payload["strikesAway"] == 2
        and "instrinsicValue" not in payload
    )
    # both spellings: the field's own wins, as price does over signalPrice
    both = _payload(client, ctx, **OPTIONS, intrinsicValue="otm", instrinsicValue="itm", id="both")
    assert both["intrinsicValue"] == "otm"
    refused = post(client, alert_body(**OPTIONS, instrinsicValue="deep"))
    assert refused.status_code == 422
    assert "must be one of itm, otm" in refused.get_json()["fields"]["instrinsicValue"][0]
    near = post(client, alert_body(**OPTIONS, intrinsicvalue="itm"))
    assert "did you mean 'intrinsicValue'" in near.get_json()["fields"]["intrinsicvalue"][0]


@pytest.mark.parametrize(
    ("sent", "exchange", "ticker"),
    [
        ("AAPL250117C00150000", None, "AAPL250117C00150000"),  # OCC
        ("AAPL  250117C00150000", None, "AAPL  250117C00150000"),  # OCC, root padded to 6
        ("spy 250624c596", None, "SPY 250624C596"),  # TradersPost's
        ("SPY 250624P596.5", None, "SPY 250624P596.5"),
        (" OPRA:aapl250117c150.0 ", "OPRA", "AAPL250117C150.0"),  # TradingView's
        ("X 260320C00012500", None, "X 260320C00012500"),
    ],
)
def test_option_tickers_are_accepted_upper_case(client, ctx, sent, exchange, ticker):
    payload = _payload(client, ctx, ticker=sent)
    assert (payload["exchange"], payload["ticker"]) == (exchange, ticker)


@pytest.mark.parametrize(
    ("sent", "words"),
    [
        ("AAPL 250117", "must be a symbol of letters, digits"),
        ("AAPL 250117X150", "must be a symbol of letters, digits"),
        ("SPY  250624C596", "2 spaces after the root SPY"),
        ("AAPL   250117C00150000", "3 spaces after the root AAPL"),
        ("AAPL251317C00150000", "251317 is not a calendar date"),
        ("SPY 250230C596", "250230 is not a calendar date"),
        ("SPY 250624C0", "the strike 0 is not above 0"),
        ("AAPL250117C00000000", "the strike 00000000 is not above 0"),
        ("S PY", "must be a symbol of letters, digits"),
        ("SPY\t250624C596", "must be a symbol of letters, digits"),
        ("SPY 250624C596.", "must be a symbol of letters, digits"),
        ("SPY 250624C" + "9" * 30, "must be a symbol of letters, digits"),
    ],
)
def test_malformed_option_tickers_are_refused(client, redis_client, sent, words):
    answer = post(client, alert_body(ticker=sent))
    assert answer.status_code == 422, answer.get_json()
    assert words in answer.get_json()["fields"]["ticker"][0]
    assert queued_jobs(redis_client) == []


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("AAPL250117C00150000", ("AAPL", date(2025, 1, 17), "C", D(150))),
        ("AAPL  250117P00150500", ("AAPL", date(2025, 1, 17), "P", D("150.5"))),
        ("spy 250624c596", ("SPY", date(2025, 6, 24), "C", D(596))),
        ("SPY 250624C00000596", ("SPY", date(2025, 6, 24), "C", D("0.596"))),  # 8 digits: always OCC's
        ("AAPL250117C150.0", ("AAPL", date(2025, 1, 17), "C", D("150.0"))),
        ("AAPL", None),
        ("ES1!", None),
        ("MESZ2026", None),
        ("SPY 250624", None),
    ],
)
def test_parse_option_ticker(text, parsed):
    """core/option_tickers.py, which the worker reads option tickers with too."""
    found = parse_option_ticker(text)
    assert found == parsed
    if found is not None:
        assert found.describe().startswith(f"{found.root} {found.expiry.isoformat()} ")


@pytest.mark.parametrize(
    "fields",
    [{"action": "exit"}, {"action": "cancel"}, {"action": "sell", "sentiment": "flat"}, {"positionSize": 0}],
)
def test_an_exit_flatten_or_cancel_needs_optiontype_alone(client, redis_client, fields):
    """They act on the options held (or working) on the underlying: no expiry to choose."""
    answer = post(client, alert_body(optionType="call", **fields))
    assert answer.status_code == 202, answer.get_json()


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"action": "update"}, "action", "give one of them (or both)"),
        ({"action": "update", "stopLoss": {"stopPrice": 185}, "quantity": 3}, "quantity", "does not trade"),
        ({"action": "update", "takeProfit": {"percent": 2}, "optionType": "call"}, "optionType", "does not trade"),
        ({"action": "update", "stopLoss": {"type": "trailing_stop", "trailPercent": 1}}, "stopLoss", "not made yet for update"),
    ],
)  # fmt: skip
def test_an_update_that_moves_nothing_or_trades_is_a_422(client, redis_client, fields, field, words):
    answer = post(client, {**alert_body(), **fields})
    assert answer.status_code == 422
    assert words in str(answer.get_json()["fields"][field])
    assert queued_jobs(redis_client) == []


def test_an_update_with_a_stop_is_accepted(client, redis_client):
    answer = post(client, alert_body(quantity=None, action="update", price=190, stopLoss={"percent": 1}))
    assert answer.status_code == 202, answer.get_json()


@pytest.mark.parametrize(
    ("break_even", "words"),
    [
        ({}, "give exactly one of percent, amount or ticks"),
        ({"percent": 1, "ticks": 3}, "give exactly one of percent, amount or ticks"),
        ({"percent": 1, "offsetTicks": 1, "offsetAmount": 0.05}, "at most one of offsetTicks"),
        ({"percent": 1, "after": "tp1"}, "Unknown field"),
    ],
)
def test_a_bad_break_even_is_a_422_naming_it(client, redis_client, break_even, words):
    answer = post(client, alert_body(stopLoss={"percent": 2, "breakEven": break_even}))
    assert answer.status_code == 422
    assert words in str(answer.get_json()["fields"]["stopLoss"])


def test_break_even_is_for_a_plain_stop_and_is_stored(client, ctx):
    trailing = {"type": "trailing_stop", "trailPercent": 1, "breakEven": {"percent": 1}}
    refused = post(client, alert_body(stopLoss=trailing))
    assert refused.status_code == 422 and "breakEven moves a plain stop" in str(refused.get_json()["fields"])
    stored = _payload(client, ctx, stopLoss={"percent": 2, "breakEven": {"percent": 1, "offsetTicks": 2}})[
        "stopLoss"
    ]
    assert stored == {"type": "stop", "percent": 2, "breakEven": {"percent": 1, "offsetTicks": 2}}
