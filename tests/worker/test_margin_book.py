"""Margin without a round trip, as pure tables (worker/decision/margin_book.py): which openings a
cached per-unit figure may approve, when IB's what-if must decide instead (missing, stale, too
large, not linear, not covered), the safety factor, what is learned from an answer and what is
not (a broken answer), and the refusal wording that stays IB's. No simulator, no IB."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from worker_helpers import AAPL

from core.payload import AlertPayload
from worker.decision.core import DecisionConfig, propose, with_margin
from worker.decision.look import Look
from worker.decision.margin import MarginCheck, MarginRefused, WhatIf, judge
from worker.decision.margin_book import (
    CACHE_RULE,
    MarginPolicy,
    PerUnit,
    Reservation,
    cache_rule,
    from_cache,
    learned,
    margin_ask,
    reserved,
)
from worker.decision.model import Leg
from worker.decision.positions import Decision
from worker.recording.snapshots import AccountFigures

NOW = datetime(2026, 12, 9, 15, 0, tzinfo=UTC).timestamp()
FUNDS = AccountFigures("DU1", "USD", available_funds=D(1_000))
BUY = Leg("entry", "BUY", "MKT", D(10))
# 47.5 USD initial per share, learned from a what-if of 1 share 30 s ago
UNIT = PerUnit(D("47.5"), D("38"), "USD", D(1), NOW - 30, "BUY 1 AAPL MKT")
POLICY = MarginPolicy(D("1.1"), 300.0)


def ask(order: Leg = BUY, sec_type: str = "STK", position: int = 0, target: int = 10):
    decision = Decision("open", D(position), D(target), "why")
    return margin_ask(sec_type, decision, order, "AAPL")


# ------------------------------------------------------------------ not linear: IB's what-if


LMT = D("189.5")


@pytest.mark.parametrize(
    ("sec_type", "position", "target", "order_qty", "limit", "cached_qty", "why"),
    [
        ("STK", 0, 10, 10, None, D(10), ""),  # from flat, at market
        ("FUT", 0, -3, 3, None, D(3), ""),  # a short future from flat: linear too
        ("STK", 10, 15, 5, None, D(5), ""),  # an add: the added units
        ("STK", 10, -10, 20, None, D(10), ""),  # a reversal: the new side's opening part alone
        ("STK", 0, 10, 10, LMT, None, "a stock order with a price of its own (LMT): IB's margin follows"),
        ("FUT", 0, 10, 10, LMT, D(10), ""),  # a future's margin is per contract, whatever the limit
        ("OPT", 0, -1, 1, None, None, "not linear in quantity: an option"),  # a short option
        ("OPT", 0, 1, 1, None, None, "not linear in quantity: an option"),
        ("FOP", 0, -1, 1, None, None, "not linear in quantity: a future option"),
        ("BAG", 0, 1, 1, None, None, "not linear in quantity: a combination: IB nets its legs"),
        ("CASH", 0, 20000, 20000, None, None, "not linear in quantity: a CASH order: only stock and future"),
        ("CRYPTO", 0, 1, 1, None, None, "not linear in quantity: a CRYPTO order"),
        ("", 0, 1, 1, None, None, "not linear in quantity: a contract order"),
    ],
)
def test_cache_rule(sec_type, position, target, order_qty, limit, cached_qty, why):
    decision = Decision("open", D(position), D(target), "why")
    order = replace(BUY, quantity=D(order_qty), order_type="LMT" if limit else "MKT", limit_price=limit)
    cached, reason = cache_rule(sec_type, decision, order)
    assert (None if cached is None else cached.quantity) == cached_qty
    assert reason.startswith(why) and bool(reason) == (cached is None)


def test_a_plain_opening_is_learnable_a_reversal_is_not():
    assert ask().learnable
    reversal = ask(replace(BUY, quantity=D(20)), position=-10, target=10)
    assert not reversal.learnable and reversal.cached.quantity == D(10) and reversal.order.quantity == D(20)
    assert not ask(sec_type="OPT").learnable


# ------------------------------------------------------------------ fresh / stale / missing


@pytest.mark.parametrize(
    ("unit", "figures", "held", "now", "expected"),
    [
        (UNIT, FUNDS, D(0), NOW, "ok"),  # 10 x 47.5 x 1.1 = 522.50 <= 1,000
        (None, FUNDS, D(0), NOW, "no cached per-unit figure yet"),
        (replace(UNIT, learned_at=NOW - 301), FUNDS, D(0), NOW,
         "the cached per-unit figure is 301s old (MARGIN_MAX_AGE_SECONDS 300)"),
        (replace(UNIT, learned_at=NOW - 300), FUNDS, D(0), NOW, "ok"),  # at the limit: still used
        (replace(UNIT, learned_at=NOW + 60), FUNDS, D(0), NOW, "the cached per-unit figure is -60s old"),
        (replace(UNIT, initial=D(100)), FUNDS, D(0), NOW,
         "the cached figure does not cover it (needs 1,100 USD, available 1,000 USD)"),
        (UNIT, FUNDS, D(500), NOW,
         "the cached figure does not cover it (needs 522.50 USD + 500 USD just approved, available 1,000 USD)"),
        (UNIT, AccountFigures("DU1", "USD"), D(0), NOW,
         "the account's AvailableFunds is unknown (IB has not reported it)"),
        (replace(UNIT, currency="EUR"), FUNDS, D(0), NOW, "the cached figure is in EUR, the account reports USD"),
        (replace(UNIT, quantity=D("0.5")), FUNDS, D(0), NOW,
         "10 units is more than 10 x the 0.5 the cached figure was learned from"),
    ],
)  # fmt: skip
def test_from_cache(unit, figures, held, now, expected):
    settled = from_cache(ask(), unit, figures, held, now, POLICY)
    if expected == "ok":
        assert isinstance(settled, MarginCheck) and settled.verdict == "ok" and not settled.refused
    else:
        assert isinstance(settled, str) and settled.startswith(expected)


def test_max_age_zero_never_uses_a_cached_figure():
    fresh = replace(UNIT, learned_at=NOW - 0.001)
    assert from_cache(ask(), fresh, FUNDS, D(0), NOW, MarginPolicy(D("1.1"), 0.0)).startswith(
        "the cached per-unit figure is 0s old"
    )


def test_not_linear_is_never_settled_from_the_cache():
    assert from_cache(ask(sec_type="OPT"), UNIT, FUNDS, D(0), NOW, POLICY).startswith(
        "not linear in quantity"
    )


@pytest.mark.parametrize(
    ("factor", "covered"),
    [(D(1), True), (D("2.1"), True), (D("2.2"), False), (D(3), False)],  # 10 x 47.5 = 475; x 2.1 = 997.50
)
def test_the_safety_factor_multiplies_what_is_needed(factor, covered):
    settled = from_cache(ask(), UNIT, FUNDS, D(0), NOW, MarginPolicy(factor, 300.0))
    assert isinstance(settled, MarginCheck) == covered


def test_the_plan_says_which_figure_was_used_its_age_and_source():
    settled = from_cache(ask(), UNIT, FUNDS, D(0), NOW, POLICY)
    assert isinstance(settled, MarginCheck)
    doc = settled.to_json()
    assert doc["source"] == "cached per-unit from what-if at 2026-12-09T14:59:30Z, age 30s"
    assert doc["rule"] == CACHE_RULE and doc["order"] == "BUY 10 AAPL MKT" and doc["verdict"] == "ok"
    assert doc["per_unit"] == {
        "initial": "47.5", "maintenance": "38", "learned_from": "BUY 1 AAPL MKT",
        "learned_at": "2026-12-09T14:59:30Z", "age_seconds": "30.0", "safety_factor": "1.1",
        "needs": "522.50", "reserved": "0",
    }  # fmt: skip
    assert (doc["init_margin_change"], doc["maint_margin_change"], doc["available_funds"]) == (
        "475.0",
        "380",
        "1000",
    )
    assert MarginCheck.from_json(doc).to_json() == doc  # the stored plan round-trips


def test_a_reversal_is_approved_on_its_opening_part_without_the_freed_margin():
    reversal = ask(Leg("entry", "SELL", "MKT", D(20)), position=10, target=-10)
    settled = from_cache(reversal, replace(UNIT, learned_from="SELL 1 AAPL MKT"), FUNDS, D(0), NOW, POLICY)
    assert isinstance(settled, MarginCheck) and settled.order == "SELL 10 AAPL MKT"
    assert settled.per_unit.needs == "522.50"


# ------------------------------------------------------------------ what is learned


@pytest.mark.parametrize(
    ("answer", "quantity", "expected"),
    [
        (WhatIf(D("475"), D("380")), D(10), (D("47.5"), D("38"))),
        (WhatIf(D("100"), D("80")), D(3), (D("33.333334"), D("26.666667"))),  # rounded up, never down
        (None, D(10), None),  # no answer
        (WhatIf(None, D("380")), D(10), None),  # initMarginChange unset (IB's 1.797e308 reads as None)
        (WhatIf(D("475"), None), D(10), None),  # maintMarginChange unset
        (WhatIf(D("475"), D("380"), warning_text="Margin impact not available"), D(10), None),
        (WhatIf(D("0"), D("0")), D(10), None),  # needs nothing: no figure (a cash account, a close)
        (WhatIf(D("-475"), D("-380")), D(10), None),  # frees margin: netted, not an opening
        (WhatIf(D("1e20"), D("1e20")), D(10), None),  # absurd per unit
        (WhatIf(D("475"), D("380")), D(0), None),
    ],
)
def test_learned(answer, quantity, expected):
    unit = learned(answer, replace(BUY, quantity=quantity), "USD", NOW, "BUY 10 AAPL MKT")
    assert (None if unit is None else (unit.initial, unit.maintenance)) == expected


# ------------------------------------------------------------------ a broken answer


def test_a_broken_answer_is_never_read_as_enough_margin():
    broken = WhatIf(D("10"), None, None, None, warning_text="Margin calculation unavailable")
    check = judge(broken, FUNDS, "BUY 10 AAPL MKT")
    assert check.refused == (
        "margin: IB's what-if for BUY 10 AAPL MKT gave unusable figures (IB warns: Margin calculation "
        "unavailable); nothing sent"
    )
    # huge / infinite read as None; IB's text is the reason
    unset = judge(WhatIf(None, warning_text="Margin impact\n not available"), FUNDS, "BUY 10 AAPL MKT")
    assert unset.refused == (
        "margin: IB's what-if for BUY 10 AAPL MKT gave unusable figures (IB warns: Margin impact not "
        "available); nothing sent"
    )
    silent = judge(WhatIf(None), FUNDS, "BUY 10 AAPL MKT")  # no warning: the missing figure is the reason
    assert silent.refused == "margin: IB's what-if for BUY 10 AAPL MKT gave no initMarginChange; nothing sent"
    # a warning with every figure given is judged as before (IB's figures hold)
    whole = WhatIf(D("10"), D("8"), D("0"), D("10"), warning_text="Note")
    assert judge(whole, FUNDS, "BUY 10 AAPL MKT").verdict == "ok"


# ------------------------------------------------------------------ reservations


@pytest.mark.parametrize(
    ("reservations", "available", "expected"),
    [
        ([Reservation(D(100), D(1_000), NOW - 5)], D(1_000), D(100)),  # IB has not reported since
        ([Reservation(D(100), D(1_000), NOW - 5)], D(900), D(0)),  # IB reported new funds
        ([Reservation(D(100), D(1_000), NOW - 181)], D(1_000), D(0)),  # older than 180 s
        ([Reservation(D(100), D(1_000), NOW - 5), Reservation(D(50), D(1_000), NOW - 1)], D(1_000), D(150)),
        ([], D(1_000), D(0)),
    ],
)
def test_reserved(reservations, available, expected):
    assert reserved(reservations, available, NOW) == expected


# ------------------------------------------------------------------ through the core


def _proposal(doc: dict, position: int = 0, inst=AAPL):
    look = Look("A1", inst, D(position), "DU1", None, None, FUNDS)
    return propose(look, AlertPayload.from_json({"ticker": "AAPL", "price": 190, **doc}),
                   DecisionConfig(margin_check=True))  # fmt: skip


def test_the_core_names_what_a_cached_figure_may_approve():
    proposal = _proposal({"action": "buy", "quantity": 10})
    assert proposal.margin_ask.cached.quantity == D(10) and proposal.margin_ask.why == ""
    settled = with_margin(proposal, from_cache(proposal.margin_ask, UNIT, FUNDS, D(0), NOW, POLICY))
    assert settled.stored().margin.source.startswith("cached per-unit from what-if at")


def test_a_refusal_keeps_ibs_wording_the_cache_never_refuses():
    proposal = _proposal({"action": "buy", "quantity": 100})
    settled = from_cache(proposal.margin_ask, UNIT, FUNDS, D(0), NOW, POLICY)
    assert isinstance(settled, str)  # not covered: IB's what-if decides ...
    with pytest.raises(MarginRefused) as refused:  # ... and its refusal reads as it always did
        with_margin(proposal, judge(WhatIf(D(4_750)), FUNDS, proposal.margin_ask.described))
    assert str(refused.value) == (
        "margin: needs 4,750 USD initial, available 1,000 USD "
        "(IB what-if initMarginChange for BUY 100 AAPL MKT against AvailableFunds)"
    )
