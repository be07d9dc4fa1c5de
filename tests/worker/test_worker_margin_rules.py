"""The margin rule as pure logic: which order IB is asked about, and the verdict on its figures."""

from __future__ import annotations

from decimal import Decimal as D
from types import SimpleNamespace

import pytest

from worker.decision.margin import WhatIf, judge, what_if_order
from worker.decision.model import Leg
from worker.decision.numbers import money
from worker.decision.positions import Decision
from worker.ib.account import AccountFigures
from worker.ib.translate import ib_number, what_if_of

ENTRY = Leg("entry", "BUY", "LMT", D(10), limit_price=D("189.5"), tif="DAY")
SHORT = Leg("entry", "SELL", "MKT", D(10))


@pytest.mark.parametrize(
    ("position", "target", "legs", "expected"),
    [
        (D(0), D(10), [ENTRY], ("BUY", D(10), "LMT", D("189.5"))),  # open from flat
        (D(10), D(15), [ENTRY], ("BUY", D(5), "LMT", D("189.5"))),  # add: the opening part
        (D(10), D(-10), [SHORT], ("SELL", D(20), "MKT", None)),  # reversal: the whole move
        (D(10), D(0), [], None),  # a close: never checked
        (D(10), D(4), [], None),  # a reduce: never checked
    ],
)
def test_what_if_order(position, target, legs, expected):
    order = what_if_order(Decision("open", position, target, "why"), legs)
    got = None if order is None else (order.action, order.quantity, order.order_type, order.limit_price)
    assert got == expected


FIGURES = AccountFigures(account="DU1", currency="USD", available_funds=D("998000"))


@pytest.mark.parametrize(
    ("change", "figures", "verdict", "reason"),
    [
        (D("4123456"), FIGURES, "refused",
         "margin: needs 4,123,456 USD initial, available 998,000 USD "
         "(IB what-if initMarginChange for BUY 100 AAPL MKT against AvailableFunds)"),
        (D("998000"), FIGURES, "ok", None),  # exactly what is available: allowed
        (D("-4750"), FIGURES, "ok", None),  # frees margin
        (None, FIGURES, "refused", "margin: IB's what-if for BUY 100 AAPL MKT gave no initMarginChange; nothing sent"),
        (D("10"), AccountFigures(account="DU1"), "refused",
         "margin: the account's AvailableFunds is unknown (IB has not reported it); nothing sent"),
    ],
)  # fmt: skip
def test_judge(change, figures, verdict, reason):
    result = judge(WhatIf(init_margin_change=change), figures, "BUY 100 AAPL MKT")
    assert result.doc["verdict"] == verdict and result.doc.get("reason") == reason
    assert result.refused == (reason or "")


def test_judge_falls_back_to_the_what_ifs_own_equity_and_says_so():
    answer = WhatIf(D("600000.5"), equity_with_loan_before=D("1000000"), init_margin_before=D("500000"))
    result = judge(answer, AccountFigures(account="DU1", currency="EUR"), "SELL 3 ESZ6 MKT")
    assert result.refused.startswith("margin: needs 600,000.50 EUR initial, available 500,000 EUR")
    assert result.doc["available_from"].startswith("IB what-if equityWithLoanBefore - initMarginBefore")


def test_what_if_from_ib_order_state():
    state = SimpleNamespace(initMarginChange="4750000.0", maintMarginChange="3800000.0", initMarginBefore="0.0",
                            initMarginAfter="4750000.0", equityWithLoanBefore="1000000.0",
                            equityWithLoanAfter="999500.0", commission=1.0, commissionCurrency="USD")  # fmt: skip
    answer = what_if_of(state)
    assert answer.init_margin_change == D("4750000.0") and answer.commission == D("1.0")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1234.5", D("1234.5")),
        ("", None),
        ("1.7976931348623157E308", None),
        (float("nan"), None),
        ("x", None),
    ],
)
def test_ib_number(raw, expected):
    assert ib_number(raw) == expected


@pytest.mark.parametrize(
    ("value", "text"), [(D("4123456"), "4,123,456"), (D("1234.5"), "1,234.50"), (D(0), "0")]
)
def test_money(value, text):
    assert money(value) == text
