"""The decision core as tables (worker/decision/core.py): the look + the alert + the static rules →
the proposal, with no IB, no database and no simulator. Every row of the position table, every
sizing mode, every risk rule's refusal, and the refused-opening-part paths (the plan, the risk
rules, the margin check refusing a reversal's open)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from worker_helpers import AAPL, ES

from core.payload import AlertPayload
from core.risk_rules import RiskRules
from core.risk_values import DefaultSizing
from worker.decision.core import DecisionConfig, Proposal, propose, rehearsal, rehearsal_reason, with_margin
from worker.decision.look import Look
from worker.decision.margin import MarginRefused, WhatIf, judge
from worker.decision.quote import Quote
from worker.errors import Refused
from worker.recording.protection import ProtectionSpec
from worker.recording.snapshots import AccountFigures
from worker.risk.state import Halt, RiskCounters, trading_day
from worker.risk.verdict import COUNTERS, QUOTE, AccountView, RiskInputs

D = Decimal
NOW = datetime(2026, 12, 9, 15, 0, tzinfo=UTC)  # a Wednesday, New York's regular session
FIGURES = AccountFigures("DU1", "USD", net_liquidation=D(100_000), available_funds=D(50_000))
PROTECTED = ProtectionSpec("DU1", AAPL.con_id, "OLD", 1, {"tp": D(195), "sl": D(187)}, "AAPL")


def look(position: int = 0, *, price: Decimal | None = D(190), rules: RiskRules | None = None,
         counters: RiskCounters | None = None, view: AccountView | None = None, inst: Any = AAPL,
         protection: ProtectionSpec | None = None, quoted: bool = True) -> Look:  # fmt: skip
    risk = None
    if rules is not None:
        risk = RiskInputs(rules, "DU1", NOW, view or AccountView(D(0), 0, 0, D(0), "USD"), counters)
    quote = Quote(price, "IB last price", "live", "live") if quoted else None  # asked only without a price
    if protection is None and position > 0:
        protection = PROTECTED
    return Look("A1", inst, D(position), "DU1", quote, protection, FIGURES, risk=risk)


def decide(
    doc: dict[str, Any], position: int = 0, config: DecisionConfig | None = None, **kw: Any
) -> Proposal:
    payload = AlertPayload.from_json({"ticker": "AAPL", **doc})
    return propose(look(position, **kw), payload, config or DecisionConfig())


def legs(proposal: Proposal) -> list[tuple[str, str, Decimal]]:
    return [(leg.leg, leg.action, leg.quantity) for leg in proposal.stored().legs]


# ------------------------------------------------------------------ the position table


@pytest.mark.parametrize(
    ("doc", "position", "kind", "target", "expected_legs"),
    [
        ({"action": "buy", "quantity": 10}, 0, "open", 10, [("entry", "BUY", 10)]),
        ({"action": "buy", "quantity": 10}, -10, "close", 0, [("close", "BUY", 10)]),
        ({"action": "buy", "quantity": 5}, -10, "reduce", -5, [("close", "BUY", 5)]),
        ({"action": "buy", "quantity": 20}, -10, "reverse", 10, [("close", "BUY", 10), ("entry", "BUY", 10)]),
        ({"action": "buy"}, -10, "close", 0, [("close", "BUY", 10)]),
        ({"action": "sell", "quantity": 10}, 0, "open", -10, [("entry", "SELL", 10)]),
        ({"action": "sell", "quantity": 10}, 10, "close", 0, [("close", "SELL", 10)]),
        ({"action": "sell", "quantity": 4}, 10, "reduce", 6, [("close", "SELL", 4)]),
        (
            {"action": "sell", "quantity": 20},
            10,
            "reverse",
            -10,
            [("close", "SELL", 10), ("entry", "SELL", 10)],
        ),
        ({"action": "sell", "quantity": 20, "sentiment": "bullish"}, 10, "close", 0, [("close", "SELL", 10)]),
        ({"action": "sell", "quantity": 4, "sentiment": "bullish"}, 10, "reduce", 6, [("close", "SELL", 4)]),
        ({"action": "buy", "quantity": 20, "sentiment": "bearish"}, -10, "close", 0, [("close", "BUY", 10)]),
        ({"action": "sell", "sentiment": "flat"}, 10, "close", 0, [("exit", "SELL", 10)]),
        ({"action": "add", "quantity": 5}, 10, "add", 15, [("entry", "BUY", 5)]),
        ({"action": "add", "quantity": 5}, -10, "add", -15, [("entry", "SELL", 5)]),
        ({"action": "exit"}, 10, "close", 0, [("exit", "SELL", 10)]),
        ({"action": "exit"}, -10, "close", 0, [("exit", "BUY", 10)]),
        ({"action": "exit", "quantity": 4}, 10, "reduce", 6, [("exit", "SELL", 4)]),
        (
            {"action": "exit", "quantity": 50, "quantityType": "percent_of_position"},
            -10,
            "reduce",
            -5,
            [("exit", "BUY", 5)],
        ),  # fmt: skip
        ({"action": "buy", "positionSize": 5}, 10, "reduce", 5, [("close", "SELL", 5)]),
        ({"action": "buy", "positionSize": 15}, 10, "add", 15, [("entry", "BUY", 5)]),
        (
            {"action": "sell", "positionSize": -5},
            10,
            "reverse",
            -5,
            [("close", "SELL", 10), ("entry", "SELL", 5)],
        ),
        ({"action": "sell", "positionSize": 0}, 10, "close", 0, [("close", "SELL", 10)]),
        ({"action": "buy", "positionSize": 7}, 0, "open", 7, [("entry", "BUY", 7)]),
    ],
)
def test_every_row_of_the_position_table(doc, position, kind, target, expected_legs):
    proposal = decide({"price": 190, **doc}, position)
    stored = proposal.stored()
    assert (stored.position.kind, stored.position.target) == (kind, D(target))
    assert legs(proposal) == [(leg, side, D(qty)) for leg, side, qty in expected_legs]
    assert stored.position.reason == stored.notes[0]  # the move's reason leads the notes


@pytest.mark.parametrize(
    ("doc", "position", "reason"),
    [
        ({"action": "exit"}, 0, "nothing to exit: the position is flat"),
        ({"action": "buy", "positionSize": 10}, 10, "already at target +10: no order (positionSize)"),
        ({"action": "sell", "positionSize": 0}, 0, "already at target flat: no order (positionSize)"),
    ],
)
def test_nothing_to_do_is_a_decision_without_legs(doc, position, reason):
    proposal = decide(doc, position)
    stored = proposal.stored()
    assert proposal.nothing_to_do and stored.legs == () and stored.position.reason == reason
    assert stored.position.kind == "none" and stored.notes == (reason,)


@pytest.mark.parametrize(
    ("doc", "position", "refusal"),
    [
        (
            {"action": "buy", "quantity": 10},
            10,
            "already long 10: send add or positionSize to grow a position",
        ),
        (
            {"action": "sell", "quantity": 10},
            -10,
            "already short 10: send add or positionSize to grow a position",
        ),
        (
            {"action": "add", "quantity": 5},
            0,
            "add needs a position to add to: the position is flat (send buy or sell)",
        ),
        ({"action": "buy"}, 0, "buy needs a quantity when flat"),
    ],
)
def test_what_does_not_fit_the_position_is_refused(doc, position, refusal):
    with pytest.raises(Refused, match="^" + refusal.replace("(", r"\(").replace(")", r"\)") + "$"):
        decide(doc, position)


def test_the_protection_after_follows_the_move():
    opened = decide({"action": "buy", "quantity": 10, "price": 190, "stopLoss": {"stopPrice": 185}}).stored()
    assert opened.position.protection_after == ProtectionSpec(
        "DU1", AAPL.con_id, "A1", 1, {"sl": D("185.00")}, "AAPL"
    )
    reduced = decide({"action": "sell", "quantity": 4, "price": 190}, 10).stored()
    assert reduced.position.protection_after.prices == PROTECTED.prices  # the exits keep their prices
    assert reduced.position.protection_before == PROTECTED
    closed = decide({"action": "exit"}, 10).stored()
    assert closed.position.protection_after is None


# ------------------------------------------------------------------ sizing


@pytest.mark.parametrize(
    ("sizing", "extra", "quantity"),
    [
        ({"quantity": 12, "quantityType": "fixed_quantity"}, {}, 12),
        ({"quantity": 19000, "quantityType": "dollar_amount"}, {}, 100),  # 19,000 ÷ 190
        (
            {"quantity": 500, "quantityType": "risk_dollar_amount"},
            {"stopLoss": {"stopPrice": 185}},
            100,
        ),  # ÷ 5
        (
            {"quantity": 1, "quantityType": "risk_percent"},
            {"stopLoss": {"stopPrice": 180}},
            100,
        ),  # 1,000 ÷ 10
        ({"quantity": 19, "quantityType": "percent_of_equity"}, {}, 100),  # 19,000 ÷ 190
    ],
)
def test_every_sizing_mode_sizes_the_opening(sizing, extra, quantity):
    proposal = decide({"action": "buy", "price": 190, **sizing, **extra})
    assert legs(proposal)[0] == ("entry", "BUY", D(quantity))
    rule = sizing["quantityType"]
    assert (proposal.sizing is None) == (rule == "fixed_quantity")  # TradingView's own quantity: as is
    if proposal.sizing is not None:
        assert proposal.sizing.rule == rule and proposal.stored().notes[0] == proposal.sizing.text


def test_percent_of_position_sizes_against_the_position():
    proposal = decide(
        {"action": "sell", "quantity": 30, "quantityType": "percent_of_position", "price": 190}, 10
    )
    assert legs(proposal) == [("close", "SELL", D(3))]


def test_the_strategy_default_sizes_an_alert_without_quantity():
    rules = RiskRules(default_sizing=DefaultSizing("dollar_amount", D(9500)))
    proposal = decide({"action": "buy", "price": 190}, rules=rules)
    assert legs(proposal)[0] == ("entry", "BUY", D(50)) and proposal.sizing.source == "strategy default"


def test_a_reversal_sized_by_amount_closes_then_opens_the_sized_quantity():
    proposal = decide({"action": "sell", "quantity": 1900, "quantityType": "dollar_amount", "price": 190}, 10)
    assert legs(proposal) == [("close", "SELL", D(10)), ("entry", "SELL", D(10))]


def test_sizing_that_cannot_size_an_opening_refuses_it():
    with pytest.raises(Refused, match="needs a stopLoss"):
        decide({"action": "buy", "price": 190, "quantity": 500, "quantityType": "risk_dollar_amount"})


# ------------------------------------------------------------------ the risk rules


@pytest.mark.parametrize(
    ("limits", "doc", "rule"),
    [
        ({"deny": ("AAPL",)}, {}, "deny"),
        ({"allow": ("MSFT",)}, {}, "allow"),
        ({"max_order_quantity": D(5)}, {}, "max_order_quantity"),
        ({"max_order_notional": D(1000)}, {}, "max_order_notional"),
        ({"max_position_quantity": D(5)}, {}, "max_position_quantity"),
        ({"max_position_notional": D(1000)}, {}, "max_position_notional"),
        ({"max_gross_exposure": D(1000)}, {}, "max_gross_exposure"),
        ({"max_open_orders": 2}, {}, "max_open_orders"),
        ({"max_price_deviation_percent": D(1)}, {"price": 150}, "max_price_deviation_percent"),
        ({"trading_hours": "regular"}, {}, "trading_hours"),
    ],
)
def test_every_risk_rule_refuses_an_opening_that_breaks_it(limits, doc, rule):
    rules = RiskRules(**limits)
    view = AccountView(D(0), 2, 1, D(0), "USD")
    at = datetime(2026, 12, 12, 15, 0, tzinfo=UTC) if rule == "trading_hours" else NOW  # a Saturday
    payload = AlertPayload.from_json({"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190, **doc})
    risk = RiskInputs(rules, "DU1", at, view, RiskCounters())
    proposal = propose(Look("A1", AAPL, D(0), "DU1", Quote(D(190), "IB last price", "live", "live"),
                            figures=FIGURES, risk=risk), payload, DecisionConfig())  # fmt: skip
    assert proposal.risk_refusal is not None and proposal.risk_refusal.startswith(f"risk: {rule}")
    refused = proposal.refused_record().to_json()  # what the alert's plan shows
    assert refused["legs"] == [] and refused["refused_legs"][0]["leg"] == "entry"
    assert refused["risk"]["refused"] == proposal.risk_refusal


def test_the_database_counters_are_asked_for_only_when_an_opening_needs_them():
    rules = RiskRules(max_orders_per_minute=3, daily_loss_limit=D(500))
    opening = decide({"action": "buy", "quantity": 10, "price": 190}, rules=rules)
    assert opening.missing == frozenset({COUNTERS}) and opening.risk is None
    closing = decide({"action": "exit"}, 10, rules=rules)
    assert closing.missing == frozenset() and closing.risk.notes[-1].startswith("closing only")
    busy = decide({"action": "buy", "quantity": 10, "price": 190}, rules=rules,
                  counters=RiskCounters(D(0), orders_last_minute=3))  # fmt: skip
    assert busy.risk_refusal.startswith("risk: max_orders_per_minute")


def test_a_daily_loss_beyond_the_limit_halts_and_refuses():
    rules = RiskRules(daily_loss_limit=D(500))
    lost = decide(
        {"action": "buy", "quantity": 10, "price": 190}, rules=rules, counters=RiskCounters(D(-600))
    )
    assert lost.risk_refusal.startswith("risk: daily_loss_limit") and lost.risk.halt_due.total == D(-600)
    halted = RiskCounters(D(-600), halt=Halt(trading_day(NOW), "earlier", NOW.isoformat()))
    again = decide({"action": "buy", "quantity": 10, "price": 190}, rules=rules, counters=halted)
    assert again.risk_refusal and again.risk.halt_due is None  # halted once, not twice


def test_a_rule_that_needs_a_price_asks_for_a_quote():
    rules = RiskRules(max_price_deviation_percent=D(1))
    asks = decide({"action": "buy", "quantity": 10, "price": 190}, rules=rules, quoted=False)
    assert asks.missing == frozenset({QUOTE})
    far = Quote(D(200), "IB last price", "live", "live")
    payload = AlertPayload.from_json({"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190})
    answered = propose(look(rules=rules, quoted=False).with_risk(counters=RiskCounters(), quote=far), payload,
                       DecisionConfig())  # fmt: skip
    assert answered.missing == frozenset() and answered.risk_refusal.startswith(
        "risk: max_price_deviation_percent"
    )


def test_dry_run_records_what_would_be_sent():
    proposal = decide({"action": "buy", "quantity": 10, "price": 190, "stopLoss": {"stopPrice": 185}},
                      rules=RiskRules(dry_run=True))  # fmt: skip
    assert (
        proposal.dry_run and proposal.dry_run_message() == "dry run: would send BUY 10 AAPL MKT + SL 185.00"
    )


@pytest.mark.parametrize(
    ("doc", "position", "rules", "label", "message"),
    [
        # the alert's test: true runs the whole decision and sends nothing; the reason starts "test:"
        ({"action": "buy", "quantity": 10, "test": True, "takeProfit": {"percent": 10}, "stopLoss": {"percent": 5}},
         0, None, "test", "test: would send BUY 10 AAPL MKT + TP 209.00 + SL 180.50"),
        ({"action": "sell", "quantity": 20, "test": True}, 10, None, "test",
         "test: would send SELL 10 AAPL MKT (close) + SELL 10 AAPL MKT"),
        ({"action": "exit", "test": True}, 10, None, "test", "test: would send SELL 10 AAPL MKT (exit)"),
        # with the risk file's dry_run too, the alert's own word names it
        ({"action": "buy", "quantity": 10, "test": True}, 0, RiskRules(dry_run=True), "test",
         "test: would send BUY 10 AAPL MKT"),
        ({"action": "buy", "quantity": 10}, 0, RiskRules(dry_run=True), "dry run", "dry run: would send BUY 10 AAPL MKT"),
        ({"action": "buy", "quantity": 10, "test": False}, 0, RiskRules(), None, None),
        ({"action": "buy", "quantity": 10}, 0, None, None, None),
    ],
)  # fmt: skip
def test_a_test_alert_is_decided_whole_and_says_what_would_be_sent(doc, position, rules, label, message):
    proposal = decide({"price": 190, **doc}, position, rules=rules)
    assert proposal.rehearsal == label and proposal.dry_run is (label is not None)
    if message is not None:
        assert proposal.dry_run_message() == message
        assert proposal.stored().legs  # the plan is stored in full, as for any alert


def test_a_test_alert_still_meets_the_risk_rules_and_its_refusal_says_test():
    proposal = decide({"action": "buy", "quantity": 10, "price": 190, "test": True},
                      rules=RiskRules(max_order_quantity=D(5)))  # fmt: skip
    payload = proposal.payload
    assert proposal.risk_refusal.startswith("risk: max_order_quantity 5 (defaults) exceeded")
    assert (
        rehearsal_reason(payload, proposal.risk_refusal) == "test: would be refused: " + proposal.risk_refusal
    )
    real = AlertPayload.from_json({"ticker": "AAPL", "action": "buy"})
    assert rehearsal_reason(real, "trading paused") == "trading paused"
    assert (
        rehearsal(payload, False) == "test"
        and rehearsal(real, True) == "dry run"
        and rehearsal(real, False) is None
    )


SATURDAY = datetime(2026, 12, 12, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ignore", "allowed", "position", "refusal", "legs_sent"),
    [
        (False, False, 0, "risk: trading_hours regular (defaults): AAPL is closed now", []),
        (True, True, 0, None, [("entry", "BUY", 10)]),  # allowed: the entry goes out on a Saturday
        (True, False, 0, "risk: trading_hours regular (defaults): the alert's ignoreTradingWindows: true is not "
                         "allowed: the risk file does not set allow_ignore_trading_windows: true", []),
        (False, True, 0, "risk: trading_hours regular (defaults): AAPL is closed now", []),  # not asked: the rule
        # a reversal whose opening part is refused still closes (an exit is never blocked)
        (True, False, -5, None, [("close", "BUY", 5)]),
    ],
)  # fmt: skip
def test_ignore_trading_windows_skips_trading_hours_only_where_the_risk_file_allows_it(
    ignore, allowed, position, refusal, legs_sent
):
    rules = RiskRules(trading_hours="regular", allow_ignore_trading_windows=allowed)
    payload = AlertPayload.from_json({"ticker": "AAPL", "action": "buy", "quantity": 15 if position else 10,
                                      "price": 190, "ignoreTradingWindows": ignore})  # fmt: skip
    risk = RiskInputs(rules, "DU1", SATURDAY, AccountView(D(0), 0, 0, D(0), "USD"), RiskCounters())
    proposal = propose(Look("A1", AAPL, D(position), "DU1", Quote(D(190), "IB last price", "live", "live"),
                            figures=FIGURES, risk=risk), payload, DecisionConfig())  # fmt: skip
    if refusal is None:
        assert proposal.risk_refusal is None and legs(proposal) == legs_sent
    else:
        assert proposal.risk_refusal.startswith(refusal)
    (check,) = [c for c in proposal.risk.checks if c.rule == "trading_hours"]
    assert check.passed is (refusal is None and position == 0)


# ------------------------------------------------------------------ the refused opening part


def test_a_plan_refusal_refuses_an_opening_whole():
    with pytest.raises(Refused, match="take-profit 180.00 is not above the entry reference 190"):
        decide({"action": "buy", "quantity": 10, "price": 190, "takeProfit": {"limitPrice": 180}})


def test_a_plan_refusal_of_a_reversals_open_keeps_its_close():
    proposal = decide({"action": "sell", "quantity": 20, "price": 190, "takeProfit": {"limitPrice": 195}}, 10)
    stored = proposal.stored()
    assert proposal.refused_open.startswith("take-profit 195.00 is not below the entry reference 190")
    assert legs(proposal) == [("close", "SELL", D(10))]
    assert stored.position.kind == "close" and stored.position.refused_open == proposal.refused_open
    assert stored.notes[-1] == f"opening part not sent: {proposal.refused_open}"


def test_a_risk_refusal_of_a_reversals_open_keeps_its_close():
    proposal = decide(
        {"action": "sell", "quantity": 20, "price": 190}, 10, rules=RiskRules(max_order_quantity=D(5))
    )
    assert proposal.risk_refusal is None and proposal.refused_open.startswith("risk: max_order_quantity")
    stored = proposal.stored()
    assert legs(proposal) == [("close", "SELL", D(10))] and stored.position.protection_after is None
    assert stored.risk.refusal == proposal.refused_open


def test_a_margin_refusal_of_a_reversals_open_keeps_its_close():
    proposal = decide({"action": "sell", "quantity": 20, "price": 190}, 10, DecisionConfig(margin_check=True))
    answer = judge(WhatIf(D(80_000)), FIGURES, proposal.margin_ask.described)
    settled = with_margin(proposal, answer)
    assert settled.refused_open.startswith("margin: needs 80,000 USD initial, available 50,000 USD")
    assert legs(settled) == [("close", "SELL", D(10))] and settled.stored().margin.verdict == "refused"


def test_a_margin_refusal_of_an_opening_refuses_it_whole():
    proposal = decide(
        {"action": "buy", "quantity": 10, "price": 190}, config=DecisionConfig(margin_check=True)
    )
    assert proposal.margin_ask.described == "BUY 10 AAPL MKT"
    with pytest.raises(MarginRefused) as refused:
        with_margin(proposal, judge(WhatIf(D(80_000)), FIGURES, proposal.margin_ask.described))
    assert refused.value.plan.to_json()["kind"] == "refused"
    assert [leg["leg"] for leg in refused.value.plan.to_json()["legs"]] == ["entry"]


def test_margin_off_is_recorded_and_asks_nothing():
    proposal = decide(
        {"action": "buy", "quantity": 10, "price": 190}, config=DecisionConfig(margin_check=False)
    )
    assert proposal.margin_ask is None and proposal.stored().margin.to_json() == {
        "check": "off", "rule": "MARGIN_CHECK=off", "order": "BUY 10 AAPL MKT"}  # fmt: skip


def test_a_future_is_decided_in_its_contracts():
    payload = AlertPayload.from_json({"ticker": "ES1!", "action": "buy", "quantity": 2, "price": 5000})
    proposal = propose(look(inst=ES, price=D(5000)), payload, DecisionConfig())
    assert legs(proposal) == [("entry", "BUY", D(2))] and proposal.stored().contract.local_symbol == "ESZ6"
