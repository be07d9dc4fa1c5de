"""The option an alert on the underlying acts on, and the order it becomes: tables (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time
from decimal import Decimal

import pytest

from core.payload import AlertPayload, StopLoss, TakeProfit
from worker.decision.option_choice import OptionRefusal
from worker.decision.option_prices import EntryLimit, PremiumExits
from worker.decision.option_target import (
    ChooseNew,
    CloseAll,
    HeldOption,
    NothingHeld,
    Reverse,
    UseHeld,
    expiry_refusal,
    option_payload,
    target_of,
)
from worker.decision.options import OptionRequest

D = Decimal
CALL = HeldOption(11, "C", date(2027, 1, 15), D(200), D(2), "AAPL  270115C00200000")
SHORT_PUT = HeldOption(12, "P", date(2027, 1, 15), D(185), D(-1), "AAPL  270115P00185000")


def alert(**fields) -> AlertPayload:
    return AlertPayload(ticker="AAPL", **{"action": "buy", **fields})


def kind(target) -> tuple:
    if isinstance(target, (UseHeld, ChooseNew)) and target.position_size is not None:
        base = kind(replace(target, position_size=None))
        return (*base, target.position_size)
    if isinstance(target, UseHeld):
        return ("held", target.held.con_id, target.action)
    if isinstance(target, ChooseNew):
        return ("new", target.direction.right, target.action)
    if isinstance(target, NothingHeld):
        return ("nothing", target.reason)
    if isinstance(target, Reverse):
        return ("reverse", target.held.con_id, target.direction.right, target.direction.side)
    if isinstance(target, CloseAll):
        return ("close all", tuple(h.con_id for h in target.held))
    return ("refused", target.reason)


@pytest.mark.parametrize(
    ("option_type", "fields", "held", "expected"),
    [
        # nothing held: the direction table opens a new contract
        ("call", {"action": "buy"}, [], ("new", "C", "buy")),
        ("call", {"action": "sell"}, [], ("new", "C", "sell")),
        ("put", {"action": "buy"}, [], ("new", "P", "sell")),
        ("put", {"action": "sell"}, [], ("new", "P", "buy")),
        ("both", {"action": "buy"}, [], ("new", "C", "buy")),
        ("both", {"action": "sell"}, [], ("new", "P", "buy")),
        # a signal of the right held meets the option held (the stock rules decide: close, refuse...)
        ("call", {"action": "sell"}, [CALL], ("held", 11, "sell")),
        ("call", {"action": "buy"}, [CALL], ("held", 11, "buy")),
        ("put", {"action": "sell"}, [SHORT_PUT], ("held", 12, "buy")),
        ("both", {"action": "buy"}, [CALL], ("held", 11, "buy")),
        # exits close the option held, whatever the signal's right
        ("put", {"action": "exit"}, [CALL], ("held", 11, "exit")),
        ("call", {"action": "buy", "sentiment": "flat"}, [CALL], ("held", 11, "exit")),
        ("call", {"action": "sell", "position_size": D(0)}, [CALL], ("held", 11, "exit")),
        ("call", {"action": "exit"}, [], ("nothing", "exit: no open option position on AAPL")),
        ("call", {"action": "add"}, [CALL], ("held", 11, "add")),
        # the other right while one option is held: a reversal (close it, then open the new right)
        ("both", {"action": "sell"}, [CALL], ("reverse", 11, "P", "BUY")),
        ("call", {"action": "buy"}, [SHORT_PUT], ("reverse", 12, "C", "BUY")),
        ("put", {"action": "buy"}, [CALL], ("reverse", 11, "P", "SELL")),
        # an exit while several are held closes each
        ("call", {"action": "exit"}, [CALL, SHORT_PUT], ("close all", (11, 12))),
        # positionSize: its sign is the strategy's side, its size contracts; the option's target
        # follows the direction table
        ("call", {"action": "buy", "position_size": D(3)}, [], ("new", "C", "buy", D(3))),
        ("put", {"action": "buy", "position_size": D(3)}, [], ("new", "P", "sell", D(-3))),
        ("both", {"action": "sell", "position_size": D(-2)}, [], ("new", "P", "buy", D(2))),
        ("call", {"action": "buy", "position_size": D(5)}, [CALL], ("held", 11, "buy", D(5))),
        ("call", {"action": "sell", "position_size": D(-1)}, [CALL], ("held", 11, "sell", D(-1))),
        # a position of zero is not held
        (
            "call",
            {"action": "exit"},
            [HeldOption(13, "C", date(2027, 1, 15), D(190), D(0))],
            ("nothing", "exit: no open option position on AAPL"),
        ),
    ],
)
def test_which_contract_and_which_action(option_type, fields, held, expected):
    request = OptionRequest(option_type=option_type)
    assert kind(target_of(alert(**fields), request, "AAPL", held)) == expected


@pytest.mark.parametrize(
    ("option_type", "fields", "held", "words"),
    [
        ("call", {"action": "buy"}, [CALL, SHORT_PUT], "2 option positions are open"),
        ("call", {"action": "add"}, [], "add: no option held on AAPL"),
    ],
)
def test_what_is_not_made_yet_is_refused_with_the_reason(option_type, fields, held, words):
    target = target_of(alert(**fields), OptionRequest(option_type=option_type), "AAPL", held)
    assert isinstance(target, OptionRefusal) and words in target.reason


@pytest.mark.parametrize(
    ("expiry", "now", "field"),
    [
        (date(2026, 12, 18), datetime(2026, 12, 18, 14, 59), None),
        (date(2026, 12, 18), datetime(2026, 12, 18, 15, 0), "expiration"),
        (date(2026, 12, 17), datetime(2026, 12, 18, 9, 30), "expiration"),
        (date(2026, 12, 19), datetime(2026, 12, 18, 15, 30), None),
    ],
)
def test_no_new_position_in_an_option_expiring_today_after_the_last_entry_time(expiry, now, field):
    refusal = expiry_refusal(expiry, now, time(15, 0))
    assert (refusal.field if refusal else None) == field


def test_the_option_order_drops_the_charts_prices_and_sets_the_premiums():
    payload = alert(price=D("190.5"), order_type="limit", limit_price=D(190), sentiment="bullish",
                    take_profit=TakeProfit(percent=D(50)), stop_loss=StopLoss(percent=D(30)))  # fmt: skip
    entry = EntryLimit(D("4.35"), D("4.30"), "BUY limit 4.35")
    order = option_payload(payload, "buy", entry, PremiumExits(D("6.55"), D("3.04")))
    assert (order.order_type, order.limit_price, order.price, order.sentiment) == (
        "limit",
        D("4.35"),
        None,
        None,
    )
    assert order.take_profit == TakeProfit(limit_price=D("6.55"))
    assert order.stop_loss == StopLoss(stop_price=D("3.04"))
    close = option_payload(payload, "exit", None, None)
    assert (close.action, close.order_type, close.limit_price, close.take_profit, close.stop_loss) == (
        "exit", "market", None, None, None,
    )  # fmt: skip
