"""Which decisions the express path keeps on the IB loop (worker/decision/express.py), as a table:
the proposal the pure decision makes from a look, and what the job thread's path must do instead
(a refusal, a halt, more inputs, IB's margin answer, nothing to send). Each row is a real
proposal from ``propose``; a decision that stays is one the IB loop can finish without waiting."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from worker_helpers import AAPL

from core.payload import AlertPayload
from core.risk_rules import RiskRules
from worker.decision import express
from worker.decision.core import DecisionConfig, propose
from worker.decision.look import Look
from worker.decision.quote import Quote
from worker.recording.snapshots import AccountFigures
from worker.risk.state import RiskCounters
from worker.risk.verdict import AccountView, RiskInputs

D = Decimal
NOW = datetime(2026, 12, 9, 15, 0, tzinfo=UTC)  # a Wednesday, New York's regular session
FIGURES = AccountFigures("DU1", "USD", net_liquidation=D(100_000), available_funds=D(50_000))
BUY = {"action": "buy", "quantity": 10, "price": 190}


def proposal(doc: dict[str, Any], *, position: int = 0, rules: RiskRules | None = None,
             counters: RiskCounters | None = None, margin: bool = False):  # fmt: skip
    risk = (
        None
        if rules is None
        else RiskInputs(rules, "DU1", NOW, AccountView(D(0), 0, 0, D(0), "USD"), counters)
    )
    quote = Quote(D(190), "IB last price", "live", "live")
    look = Look("A1", AAPL, D(position), "DU1", quote, None, FIGURES, risk=risk)
    config = DecisionConfig(margin_check=True if margin else None)
    return propose(look, AlertPayload.from_json({"ticker": "AAPL", **doc}), config)


@pytest.mark.parametrize(
    ("doc", "kw", "at_hand", "expected"),
    [
        (BUY, {}, {}, None),  # a plain bracket from flat: all on the loop
        ({**BUY, "takeProfit": {"percent": 1}, "stopLoss": {"percent": 0.5}}, {}, {}, None),
        ({"action": "sell", "quantity": 10}, {"position": 10}, {}, None),  # a close
        ({"action": "buy", "quantity": 20}, {"position": -10}, {}, None),  # a reversal
        (BUY, {"rules": RiskRules(max_order_quantity=D(50))}, {}, None),  # a rule that passes
        (BUY, {}, {"option": True}, express.OPTION),
        (BUY, {"rules": RiskRules(max_orders_per_minute=3)}, {"counters_at_hand": False}, express.COUNTERS),
        (BUY, {"rules": RiskRules(max_orders_per_minute=3)}, {}, express.RISK_INPUTS),  # no counters in the look
        ({"action": "exit"}, {}, {}, express.NOTHING),  # an exit with nothing held
        (BUY, {"rules": RiskRules(daily_loss_limit=D(500)), "counters": RiskCounters(D(-600))}, {}, express.HALT),
        (BUY, {"rules": RiskRules(max_orders_per_minute=3), "counters": RiskCounters(D(0), orders_last_minute=3)},
         {}, express.RISK_REFUSAL),
        (BUY, {"rules": RiskRules(max_order_quantity=D(5))}, {}, express.RISK_REFUSAL),
        ({**BUY, "test": True}, {}, {}, express.REHEARSAL),
        (BUY, {"rules": RiskRules(dry_run=True)}, {}, express.REHEARSAL),
        (BUY, {"margin": True}, {"margin_at_hand": False}, express.MARGIN),  # a cold figure: IB's what-if
        (BUY, {"margin": True}, {"margin_at_hand": True}, None),  # a fresh cached figure approves
    ],
)  # fmt: skip
def test_what_stays_on_the_loop(doc, kw, at_hand, expected):
    chosen = proposal(doc, **kw)
    where = {"option": False, "counters_at_hand": True, "margin_at_hand": None} | at_hand
    assert express.off_express(chosen, **where) == expected


def test_a_margin_check_is_due_only_for_an_opening():
    """What the executor passes as ``margin_at_hand``: a close asks no margin (nothing opens)."""
    assert proposal(BUY, margin=True).margin_ask is not None
    assert proposal({"action": "sell", "quantity": 10}, position=10, margin=True).margin_ask is None
